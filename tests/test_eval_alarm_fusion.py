"""Late fusion of the alarm head and the classical baseline (m2ae.eval.alarm_fusion) on scores whose
answer is known: two noisy views of one truth fuse into a better one; validation alone chooses."""
from __future__ import annotations

import numpy as np
import pytest

from m2ae.eval.alarm_fusion import WEIGHTS, fuse_scores
from m2ae.train.alarm_scores import auroc

UNSCORED = 1e6


def _views(n: int, seed: int, head_noise: float = 1.0, classical_noise: float = 1.0):
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.4
    truth = np.where(y, 1.0, -1.0)
    head_p = 1 / (1 + np.exp(-(truth + head_noise * rng.normal(size=n))))
    classical = 3.0 * (truth + classical_noise * rng.normal(size=n)) + 5.0   # another scale and offset
    return y, head_p, classical


def test_two_independent_views_fuse_into_a_better_score():
    y, head_p, classical = _views(4000, 0)
    val = np.arange(len(y)) < 2000
    fused, threshold, chosen = fuse_scores(head_p, classical, y, val, UNSCORED)
    test = ~val
    assert chosen["weight_head"] == 0.5            # equal noise: equal weights
    assert auroc(y[test], fused[test]) > auroc(y[test], classical[test]) + 0.02
    assert auroc(y[test], fused[test]) > auroc(y[test], head_p[test]) + 0.02
    assert np.isfinite(threshold)


def test_the_weight_follows_the_better_view_on_validation():
    y, head_p, classical = _views(4000, 1, head_noise=0.5, classical_noise=2.0)
    _, _, chosen = fuse_scores(head_p, classical, y, np.arange(len(y)) < 2000, UNSCORED)
    assert chosen["weight_head"] == max(WEIGHTS)
    assert set(chosen["oof_auroc_by_weight"]) == {str(w) for w in WEIGHTS}


def test_the_test_records_do_not_move_the_choice():
    y, head_p, classical = _views(600, 2)
    val = np.arange(len(y)) < 300
    _, t1, c1 = fuse_scores(head_p, classical, y, val, UNSCORED)
    y2 = y.copy()
    y2[~val] = ~y2[~val]                           # flip every test label
    _, t2, c2 = fuse_scores(head_p, classical, y2, val, UNSCORED)
    assert (t1, c1) == (t2, c2)


@pytest.mark.parametrize("blind", ["classical", "head"])
def test_a_record_either_method_cannot_read_is_called_true(blind):
    y, head_p, classical = _views(200, 3)
    if blind == "classical":
        classical[5] = UNSCORED
    else:
        head_p[5] = 1.0                            # an unreadable record's P(true) from the head
    fused, threshold, _ = fuse_scores(head_p, classical, y, np.arange(200) < 100, UNSCORED)
    assert fused[5] == UNSCORED and fused[5] >= threshold
