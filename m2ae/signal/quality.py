"""Per-window signal quality in [0, 1]: beat-template agreement times simple sanity checks.

Template agreement is the Orphanidou et al. (2015) index that ``nk.ecg_quality`` / ``nk.ppg_quality``
compute with ``method="templatematch"``: each beat (half a median beat interval either side of its
peak, as neurokit2 segments it) is correlated with the record's template beat. neurokit2 builds a
pandas DataFrame per beat (about 3 s per hour of signal per channel), so the same index is computed
here on a strided [beats, samples] array; tests check it against neurokit2's.

The sanity checks catch what a template cannot: a flat or disconnected stretch, a clipped
(saturated) signal, an amplitude far from the record's typical one (motion), a window largely
filled in over short gaps, too few beats. Quality = template score × each sanity score.
"""
from __future__ import annotations

import numpy as np

from .peaks import HR_MAX_BPM, HR_MIN_BPM

# Beat-template correlation of pure band-passed noise around detected "peaks" is ~0.3-0.6 (the
# peak alignment itself correlates), clean beats are > 0.9: map [R_FLOOR, R_FULL] linearly onto [0, 1].
R_FLOOR = 0.5
R_FULL = 1.0
AMPLITUDE_OK_RATIO = 3.0     # window scale within 3x of the record's median: no penalty
AMPLITUDE_BAD_RATIO = 10.0   # beyond 10x (or below 1/10): quality 0
CLIP_BAD_FRACTION = 0.1      # 10% of a window's samples stuck at the record's extreme value: quality 0
INTERPOLATED_BAD_FRACTION = 0.2  # 20% of a window filled in over short gaps: quality 0
MIN_BEATS_PER_WINDOW = 3


def beat_template_correlation(x: np.ndarray, peaks: np.ndarray, fs_hz: float) -> np.ndarray:
    """Pearson r of each beat with the median template beat (NaN for beats cut by the edges).

    x : one gap-free filtered segment; peaks : its sorted peak indices. Beats span ±half the median
    peak interval around each peak.
    """
    r = np.full(len(peaks), np.nan)
    if len(peaks) < 3:
        return r
    half = int(round(0.5 * np.median(np.diff(peaks))))
    half = int(np.clip(half, int(0.1 * fs_hz), int(1.5 * fs_hz)))
    inside = (peaks - half >= 0) & (peaks + half < len(x))
    if inside.sum() < 3:
        return r
    idx = peaks[inside][:, None] + np.arange(-half, half + 1)[None, :]
    beats = x[idx]                                                   # [n_beats, 2*half+1]
    beats = beats - beats.mean(axis=1, keepdims=True)
    template = np.median(beats, axis=0)
    template = template - template.mean()
    num = beats @ template
    den = np.sqrt((beats * beats).sum(axis=1) * (template @ template))
    r[inside] = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
    return r


def window_template_score(peaks: np.ndarray, beat_r: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """Per window: mean beat correlation r of the beats inside, mapped as (r - 0.5) / 0.5 onto [0, 1].

    Windows with fewer than 3 usable beats score 0 (nothing to judge the morphology by).
    """
    out = np.zeros(len(starts))
    lo = np.searchsorted(peaks, starts, side="left")
    hi = np.searchsorted(peaks, starts + width, side="left")
    for i, (a, b) in enumerate(zip(lo, hi)):
        r = beat_r[a:b]
        r = r[np.isfinite(r)]
        if len(r) >= MIN_BEATS_PER_WINDOW:
            out[i] = np.clip((np.mean(r) - R_FLOOR) / (R_FULL - R_FLOOR), 0.0, 1.0)
    return out


def amplitude_score(window_scale: np.ndarray) -> np.ndarray:
    """1 when a window's scale is within 3x of the record's median scale, 0 beyond 10x, log-linear between."""
    s = np.asarray(window_scale, dtype=np.float64)
    ref = np.median(s[s > 0]) if (s > 0).any() else 0.0
    if ref <= 0:
        return np.zeros(len(s))
    dev = np.abs(np.log(np.maximum(s, 1e-300) / ref))
    ramp = np.log(AMPLITUDE_BAD_RATIO) - np.log(AMPLITUDE_OK_RATIO)
    return np.clip((np.log(AMPLITUDE_BAD_RATIO) - dev) / ramp, 0.0, 1.0)


def clipped_mask(x: np.ndarray, fs_hz: float, min_run_s: float = 0.04) -> np.ndarray:
    """Samples of a raw signal stuck at its overall max or min for ≥ 40 ms (and ≥ 3 samples): saturation.

    The run length keeps a quantised signal whose trough merely repeats its lowest value for a few
    samples from reading as clipped.
    """
    x = np.asarray(x, dtype=np.float64)
    min_run = max(3, int(round(min_run_s * fs_hz)))
    finite = np.isfinite(x)
    if finite.sum() < min_run:
        return np.zeros(len(x), dtype=bool)
    hi, lo = np.nanmax(x), np.nanmin(x)
    if hi == lo:
        return finite.copy()
    at_edge = finite & ((x == hi) | (x == lo))
    if not at_edge.any():
        return at_edge
    edges = np.diff(np.concatenate(([0], at_edge.view(np.int8), [0])))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    mask = np.zeros(len(x), dtype=bool)
    for a, b in zip(starts, stops):
        if b - a >= min_run:
            mask[a:b] = True
    return mask


def clip_score(clip_fraction: np.ndarray) -> np.ndarray:
    """1 with no clipping, falling linearly to 0 at 10% of the window's samples clipped."""
    return np.clip(1.0 - np.asarray(clip_fraction) / CLIP_BAD_FRACTION, 0.0, 1.0)


def interpolated_score(interpolated_fraction: np.ndarray) -> np.ndarray:
    """1 with no filled-in samples, falling linearly to 0 at 20% of the window interpolated over gaps."""
    return np.clip(1.0 - np.asarray(interpolated_fraction) / INTERPOLATED_BAD_FRACTION, 0.0, 1.0)


def heart_rate_score(hr_bpm: np.ndarray) -> np.ndarray:
    """1 for a window whose heart rate is measurable and within 25–240 bpm, else 0."""
    hr = np.asarray(hr_bpm, dtype=np.float64)
    return (np.isfinite(hr) & (hr >= HR_MIN_BPM) & (hr <= HR_MAX_BPM)).astype(np.float64)
