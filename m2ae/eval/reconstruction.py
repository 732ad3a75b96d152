"""Reconstruction sections of ``m2ae eval``: cross-modal (PPG→ECG, ECG→PPG from one modality alone,
model vs ridge vs mean-beat template) and masked (50 % complementary masking vs linear interpolation).

Cross-modal scores are per window, plain and after one best lag per subject/record within
±``MAX_LAG_S`` seconds (a device's pulse-arrival offset is not the model's to know).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..contract import FS_HZ, MODALITIES
from . import metrics as M
from .baseline_fit import Baselines
from .datasets import EvalSet

if TYPE_CHECKING:
    from ..model import M2AEModel

MAX_LAG_S = 1.0  # lag search (s) per subject/record for cross-modal scores and stage-2 retrieval
# headline metric -> per-window score it is the median of (m2ae.eval.metrics.reconstruction_scores)
RECONSTRUCTION_SCORES = {"median_r_lagged": "r_lag", "median_nmse_lagged": "nmse_lag", "median_r": "r"}


CROSS_MODAL_TASKS = (("ecg", "ppg", "ecg_from_ppg"), ("ppg", "ecg", "ppg_from_ecg"))  # target, source, mode


CROSS_MODAL_PARTS = tuple(f"{source}_to_{target}" for target, source, _ in CROSS_MODAL_TASKS)
RECONSTRUCTION_PARTS = (*CROSS_MODAL_PARTS, "masked")


def model_reconstructions(model: M2AEModel, s: EvalSet, seed: int,
                          parts: tuple[str, ...] = RECONSTRUCTION_PARTS) -> dict[str, Any]:
    """The reconstructions the sections score, made once: {"ppg_to_ecg", "ecg_to_ppg": prediction
    [N, T] from the other modality alone, placed at the card's pulse-arrival delay, one move per
    record/subject (what the app shows); "masked": ``model.reconstruct``'s output for 50 %
    complementary masking with ``seed``}, for the keys in ``parts``."""
    out: dict[str, Any] = {
        f"{source}_to_{target}": model.reconstruct(**{source: getattr(s, source)}, mode=mode,
                                                   timing_groups=s.group)[target]["prediction"]
        for target, source, mode in CROSS_MODAL_TASKS if f"{source}_to_{target}" in parts}
    if "masked" in parts:
        out["masked"] = model.reconstruct(ecg=s.ecg, ppg=s.ppg, mask_ratio=0.5, mode="complementary", seed=seed)
    return out


def cross_modal_section(model: M2AEModel, s: EvalSet, base: Baselines, by_record: bool = False,
                        seed: int = 0, recon: dict[str, Any] | None = None) -> dict[str, Any]:
    """PPG→ECG and ECG→PPG from one modality alone: model vs ridge vs mean-beat template.

    by_record : also report every record's own medians (real data: few records, each its own device).
    recon : ``model_reconstructions(model, s, seed)`` when the caller has them (else made here).
    Each task also holds ``ci95_model_minus``: {baseline: {metric: [low, high]}}, the 95 % CI of the
    model's median minus the baseline's, resampling subjects/records (``M.difference_ci``).
    """
    max_lag = int(MAX_LAG_S * FS_HZ)
    rp, pp = s.peaks()
    T = s.ecg.shape[1]
    out: dict[str, Any] = {}
    recon = recon if recon is not None else model_reconstructions(model, s, seed, CROSS_MODAL_PARTS)
    for target, source, _ in CROSS_MODAL_TASKS:
        truth, src = getattr(s, target), getattr(s, source)
        rec = recon[f"{source}_to_{target}"]
        tpl = base.template.ecg_from_ppg(pp, T) if target == "ecg" else base.template.ppg_from_ecg(rp, T)
        preds = {"model": rec, "ridge": base.ridge[target].predict(src), "mean_beat_template": tpl}
        scores = {k: M.reconstruction_scores(v, truth, s.group, max_lag) for k, v in preds.items()}
        entry: dict[str, Any] = {k: M.summarize_reconstruction(v, FS_HZ) for k, v in scores.items()}
        entry["ci95_model_minus"] = {
            b: {metric: M.difference_ci(scores["model"][key], scores[b][key], s.group, seed=seed)
                for metric, key in RECONSTRUCTION_SCORES.items()}
            for b in ("ridge", "mean_beat_template")}
        if by_record:
            entry["by_record"] = {
                str(g): {k: M.summarize_reconstruction({key: val[s.group == g] for key, val in v.items()}, FS_HZ)
                         for k, v in scores.items()}
                for g in np.unique(s.group)}
        out[f"{source}_to_{target}"] = entry
    out["settings"] = {"max_lag_s": MAX_LAG_S, "lag_per": "subject" if s.labels else "record",
                       "windows": len(s)}
    return out


def masked_section(model: M2AEModel, s: EvalSet, seed: int, recon: dict[str, Any] | None = None) -> dict[str, Any]:
    """50 % complementary masking: NMSE on the hidden patches, model vs linear interpolation.
    recon : ``model_reconstructions(model, s, seed)`` when the caller has them."""
    rec = (recon if recon is not None else model_reconstructions(model, s, seed, ("masked",)))["masked"]
    out: dict[str, Any] = {}
    for m in MODALITIES:
        truth, mask = getattr(s, m), rec[m]["mask"]
        model_nmse = M.nmse(rec[m]["prediction"], truth, mask)
        interp_nmse = M.nmse(M.interpolate_masked(truth, mask), truth, mask)
        out[m] = {"model": M._median(model_nmse), "linear_interpolation": M._median(interp_nmse),
                  "ci95_model_minus_linear_interpolation": M.difference_ci(model_nmse, interp_nmse, s.group, seed=seed)}
    out["settings"] = {"mask_ratio": 0.5, "mode": "complementary", "seed": seed,
                       "metric": "median NMSE over windows, on hidden patches only", "windows": len(s)}
    return out
