"""Does the fingerprint add to the classical alarm features? Late fusion of the alarm head's and the
classical baseline's per-record logits, judged against the classical baseline alone.

Both inputs are already chosen by cross-validation and refitted on the train and validation records
(``alarm_section``); on those records the fusion reads their out-of-fold scores, never a score of a
model that saw the record. It adds only what those scores can choose: per alarm type, each logit is
z-scored with the records' mean and spread, and the fused score is ``w · head + (1 − w) · classical``
with the weight ``w`` from ``WEIGHTS`` that maximises their AUROC (ties: the weight nearest 0.5); its
decision threshold maximises their Challenge score. The test split is only scored.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..train.alarm_scores import auroc, best_threshold

WEIGHTS = (0.25, 0.5, 0.75)   # the head's share of the fused score


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), 1e-9, 1 - 1e-9)
    return np.log(p / (1 - p))


def fuse_scores(head_p: np.ndarray, classical_logit: np.ndarray, y: np.ndarray, val: np.ndarray,
                unscored: float) -> tuple[np.ndarray, float, dict[str, Any]]:
    """Fused score per record of one alarm type, its threshold (set on the ``val`` records), and what was chosen.

    head_p : P(true alarm) from the head [R]; classical_logit : the classical baseline's logit [R];
    a record either method could not read (``>= unscored`` or P = 1 from an unreadable record) keeps
    ``unscored`` (called true). y : bool [R]; val : bool [R], the records that choose the weight and set the
    threshold (out-of-fold scores of the train and validation records).
    """
    h, c = _logit(head_p), np.asarray(classical_logit, np.float64)
    blind = (c >= unscored) | ~np.isfinite(h) | ~np.isfinite(c) | (np.asarray(head_p) >= 1.0)
    ok_val = val & ~blind

    def z(x: np.ndarray) -> np.ndarray:
        mu, sd = x[ok_val].mean(), x[ok_val].std()
        return (x - mu) / (sd if sd > 1e-12 else 1.0)

    zh, zc = z(h), z(c)
    tried = {w: auroc(y[ok_val], w * zh[ok_val] + (1 - w) * zc[ok_val]) for w in WEIGHTS}
    finite = {w: a for w, a in tried.items() if np.isfinite(a)}
    w = max(finite, key=lambda k: (finite[k], -abs(k - 0.5))) if finite else 0.5
    fused = np.where(blind, unscored, w * zh + (1 - w) * zc)
    threshold = best_threshold(y[val], fused[val])
    return fused, threshold, {"weight_head": w, "oof_auroc_by_weight": {str(k): v for k, v in tried.items()}}


FUSION_HOW = ("late fusion of the alarm head's and the classical baseline's per-record logits, each z-scored on "
              "the out-of-fold scores of the train and validation records of its alarm type; the head's weight "
              "(0.25, 0.5 or 0.75) and the threshold chosen on those scores; judged against the classical "
              "baseline alone (does the fingerprint add to the hand-made features?)")
