"""Heads sections of ``m2ae eval``: each head's AUROC / MAE from fingerprints of both modalities,
ECG only and PPG only beside a logistic / linear regression on hand-made features
(``heads_section``), and the rhythm stress test that asks what the rhythm head keys on
(``p_wave_stress_section``: sinus rhythm drawn with and without P waves).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from . import metrics as M
from .baseline_fit import Baselines, input_features, input_sets, label_targets
from .datasets import EvalSet

if TYPE_CHECKING:
    from ..model import Head, M2AEModel


def _head_outputs(model: M2AEModel, head: Head, fp: np.ndarray) -> np.ndarray:
    """A head's calibrated outputs for fingerprints [N, D]: logits [N, C] or (mean, sd) [N, 2]."""
    import torch

    with torch.inference_mode():
        return head(torch.from_numpy(fp).to(model.device)).float().cpu().numpy()


def _baseline_class_probabilities(lm: Any, X: np.ndarray, n_classes: int) -> np.ndarray:
    """A fitted baseline classifier's probabilities [N, n_classes] (zero for classes it never saw)."""
    full = np.zeros((len(X), n_classes))
    full[:, lm.classes_] = lm.predict_proba(X)
    return full


def heads_section(model: M2AEModel, s: EvalSet, fps: dict[str, np.ndarray], feats: dict[str, np.ndarray],
                  base: Baselines, seed: int = 0) -> dict[str, Any]:
    """Each head's AUROC (macro one-vs-rest for >2 classes) or MAE with both / ECG only / PPG only,
    with ``ci95_model_minus_baseline``: the 95 % CI of model − baseline, resampling subjects."""
    out: dict[str, Any] = {}
    for name, head in model.heads.items():
        if name not in s.labels:
            out[name] = {"status": f"no '{name}' labels in this data"}
            continue
        y, classes = label_targets(head, s.labels[name])
        entry: dict[str, Any] = {"metric": "auroc" if classes else "mae"}
        ok = (y >= 0) if classes else np.isfinite(y)
        y_ok, group_ok = y[ok], s.group[ok]
        everything = np.arange(len(y_ok))

        def score(rows, output, y_ok=y_ok, classes=classes):  # AUROC or MAE on a subset of rows
            return (M.auroc(y_ok[rows], output[rows], classes=range(len(classes))) if classes
                    else M.mae(y_ok[rows], output[rows]))

        for inp, fp in fps.items():
            raw = _head_outputs(model, head, fp)[ok]
            row: dict[str, Any] = {}
            if classes:
                probs = np.exp(raw - raw.max(1, keepdims=True))
                model_out = probs / probs.sum(1, keepdims=True)
            else:
                model_out = raw[:, 0]
            lm = base.head_models.get(name, {}).get(inp)
            base_out = None
            if lm is not None:
                _, X = M.standardize(base.feature_train[inp], feats[inp])
                base_out = (_baseline_class_probabilities(lm, X[ok], len(classes)) if classes
                            else lm.predict(X[ok]))
            row["model"] = score(everything, model_out)
            if base_out is not None:
                base_name = "baseline_logistic_hrv_pat" if classes else "baseline_linear_hrv_pat"
                row[base_name] = score(everything, base_out)
                if not classes:
                    row["train_mean"] = M.mae(y_ok, np.full(len(y_ok), base.head_models[name]["_y_mean"]))
                row["ci95_model_minus_baseline"] = M.group_bootstrap_ci(
                    lambda rows, mo=model_out, bo=base_out: score(rows, mo) - score(rows, bo), group_ok, seed=seed)
            entry[inp] = row
        if classes:
            entry["classes"] = list(classes)
        out[name] = entry
    return out


def p_wave_stress_section(model: M2AEModel, base: Baselines, n_subjects: int, seed: int) -> dict[str, Any]:
    """What does the rhythm head key on? Regular sinus rhythm drawn with and without P waves (small
    or absent P waves are common on real monitor leads): the share of windows called AF by the head
    and by the HRV baseline, per input. A head that reads beat irregularity stays near 0 without
    P waves; one that learned "no P wave = AF" from the simulator does not."""
    from ..simulate.labelled import subject_windows

    head = model.heads.get("rhythm")
    if head is None or "AF" not in head.spec.get("classes", []):
        return {"status": "no rhythm head with an AF class"}
    classes = list(head.spec["classes"])
    af = classes.index("AF")
    out: dict[str, Any] = {"subjects": int(n_subjects), "seed": int(seed), "rhythm": "NSR",
                           "metric": "share of windows called AF (argmax); lower is better"}
    for variant, scale in (("with_p_waves", 1.0), ("without_p_waves", 0.0)):
        d = subject_windows(int(n_subjects), 2, seed, rhythm="NSR", p_wave_scale=scale)
        s = EvalSet(variant, "", np.asarray(d["ecg"], np.float32), np.asarray(d["ppg"], np.float32),
                    np.asarray(d["subject_id"]).astype(str), {})
        feats = input_features(s)
        entry = {}
        for inp, (e, p) in input_sets(s).items():
            logits = _head_outputs(model, head, model.fingerprint(ecg=e, ppg=p))
            row = {"model": float(np.mean(logits.argmax(1) == af))}
            lm = base.head_models.get("rhythm", {}).get(inp)
            if lm is not None:
                _, X = M.standardize(base.feature_train[inp], feats[inp])
                called = _baseline_class_probabilities(lm, X, len(classes)).argmax(1)
                row["baseline_logistic_hrv_pat"] = float(np.mean(called == af))
            entry[inp] = row
        out[variant] = entry
    return out
