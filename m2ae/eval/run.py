"""``run_eval``: one whole ``m2ae eval`` run — the data sets drawn (fixed seeds, in a fixed order, so a
run is reproducible), the baselines fitted, every section scored on every data set, the report rows
added. What each section measures is in its module; the package docstring (``m2ae.eval``) has the
overview.
"""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from collections.abc import Sequence

import numpy as np

from ..contract import FS_HZ, PATCH_SAMPLES
from ..errors import InputError
from .baseline_fit import Baselines, fit_baselines, input_features
from .cinc2015 import cinc2015_section
from .datasets import EvalSet, default_real_dir, real_set, simulated_set
from .familiarity_gate import familiarity_section
from .heads import heads_section, p_wave_stress_section
from .privacy import privacy_section
from .reconstruction import MAX_LAG_S, cross_modal_section, masked_section
from .report import headline, summarize_headline
from .retrieval_scores import retrieval_section
from .rhythm_section import rhythm_section

if TYPE_CHECKING:
    from ..index import FingerprintIndex
    from ..model import M2AEModel

N_CANDIDATES = 1000
P_WAVE_STRESS_SEED_OFFSET = 1  # EVAL_SEED + 1: its own held-out stream of sinus-rhythm subjects
HEADS_SEED_OFFSET = 2          # EVAL_SEED + 2: the heads' held-out subjects
HEADS_SUBJECTS = 600
HEADS_WINDOWS_PER_SUBJECT = 2
# The baselines are fitted on as many subjects as the demo heads (m2ae.train.demo_heads.refit_demo_heads):
# with 80 they were weaker than they can be (ridge plain r 0.07 → 0.15, rhythm AUROC 0.96 → 0.99).
BASELINE_TRAIN_SUBJECTS = 1500

# what each baseline named in the result is (the JSON's "baselines")
BASELINE_DESCRIPTIONS = {
    "ridge": "sklearn Ridge (alpha 10): each 25-sample patch of the target from the other modality's samples "
             "within ±1.2 s, one filter for all positions; fitted on simulated_train",
    "mean_beat_template": "simulated_train's mean ECG beat (around R peaks) / mean PPG beat (around pulse "
                          "peaks) placed at every detected beat of the other modality, shifted by the "
                          "training median R→pulse delay; nearest beat wins",
    "linear_interpolation": "np.interp across the hidden patches from the same modality's visible samples",
    "features": "z-scored hand-made features, Euclidean nearest neighbour. Same-subject: HRV (rate, SDNN, "
                "RMSSD, irregularity) of both modalities + Welch band powers + pulse-arrival delay; "
                "PPG→ECG pairs: HRV from pulse peaks vs HRV from R peaks",
    "logistic_hrv_pat / linear_hrv_pat": "sklearn LogisticRegression / LinearRegression on the same features "
                                         "(per input: ECG-only, PPG-only, or both + delay), fitted on simulated_train",
    "train_mean": "age MAE when always predicting the simulated_train mean age",
    "mean_beat_template_two_stage": "PPG→paired-ECG retrieval with the model's fingerprint shortlist, re-ranked "
                                    "by lag-tolerant correlation with the mean-beat template ECG at the query's "
                                    "pulse peaks (instead of the model's ECG rebuilt from the PPG)",
    "fingerprint_decoder": "sklearn Ridge (alpha 1) from the ECG+PPG fingerprint to each raw window, fitted on "
                           "simulated_train",
    "cinc2015": "on the CinC 2015 rows, ridge, mean_beat_template and the feature scaling are refitted on the "
                "corpus' train split (its ECG+PPG records' windows); classical_logistic and rule_checker are the "
                "alarm baselines (m2ae.eval.alarm_baselines, m2ae.eval.alarm_rules), thresholds set on validation",
}


def _log(msg: str, quiet: bool) -> None:
    if not quiet:
        print(f"eval: {msg}", file=sys.stderr, flush=True)


def _first_per_group(group: np.ndarray, k: int) -> np.ndarray:
    """Indices of the first ``k`` windows of every group, in window order."""
    keep: list[int] = []
    seen: dict[Any, int] = {}
    for i, g in enumerate(group):
        if seen.get(g, 0) < k:
            keep.append(i)
            seen[g] = seen.get(g, 0) + 1
    return np.asarray(keep)


def evaluate_set(model: M2AEModel, s: EvalSet, base: Baselines, n_candidates: int, seed: int, quiet: bool,
                 recon_idx: np.ndarray | None = None, index: FingerprintIndex | str | None = None,
                 heads_set: EvalSet | None = None) -> dict[str, Any]:
    """Every section on ``s``; the heads on ``heads_set`` instead when given (a larger labelled set).

    recon_idx : the windows the reconstruction sections score (all when None).
    index : the index the familiarity gate scores against, or why there is none (str).
    """
    from ..model.inference import fingerprints_by_mode

    _log(f"{s.name}: fingerprints of {len(s)} windows (ECG+PPG, ECG only, PPG only)", quiet)
    fps = fingerprints_by_mode(model, s.ecg, s.ppg)
    _log(f"{s.name}: peaks and baseline features", quiet)
    feats = input_features(s)
    r = s if recon_idx is None else s.subset(recon_idx)
    _log(f"{s.name}: cross-modal and masked reconstruction on {len(r)} windows", quiet)
    out: dict[str, Any] = {"data": s.description, "windows": len(s)}
    out["cross_modal"] = cross_modal_section(model, r, base, by_record=not s.labels, seed=seed)
    out["masked"] = masked_section(model, r, seed)
    _log(f"{s.name}: retrieval, heads, privacy", quiet)
    out["retrieval"] = retrieval_section(s, fps, feats, base.feature_train, n_candidates, seed, model=model,
                                         template=base.template)
    if heads_set is not None:
        _log(f"{heads_set.name}: heads on {len(heads_set)} windows", quiet)
        out["heads"] = {"data": heads_set.description,
                        **heads_section(model, heads_set, fingerprints_by_mode(model, heads_set.ecg, heads_set.ppg),
                                        input_features(heads_set), base, seed=seed)}
    elif s.labels:
        out["heads"] = heads_section(model, s, fps, feats, base, seed=seed)
    else:
        out["heads"] = {"status": "no labels in this data"}
    out["privacy"] = privacy_section(s, fps, base)
    if isinstance(index, str):
        out["familiarity"] = {"status": index}
    elif index is not None:
        out["familiarity"] = familiarity_section(index, model, s, fps)
    return out


def run_eval(model: M2AEModel | str | Path | None = None,
             data: str | Path | Sequence[str | Path] | None = None, sim_subjects: int = 60,
             seed: int | None = None, train_subjects: int = BASELINE_TRAIN_SUBJECTS,
             train_windows_per_subject: int = 2, n_candidates: int = N_CANDIDATES,
             recon_windows_per_subject: int = 5, heads_subjects: int = HEADS_SUBJECTS,
             quiet: bool = True, cinc2015: str | Path | bool | None = None,
             cinc2015_cache: str | Path | None = None) -> dict[str, Any]:
    """Evaluate ``model`` (an M2AEModel, a checkpoint path, or None for the shipped one).

    data : paths of real paired records/folders; None = ``default_real_dir()`` (``$M2AE_REAL_DATA``,
        else ``../shared/data/real`` relative to the current directory); [] = none.
    sim_subjects : held-out simulated subjects; each gets enough windows that PPG→ECG retrieval has
        up to ``n_candidates`` candidates.
    seed : first held-out simulator seed (default: ``m2ae.simulate.splits`` evaluation seed).
    heads_subjects : held-out simulated subjects the heads are scored on (2 windows each, seed + 2).
    cinc2015 : the CinC 2015 corpus for the real-corpus section (``m2ae.eval.cinc2015``, its test
        split); None = ``$M2AE_CINC2015_DATA``, else ``../shared/data/cinc2015`` from the current
        directory (a note when absent); False = skip the section. ``cinc2015_cache``: where its
        preprocessed windows are cached (default ``$M2AE_CACHE_DIR`` or ``~/.cache/m2ae``).
    Returns a JSON-able dict (see ``m2ae.eval``'s docstring); NaN where a metric is undefined.
    """
    from ..model import load_model
    from ..simulate import splits

    t0 = time.time()
    if model is None or isinstance(model, (str, Path)):
        model = load_model(model)
    if int(sim_subjects) < 2:
        raise InputError(f"--sim-subjects: need at least 2 held-out subjects, got {sim_subjects}")
    if int(heads_subjects) < 2:
        raise InputError(f"--heads-subjects: need at least 2 held-out subjects, got {heads_subjects}")
    if int(n_candidates) < 2:
        raise InputError(f"--candidates: need at least 2 retrieval candidates, got {n_candidates}")
    eval_seed = splits.EVAL_SEED if seed is None else int(seed)
    used_for_training = {splits.HEADS_TRAIN_SEED: "head fitting", splits.HEADS_CAL_SEED: "head calibration",
                         splits.VAL_SEED: "pretraining validation"}
    if eval_seed in used_for_training:
        raise InputError(f"--seed: {eval_seed} is the {used_for_training[eval_seed]} split, not held out "
                         f"(default {splits.EVAL_SEED})")
    train_seed = splits.HEADS_TRAIN_SEED
    windows_per_subject = max(2, math.ceil(n_candidates / sim_subjects))

    _log(f"simulating {train_subjects} training-seed subjects for the baselines", quiet)
    train = simulated_set("simulated_train", train_subjects, train_windows_per_subject, train_seed)
    _log(f"simulating {sim_subjects} held-out subjects x {windows_per_subject} windows", quiet)
    held = simulated_set("simulated_heldout", int(sim_subjects), windows_per_subject, eval_seed)
    _log("fitting baselines on the training-seed subjects", quiet)
    base = fit_baselines(train, model)

    result: dict[str, Any] = {
        "model": {"path": model.path, "version": model.version, "name": model.card.get("name")},
        "data": {"simulated_train": {"role": "fits the baselines only", **train.info},
                 "simulated_heldout": held.info},
    }
    recon_idx = _first_per_group(held.group, recon_windows_per_subject)
    fam_index: FingerprintIndex | str
    try:  # the familiarity gate needs the shipped (or $M2AE_INDEX) index made by this model
        from ..index import open_index

        fam_index = open_index(model=model)
    except InputError as e:
        fam_index = f"no index for this model: {str(e).splitlines()[0][:200]}"
    _log(f"simulating {heads_subjects} held-out subjects x {HEADS_WINDOWS_PER_SUBJECT} windows for the heads", quiet)
    heads_held = simulated_set("simulated_heads_heldout", int(heads_subjects), HEADS_WINDOWS_PER_SUBJECT,
                               eval_seed + HEADS_SEED_OFFSET)
    result["data"]["simulated_heads_heldout"] = {"role": "scores the heads only", **heads_held.info}
    result["simulated_heldout"] = evaluate_set(model, held, base, n_candidates, eval_seed, quiet, recon_idx,
                                               index=fam_index, heads_set=heads_held)
    _log("stress test: sinus rhythm without P waves", quiet)
    result["simulated_heldout"]["rhythm_without_p_waves"] = p_wave_stress_section(
        model, base, max(20, int(sim_subjects) // 2), eval_seed + P_WAVE_STRESS_SEED_OFFSET)

    if isinstance(data, (str, Path)):
        data = [data]
    paths = [default_real_dir()] if data is None else [Path(p) for p in data]
    real, info = real_set(paths) if paths else (None, {"status": "absent", "paths": []})
    result["data"]["real"] = info
    result["real"] = (evaluate_set(model, real, base, n_candidates, eval_seed, quiet, index=fam_index)
                      if real is not None else {"status": info["status"]})
    if cinc2015 is False:
        result["data"]["cinc2015"] = {"status": "not requested"}
    else:
        _log("CinC 2015 real ICU corpus: test split (windows cached after the first run)", quiet)
        result["cinc2015"], result["data"]["cinc2015"] = cinc2015_section(
            model, None if cinc2015 is None or cinc2015 is True else cinc2015, base, eval_seed,
            n_candidates=n_candidates, cache_dir=cinc2015_cache, quiet=quiet)
        _log("CinC 2015: rhythm head vs the alarm labels (validation split)", quiet)
        result["cinc2015_rhythm"] = rhythm_section(
            model, None if cinc2015 is None or cinc2015 is True else cinc2015, cinc2015_cache, eval_seed)
    result["baselines"] = dict(BASELINE_DESCRIPTIONS)
    result["settings"] = {"max_lag_s": MAX_LAG_S, "n_candidates": n_candidates, "fs_hz": FS_HZ,
                          "patch_samples": PATCH_SAMPLES, "eval_seed": eval_seed, "train_seed": train_seed,
                          "nmse": "MSE / variance of the target window (0 perfect, 1 = window mean)"}
    result["headline"] = headline(result)
    result["summary"] = summarize_headline(result["headline"])
    result["wall_time_s"] = round(time.time() - t0, 1)
    return result
