"""Labelled simulated subjects, several lagged windows each: what heads, validation and `m2ae eval` use.

``subject_windows`` draws ``n_subjects`` subjects from one split seed (``m2ae.simulate.splits``),
renders each ``windows_per_subject`` times (own drift, breathing and noise) and crops contract
windows with a random ECG/PPG lag (``m2ae.signal.crop``), with subject-level labels. It differs
from :func:`m2ae.simulate.windows.simulate_windows`, which renders exactly one contract window per
draw with the simulator's full ground truth (heart rate, pulse arrival, PVC count per window) for
streams and benchmarks; the two draw different random numbers, so each keeps its own results.

>>> d = subject_windows(3, 2, seed=7)
>>> d["ecg"].shape, d["subject_id"].shape
((6, 1250), (6,))
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..contract import FS_HZ, WINDOW_SAMPLES
from ..signal.crop import crop_pairs
from .core import synthesize
from .splits import ID_PREFIX
from .subject import sample_subject_table

HEAD_LABEL_KEYS = ("rhythm", "hypertension", "age", "sex")


def risk_label(rhythm: np.ndarray, hypertension: np.ndarray, age: np.ndarray) -> np.ndarray:
    """Composite 'higher cardiovascular risk' label defined on the simulator's ground truth:
    at least two of {age >= 65 y, hypertension, atrial fibrillation, ventricular ectopy (PVCs)}.
    A transparent teaching label for the demo, not a validated clinical score."""
    rhythm = np.asarray(rhythm)
    points = ((np.asarray(age, dtype=float) >= 65).astype(int) + np.asarray(hypertension, dtype=bool).astype(int)
              + (rhythm == "AF").astype(int) + (rhythm == "PVC").astype(int))
    return points >= 2


RISK_DEFINITION = ("higher cardiovascular risk = at least two of {age >= 65 y, hypertension, atrial "
                   "fibrillation, ventricular ectopy}; simulator ground truth, not a clinical score")


def subject_windows(n_subjects: int, windows_per_subject: int, seed: int, max_shift_s: float = 0.0,
                    noise: bool = True, rhythm: str | None = None,
                    p_wave_scale: float | np.ndarray = 1.0,
                    rhythms: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Labelled simulated windows for head fitting / validation: several windows per subject.

    Returns ecg, ppg float32 [N, 1250], subject_id [N], and label arrays (rhythm, hypertension,
    age, sex, risk) [N], N = n_subjects * windows_per_subject, from ``default_rng(seed)``.
    rhythm : fix every subject's rhythm ("NSR", "AF", ...); p_wave_scale : multiplies each subject's
    P-wave amplitude, one number or one per subject [n_subjects] (0 = no P waves: a stress test of
    what a rhythm classifier relies on, or faint P waves as real monitor leads often show).
    rhythms : the codes subjects are drawn from (default the five subject rhythms; the rhythm head adds
    the alarm rhythms, ``m2ae.contract.ALL_RHYTHM_CODES``).
    """
    rng = np.random.default_rng(seed)
    table = sample_subject_table(rng, n_subjects, rhythm=rhythm, id_prefix=ID_PREFIX.get(seed, f"s{seed}-"),
                                 rhythms=rhythms)
    scale = np.broadcast_to(np.asarray(p_wave_scale, dtype=np.float64), (n_subjects,))
    if np.any(scale != 1.0):
        table = {**table, "p_mv": table["p_mv"] * scale}
    rep = {k: np.repeat(v, windows_per_subject) for k, v in table.items()}
    src_margin = 2 * max_shift_s + 1.0
    sim = synthesize(rep, WINDOW_SAMPLES / FS_HZ + src_margin, FS_HZ, rng, noise=noise)
    out = crop_pairs(sim["ecg"], sim["ppg"], rng, max_shift_s)
    out["subject_id"] = rep["subject_id"]
    for k in HEAD_LABEL_KEYS:
        out[k] = rep[k]
    out["risk"] = risk_label(rep["rhythm"], rep["hypertension"], rep["age"])
    return out
