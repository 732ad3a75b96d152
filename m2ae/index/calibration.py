"""Familiarity calibration: the top-1 similarities of unseen simulated windows, the index's OOD reference.

``calibrate_familiarity`` fingerprints windows of simulated subjects that are NOT in the index
(``m2ae.simulate.splits.VAL_SEED`` subjects, drawn with ``m2ae.simulate.labelled.subject_windows``
like ``m2ae eval`` draws its held-out windows) in every input mode (both / ecg / ppg), searches the
index (k = 1) and keeps what ``m2ae.index.familiarity`` scores queries against; it is saved as the
index folder's ``familiarity.json``. ``m2ae index build`` runs it at the end, ``m2ae index
calibrate`` on demand.

>>> ref = calibrate_familiarity(idx, model)          # writes <index>/familiarity.json   # doctest: +SKIP
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .familiarity import FLAG_QUANTILE_PCT, MODES, reference_mode, top1_similarity
from .files import FAMILIARITY_FORMAT, utc_now, write_familiarity
from .fingerprints import model_version_of, resolve_model

WINDOWS_PER_SUBJECT = 6      # reference windows per simulated subject (the record-level median is over these)


def calibrate_familiarity(index: Any, model: Any = None, n_windows: int = 600, seed: int | None = None,
                          save: bool = True) -> dict[str, Any]:
    """Reference top-1 similarities of unseen simulated windows, per input mode; saved as
    ``<index>/familiarity.json`` (temp file + rename) when the index has a folder and ``save``.

    n_windows : reference windows (``n_windows // WINDOWS_PER_SUBJECT`` subjects, at least 2).
    seed : simulator seed (default ``m2ae.simulate.splits.VAL_SEED``: subjects disjoint from the
        index's ``m2ae simulate`` cohorts and from the heads' training data).
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
    ref = {
        "format": FAMILIARITY_FORMAT,
        "model_version": model_version_of(model),
        "index_count": index.count,
        "n": int(len(subjects)),
        "subjects": int(n_subjects),
        "windows_per_subject": WINDOWS_PER_SUBJECT,
        "seed": seed,
        "data": f"m2ae.simulate.labelled.subject_windows({n_subjects}, {WINDOWS_PER_SUBJECT}, seed={seed}): "
                f"simulated subjects not in the index",
        "flag_quantile_pct": FLAG_QUANTILE_PCT,
        "date": utc_now(),
        "modes": {mode: reference_mode(top1_similarity(index, fps[mode]), subjects) for mode in MODES},
    }
    index.familiarity_reference = ref
    if save and getattr(index, "path", None) is not None:
        write_familiarity(Path(index.path), ref)
    return ref
