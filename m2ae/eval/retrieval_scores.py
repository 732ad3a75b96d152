"""Retrieval section of ``m2ae eval``: same-subject top-1 and PPG→paired-ECG top-1, fingerprints vs
hand-made feature vectors, plus the two-stage paired retrieval (``m2ae.eval.retrieval``) and its
mean-beat-template baseline on the same queries and candidates.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from . import metrics as M
from .baselines import MeanBeatTemplate, beat_features
from .datasets import EvalSet
from .reconstruction import MAX_LAG_S
from .retrieval import QRS_BAND_HZ, paired_retrieval

if TYPE_CHECKING:
    from ..model import M2AEModel

SHORTLIST = 50  # two-stage paired retrieval: candidates kept by the fingerprint stage per query


def retrieval_section(s: EvalSet, fps: dict[str, np.ndarray], feats: dict[str, np.ndarray],
                      feature_train: dict[str, np.ndarray], n_candidates: int, seed: int,
                      model: M2AEModel | None = None, template: MeanBeatTemplate | None = None) -> dict[str, Any]:
    """Same-subject top-1 and PPG→paired-ECG top-1: fingerprints vs hand-made feature vectors.

    With ``model``, the paired task also gets ``model_two_stage`` (``paired_retrieval``: fingerprint
    shortlist of ``SHORTLIST``, re-ranked by lag-tolerant correlation with the ECG the model rebuilds
    from the PPG) on the same queries and candidates; with ``template`` too, the same two stages with
    the mean-beat template ECG (placed at the detected pulse peaks) instead of the model's ECG, to show
    what the model's reconstruction adds over classical beat timing."""
    n_groups = len(np.unique(s.group))
    both_f, = M.standardize(feature_train["both"], feats["both"])[1:]
    hits_model = M.same_subject_hits(fps["both"], s.group)
    hits_features = M.same_subject_hits(both_f, s.group, metric="euclidean")
    same = {"model": float(np.nanmean(hits_model)), "features": float(np.nanmean(hits_features)),
            "ci95_model_minus_features": M.difference_ci(hits_model, hits_features, s.group, np.nanmean, seed),
            "chance": 1.0 / n_groups if n_groups else float("nan"),
            "subjects": n_groups, "windows": len(s), "embedding": "fingerprint from ECG+PPG"}
    rng = np.random.default_rng(seed)
    k = min(n_candidates, len(s))
    idx = np.sort(rng.choice(len(s), size=k, replace=False))
    # cross-modal features: the HRV part is comparable between R peaks and pulse peaks
    rp, pp = s.peaks()
    hrv_e, hrv_p = beat_features([rp[i] for i in idx]), beat_features([pp[i] for i in idx])
    hrv_train = np.concatenate([feature_train["ecg"][:, :hrv_e.shape[1]], feature_train["ppg"][:, :hrv_p.shape[1]]])
    _, hrv_e, hrv_p = M.standardize(hrv_train, hrv_e, hrv_p)
    query_group = s.group[idx]
    hits_model = M.paired_hits(fps["ppg"][idx], fps["ecg"][idx])
    hits_features = M.paired_hits(hrv_p, hrv_e, "euclidean")
    paired: dict[str, Any] = {
        "model": float(np.mean(hits_model)), "features": float(np.mean(hits_features)),
        "ci95_model_minus_features": M.difference_ci(hits_model, hits_features, query_group, np.mean, seed),
        "chance": 1.0 / k, "candidates": k,
        "embedding": "query: fingerprint from PPG only; candidates: fingerprints from ECG only"}
    if model is not None:
        stages: dict[str, Any] = {"shortlist": SHORTLIST, "max_lag_s": MAX_LAG_S,
                                  "query_fingerprints": fps["ppg"][idx], "candidate_fingerprints": fps["ecg"][idx]}
        two = paired_retrieval(model, s.ppg[idx], s.ecg[idx], **stages)
        hits_two = two.hits()
        paired["model_two_stage"] = {
            "top1": two.top1_accuracy(), "shortlist": two.shortlist,
            "ci95_model_minus_features": M.difference_ci(hits_two, hits_features, query_group, np.mean, seed),
            "shortlist_recall": two.shortlist_recall(), "stage1_top1": two.stage1_top1_accuracy(),
            "how": f"m2ae.eval.retrieval.paired_retrieval: stage 1 keeps the {two.shortlist} candidates whose "
                   "ECG-only fingerprint is most cosine-similar to the query's PPG-only fingerprint; stage 2 "
                   "re-ranks them by the max normalised cross-correlation within ±"
                   f"{MAX_LAG_S:g} s between the model's ECG reconstructed from the query PPG alone and each "
                   f"candidate ECG, both band-passed to the QRS band ({QRS_BAND_HZ[0]:g}-{QRS_BAND_HZ[1]:g} Hz) "
                   "(correlation only, the fingerprint cosine is not added; shortlist_recall = "
                   "fraction of true pairs that survive stage 1)"}
        if template is not None:
            ecg_tpl = template.ecg_from_ppg([pp[i] for i in idx], s.ecg.shape[1])
            two_tpl = paired_retrieval(model, s.ppg[idx], s.ecg[idx], ecg_estimate=ecg_tpl, **stages)
            paired["mean_beat_template_two_stage"] = {
                "top1": two_tpl.top1_accuracy(), "shortlist": two_tpl.shortlist,
                "ci95_model_two_stage_minus_this": M.difference_ci(
                    hits_two, two_tpl.hits(), query_group, np.mean, seed),
                "how": "baseline for model_two_stage: the same fingerprint shortlist and the same lag-tolerant "
                       "QRS-band correlation, but against the mean-beat template ECG placed at the query's detected "
                       "pulse peaks (fitted on simulated_train) instead of the model's reconstruction"}
    return {"same_subject_top1": same, "ppg_to_paired_ecg_top1": paired}
