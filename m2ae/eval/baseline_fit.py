"""The baselines of one ``m2ae eval`` run, fitted on simulated training-seed windows (``fit_baselines``),
and the per-input hand-made feature matrices they and the feature baselines read (``input_features``).

The estimators themselves (``PatchRidge``, ``MeanBeatTemplate``, the features) are in
``m2ae.eval.baselines``; this module fits them and the sklearn head / fingerprint-decoder baselines.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..contract import MODALITIES
from . import metrics as M
from .baselines import MeanBeatTemplate, PatchRidge, feature_matrix
from .datasets import EvalSet

if TYPE_CHECKING:
    from ..model import Head, M2AEModel


@dataclass
class Baselines:
    """Everything ``fit_baselines`` fitted, as the sections read it."""

    ridge: dict[str, PatchRidge]            # target modality -> ridge from the other modality
    template: MeanBeatTemplate
    head_models: dict[str, dict[str, Any]]  # head -> input set -> (scaler stats, sklearn model)
    fp_decoder: dict[str, Any]              # modality -> Ridge from fingerprint to window
    feature_train: dict[str, np.ndarray]    # input set -> train features (for standardising)


def input_sets(s: EvalSet) -> dict[str, tuple[np.ndarray | None, np.ndarray | None]]:
    """{input: (ecg or None, ppg or None)} for the three inputs scored: both, ECG only, PPG only."""
    return {"both": (s.ecg, s.ppg), "ecg": (s.ecg, None), "ppg": (None, s.ppg)}


def input_features(s: EvalSet) -> dict[str, np.ndarray]:
    """{input: [N, F] hand-made features} (``feature_matrix``) per input of ``input_sets``."""
    rp, pp = s.peaks()
    return {name: feature_matrix(e, p, rp if e is not None else None, pp if p is not None else None)
            for name, (e, p) in input_sets(s).items()}


def label_targets(head: Head, values: np.ndarray) -> tuple[np.ndarray, list | None]:
    """Labels → (class index per window, classes) for classifiers, or float values for regressors."""
    spec = head.spec
    if spec.get("kind") != "classification":
        return np.asarray(values, np.float64), None
    classes = list(spec["classes"])
    values = np.asarray(values)
    if values.dtype.kind in "biu":
        # simulator labels are class indices (rhythm: index into RHYTHM_CODES; sex: 1 = male; bool)
        idx = values.astype(np.int64)
        return np.where((idx >= 0) & (idx < len(classes)), idx, -1), classes
    as_str = [str(c).lower() for c in classes]
    out = np.array([as_str.index(str(v).lower()) if str(v).lower() in as_str else -1 for v in values])
    return out, classes


def fit_baselines(train: EvalSet, model: M2AEModel) -> Baselines:
    """Every baseline fitted on ``train``: ridge and template reconstruction, one sklearn model per
    (head, input) on ``input_features``, and the fingerprint→window ridge decoder."""
    from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge

    rp, pp = train.peaks()
    ridge = {"ecg": PatchRidge().fit(train.ppg, train.ecg), "ppg": PatchRidge().fit(train.ecg, train.ppg)}
    template = MeanBeatTemplate().fit(train.ecg, train.ppg, rp, pp)
    feats = input_features(train)
    head_models: dict[str, dict[str, Any]] = {}
    for name, head in model.heads.items():
        label = train.labels.get(name)
        if label is None:
            continue
        y, classes = label_targets(head, label)
        head_models[name] = {}
        for inp, X in feats.items():
            Xs, = M.standardize(X)
            if classes is None:
                ok = np.isfinite(y)
                head_models[name]["_y_mean"] = float(np.mean(y[ok]))
                head_models[name][inp] = LinearRegression().fit(Xs[ok], y[ok])
            else:
                ok = y >= 0
                if len(np.unique(y[ok])) < 2:
                    continue
                head_models[name][inp] = LogisticRegression(max_iter=2000, C=1.0).fit(Xs[ok], y[ok])
    fp = model.fingerprint(ecg=train.ecg, ppg=train.ppg)
    fp_decoder = {m: Ridge(alpha=1.0).fit(fp, getattr(train, m)) for m in MODALITIES}
    return Baselines(ridge, template, head_models, fp_decoder, feats)
