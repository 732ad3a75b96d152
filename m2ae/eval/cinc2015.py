"""The real-corpus section of ``m2ae eval``: the CinC 2015 ICU records' **test** split.

Data: every test record's cached windows of the minute before its alarm (240–300 s, six 10-s windows
on a record without gaps; ``m2ae.train.alarm_data``, preprocessed once and cached outside the repo).
The reconstruction and matching sections read the records that have both ECG and PPG; the alarm
section reads every record. Baselines are fitted on the **train** split (never on test): the
mean-beat template and the patch ridge on the train records' paired windows, the hand-made feature
scaling on the same windows, and the alarm baselines as ``m2ae.eval.alarm_section`` describes.

Sections, each from the module that scores it on simulated data too:

- ``cross_modal`` / ``masked`` (``reconstruction``): PPG→ECG and ECG→PPG (lagged r, NMSE; one lag per
  record within ±1 s) vs the mean-beat template and ridge, 50 % complementary masking vs interpolation;
- ``retrieval`` (``retrieval_scores``): same-record top-1 among all test windows, PPG→paired-ECG top-1
  per window (fingerprint and two-stage);
- ``patient_matching`` (``patient_matching``): each record's PPG-only fingerprint (mean over its
  windows) → the ECG-only fingerprints of all test records: is its own record first (top-1), in the
  first five (top-5)? Baseline: HRV of the pulse peaks vs HRV of the R peaks, Euclidean. Also with
  each input's fingerprints centred on its mean over the train split's windows (``_centred``);
- ``alarm`` (``alarm_section``): true vs false alarm, the head vs the classical and rule baselines;
- ``checkpoint_baselines`` (``checkpoint_baseline``): the same figures of another checkpoint on the
  same windows, by default the simulator-only checkpoint the shipped model was fine-tuned from (its
  alarm heads fitted with the same protocol), so the real-data fine-tune is judged against its start.

Every comparison carries a 95 % CI of model − baseline from resampling test records.
"""
from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..train.alarm_data import (AlarmRecord, cache_dir_for, default_cinc2015_dir, load_alarm_records,
                                split_counts, window_count)
from . import metrics as M
from .alarm_section import alarm_lines, alarm_rows, alarm_section
from .baseline_fit import Baselines, input_features
from .baselines import MeanBeatTemplate, PatchRidge, beat_features
from .checkpoint_baseline import (checkpoint_figures, checkpoint_lines, checkpoint_rows, compare_checkpoints,
                                  default_checkpoints, record_ranks, true_rank)
from .datasets import EvalSet
from .reconstruction import cross_modal_section, masked_section, model_reconstructions
from .retrieval_scores import retrieval_section

if TYPE_CHECKING:
    from ..model import M2AEModel

__all__ = ["cinc2015_section", "cinc2015_set", "patient_matching", "cinc2015_rows", "cinc2015_lines",
           "default_cinc2015_dir"]


def cinc2015_set(records: Sequence[AlarmRecord], split: str) -> EvalSet | None:
    """Every cached window of the ``split`` records that have both ECG and PPG, with their beats."""
    mine = [r for r in records if r.split == split and r.ecg is not None and r.ppg is not None]
    if not mine:
        return None
    group = np.concatenate([[r.name] * len(r.starts_s) for r in mine])
    rp = [r.window_peaks("ecg", i) for r in mine for i in range(len(r.starts_s))]
    pp = [r.window_peaks("ppg", i) for r in mine for i in range(len(r.starts_s))]
    ecg = np.concatenate([r.ecg for r in mine if r.ecg is not None])
    ppg = np.concatenate([r.ppg for r in mine if r.ppg is not None])
    return EvalSet(f"cinc2015_{split}", f"CinC 2015 {split} split: {len(mine)} ECG+PPG records x the 10-s windows "
                   f"of the minute before the alarm ({len(group)} windows)", ecg, ppg, group,
                   r_peaks=rp, pulse_peaks=pp, info={"records": len(mine), "windows": len(group)})


def fit_real_baselines(train: EvalSet, base: Baselines | None) -> Baselines:
    """The reconstruction baselines and feature scaling refitted on the real train split's windows;
    the rest of ``base`` (simulated) is kept."""
    rp, pp = train.peaks()
    ridge = {"ecg": PatchRidge().fit(train.ppg, train.ecg), "ppg": PatchRidge().fit(train.ecg, train.ppg)}
    template = MeanBeatTemplate().fit(train.ecg, train.ppg, rp, pp)
    feats = input_features(train)
    if base is None:
        return Baselines(ridge, template, {}, {}, feats)
    return dataclasses.replace(base, ridge=ridge, template=template, feature_train=feats)


def _per_record_mean(x: np.ndarray, group: np.ndarray, names: np.ndarray) -> np.ndarray:
    """Mean row per record [len(names), F], NaN where a record has no finite value in a column."""
    with warnings.catch_warnings():  # an all-NaN column (e.g. no beats in any window) stays NaN, quietly
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.stack([np.nanmean(x[group == g], axis=0) for g in names])


def patient_matching(s: EvalSet, fps: dict[str, np.ndarray], feature_train: dict[str, np.ndarray],
                     seed: int = 0, centres: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """Record-level PPG → ECG matching among all the set's records: top-1 and top-5, model vs HRV features;
    with ``centres`` (each input's mean fingerprint on the train split) also the model with its
    fingerprints centred per input (``record_ranks``), under the keys ending in ``_centred``."""
    names = np.unique(s.group)
    n = len(names)
    ranks_model = {"": record_ranks(fps, s.group, names)}
    if centres:
        ranks_model["_centred"] = record_ranks(fps, s.group, names, centres)
    rp, pp = s.peaks()
    hrv_e = _per_record_mean(beat_features(rp), s.group, names)
    hrv_p = _per_record_mean(beat_features(pp), s.group, names)
    k = hrv_e.shape[1]
    hrv_train = np.concatenate([feature_train["ecg"][:, :k], feature_train["ppg"][:, :k]])
    _, hrv_e, hrv_p = M.standardize(hrv_train, hrv_e, hrv_p)
    dist = ((hrv_p[:, None, :] - hrv_e[None, :, :]) ** 2).sum(-1)
    rank_feat = true_rank(-dist)
    out: dict[str, Any] = {}
    for suffix, rank_model in ranks_model.items():
        for top in (1, 5):
            hm, hf = (rank_model < top).astype(float), (rank_feat < top).astype(float)
            out[f"ppg_to_ecg_record_top{top}{suffix}"] = {
                "metric": f"top{top}", "model": float(hm.mean()), "features": float(hf.mean()),
                "chance": min(top, n) / n, "ci95_model_minus_features": M.difference_ci(hm, hf, names, np.mean, seed),
                "records": n}
    out["how"] = ("query: a record's PPG-only fingerprint (mean of its windows' fingerprints, L2-normalised); "
                  f"candidates: the ECG-only fingerprints of all {n} test records with ECG+PPG, cosine; baseline: "
                  "HRV features of the pulse peaks vs of the R peaks (mean over the windows), z-scored on the train "
                  "split, Euclidean" + ("; _centred: each input's fingerprints minus its mean fingerprint on the "
                                        "train split's windows, before the record mean" if centres else ""))
    return out


def input_centres(model: M2AEModel, s: EvalSet) -> dict[str, np.ndarray]:
    """{"ecg", "ppg": the mean fingerprint [D] of ``s``'s windows from that input alone}."""
    return {m: model.fingerprint(**{m: getattr(s, m)}).mean(axis=0) for m in ("ecg", "ppg")}


def cinc2015_section(model: M2AEModel, data_dir: str | Path | None = None, base: Baselines | None = None,
                     seed: int = 0, n_candidates: int = 1000, cache_dir: str | Path | None = None,
                     records: Sequence[str] | None = None, quiet: bool = True,
                     checkpoints: dict[str, M2AEModel] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The real-corpus section and the data note for ``result["data"]["cinc2015"]``.

    data_dir : the corpus (default ``default_cinc2015_dir()``); absent → ({"status": ...}, info).
    base : the run's simulated baselines (the real ones replace ridge, template and feature scaling).
    records : only these record names (tests); None = the whole corpus.
    checkpoints : other checkpoints scored as baselines ({name: model}); None = the shipped
        simulator-only checkpoint (``checkpoint_baseline.default_checkpoints``), {} = none.
    """
    t0 = time.time()
    path = Path(data_dir) if data_dir is not None else default_cinc2015_dir()
    if not (path / "labels.csv").is_file() and not (path.parent / "labels.csv").is_file():
        status = f"absent: no CinC 2015 corpus at {path} (--cinc2015 DIR or $M2AE_CINC2015_DATA)"
        return {"status": status}, {"status": "absent", "path": str(path)}
    recs = load_alarm_records(path, cache_dir=cache_dir, records=records, quiet=quiet)
    test, train = cinc2015_set(recs, "test"), cinc2015_set(recs, "train")
    info: dict[str, Any] = {
        "status": "ok", "path": str(path), "cache": str(cache_dir_for(path, cache_dir)), "records": split_counts(recs),
        "windows_cached": window_count(recs),
        "dropped_channels": {r.name: r.dropped for r in recs if r.dropped and r.split == "test"},
        "without_windows": {r.name: r.error for r in recs if r.error},
        "note": "test split scored; the train split fits the reconstruction and matching baselines; the alarm "
                "models are fitted and chosen (cross-validation) on the train and validation splits"}
    if test is None or train is None:
        return {"status": "no ECG+PPG records on the test or train side"}, info
    from ..model.inference import fingerprints_by_mode

    real = fit_real_baselines(train, base)
    info["baselines_fitted_on"] = train.description
    fps = fingerprints_by_mode(model, test.ecg, test.ppg)
    feats = input_features(test)
    out: dict[str, Any] = {"data": test.description, "windows": len(test), "records": int(len(np.unique(test.group)))}
    recon = model_reconstructions(model, test, seed)   # made once: the sections and the checkpoint rows share them
    with warnings.catch_warnings():  # a flat stretch (ICU monitors have them) has no r: NaN, said quietly
        warnings.simplefilter("ignore", RuntimeWarning)
        out["cross_modal"] = cross_modal_section(model, test, real, by_record=False, seed=seed, recon=recon)
    out["masked"] = masked_section(model, test, seed, recon=recon)
    out["retrieval"] = retrieval_section(test, fps, feats, real.feature_train, n_candidates, seed, model=model,
                                         template=real.template)
    out["patient_matching"] = patient_matching(test, fps, real.feature_train, seed, centres=input_centres(model, train))
    others = default_checkpoints(model) if checkpoints is None else dict(checkpoints)
    if others:
        mine = checkpoint_figures(model, test, seed, n_candidates, fps=fps, recon=recon)
        out["checkpoint_baselines"] = {
            name: compare_checkpoints(mine, checkpoint_figures(other, test, seed, n_candidates), test, seed,
                                      n_candidates, other) for name, other in others.items()}
    out["alarm"] = alarm_section(model, recs, seed, checkpoints=others)
    out["wall_time_s"] = round(time.time() - t0, 1)
    return out, info


def cinc2015_rows(sec: dict[str, Any], add: Any) -> None:
    """Headline rows of the patient-matching and alarm parts (the reconstruction and retrieval rows come
    from ``report.headline``'s shared loop) through its row maker ``add``."""
    for key, e in (sec.get("patient_matching") or {}).items():
        if isinstance(e, dict) and "model" in e:
            add("cinc2015", key, e.get("metric") or ("top1" if key.endswith("top1") else "top5"), True, e["model"],
                "features", e["features"], e.get("ci95_model_minus_features"))
    checkpoint_rows(sec.get("checkpoint_baselines") or {}, add)
    alarm_rows(sec.get("alarm") or {}, add)


def cinc2015_lines(sec: dict[str, Any]) -> list[str]:
    """Text-table lines of the patient-matching and alarm parts."""
    lines = []
    pm = sec.get("patient_matching") or {}
    for key, e in pm.items():
        if isinstance(e, dict) and "model" in e:
            lines.append(f"  {key:32s} model {e['model']:6.3f}   features {e['features']:6.3f}   "
                         f"chance {e['chance']:6.3f}   ({e['records']} records)")
    if lines:
        lines.insert(0, "cross-modal patient matching (record level, PPG-only -> ECG-only fingerprint)")
    return lines + checkpoint_lines(sec.get("checkpoint_baselines") or {}) + alarm_lines(sec.get("alarm") or {})
