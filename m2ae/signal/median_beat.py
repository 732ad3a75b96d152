"""The aligned median beat of an ECG stretch and its delineation (P onset, QRS onset/offset, T end).

Beats are cut around their R peaks at 500 Hz, aligned on the QRS by cross-correlation with a first median,
and beats that correlate poorly with the median beat (artefact, ectopy) are left out; the sample-wise median
of the rest lowers uncorrelated noise about √N-fold, which the P and T boundaries need.

Boundaries follow the convention of :mod:`m2ae.signal.intervals` (a wave starts / ends at centre ∓ 2 sigma
of a Gaussian wave): P onset and T end by the tangent method (the tangent at the wave's steepest flank meets
the isoelectric level, the classical QT method). Where the T wave and the next P wave overlap (fast
rates), the neighbouring wave is fitted and subtracted first (:mod:`.fused_waves`), so that each tangent
is drawn on its own wave. QRS onset / offset from the slope (:mod:`.qrs_bounds`). NeuroKit2's
delineator fills a P or QRS boundary these do not find (:func:`median_beat_boundaries`).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from .filters import resample_to
from .fused_waves import bell, fit_t_and_p
from .qrs_bounds import FS_500_HZ
from .qrs_bounds import qrs_bounds as _qrs_bounds
from .qrs_bounds import smooth as _smooth

DELINEATE_FS_HZ = FS_500_HZ    # the median beat's rate, also given to NeuroKit2's delineator
PRE_S, POST_S = 0.40, 0.75     # cut around each R: the P of slow rhythms and the T end of 30-bpm beats
ALIGN_MAX_S = 0.016            # largest re-alignment of a beat on the median QRS
MIN_CORRELATION = 0.7          # beats less alike the median beat than this are left out
FUSED_T_FRACTION = 0.25       # a T-P nadir this high above the isoelectric level (share of T) is a fusion
FUSED_T_WITHHOLD = 0.45       # above this, the T end is not read at all (it lies inside the next P wave)
MAX_RR_SPREAD = 0.1           # RR interquartile range (share of RR) up to which the rhythm counts as regular
FUSED_SIGMAS = 2.5            # T and P overlap when closer than this many sigmas each (see _overlap)
TURN_FRACTION = 0.05          # a wave has ended when the signal rises again by this share of its peak


@dataclass
class MedianBeat:
    """Median beat at 500 Hz: ``beat`` (signal units), R at sample ``r``, the median RR in samples ``rr``,
    ``beats`` (aligned single beats used, one row each; ``starts``: where each begins, in 500-Hz samples of
    the stretch), ``offered`` (beats that fitted the stretch) and ``correlation`` (median Pearson r of the
    used beats with the median beat)."""

    beat: np.ndarray
    r: int
    rr: int
    beats: np.ndarray
    starts: np.ndarray
    offered: int
    correlation: float


def row_correlation(rows: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Pearson r of each row of ``rows`` [n, m] with ``ref`` [m] ([n])."""
    a = rows - rows.mean(1, keepdims=True)
    b = ref - ref.mean()
    den = np.sqrt((a * a).sum(1) * (b * b).sum()) + 1e-12
    return np.asarray((a @ b) / den)


def build_median_beat(ecg: np.ndarray, r_peaks: np.ndarray, fs_hz: float, min_beats: int = 2
                      ) -> MedianBeat | None:
    """Median beat of ``ecg`` (band-passed, any units) around ``r_peaks`` (samples at ``fs_hz``); None with
    fewer than ``min_beats`` beats that fit the stretch and resemble the median beat."""
    x, peaks = np.asarray(ecg, dtype=np.float64), np.asarray(r_peaks, dtype=np.int64)
    if len(peaks) < min_beats or len(x) < int(fs_hz):
        return None
    up = resample_to(x, fs_hz, FS_500_HZ)
    k = FS_500_HZ / fs_hz
    half = int(np.ceil(k))
    idx = np.clip(np.round(peaks * k).astype(np.int64), half, len(up) - half - 1)
    # largest |deflection| within ±1 original sample: the R peak at 500 Hz
    idx = idx + np.stack([np.abs(up[idx + d]) for d in range(-half, half + 1)], 1).argmax(1) - half
    rr = int(np.median(np.diff(idx))) if len(idx) > 1 else int(FS_500_HZ)
    pre, post, m = int(PRE_S * FS_500_HZ), int(POST_S * FS_500_HZ), int(ALIGN_MAX_S * FS_500_HZ)
    idx = idx[(idx - pre - m >= 0) & (idx + post + m <= len(up))]
    if len(idx) < min_beats:
        return None
    first = np.median(np.stack([up[r - pre:r + post] for r in idx]), 0)
    q = int(0.06 * FS_500_HZ)
    ref = first[pre - q:pre + q]
    starts = np.empty(len(idx), dtype=np.int64)
    for i, r in enumerate(idx):
        shifts = np.stack([up[r + s - q:r + s + q] for s in range(-m, m + 1)])
        starts[i] = r + int(np.argmax(row_correlation(shifts, ref))) - m - pre
    beats = np.stack([up[a:a + pre + post] for a in starts])
    keep = row_correlation(beats, np.median(beats, 0)) >= MIN_CORRELATION
    if keep.sum() < min_beats:
        return None
    beats, starts = beats[keep], starts[keep]
    beat = np.median(beats, 0)
    return MedianBeat(beat, pre, rr, beats, starts, len(idx), float(np.median(row_correlation(beats, beat))))


def _isoelectric(beat: np.ndarray, r: int) -> float:
    """The isoelectric level: the level the beat dwells at longest outside its QRS (PR, ST and TP segments;
    the mode of a kernel density of its samples). A dwell, not the flattest stretch before the QRS, because
    on a noisy median beat a P-wave crest is as flat as the PR segment, and at fast rates the stretch
    before the QRS is P and T waves fused."""
    v = _smooth(beat, int(0.01 * FS_500_HZ))
    q = int(0.06 * FS_500_HZ)
    v = np.concatenate([v[:max(r - q, 0)], v[r + q:]])
    noise = 1.4826 * float(np.median(np.abs(np.diff(beat)))) / np.sqrt(2.0)
    h = max(noise, 0.02 * float(np.ptp(v)), 1e-9)
    grid = np.linspace(v.min(), v.max(), 200)
    density = np.exp(-0.5 * ((v[None, :] - grid[:, None]) / h) ** 2).sum(1)
    return float(grid[int(np.argmax(density))])


def _tangent(z: np.ndarray, i0: int, i1: int, rising: bool, on_trough: bool = False) -> float:
    """Where the tangent at the steepest rise (fall) of ``z`` within [i0, i1) meets the isoelectric level 0
    (``on_trough``: or the stretch's lowest point when that lies higher, as for a P wave riding on the
    previous T wave); the tangent is a least-squares line over ±10 ms, so one noisy sample does not set
    the slope."""
    if i1 - i0 < 3:
        return float("nan")
    d = np.gradient(z)[i0:i1]
    j = i0 + int(np.argmax(d) if rising else np.argmin(d))
    f = int(0.01 * FS_500_HZ)
    lo, hi = max(j - f, 0), min(j + f + 1, len(z))
    slope, icept = np.polyfit(np.arange(lo, hi, dtype=np.float64), z[lo:hi], 1)
    if (slope <= 0) if rising else (slope >= 0):
        return float("nan")
    level = max(float(z[i0:i1].min()), 0.0) if on_trough else 0.0
    t = (level - icept) / slope
    return float(t) if (t <= j if rising else t >= j) else float("nan")


def _most_prominent(z: np.ndarray, lo: int, hi: int) -> int | None:
    from scipy.signal import find_peaks

    if hi - lo < 3:
        return None
    pk, props = find_peaks(z[lo:hi], prominence=0)
    return lo + int(pk[int(np.argmax(props["prominences"]))]) if len(pk) else None


def _p_onset(y: np.ndarray, qrs_on: int, rr: int, t_peak: int | None) -> float:
    # the P wave: the most prominent wave in the PR span after the previous beat's T peak, so that T (its
    # tail rising into the span at fast rates) is not taken for it; a P fused into that T has no peak: NaN
    ys = _smooth(y, int(0.02 * FS_500_HZ))
    lo = qrs_on - int(min(0.25 * FS_500_HZ, 0.45 * rr))
    if t_peak is not None:
        lo = max(lo, t_peak - rr + int(0.04 * FS_500_HZ))
    p = _most_prominent(np.abs(ys), max(lo, 1), qrs_on - int(0.02 * FS_500_HZ))
    if p is None:
        return float("nan")
    z = np.sign(ys[p]) * ys
    d = np.diff(z[max(p - int(0.1 * FS_500_HZ), 1):p + 1])[::-1]
    # the rise starts where the smoothed wave, followed back from its peak, turns down again
    down = np.nonzero(d[2:] <= 0)[0]
    return _tangent(z, p - (int(down[0]) + 2 if len(down) else len(d)), p + 1, rising=True, on_trough=True)


def _t_peak(ys: np.ndarray, r: int, qrs_off: int, rr: int, next_p: float = np.inf) -> int | None:
    """The T wave's peak: the most prominent wave from 40 ms after the QRS to 0.55 RR (at most 500 ms)
    after R, and before the next beat's P wave (``next_p``) when that is known."""
    hi = min(r + int(min(0.55 * rr, 0.5 * FS_500_HZ)), len(ys) - 1)
    if np.isfinite(next_p):
        hi = min(hi, int(next_p))
    return _most_prominent(np.abs(ys), qrs_off + int(0.04 * FS_500_HZ), hi)


def _t_end(ys: np.ndarray, p: int, next_p: float) -> float:
    z = np.sign(ys[p]) * ys
    stop, turned = _descent_end(z, p, min(p + int(0.25 * FS_500_HZ), len(z) - 1))
    end = _tangent(z, p, stop, rising=False)
    if turned and stop >= next_p - int(0.06 * FS_500_HZ) and z[stop] > FUSED_T_FRACTION * z[p] and end > stop:
        # T fused with the next P: the T end is the nadir between them, as read by hand, unless the nadir
        # is so high that the T end lies well inside the P wave
        return float("nan") if z[stop] > FUSED_T_WITHHOLD * z[p] else float(stop)
    return end


def _descent_end(z: np.ndarray, p: int, hi: int) -> tuple[int, bool]:
    """Where the wave falling from its peak at ``p`` bottoms out: the lowest point before it rises again
    by ``TURN_FRACTION`` of the peak (the next wave; smaller wiggles are noise); ``hi`` if it never does."""
    low = np.minimum.accumulate(z[p:hi + 1])
    rise = np.nonzero(z[p:hi + 1] - low > TURN_FRACTION * z[p])[0]
    if not len(rise):
        return hi, False
    return p + int(np.argmin(z[p:p + int(rise[0]) + 1])), True


def delineate_median_beat(mb: MedianBeat) -> dict[str, float]:
    """``p_onset``, ``qrs_onset``, ``qrs_offset``, ``t_end`` of ``mb.beat`` in samples (500 Hz) of the beat,
    NaN where a boundary is not found."""
    on, off = _qrs_bounds(mb.beat, mb.r)
    return _p_and_t(mb, on, off)


def _p_and_t(mb: MedianBeat, on: float, off: float) -> dict[str, float]:
    out = {"p_onset": float("nan"), "qrs_onset": on, "qrs_offset": off, "t_end": float("nan")}
    if not (np.isfinite(on) and np.isfinite(off)):
        return out
    y = mb.beat - _isoelectric(mb.beat, mb.r)
    ys = _smooth(y, int(0.03 * FS_500_HZ))   # the T wave is slow: 30 ms of smoothing keeps its slope
    t_peak = _t_peak(ys, mb.r, int(off), mb.rr)
    out["p_onset"] = p_on = _p_onset(y, int(on), mb.rr, t_peak)
    next_p = p_on + mb.rr if np.isfinite(p_on) else np.inf
    if t_peak is not None and t_peak >= next_p:   # that was the next beat's P wave
        t_peak = _t_peak(ys, mb.r, int(off), mb.rr, next_p)
    if t_peak is not None:
        out["t_end"] = _t_end(ys, t_peak, next_p)
        out.update(_unfused(mb, y, ys, int(on), int(off), t_peak, out))
    return out


def _overlap(t_wave: np.ndarray, p_wave: np.ndarray) -> bool:
    """Whether the fitted T and P waves overlap: the P starts before the T ends, both boundaries taken
    ``FUSED_SIGMAS`` from the centres (where a wave is at 4 % of its peak); apart, each boundary is drawn
    on the beat itself as usual."""
    return bool(p_wave[1] - FUSED_SIGMAS * p_wave[2] < t_wave[1] + FUSED_SIGMAS * t_wave[2])


def _unfused(mb: MedianBeat, y: np.ndarray, ys: np.ndarray, on: int, off: int, t_peak: int,
             found: dict[str, float]) -> dict[str, float]:
    """P onset and T end redrawn with the neighbouring wave subtracted (:mod:`.fused_waves`): the T wave
    after R against the next beat's P wave, the P wave before R against the previous beat's T wave (this
    beat's T, one RR earlier). A junction whose partner lies outside the beat is left as found."""
    rr, f = mb.rr, FS_500_HZ
    out: dict[str, float] = {}
    gaps = np.diff(mb.starts)
    gaps = gaps[gaps < 1.5 * rr]                   # consecutive beats only (unlike beats were left out)
    if len(gaps) < 2 or np.subtract(*np.percentile(gaps, [75, 25])) > MAX_RR_SPREAD * rr:
        # an irregular rhythm (atrial fibrillation) puts the neighbouring beats' waves nowhere fixed in
        # the median beat: there is no neighbour to subtract
        return out
    width = int(0.03 * f)                          # ys's smoothing, given to the P fit subtracted from it
    nxt = on + rr                                  # the next beat's QRS onset
    if nxt <= len(y):
        fit = fit_t_and_p(y, off + int(0.04 * f), nxt, t_peak, (max(t_peak + 0.02 * f, nxt - 0.25 * f),
                                                                 nxt - 0.03 * f))
        if fit is not None and (_overlap(*fit[:2]) or not np.isfinite(found["t_end"])):
            out["t_end"] = _t_end(ys - fit[2] - _smooth(bell(fit[1], len(y)), width), t_peak, np.inf)
    prev_t = t_peak - rr
    if prev_t >= 0:
        fit = fit_t_and_p(y, max(off + int(0.04 * f) - rr, 0), on, prev_t,
                          (max(prev_t + 0.02 * f, on - 0.25 * f), on - 0.03 * f))
        if fit is not None and (_overlap(*fit[:2]) or not np.isfinite(found["p_onset"])):
            out["p_onset"] = _p_onset(y - fit[2] - bell(fit[0], len(y)), on, rr, t_peak)
    return {k: v for k, v in out.items() if np.isfinite(v) or not np.isfinite(found[k])}


def beat_shifts(mb: MedianBeat, at: float, half_s: float, max_s: float = 0.02) -> np.ndarray:
    """Per used beat, the shift (samples) that best matches the median beat's stretch ``at`` ± ``half_s``
    (cross-correlation within ± ``max_s``): the beat's own boundary is the median beat's plus this shift.
    NaN where the stretch does not fit the beat."""
    n = len(mb.beats)
    if not np.isfinite(at):
        return np.full(n, np.nan)
    h, m, c = int(half_s * FS_500_HZ), int(max_s * FS_500_HZ), int(at)
    if c - h - m < 0 or c + h + m > mb.beat.shape[0]:
        return np.full(n, np.nan)
    ref = mb.beat[c - h:c + h]
    out = np.empty(n)
    for i, b in enumerate(mb.beats):
        cand = np.stack([b[c + s - h:c + s + h] for s in range(-m, m + 1)])
        out[i] = float(np.argmax(row_correlation(cand, ref)) - m)
    return out


def nk_wave_times(waves: dict[str, Any], key: str, n: int) -> np.ndarray:
    """Sample positions of NeuroKit2 wave ``key`` for ``n`` beats (NaN when it returned another count)."""
    vals = np.asarray(waves.get(key, [np.nan] * n), dtype=np.float64)
    return vals if len(vals) == n else np.full(n, np.nan)


def nk_delineate(up: np.ndarray, idx: np.ndarray, method: str) -> dict[str, Any] | None:
    """NeuroKit2's ``ecg_delineate`` waves of ``up`` (500 Hz) around R peaks ``idx``; None when it fails."""
    import neurokit2 as nk

    with warnings.catch_warnings():
        # neurokit2 warns on every window with a missing wave; the NaNs say the same
        warnings.simplefilter("ignore")
        try:
            return nk.ecg_delineate(up, rpeaks=idx, sampling_rate=int(DELINEATE_FS_HZ), method=method)[1]
        except (ValueError, IndexError, ZeroDivisionError):
            return None


def _dwt_on_median_beat(mb: MedianBeat, method: str) -> dict[str, float]:
    """NeuroKit2's boundaries of the median beat (repeated to ≥ 10 s, as neurokit2 needs; middle copy)."""
    nan = {"p_onset": float("nan"), "qrs_onset": float("nan"), "qrs_offset": float("nan")}
    beat = mb.beat[max(mb.r - int(0.35 * mb.rr), 0):][:mb.rr]
    a = min(mb.r, int(0.35 * mb.rr))
    if len(beat) < mb.rr:
        return nan
    copies = max(9, int(np.ceil(10.0 * DELINEATE_FS_HZ / mb.rr)) | 1)
    waves = nk_delineate(np.tile(beat, copies), a + mb.rr * np.arange(copies), method)
    if waves is None:
        return nan
    shift = (copies // 2) * mb.rr - (mb.r - a)
    return {k: float(nk_wave_times(waves, key, copies)[copies // 2]) - shift for k, key in (
        ("p_onset", "ECG_P_Onsets"), ("qrs_onset", "ECG_R_Onsets"), ("qrs_offset", "ECG_R_Offsets"))}


def median_beat_boundaries(mb: MedianBeat, method: str = "dwt") -> dict[str, float]:
    """P onset, QRS onset / offset and T end of the median beat (samples of ``mb.beat``, 500 Hz):
    :func:`~m2ae.signal.median_beat.delineate_median_beat`, with NeuroKit2's ``method`` filling a
    P or QRS boundary it did not find."""
    t = delineate_median_beat(mb)
    if not all(np.isfinite(t[k]) for k in ("p_onset", "qrs_onset", "qrs_offset")):
        dwt = _dwt_on_median_beat(mb, method)
        if not (np.isfinite(t["qrs_onset"]) and np.isfinite(t["qrs_offset"])):
            # the P and T searches start from the QRS bounds: redo them from NeuroKit2's
            t = _p_and_t(mb, *(t[k] if np.isfinite(t[k]) else dwt[k] for k in ("qrs_onset", "qrs_offset")))
        t.update({k: dwt[k] for k in dwt if not np.isfinite(t[k])})
    return t
