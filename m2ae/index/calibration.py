"""Familiarity calibration: the index's out-of-distribution reference, from held-out windows.

``calibrate_familiarity`` scores windows the index does not hold, in every input mode (both / ecg /
ppg), and keeps what ``m2ae.index.familiarity`` scores queries against (top-1 similarities to the index
and the signal-shape Gaussian, with their thresholds); it is saved as the index folder's
``familiarity.json``. Two sources:

- **simulated**: subjects that are NOT in the index (``m2ae.simulate.splits.VAL_SEED`` subjects,
  drawn with ``m2ae.simulate.labelled.subject_windows`` like ``m2ae eval`` draws its held-out windows);
- **real** (optional, ``real=``): held-out real records, e.g. half of the CinC 2015 validation split
  (``calibration_half``; ``m2ae index calibrate`` reads them). The shipped index holds those
  records' windows, so each record is searched with its own subject left out: its top-1 is to
  *other* records, as for a new patient.

``m2ae index build`` runs it at the end (simulated only), ``m2ae index calibrate`` on demand.

>>> ref = calibrate_familiarity(idx, model, real=records)     # writes <index>/familiarity.json  # doctest: +SKIP
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .familiarity import FLAG_QUANTILE_PCT, MODES, reference_mode, top1_similarity, window_shape
from .files import FAMILIARITY_FORMAT, utc_now, write_familiarity
from .fingerprints import model_version_of, resolve_model

WINDOWS_PER_SUBJECT = 6      # reference windows per simulated subject (the record-level median is over these)


def calibration_half(names: Sequence[str]) -> list[str]:
    """The records of a held-out split that calibrate (every other one, sorted); the rest stay out to
    check the calibration on."""
    return sorted(names)[::2]


def _mode_inputs(ecg: Any, ppg: Any, mode: str) -> tuple[Any, Any] | None:
    """(ecg, ppg) a mode reads from a record's windows, None when the record lacks a channel it needs."""
    if (mode != "ppg" and ecg is None) or (mode != "ecg" and ppg is None):
        return None
    return (ecg if mode != "ppg" else None), (ppg if mode != "ecg" else None)


def calibrate_familiarity(index: Any, model: Any = None, n_windows: int = 600, seed: int | None = None,
                          save: bool = True, real: Sequence[dict[str, Any]] | None = None,
                          real_data: str | None = None) -> dict[str, Any]:
    """The familiarity reference of ``index``, per input mode; saved as ``<index>/familiarity.json``
    (temp file + rename) when the index has a folder and ``save``.

    n_windows : simulated reference windows (``n_windows // WINDOWS_PER_SUBJECT`` subjects, at least 2).
    seed : simulator seed (default ``m2ae.simulate.splits.VAL_SEED``: subjects disjoint from the
        index's ``m2ae simulate`` cohorts and from the heads' training data).
    real : held-out real records, each {"record": name, "subject": its subject_id in the index (left
        out of its search), "ecg": [k, 1250] | None, "ppg": [k, 1250] | None} contract windows.
    real_data : where ``real`` came from, in words (kept in the reference).
    Returns the reference dict (also set as ``index.familiarity_reference``).
    """
    from ..model import fingerprints_by_mode  # torch: only when calibrating
    from ..simulate import splits
    from ..simulate.labelled import subject_windows

    model = resolve_model(model)
    index.check_model(model)
    seed = splits.VAL_SEED if seed is None else int(seed)
    n_subjects = max(2, int(n_windows) // WINDOWS_PER_SUBJECT)
    sim = subject_windows(n_subjects, WINDOWS_PER_SUBJECT, seed=seed)
    subjects = np.asarray(sim["subject_id"]).astype(str)
    in_index = set(index.metadata["subject_id"].astype(str)) & set(subjects)
    if in_index:
        raise InputError(f"familiarity calibration: {len(in_index)} reference subjects (seed {seed}) are in the index; "
                         "use another seed")
    fps = fingerprints_by_mode(model, sim["ecg"], sim["ppg"], batch_size=256)
    real = list(real or [])
    modes: dict[str, Any] = {}
    real_counts: dict[str, int] = {}
    for mode in MODES:
        e, p = (sim["ecg"] if mode != "ppg" else None), (sim["ppg"] if mode != "ecg" else None)
        top1, groups, sources = [top1_similarity(index, fps[mode])], [subjects], [np.full(len(subjects), "simulated")]
        shape = [window_shape(e, p)]
        recs = [(r, io) for r in real if (io := _mode_inputs(r.get("ecg"), r.get("ppg"), mode)) is not None]
        for r, (re, rp) in recs:
            fp = model.fingerprint(ecg=re, ppg=rp)
            top1.append(top1_similarity(index, fp, exclude_subject=str(r["subject"])))
            groups.append(np.full(len(fp), str(r["record"])))
            sources.append(np.full(len(fp), "real"))
            shape.append(window_shape(re, rp))
        real_counts[mode] = len(recs)
        modes[mode] = reference_mode(np.concatenate(top1), np.concatenate(groups), np.concatenate(sources),
                                     np.concatenate(shape))
    sim_words = (f"m2ae.simulate.labelled.subject_windows({n_subjects}, {WINDOWS_PER_SUBJECT}, seed={seed}): "
                 "simulated subjects not in the index")
    ref = {
        "format": FAMILIARITY_FORMAT,
        "model_version": model_version_of(model),
        "index_count": index.count,
        "n": int(len(subjects)),
        "subjects": int(n_subjects),
        "windows_per_subject": WINDOWS_PER_SUBJECT,
        "seed": seed,
        "real_records": real_counts,
        "data": sim_words + (f"; {real_data or 'held-out real records'}, each searched without its own windows"
                             if real else ""),
        "data_summary": (f"{len(subjects)} windows of {n_subjects} unseen simulated subjects"
                         + (f" and {max(real_counts.values())} held-out real records" if real else "")),
        "flag_quantile_pct": FLAG_QUANTILE_PCT,
        "date": utc_now(),
        "modes": modes,
    }
    index.familiarity_reference = ref
    if save and getattr(index, "path", None) is not None:
        write_familiarity(Path(index.path), ref)
    return ref
