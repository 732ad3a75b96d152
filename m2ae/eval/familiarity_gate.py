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
    flagged unfamiliar (top-1 similarity to the index below, or signal-shape distance above, the
    reference's limits) and of groups (subjects / records) whose medians are outside the group limits."""
    from ..index.familiarity import familiarity

    out: dict[str, Any] = {}
    for mode, fp in fps.items():
        fam = familiarity(index, fp, mode, model=model, ecg=s.ecg if mode != "ppg" else None,
                          ppg=s.ppg if mode != "ecg" else None)
        if not fam["calibrated"]:
            return {"status": f"not calibrated: {fam['note']}"}
        top1 = np.asarray(fam["top1"])
        dist = None if fam["shape_distance"] is None else np.asarray(fam["shape_distance"])
        groups = np.unique(s.group)
        flagged = [bool(np.median(top1[s.group == g]) < fam["record_threshold"]
                        or (dist is not None and np.median(dist[s.group == g]) > fam["record_shape_threshold"]))
                   for g in groups]
        out[mode] = {"windows_flagged": round(fam["share_unfamiliar"], 4), "median_top1": fam["median_top1"],
                     "median_shape_distance": fam["median_shape_distance"], "window_threshold": fam["threshold"],
                     "window_shape_threshold": fam["shape_threshold"],
                     "groups_flagged": round(float(np.mean(flagged)), 4), "groups": int(len(groups)),
                     "group_threshold": fam["record_threshold"],
                     "group_shape_threshold": fam["record_shape_threshold"]}
    reference: dict[str, Any] = index.familiarity_reference or {}  # set whenever the gate is calibrated
    out["how"] = (f"top-1 cosine similarity to {index.count} windows of {index.path} and signal-shape distance; "
                  f"limits = {reference.get('flag_quantile_pct', 1):g} % tails of {reference['data']} "
                  "(windows; per-subject / per-record medians for groups)")
    return out
