"""Two-stage cross-modal retrieval: find the ECG window that was recorded with a given PPG window.

Fingerprints are subject-level: every window of a subject maps to nearly the same vector, so a
PPG fingerprint finds the right *subject* among ECG candidates but cannot tell that subject's
windows apart. The beat timing can: the model's ECG rebuilt from the PPG alone has its beats
where the real ECG has them (up to one constant pulse-arrival offset, unknown per device), so

1. stage 1 shortlists the ``shortlist`` candidates whose ECG-only fingerprint is most
   cosine-similar to the query's PPG-only fingerprint;
2. stage 2 re-ranks that shortlist by the maximum normalised cross-correlation, over lags within
   ``±max_lag_s``, between the ECG the model reconstructs from the query PPG and each candidate ECG.

>>> from m2ae.model import load_model                                    # doctest: +SKIP
>>> res = paired_retrieval(load_model(), ppg_windows, ecg_windows, shortlist=50)   # doctest: +SKIP
>>> float(np.mean(res.top1 == np.arange(len(ppg_windows))))              # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import fft as sp_fft

from ..contract import FS_HZ
from ..errors import InputError
from ..signal.filters import bandpass

QRS_BAND_HZ = (8.0, 25.0)  # stage-2 comparison band (Hz): where QRS energy is, P/T waves are not
QUERY_CHUNK = 64  # queries per FFT block: [64, shortlist, ~700] complex64 stays ~20 MB at shortlist 50


@dataclass
class PairedRetrieval:
    """Result of ``paired_retrieval`` for Q queries and C candidates (K = shortlist, clamped to C).

    ranking : int [Q, K] candidate indices, best first after stage 2.
    top1 : int [Q] ``ranking[:, 0]``, the retrieved candidate per query.
    stage1_ranking : int [Q, K] the shortlist in fingerprint-cosine order (stage 1 alone).
    stage1_score : float [Q, K] fingerprint cosine of ``stage1_ranking``'s candidates.
    correlation : float [Q, K] stage-2 max normalised cross-correlation, aligned with ``ranking``.
    lag_samples : int [Q, K] lag (samples, at 125 Hz) of that maximum; positive = candidate later.
    """

    ranking: np.ndarray
    top1: np.ndarray
    stage1_ranking: np.ndarray
    stage1_score: np.ndarray
    correlation: np.ndarray
    lag_samples: np.ndarray

    @property
    def shortlist(self) -> int:
        return int(self.ranking.shape[1])

    def hits(self, truth=None) -> np.ndarray:
        """Per query: 1.0 when its retrieved candidate is ``truth[i]`` (default: candidate i), else 0.0."""
        truth = np.arange(len(self.top1)) if truth is None else np.asarray(truth)
        return (self.top1 == truth).astype(np.float64)

    def top1_accuracy(self, truth=None) -> float:
        """Fraction of queries whose retrieved candidate is ``truth[i]`` (default: candidate i)."""
        hits = self.hits(truth)
        return float(np.mean(hits)) if len(hits) else float("nan")

    def stage1_top1_accuracy(self, truth=None) -> float:
        """Top-1 of the fingerprint cosine alone (the shortlist's first entry)."""
        truth = np.arange(len(self.top1)) if truth is None else np.asarray(truth)
        return float(np.mean(self.stage1_ranking[:, 0] == truth)) if len(truth) else float("nan")

    def shortlist_recall(self, truth=None) -> float:
        """Fraction of queries whose true candidate survived stage 1 (the ceiling of stage 2)."""
        truth = np.arange(len(self.top1)) if truth is None else np.asarray(truth)
        return float(np.mean((self.stage1_ranking == truth[:, None]).any(1))) if len(truth) else float("nan")


def _unit_rows(x: np.ndarray) -> np.ndarray:
    """Zero-mean, unit-L2 rows (a flat row stays all zeros, so it correlates 0 with everything)."""
    x = np.asarray(x, np.float64)
    x = x - x.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


def _unit_length_rows(x) -> np.ndarray:
    """Unit-L2 rows without centring (cosine similarity of fingerprints = dot product)."""
    x = np.asarray(x, np.float64)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


def band_passed(x: np.ndarray, band_hz: tuple[float, float] | None, fs_hz: float = FS_HZ) -> np.ndarray:
    """Rows of ``x`` [N, T] filtered to ``band_hz`` (low, high) Hz, zero phase (2nd-order
    Butterworth, ``m2ae.signal.filters.bandpass``), so lags found afterwards are the waveforms' own;
    None = as is.

    >>> t = np.arange(1250) / 125.0
    >>> slow, sharp = np.sin(2 * np.pi * 0.3 * t), np.sin(2 * np.pi * 15.0 * t)
    >>> y = band_passed(np.stack([slow, sharp]), QRS_BAND_HZ)
    >>> bool(np.std(y[0]) < 0.01 < 0.9 < np.std(y[1]) / np.std(sharp))
    True
    """
    if band_hz is None:
        return np.asarray(x, np.float64)
    low, high = (float(f) for f in band_hz)
    if not 0 < low < high < fs_hz / 2:
        raise InputError(f"band_passed: band must satisfy 0 < low < high < {fs_hz / 2:g} Hz, got {band_hz}")
    return bandpass(x, fs_hz, low, high, order=2)


def max_lagged_correlation(queries: np.ndarray, candidates: np.ndarray, pairs: np.ndarray,
                           max_lag_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Max normalised cross-correlation of ``queries[q]`` with ``candidates[pairs[q, k]]``.

    queries [Q, T], candidates [C, T], pairs int [Q, K]. Each row is made zero-mean and unit-norm,
    so a lag of 0 gives the Pearson r; other lags sum the overlap only (zero padding, no wrap-around).
    Lags searched: -max_lag_samples .. +max_lag_samples. Returns (correlation [Q, K] float64,
    lag [Q, K] int samples; positive = the candidate's waveform comes that many samples later).

    Uses real FFTs of length >= T + max_lag_samples, in query blocks of ``QUERY_CHUNK``.
    """
    Q, T = queries.shape
    K = pairs.shape[1]
    L = int(max(0, min(max_lag_samples, T - 1)))
    n_fft = sp_fft.next_fast_len(T + L, real=True)
    fq = sp_fft.rfft(_unit_rows(queries), n_fft, axis=1).astype(np.complex64)       # [Q, F]
    fc = sp_fft.rfft(_unit_rows(candidates), n_fft, axis=1).astype(np.complex64)    # [C, F]
    # circular index of lag -L..L in the inverse FFT of conj(Q) * C: lag k sits at k mod n_fft
    lag_index = np.arange(-L, L + 1) % n_fft
    corr = np.empty((Q, K))
    lag = np.empty((Q, K), np.int64)
    for start in range(0, Q, QUERY_CHUNK):
        sl = slice(start, start + QUERY_CHUNK)
        spec = np.conj(fq[sl])[:, None, :] * fc[pairs[sl]]                          # [q, K, F]
        xc = sp_fft.irfft(spec, n_fft, axis=2)[:, :, lag_index]                       # [q, K, 2L+1]
        best = np.argmax(xc, axis=2)
        corr[sl] = np.take_along_axis(xc, best[..., None], axis=2)[..., 0]
        lag[sl] = best - L
    return corr, lag


def paired_retrieval(model, query_ppg, candidate_ecg, shortlist: int = 50, max_lag_s: float = 1.0,
                     stage1_weight: float = 0.0, query_fingerprints=None,
                     candidate_fingerprints=None, ecg_estimate=None,
                     compare_band_hz: tuple[float, float] | None = QRS_BAND_HZ) -> PairedRetrieval:
    """Two-stage PPG→ECG retrieval: fingerprint shortlist, then beat-timing re-ranking.

    model : an ``M2AEModel`` (anything with ``fingerprint(ecg=, ppg=)`` → L2-normalised [N, D] and
        ``reconstruct(ppg=, mode="ecg_from_ppg")["ecg"]["prediction"]`` → [N, 1250]).
    query_ppg : [Q, 1250] contract PPG windows (125 Hz, normalised as ``m2ae.preprocess`` makes them).
    candidate_ecg : [C, 1250] contract ECG windows.
    shortlist : candidates kept by stage 1 per query (clamped to C; 1 = fingerprint only).
    max_lag_s : stage-2 lag search range in seconds (the reconstruction's pulse-arrival offset is
        learnt from simulated subjects; a real device's offset differs by up to a few hundred ms).
    stage1_weight : stage-2 score = correlation + stage1_weight * fingerprint cosine (0 = pure
        correlation; the eval reports 0, see ``m2ae.eval.retrieval_scores``).
    query_fingerprints, candidate_fingerprints : precomputed PPG-only / ECG-only fingerprints
        (skip recomputing them when the caller already has them).
    ecg_estimate : [Q, 1250] ECG estimated from the query PPG by something else (e.g. a baseline's
        template), used in stage 2 instead of the model's reconstruction.
    compare_band_hz : (low, high) Hz band both stage-2 waveforms are filtered to before they are
        correlated (default ``QRS_BAND_HZ``; None = compare the raw windows).

    Returns ``PairedRetrieval`` (ranking [Q, K] best first, top1 [Q], stage-1 ranking/scores,
    stage-2 correlations and lags).

    >>> res = paired_retrieval(model, ppg[:100], ecg[:100], shortlist=20)   # doctest: +SKIP
    >>> res.top1_accuracy(), res.stage1_top1_accuracy(), res.shortlist_recall()   # doctest: +SKIP
    """
    query_ppg = np.asarray(query_ppg, np.float32)
    candidate_ecg = np.asarray(candidate_ecg, np.float32)
    for name, x in (("query_ppg", query_ppg), ("candidate_ecg", candidate_ecg)):
        if x.ndim != 2 or len(x) == 0:
            raise InputError(f"paired_retrieval: {name} must be a non-empty [N, samples] array, got shape {x.shape}")
    if query_ppg.shape[1] != candidate_ecg.shape[1]:
        raise InputError(f"paired_retrieval: query_ppg windows have {query_ppg.shape[1]} samples but "
                         f"candidate_ecg windows have {candidate_ecg.shape[1]}")
    if int(shortlist) < 1:
        raise InputError(f"paired_retrieval: shortlist must be >= 1, got {shortlist}")
    if not (np.isfinite(max_lag_s) and max_lag_s >= 0):
        raise InputError(f"paired_retrieval: max_lag_s must be a finite number >= 0, got {max_lag_s}")
    K = min(int(shortlist), len(candidate_ecg))

    fq = model.fingerprint(ppg=query_ppg) if query_fingerprints is None else query_fingerprints
    fc = model.fingerprint(ecg=candidate_ecg) if candidate_fingerprints is None else candidate_fingerprints
    cosine = _unit_length_rows(fq) @ _unit_length_rows(fc).T                     # [Q, C]
    # top-K by cosine, sorted best first (argpartition, then sort only the K survivors)
    part = np.argpartition(-cosine, K - 1, axis=1)[:, :K] if K < cosine.shape[1] else \
        np.tile(np.arange(cosine.shape[1]), (len(cosine), 1))
    order = np.argsort(-np.take_along_axis(cosine, part, axis=1), axis=1, kind="stable")
    stage1 = np.take_along_axis(part, order, axis=1)                                   # [Q, K]
    stage1_score = np.take_along_axis(cosine, stage1, axis=1)

    if ecg_estimate is None:
        ecg_estimate = model.reconstruct(ppg=query_ppg, mode="ecg_from_ppg")["ecg"]["prediction"]   # [Q, T]
    ecg_estimate = np.asarray(ecg_estimate)
    if ecg_estimate.shape != query_ppg.shape:
        raise InputError(f"paired_retrieval: ecg_estimate must have the queries' shape {query_ppg.shape}, "
                         f"got {ecg_estimate.shape}")
    corr, lag = max_lagged_correlation(band_passed(ecg_estimate, compare_band_hz),
                                       band_passed(candidate_ecg, compare_band_hz), stage1,
                                       int(round(max_lag_s * FS_HZ)))
    score = corr + float(stage1_weight) * stage1_score
    rerank = np.argsort(-score, axis=1, kind="stable")
    ranking = np.take_along_axis(stage1, rerank, axis=1)
    return PairedRetrieval(ranking=ranking, top1=ranking[:, 0].copy(), stage1_ranking=stage1,
                           stage1_score=stage1_score, correlation=np.take_along_axis(corr, rerank, axis=1),
                           lag_samples=np.take_along_axis(lag, rerank, axis=1))


__all__ = ["paired_retrieval", "PairedRetrieval", "max_lagged_correlation", "band_passed", "QRS_BAND_HZ"]
