"""Scores of true/false alarm decisions: the PhysioNet/CinC Challenge 2015 score, the confusion counts,
the threshold that maximises the score on held-out records, and AUROC.

The Challenge score (Clifford et al., CinC 2015;42:273) is 100 (TP+TN) / (TP+TN+FP+5·FN): a missed
true alarm (FN) costs five times a false alarm kept (FP), because silencing a real arrhythmia can kill.
"""
from __future__ import annotations

import numpy as np

FN_WEIGHT = 5.0  # the Challenge counts a missed true alarm five times as bad as a false one kept


def challenge_score(tp: int, tn: int, fp: int, fn: int) -> float:
    """PhysioNet/CinC 2015 score in % : 100 (TP+TN) / (TP+TN+FP+5 FN); NaN with no records.

    >>> challenge_score(10, 10, 0, 0), challenge_score(0, 0, 0, 1)
    (100.0, 0.0)
    """
    den = tp + tn + fp + FN_WEIGHT * fn
    return float(100.0 * (tp + tn) / den) if den > 0 else float("nan")


def confusion(y_true: np.ndarray, called_true: np.ndarray) -> dict[str, int]:
    """{"tp", "tn", "fp", "fn"} of bool labels (True = true alarm) against bool calls."""
    y, c = np.asarray(y_true, bool), np.asarray(called_true, bool)
    return {"tp": int((y & c).sum()), "tn": int((~y & ~c).sum()), "fp": int((~y & c).sum()),
            "fn": int((y & ~c).sum())}


def best_threshold(y_true: np.ndarray, score: np.ndarray) -> float:
    """The score threshold (call true when score >= it) that maximises ``challenge_score`` on these
    records; among equal scores the lowest such threshold (keep more alarms). -inf calls everything true."""
    y, s = np.asarray(y_true, bool), np.asarray(score, np.float64)
    candidates = np.concatenate([[-np.inf], np.unique(s[np.isfinite(s)])])
    best, best_v = -np.inf, -1.0
    for t in candidates:
        c = confusion(y, s >= t)
        v = challenge_score(c["tp"], c["tn"], c["fp"], c["fn"])
        if v > best_v + 1e-12:
            best, best_v = float(t), v
    return best


def auroc(y_true: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC of bool labels (NaN with one class); ties count half."""
    from sklearn.metrics import roc_auc_score

    y, s = np.asarray(y_true, bool), np.asarray(score, np.float64)
    return float(roc_auc_score(y, s)) if 0 < y.sum() < len(y) else float("nan")
