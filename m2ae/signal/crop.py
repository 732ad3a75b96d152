"""Lagged crops: contract windows cut from longer 125-Hz segments with a random ECG/PPG lag.

Real devices differ in their ECG -> PPG acquisition delay, so training and evaluation windows are
cropped with the PPG shifted against the ECG by a uniform random lag (the model must not rely on
one delay). Used for simulated subjects and corpus segments alike. numpy + scipy only.

>>> import numpy as np
>>> x = np.random.default_rng(0).standard_normal((2, 1400))
>>> out = crop_pairs(x, x.copy(), np.random.default_rng(1), max_shift_s=0.3, filtered=True)
>>> out["ecg"].shape, out["shift_samples"].shape
((2, 1250), (2,))
"""
from __future__ import annotations

import numpy as np

from ..contract import FS_HZ, WINDOW_SAMPLES
from .filters import ecg_bandpass, ppg_bandpass, ppg_fix_polarity, robust_normalise


def crop_pairs(ecg: np.ndarray | None, ppg: np.ndarray | None, rng: np.random.Generator, max_shift_s: float,
               filtered: bool = False) -> dict[str, np.ndarray]:
    """Contract windows cropped from longer 125-Hz segments with a random ECG/PPG lag.

    ecg, ppg : [n, T] at 125 Hz, T >= 1250 + 2 * max_shift samples (None = absent).
    filtered : segments are already band-passed (and PPG polarity fixed); else done here.
    Returns {"ecg", "ppg"}: float32 [n, 1250] robust-normalised (zeros when absent) and
    "shift_samples" int [n] (PPG crop start minus ECG crop start).
    """
    ref = ecg if ecg is not None else ppg
    if ref is None:
        raise ValueError("crop_pairs: give ecg, ppg or both")
    n: int  # declared so that rng.integers(..., n) types as an array
    T: int
    n, T = ref.shape
    S = int(round(max_shift_s * FS_HZ))
    if T < WINDOW_SAMPLES + 2 * S:
        raise ValueError(f"segments of {T} samples are too short for 1250-sample crops with ±{S} shift")
    if not filtered:
        ecg = None if ecg is None else ecg_bandpass(ecg, FS_HZ)
        ppg = None if ppg is None else ppg_fix_polarity(ppg_bandpass(ppg, FS_HZ), FS_HZ)[0]
    shift = rng.integers(-S, S + 1, n) if S > 0 else np.zeros(n, dtype=np.int64)
    # ECG start so that both crops fit: start in [max(0,-d), T-1250-max(0,d)]
    lo = np.maximum(0, -shift)
    hi = T - WINDOW_SAMPLES - np.maximum(0, shift)
    start = lo + (rng.random(n) * (hi - lo + 1)).astype(np.int64)
    idx = start[:, None] + np.arange(WINDOW_SAMPLES)[None, :]
    rows = np.arange(n)[:, None]
    out: dict[str, np.ndarray] = {"shift_samples": shift}
    for name, x, s in (("ecg", ecg, 0), ("ppg", ppg, 1)):
        if x is None:
            out[name] = np.zeros((n, WINDOW_SAMPLES), np.float32)
            continue
        w = np.asarray(x)[rows, idx + (shift[:, None] if s else 0)].astype(np.float64)
        out[name] = robust_normalise(w, axis=-1)[0].astype(np.float32)
    return out

