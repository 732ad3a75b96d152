"""Privacy section of ``m2ae eval``: how often a fingerprint re-identifies its subject, and how much
of the raw window a ridge decoder rebuilds from the fingerprint alone."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..contract import MODALITIES
from . import metrics as M
from .baseline_fit import Baselines
from .datasets import EvalSet


def privacy_section(s: EvalSet, fps: dict[str, np.ndarray], base: Baselines) -> dict[str, Any]:
    """Re-identification rate from fingerprints and how well fingerprints alone rebuild the window."""
    n_groups = len(np.unique(s.group))
    decoder = {m: M._median(M.nmse(base.fp_decoder[m].predict(fps["both"]), getattr(s, m))) for m in MODALITIES}
    return {
        "reidentification_top1": {"model": M.same_subject_top1(fps["both"], s.group),
                                  "chance": 1.0 / n_groups if n_groups else float("nan"), "subjects": n_groups,
                                  "how": "nearest other window's subject, fingerprints from ECG+PPG"},
        "fingerprint_decoder_nmse": {**decoder, "how": "ridge from fingerprint to the raw window, fitted on "
                                     "simulated training subjects; median NMSE (1.0 = no better than the window mean)"},
    }
