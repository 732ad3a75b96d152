"""Familiarity section of ``m2ae eval``: how much of a data set the out-of-distribution gate
(``m2ae.index.familiarity``) would flag as unfamiliar, per input mode."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .datasets import EvalSet

if TYPE_CHECKING:
    from ..index import FingerprintIndex
    from ..model import M2AEModel


def familiarity_section(index: FingerprintIndex, model: M2AEModel, s: EvalSet,
                        fps: dict[str, np.ndarray]) -> dict[str, Any]:
    """Out-of-distribution gate (``m2ae.index.familiarity``) per input mode: the share of windows
    flagged unfamiliar (top-1 similarity to the index below the 1 % quantile of unseen simulated
    windows) and of groups (subjects / records) whose median top-1 is below the subject-level 1 %
    quantile."""
    from ..index.familiarity import familiarity

    out: dict[str, Any] = {}
    for mode, fp in fps.items():
        fam = familiarity(index, fp, mode, model=model)
        if not fam["calibrated"]:
            return {"status": f"not calibrated: {fam['note']}"}
        top1 = np.asarray(fam["top1"])
        groups = np.unique(s.group)
        flagged = [bool(np.median(top1[s.group == g]) < fam["record_threshold"]) for g in groups]
        out[mode] = {"windows_flagged": round(fam["share_unfamiliar"], 4), "median_top1": fam["median_top1"],
                     "window_threshold": fam["threshold"], "groups_flagged": round(float(np.mean(flagged)), 4),
                     "groups": int(len(groups)), "group_threshold": fam["record_threshold"]}
    reference: dict[str, Any] = index.familiarity_reference or {}  # set whenever the gate is calibrated
    out["how"] = (f"top-1 cosine similarity to {index.count} windows of {index.path}; thresholds = 1 % quantiles of "
                  f"{reference['data']} (windows; per-subject medians for groups)")
    return out
