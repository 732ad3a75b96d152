"""How the alarm models are chosen: the selection protocol that the alarm heads (``m2ae.train.alarm``)
and the classical alarm baseline (``m2ae.eval.alarm_baselines``) share — class-balanced logistic
regression on feature rows of records, chosen by cross-validation over the train and validation
records of the CinC 2015 split.

- ``dev_folds``: every train or validation record gets one of ``CV_FOLDS`` folds (stratified by alarm
  type × label, seeded); test records get none and are never read here;
- ``choose_logistic``: every C, one model for both alarm types or one per type, scored by the
  out-of-fold AUROC per record; the winner refitted on every fold (``Choice``, with its out-of-fold
  logits for calibration and thresholds);
- ``Rows`` / ``per_record``: a record may have several rows (windows, input modes); its score is the
  mean logit over the rows asked for.

>>> rows = Rows(np.eye(2), np.array([0, 0]), np.zeros(2, int), np.array(["ecg", "ppg"]))
>>> per_record(np.array([1.0, 3.0]), rows, 2)
array([ 2., nan])
"""
from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .alarm_data import AlarmRecord
from .alarm_scores import auroc

ALARM_TYPES = ("VT", "other")
C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0)
DEV_SPLITS = ("train", "validation")   # the records heads learn and are chosen on; test is only scored
CV_FOLDS = 5
CV_SEED = 0
CV_WORDS = (f"{CV_FOLDS}-fold cross-validation over the train and validation records (stratified by alarm type x "
            f"label, seed {CV_SEED}): mean over alarm types of the out-of-fold per-record AUROC; the chosen model "
            "refitted on all of them; temperature and the threshold (maximising the Challenge score) set on the "
            "out-of-fold scores")


@dataclass
class Rows:
    """Feature rows of records: X [R, D], with the record index, window (``back``: 0 = the last window
    before the alarm, 1 = the one before) and input mode of each row."""

    X: np.ndarray
    record: np.ndarray
    back: np.ndarray
    mode: np.ndarray

    def take(self, keep: np.ndarray) -> Rows:
        """The rows where ``keep`` (bool [R]) is True."""
        return Rows(self.X[keep], self.record[keep], self.back[keep], self.mode[keep])


def per_record(values: np.ndarray, rows: Rows, n_records: int) -> np.ndarray:
    """Mean of a per-row value over each record's rows → [n_records] (NaN for a record without rows)."""
    total, count = np.zeros(n_records), np.zeros(n_records)
    np.add.at(total, rows.record, values)
    np.add.at(count, rows.record, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


@dataclass
class Linear:
    """logit = X @ w + b (raw feature space; the training standardisation is folded in)."""

    w: np.ndarray
    b: float
    C: float

    def logit(self, X: np.ndarray) -> np.ndarray:
        """Logit of P(true alarm) per row of X [R, D]."""
        return np.nan_to_num(np.asarray(X, np.float64)) @ self.w + self.b


def fit_logistic(X: np.ndarray, y: np.ndarray, C: float) -> Linear:
    """Class-balanced L2 logistic regression on z-scored columns, folded back to raw columns."""
    from sklearn.linear_model import LogisticRegression

    X = np.nan_to_num(np.asarray(X, np.float64))
    mu, sd = X.mean(0), X.std(0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    lr = LogisticRegression(C=C, class_weight="balanced", max_iter=5000).fit((X - mu) / sd, np.asarray(y, bool))
    w = lr.coef_[0] / sd
    return Linear(w=w, b=float(lr.intercept_[0] - (mu * w).sum()), C=float(C))


def dev_folds(records: Sequence[AlarmRecord], n_folds: int = CV_FOLDS, seed: int = CV_SEED) -> np.ndarray:
    """Fold number (0 … n_folds − 1) of every train or validation record, −1 for every other record.

    Folds are stratified by alarm type × label and seeded, so every fold holds true and false alarms of
    both types in the corpus's proportions; the test split is never in a fold.

    >>> recs = [AlarmRecord(f"r{i}", ("train", "test")[i % 2], "VT", bool(i % 4 < 2)) for i in range(40)]
    >>> f = dev_folds(recs)
    >>> sorted(set(f[::2].tolist())), sorted(set(f[1::2].tolist()))
    ([0, 1, 2, 3, 4], [-1])
    """
    from sklearn.model_selection import StratifiedKFold

    split = np.array([r.split for r in records])
    dev = np.flatnonzero(np.isin(split, DEV_SPLITS))
    folds = np.full(len(records), -1, np.int64)
    strata = np.array([f"{r.alarm_type}:{r.true_alarm}" for r in records])[dev]
    # fewer folds when even the largest stratum is smaller (tiny corpora); none below two
    k = min(int(n_folds), max(np.unique(strata, return_counts=True)[1], default=0))
    if k < 2:
        return folds
    with warnings.catch_warnings():  # a stratum smaller than k (tiny corpora) is spread as far as it goes
        warnings.simplefilter("ignore", UserWarning)
        for f, (_, held) in enumerate(StratifiedKFold(k, shuffle=True, random_state=seed).split(dev, strata)):
            folds[dev[held]] = f
    return folds


def fit_without_fold(fit_rows: Rows, y: np.ndarray, folds: np.ndarray, fold: int, C: float,
                     keep: np.ndarray | None = None) -> Linear | None:
    """``fit_logistic`` on the rows of every fold but ``fold`` (−1: of every fold), optionally only where
    ``keep`` (bool per row); None when those rows hold one class only."""
    row_fold = folds[fit_rows.record]
    use = (row_fold >= 0) & (row_fold != fold) & (True if keep is None else keep)
    yy = y[fit_rows.record[use]]
    return fit_logistic(fit_rows.X[use], yy, C) if len(np.unique(yy)) == 2 else None


def out_of_fold_logit(score_rows: Rows, folds: np.ndarray, n_records: int,
                      fitted: Callable[[int], Linear | None]) -> np.ndarray:
    """Per-record logit [n_records] of every record in a fold: the mean over its ``score_rows`` of the logit
    of ``fitted(f)``, the model that never saw fold f (NaN outside the folds, or where ``fitted`` gave None)."""
    oof = np.full(n_records, np.nan)
    score_fold = folds[score_rows.record]
    for f in sorted(set(folds[folds >= 0].tolist())):
        model, held = fitted(f), score_rows.take(score_fold == f)
        if model is not None and len(held.X):
            val = per_record(model.logit(held.X), held, n_records)
            oof[folds == f] = val[folds == f]
    return oof


@dataclass
class Choice:
    """What cross-validation chose: one ``Linear`` per alarm type (the same object when joint), fitted on
    every train and validation record; ``oof`` the per-record out-of-fold logit of those settings
    ([n_records]; NaN outside the folds or without rows), ``cv_auroc`` its AUROC per type."""

    scheme: str
    models: dict[str, Linear]
    cv_auroc: dict[str, float]
    oof: np.ndarray
    tried: list[dict[str, Any]] = field(default_factory=list)


def choose_logistic(fit_rows: Rows, score_rows: Rows, y: np.ndarray, types: np.ndarray, folds: np.ndarray,
                    c_grid: Sequence[float] = C_GRID, alarm_types: Sequence[str] = ALARM_TYPES,
                    fits: dict[tuple[int, str, float], Linear | None] | None = None) -> Choice:
    """Logistic regression chosen by cross-validation over the records of ``folds`` (``dev_folds``).

    fit_rows : the rows models learn from; score_rows : the rows a record's score is the mean logit of.
    y, types : per record (bool label, alarm type); folds : per record, −1 = never used.
    For every C and every scheme (one model for both types, or one per type), fold f's records are scored
    by a model fitted on the other folds' rows; the scheme (and C per model) with the highest mean over
    ``alarm_types`` of the out-of-fold per-record AUROC wins (ties: joint, the simpler). The winners are
    then refitted on every fold's rows. ``fits``: models already fitted on these same ``fit_rows``,
    {(fold or −1 for all folds, type or "all", C): model}, reused and filled (several ``score_rows``)."""
    fits = {} if fits is None else fits
    n = len(y)
    row_type = types[fit_rows.record]

    def fitted(f: int, t: str, C: float) -> Linear | None:
        if (f, t, C) not in fits:
            fits[(f, t, C)] = fit_without_fold(fit_rows, y, folds, f, C, (row_type == t) if t != "all" else None)
        return fits[(f, t, C)]

    def out_of_fold(t: str, C: float) -> np.ndarray:
        return out_of_fold_logit(score_rows, folds, n, lambda f: fitted(f, t, C))

    def auc(oof: np.ndarray, t: str) -> float:
        keep = (folds >= 0) & (types == t) & np.isfinite(oof)
        return auroc(y[keep], oof[keep])

    tried: list[dict[str, Any]] = []
    best: dict[str, tuple[float, float, np.ndarray]] = {}   # "joint" / type -> (score, C, oof)
    for t in ("all", *alarm_types):
        of_t = (folds >= 0) & ((types == t) if t != "all" else True)
        if len(np.unique(y[of_t])) < 2:
            continue
        for C in c_grid:
            oof = out_of_fold(t, C)
            aucs = {tt: auc(oof, tt) for tt in (alarm_types if t == "all" else (t,))}
            finite = [v for v in aucs.values() if np.isfinite(v)]
            score = float(np.mean(finite)) if finite else -1.0
            tried.append({"scheme": "joint" if t == "all" else "separate", "fitted_on": t, "C": C, "cv_auroc": aucs})
            key = "joint" if t == "all" else t
            if score > best.get(key, (-np.inf,))[0]:
                best[key] = (score, C, oof)
    if not best:
        raise ValueError("alarm: the train and validation splits hold no alarm type with both true and false "
                         "alarms to fit on")
    sep_score = float(np.mean([best[t][0] for t in alarm_types])) if all(t in best for t in alarm_types) else -np.inf
    if "joint" in best and best["joint"][0] >= sep_score:
        _, C, oof = best["joint"]
        final = fitted(-1, "all", C)
        assert final is not None
        return Choice("joint", {t: final for t in alarm_types}, {t: auc(oof, t) for t in alarm_types}, oof, tried)
    models, oof = {}, np.full(n, np.nan)
    for t in alarm_types:
        _, C, oof_t = best[t]
        final = fitted(-1, t, C)
        assert final is not None
        models[t] = final
        oof[types == t] = oof_t[types == t]
    return Choice("separate", models, {t: auc(oof, t) for t in alarm_types}, oof, tried)
