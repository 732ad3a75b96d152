"""m2ae.eval metric functions and baselines on tiny inputs whose answer is known."""
from __future__ import annotations

import numpy as np
import pytest

from m2ae.eval import metrics as M
from m2ae.eval.baselines import MeanBeatTemplate, PatchRidge, arrival_delays_s, beat_features

T = 1250
FS = 125.0


def _pulse_train(n, period, width=3.0, phase=0, rng=None):
    t = np.arange(T)
    beats = np.arange(phase, T, period)
    x = np.zeros((n, T))
    for b in beats:
        x += np.exp(-0.5 * ((t - b) / width) ** 2)
    if rng is not None:
        x += 0.01 * rng.normal(size=x.shape)
    return x, beats


def test_nmse_and_r_perfect_and_mean():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, T))
    np.testing.assert_allclose(M.nmse(x, x), 0.0)
    np.testing.assert_allclose(M.pearson_r(x, x), 1.0)
    np.testing.assert_allclose(M.pearson_r(-x, x), -1.0)
    # predicting each window's own mean scores exactly 1.0
    np.testing.assert_allclose(M.nmse(np.repeat(x.mean(1, keepdims=True), T, 1), x), 1.0)
    mask = np.zeros((4, T), bool)
    mask[:, :100] = True
    y = x.copy()
    y[:, 100:] += 5.0  # errors outside the mask are not scored
    np.testing.assert_allclose(M.nmse(y, x, mask), 0.0)
    assert np.isnan(M.pearson_r(np.ones((1, T)), x[:1])[0])


@pytest.mark.parametrize("planted", [-60, 0, 17, 80])
def test_lag_search_recovers_planted_lag(planted):
    rng = np.random.default_rng(1)
    target = rng.normal(size=(3, T + 200))
    target = np.apply_along_axis(lambda r: np.convolve(r, np.ones(5) / 5, "same"), 1, target)
    # prediction runs `planted` samples late: pred[t] = target[t - planted]
    pred = np.roll(target, planted, axis=1)[:, 100:100 + T]
    target = target[:, 100:100 + T]
    assert M.best_lag(pred, target, max_lag=125) == planted
    s = M.reconstruction_scores(pred, target, groups=["a", "a", "a"], max_lag=125)
    np.testing.assert_allclose(s["r_lag"], 1.0, atol=1e-9)
    np.testing.assert_allclose(s["nmse_lag"], 0.0, atol=1e-9)
    assert (s["lag"] == planted).all()
    if planted:
        assert (s["r"] < 0.9).all()
    summary = M.summarize_reconstruction(s, FS)
    assert summary["median_lag_ms"] == pytest.approx(planted * 8.0)


def test_all_lags_at_once_equal_pearson_r_of_each_shifted_pair():
    rng = np.random.default_rng(4)
    pred, target = rng.normal(size=(3, 300)) + 50.0, np.cumsum(rng.normal(size=(3, 300)), axis=1)
    pred[1] = 7.0                                              # a constant row: NaN at every lag
    r = M.lagged_pearson_r(pred, target, max_lag=40)
    direct = np.array([M.pearson_r(*M.shift_pair(pred, target, lag)) for lag in range(-40, 41)])
    assert r.shape == (81, 3) and np.isnan(r[:, 1]).all()
    np.testing.assert_allclose(r, direct, atol=1e-10)
    # best_lag = the first lag of the highest mean r over the finite rows
    assert M.best_lag(pred, target, 40) == int(np.nanargmax(np.nanmean(direct, axis=1))) - 40
    assert M.best_lag(np.ones((2, 300)), target[:2], 40) == 0  # no finite r anywhere


def test_lag_is_per_group():
    rng = np.random.default_rng(2)
    base = np.apply_along_axis(lambda r: np.convolve(r, np.ones(7) / 7, "same"), 1, rng.normal(size=(4, T)))
    pred = np.concatenate([np.roll(base[:2], 10, axis=1), np.roll(base[2:], -30, axis=1)])
    s = M.reconstruction_scores(pred, base, groups=["x", "x", "y", "y"], max_lag=125)
    assert list(s["lag"]) == [10, 10, -30, -30]


def test_retrieval_top1():
    rng = np.random.default_rng(3)
    emb = rng.normal(size=(50, 16))
    assert M.paired_top1(emb, emb) == 1.0
    assert M.paired_top1(emb, emb[::-1]) == 0.0
    # two tight clusters per subject -> every window's neighbour is its own subject
    centers = rng.normal(size=(10, 16)) * 10
    ids = np.repeat(np.arange(10), 3)
    windows = centers[ids] + 0.01 * rng.normal(size=(30, 16))
    assert M.same_subject_top1(windows, ids) == 1.0
    assert M.same_subject_top1(windows, ids, metric="euclidean") == 1.0
    shuffled = rng.permutation(ids)
    assert M.same_subject_top1(windows, shuffled) < 0.5
    # a subject with a single window is not scored
    assert np.isnan(M.same_subject_top1(windows[:3], [0, 1, 2]))


def test_auroc_and_mae():
    y = np.array([0, 0, 1, 1])
    assert M.auroc(y, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert M.auroc(y, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert M.auroc(y, np.array([[0.9, 0.1], [0.8, 0.2], [0.2, 0.8], [0.1, 0.9]])) == 1.0
    assert np.isnan(M.auroc(np.zeros(4), np.arange(4.0)))
    y3 = np.array([0, 1, 2, 0, 1, 2])
    perfect = np.eye(3)[y3]
    assert M.auroc(y3, perfect, classes=range(3)) == 1.0
    assert M.auroc(y3, perfect[:, [1, 2, 0]], classes=range(3)) == 0.25
    assert M.mae([1.0, 2.0, np.nan], [2.0, 2.0, 7.0]) == 0.5


def test_auroc_matches_sklearn_with_ties():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    score = np.round(rng.normal(y * 0.7, 1.0), 1)  # rounded: many ties
    assert M.auroc(y, score) == pytest.approx(roc_auc_score(y, score), abs=1e-12)
    y3 = rng.integers(0, 3, 300)
    s3 = rng.random((300, 3))
    want = np.mean([roc_auc_score(y3 == c, s3[:, c]) for c in range(3)])
    assert M.auroc(y3, s3, classes=range(3)) == pytest.approx(want, abs=1e-12)


def test_group_bootstrap_resamples_whole_groups():
    """Windows of one subject move together: 40 subjects whose 10 windows all share one value give
    the interval of 40 values, not of 400 independent ones."""
    rng = np.random.default_rng(1)
    subject_value = rng.normal(0.0, 1.0, 40)
    x = np.repeat(subject_value, 10)
    groups = np.repeat(np.arange(40), 10)
    lo, hi = M.group_bootstrap_ci(lambda rows: x[rows].mean(), groups, seed=3)
    se_subjects = subject_value.std(ddof=1) / np.sqrt(40)
    assert lo < x.mean() < hi
    assert (hi - lo) == pytest.approx(2 * 1.96 * se_subjects, rel=0.25)      # not ~sqrt(10) narrower
    assert M.group_bootstrap_ci(lambda rows: x[rows].mean(), groups, seed=3) == [lo, hi]  # seeded
    # a statistic undefined on most resamples gives no interval
    assert all(np.isnan(M.group_bootstrap_ci(lambda rows: float("nan"), groups)))


def test_difference_ci_and_verdict():
    rng = np.random.default_rng(2)
    groups = np.repeat(np.arange(30), 5)
    base = rng.normal(0.5, 0.1, 150)
    clearly_better = base + 0.2 + rng.normal(0, 0.02, 150)
    same = base + rng.normal(0, 0.02, 150)
    ci = M.difference_ci(clearly_better, base, groups, reduce=np.mean)
    assert 0.15 < ci[0] < 0.2 < ci[1] < 0.25
    assert M.verdict(ci, higher_is_better=True) == "better"
    assert M.verdict(ci, higher_is_better=False) == "worse"      # e.g. an error 0.2 larger
    assert M.verdict(M.difference_ci(same, base, groups, reduce=np.mean), True) == "tie"
    assert M.verdict(None, True) is None and M.verdict([np.nan, 1.0], True) is None


def test_interpolation_baseline():
    x = np.tile(np.linspace(0, 1, T), (2, 1))
    mask = M.patch_mask_to_samples(np.arange(50) % 2 == 1, 25)[None].repeat(2, 0)
    out = M.interpolate_masked(x, mask)
    np.testing.assert_allclose(out[:, :-25], x[:, :-25], atol=1e-12)  # a ramp is rebuilt exactly
    np.testing.assert_allclose(M.nmse(out, x, mask)[0] < 1e-3, True)


def test_nearest_beat_template_and_ridge_recover_known_relation():
    rng = np.random.default_rng(4)
    # "PPG" = the ECG pulse train delayed by 40 samples and smoothed
    ecg, beats = _pulse_train(20, 100, width=2.0, rng=rng)
    ppg = np.roll(_pulse_train(20, 100, width=8.0)[0], 40, axis=1)
    r = [beats[beats < T] for _ in range(20)]
    p = [(beats + 40)[(beats + 40) < T] for _ in range(20)]
    assert np.allclose(np.concatenate([arrival_delays_s(a, b) for a, b in zip(r, p)]), 40 / FS)
    tpl = MeanBeatTemplate().fit(ecg, ppg, r, p)
    assert tpl.delay_samples == 40
    ecg_hat = tpl.ecg_from_ppg(p, T)
    assert np.median(M.pearson_r(ecg_hat, ecg)) > 0.95
    ridge = PatchRidge(alpha=1e-3).fit(ppg[:15], ecg[:15])
    assert np.median(M.pearson_r(ridge.predict(ppg[15:]), ecg[15:])) > 0.9
    hrv = beat_features(r)
    np.testing.assert_allclose(hrv[:, 0], 60 / (100 / FS))  # 75 bpm
    np.testing.assert_allclose(hrv[:, 2], 0.0, atol=1e-12)  # perfectly regular: SDNN 0
