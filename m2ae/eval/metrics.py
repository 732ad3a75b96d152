"""Metric functions used by ``m2ae eval``: plain numpy, one number (or one per window) each.

Conventions
- Windows are float arrays [N, T] (T = 1250 samples at 125 Hz under the signal contract).
- NMSE of a window = mean squared error / variance of the target window, so 0 is perfect and 1.0
  is no better than predicting the window's own mean.
- A *lag* of L samples means the prediction runs L samples late: prediction[t] is compared with
  target[t - L]. One lag per record (a constant device delay between ECG and PPG is not the
  model's error), searched within ±max_lag samples.

>>> import numpy as np
>>> t = np.sin(np.linspace(0, 20, 1250))[None]
>>> float(nmse(t, t)[0])
0.0
"""
from __future__ import annotations

import warnings
from collections.abc import Hashable, Sequence

import numpy as np

from ..contract import FS_HZ, PATCH_SAMPLES
from ..errors import InputError

# One label per row (subject or record id): a list or a numpy array of hashable values.
GroupLabels = Sequence[Hashable] | np.ndarray

EPS = 1e-12


def _rows(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x[None, :] if x.ndim == 1 else x


def pearson_r(pred, target) -> np.ndarray:
    """Pearson correlation per row of two [N, T] arrays → [N] (NaN where a row is constant)."""
    p, t = _rows(pred), _rows(target)
    p = p - p.mean(axis=1, keepdims=True)
    t = t - t.mean(axis=1, keepdims=True)
    denom = np.sqrt((p * p).sum(axis=1) * (t * t).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (p * t).sum(axis=1) / denom
    r[denom < EPS] = np.nan
    return r


def nmse(pred, target, mask=None) -> np.ndarray:
    """Normalised MSE per row → [N]: MSE (over ``mask`` samples when given) / variance of the target row.

    mask : optional bool [N, T]; True marks the samples scored (e.g. masked patches). The
        denominator is always the variance of the whole target window, so scores on different
        masks stay comparable and 1.0 still means "no better than the window mean".
    """
    p, t = _rows(pred), _rows(target)
    err = (p - t) ** 2
    var = t.var(axis=1)
    if mask is None:
        mse = err.mean(axis=1)
    else:
        m = _rows(mask).astype(bool)
        count = m.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            mse = np.where(count > 0, (err * m).sum(axis=1) / np.maximum(count, 1), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = mse / var
    out[var < EPS] = np.nan
    return out


def shift_pair(pred, target, lag: int) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping parts of ``pred`` delayed by ``lag`` samples and ``target``: (pred[t], target[t - lag])."""
    p, t = _rows(pred), _rows(target)
    if lag > 0:
        return p[:, lag:], t[:, :-lag]
    if lag < 0:
        return p[:, :lag], t[:, -lag:]
    return p, t


def lagged_pearson_r(pred, target, max_lag: int) -> np.ndarray:
    """Pearson r of every row at every lag in [-max_lag, max_lag] samples → [2·max_lag + 1, N] (row 0 is
    lag -max_lag), each over the rows' overlapping parts as ``shift_pair`` cuts them; NaN where a part
    is constant.

    All lags at once: the overlaps' sums come from cumulative sums and their cross products from one
    FFT cross-correlation per row, not from a loop over lags (251 lags x every record in ``m2ae eval``).

    >>> t = np.sin(np.linspace(0, 20, 200))[None]
    >>> int(np.nanargmax(lagged_pearson_r(np.roll(t, 3, axis=1), t, 5)[:, 0])) - 5
    3
    """
    from scipy.signal import fftconvolve

    p, t = _rows(pred), _rows(target)
    n, T = p.shape
    lags = np.arange(-max_lag, max_lag + 1)
    # r does not change when a row is shifted by a constant: centring first keeps the sums' cancellation small
    p = p - p.mean(axis=1, keepdims=True)
    t = t - t.mean(axis=1, keepdims=True)

    def csum(x: np.ndarray) -> np.ndarray:
        return np.concatenate([np.zeros((n, 1)), np.cumsum(x, axis=1)], axis=1)   # [N, T + 1]

    cp, cpp, ct, ctt = csum(p), csum(p * p), csum(t), csum(t * t)
    lo_p, hi_p = np.maximum(lags, 0), T + np.minimum(lags, 0)          # pred[lo_p:hi_p] vs target[lo_t:hi_t]
    lo_t, hi_t = np.maximum(-lags, 0), T - np.maximum(lags, 0)
    m = (T - np.abs(lags)).astype(np.float64)
    sp, spp = cp[:, hi_p] - cp[:, lo_p], cpp[:, hi_p] - cpp[:, lo_p]   # [N, L]
    st, stt = ct[:, hi_t] - ct[:, lo_t], ctt[:, hi_t] - ctt[:, lo_t]
    spt = fftconvolve(p, t[:, ::-1], mode="full", axes=1)[:, T - 1 + lags]   # sum_i pred[i + lag] * target[i]
    var_p, var_t = spp - sp * sp / m, stt - st * st / m
    denom = np.sqrt(np.clip(var_p, 0, None) * np.clip(var_t, 0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (spt - sp * st / m) / denom
    r[denom < EPS] = np.nan
    return r.T


def best_lag(pred, target, max_lag: int) -> int:
    """The one lag in [-max_lag, max_lag] samples that maximises the mean Pearson r over the rows (the
    smallest such lag on a tie; 0 when no lag has a finite r).

    Use it per record: all windows of one record share one device delay.
    """
    p, t = _rows(pred), _rows(target)
    max_lag = int(min(max_lag, p.shape[1] // 2))
    if not len(p):
        return 0
    r = lagged_pearson_r(p, t, max_lag)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)     # a lag where every row is constant: NaN
        mean_r = np.nanmean(r, axis=1)
    if not np.isfinite(mean_r).any():
        return 0
    return int(np.nanargmax(mean_r)) - max_lag


def reconstruction_scores(pred, target, groups: GroupLabels, max_lag: int) -> dict[str, np.ndarray]:
    """Per-window r and NMSE, plain and after one best lag per group (record or subject).

    Returns {"r": [N], "nmse": [N], "r_lag": [N], "nmse_lag": [N], "lag": [N] (samples, that
    window's group lag)}.
    """
    p, t = _rows(pred), _rows(target)
    group_ids = np.asarray(groups)
    out = {"r": pearson_r(p, t), "nmse": nmse(p, t)}
    r_lag, nmse_lag, lags = np.full(len(p), np.nan), np.full(len(p), np.nan), np.zeros(len(p), int)
    for g in np.unique(group_ids):
        idx = np.flatnonzero(group_ids == g)
        lag = best_lag(p[idx], t[idx], max_lag)
        ps, ts = shift_pair(p[idx], t[idx], lag)
        r_lag[idx], nmse_lag[idx], lags[idx] = pearson_r(ps, ts), nmse(ps, ts), lag
    out.update(r_lag=r_lag, nmse_lag=nmse_lag, lag=lags)
    return out


def summarize_reconstruction(scores: dict[str, np.ndarray], fs_hz: float) -> dict[str, float]:
    """Median of each per-window score, plus the median lag in ms."""
    return {
        "median_r": _median(scores["r"]),
        "median_nmse": _median(scores["nmse"]),
        "median_r_lagged": _median(scores["r_lag"]),
        "median_nmse_lagged": _median(scores["nmse_lag"]),
        "median_lag_ms": _median(scores["lag"] * 1000.0 / fs_hz),
    }


def reconstruction_errors(original: np.ndarray, reconstructed: np.ndarray, mask: np.ndarray | None = None,
                          max_lag_samples: int = 0) -> dict[str, float]:
    """Error figures of one reconstructed window (what the app shows beside a reconstruction).

    original, reconstructed : [T] the same window in the same units (normalised is best).
    mask : optional per-sample (or per-patch) bool, True = hidden from the model; NMSE and r are then
        scored on the hidden samples only (NMSE's denominator stays the whole window's variance).
    max_lag_samples : when > 0 also report r after the one best lag within ±max_lag (a constant
        ECG→PPG device delay is not the model's error), and that lag in ms.
    Returns {"nmse", "pearson_r", "n_samples"} (+ {"pearson_r_lagged", "lag_ms"}).
    """
    x = np.asarray(original, dtype=np.float64).ravel()
    y = np.asarray(reconstructed, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise InputError(f"reconstruction: shapes differ ({x.shape} vs {y.shape})")
    m = np.ones(x.size, bool)
    if mask is not None:
        mm = np.asarray(mask, dtype=bool).ravel()
        if mm.size * PATCH_SAMPLES == x.size:
            mm = patch_mask_to_samples(mm, PATCH_SAMPLES)
        if mm.size == x.size and mm.any():
            m = mm
    out = {"nmse": float(nmse(y, x, m)[0]), "pearson_r": float(pearson_r(y[m], x[m])[0]), "n_samples": int(m.sum())}
    if max_lag_samples > 0:
        lag = best_lag(y, x, int(max_lag_samples))
        ps, ts = shift_pair(y, x, lag)
        out["pearson_r_lagged"] = float(pearson_r(ps, ts)[0])
        out["lag_ms"] = 1000.0 * lag / FS_HZ
    return out


def _median(x) -> float:
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    return float(np.median(x)) if len(x) else float("nan")


def interpolate_masked(x, sample_mask) -> np.ndarray:
    """Baseline for masked reconstruction: linear interpolation across masked spans, per row.

    sample_mask : bool [N, T], True = hidden. Spans at the edges repeat the nearest visible sample;
    a row with nothing visible becomes zeros (the normalised window's median).
    """
    x, m = _rows(x), _rows(sample_mask).astype(bool)
    out = x.copy()
    grid = np.arange(x.shape[1])
    for i in range(len(x)):
        visible = ~m[i]
        if not visible.any():
            out[i] = 0.0
        elif m[i].any():
            out[i, m[i]] = np.interp(grid[m[i]], grid[visible], x[i, visible])
    return out


def patch_mask_to_samples(patch_mask, patch_samples: int) -> np.ndarray:
    """Bool [N, P] patch mask → bool [N, P * patch_samples] sample mask."""
    return np.repeat(np.asarray(patch_mask, dtype=bool), patch_samples, axis=-1)


def nearest_neighbours(queries, candidates, metric: str = "cosine", exclude_self: bool = False) -> np.ndarray:
    """Index of the nearest candidate for each query → int [Nq].

    metric : "cosine" (fingerprints) or "euclidean" (feature vectors; standardise them first).
    exclude_self : queries and candidates are the same set; a row may not match itself.
    """
    q, c = np.asarray(queries, np.float64), np.asarray(candidates, np.float64)
    if metric == "cosine":
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), EPS)
        c = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), EPS)
        score = q @ c.T
    elif metric == "euclidean":
        score = -((q * q).sum(1)[:, None] - 2 * q @ c.T + (c * c).sum(1)[None, :])
    else:
        raise ValueError(f"unknown metric {metric!r}")
    if exclude_self:
        np.fill_diagonal(score, -np.inf)
    return np.argmax(score, axis=1)


def same_subject_hits(embeddings, subject_ids, metric: str = "cosine") -> np.ndarray:
    """Per window: 1.0 when its nearest *other* window belongs to the same subject, 0.0 when not,
    NaN when its subject has no other window (not scored) → float [N]."""
    ids = np.asarray(subject_ids)
    _, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
    scored = counts[inverse] > 1
    hits = np.full(len(ids), np.nan)
    if scored.any():
        nn = nearest_neighbours(embeddings, embeddings, metric=metric, exclude_self=True)
        hits[scored] = (ids[nn] == ids)[scored]
    return hits


def same_subject_top1(embeddings, subject_ids, metric: str = "cosine") -> float:
    """Fraction of windows whose nearest *other* window belongs to the same subject.

    Only windows whose subject has at least one other window are scored. This is also the
    re-identification rate: chance is about 1 / number of subjects.
    """
    hits = same_subject_hits(embeddings, subject_ids, metric)
    return float(np.nanmean(hits)) if np.isfinite(hits).any() else float("nan")


def paired_hits(queries, candidates, metric: str = "cosine") -> np.ndarray:
    """Per query i: 1.0 when its nearest candidate is candidate i (its own pair), else 0.0 → [N]."""
    nn = nearest_neighbours(queries, candidates, metric=metric)
    return (nn == np.arange(len(nn))).astype(np.float64)


def paired_top1(queries, candidates, metric: str = "cosine") -> float:
    """Fraction of queries i whose nearest candidate is candidate i (its own pair)."""
    return float(np.mean(paired_hits(queries, candidates, metric)))


def standardize(train, *others) -> list[np.ndarray]:
    """Z-score feature columns with the mean/std of ``train`` (NaN → 0 after scaling)."""
    train = np.asarray(train, np.float64)
    mu = np.nanmean(train, axis=0)
    sd = np.nanstd(train, axis=0)
    sd = np.where(np.isfinite(sd) & (sd > EPS), sd, 1.0)
    mu = np.where(np.isfinite(mu), mu, 0.0)
    return [np.nan_to_num((np.asarray(x, np.float64) - mu) / sd) for x in (train, *others)]


def _binary_auroc(positive: np.ndarray, score: np.ndarray) -> float:
    """AUROC of a bool label vector as the Mann-Whitney U statistic / (n_pos * n_neg), ties counted
    half (average ranks); the same number as ``sklearn.metrics.roc_auc_score``, without its overhead
    (the bootstrap below calls this thousands of times)."""
    from scipy.stats import rankdata

    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auroc(y_true, scores, classes: Sequence | None = None) -> float:
    """ROC AUC: binary when ``scores`` is [N] or [N, 2]; macro one-vs-rest over the classes present otherwise.

    y_true : labels; for multi-class, values from ``classes`` (the column order of ``scores``).
    Returns NaN when fewer than two classes are present (AUROC is undefined).

    >>> auroc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    0.75
    """
    y = np.asarray(y_true)
    s = np.asarray(scores, np.float64)
    if s.ndim == 2 and s.shape[1] == 2:
        s = s[:, 1]
    if s.ndim == 1:
        y = y.astype(float)
        ok = np.isfinite(y) & np.isfinite(s)
        if len(np.unique(y[ok])) < 2:
            return float("nan")
        return _binary_auroc(y[ok] == np.max(y[ok]), s[ok])
    classes = list(classes) if classes is not None else list(range(s.shape[1]))
    aucs = []
    for j, c in enumerate(classes):
        pos = y == c
        if 0 < pos.sum() < len(y):
            aucs.append(_binary_auroc(pos, s[:, j]))
    return float(np.mean(aucs)) if len(aucs) >= 1 and len(np.unique(y)) >= 2 else float("nan")


def mae(y_true, y_pred) -> float:
    """Mean absolute error, ignoring NaN labels."""
    y, p = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    ok = np.isfinite(y) & np.isfinite(p)
    return float(np.mean(np.abs(y[ok] - p[ok]))) if ok.any() else float("nan")


# --- uncertainty of a comparison ----------------------------------------------------------------

BOOTSTRAP_RESAMPLES = 1000
CI_LEVEL = 0.95


def group_bootstrap_ci(statistic, groups: GroupLabels, n_boot: int = BOOTSTRAP_RESAMPLES,
                       level: float = CI_LEVEL, seed: int = 0) -> list[float]:
    """Percentile confidence interval of ``statistic(rows)`` when whole groups (subjects, records)
    are resampled with replacement: windows of one subject are not independent evidence, so they are
    drawn together. ``statistic`` takes an int index array into the rows and returns a float (NaN
    resamples, e.g. AUROC with one class, are dropped). Returns [low, high]; [NaN, NaN] when more
    than half the resamples are undefined. With only a few groups the interval is honest but crude
    (two records: it spans the two records' own values).

    >>> x = np.r_[np.full(20, 1.0), np.full(20, 3.0)]
    >>> lo, hi = group_bootstrap_ci(lambda rows: x[rows].mean(), np.repeat(np.arange(4), 10))
    >>> 1.0 <= lo < 2.0 < hi <= 3.0
    True
    """
    group_ids = np.asarray(groups)
    _, inverse = np.unique(group_ids, return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(inverse.max() + 1)] if len(group_ids) else []
    if not members:
        return [float("nan"), float("nan")]
    rng = np.random.default_rng(seed)
    values = np.array([statistic(np.concatenate([members[g] for g in rng.integers(0, len(members), len(members))]))
                       for _ in range(int(n_boot))], np.float64)
    values = values[np.isfinite(values)]
    if len(values) < n_boot / 2:
        return [float("nan"), float("nan")]
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(values, [tail, 1.0 - tail])
    return [round(float(low), 4), round(float(high), 4)]  # 4 decimals: far finer than any interval here


def difference_ci(model_values, baseline_values, groups: GroupLabels, reduce=np.nanmedian,
                  seed: int = 0) -> list[float]:
    """CI of reduce(model) − reduce(baseline) over per-window (or per-query) values [N] measured on
    the same rows (a paired comparison), resampling ``groups``; ``reduce`` is the figure reported
    (median for reconstruction scores, mean for top-1 hits and absolute errors)."""
    m, b = np.asarray(model_values, np.float64), np.asarray(baseline_values, np.float64)
    return group_bootstrap_ci(lambda rows: float(reduce(m[rows]) - reduce(b[rows])), groups, seed=seed)


def verdict(ci: Sequence[float] | None, higher_is_better: bool) -> str | None:
    """"better" / "worse" when the CI of model − baseline excludes 0 in that direction, "tie" when it
    holds 0, None without a CI.

    >>> verdict([0.01, 0.05], True), verdict([0.01, 0.05], False), verdict([-0.02, 0.03], True)
    ('better', 'worse', 'tie')
    """
    if ci is None or len(ci) != 2 or not all(np.isfinite(ci)):
        return None
    low, high = (ci[0], ci[1]) if higher_is_better else (-ci[1], -ci[0])
    return "better" if low > 0 else "worse" if high < 0 else "tie"
