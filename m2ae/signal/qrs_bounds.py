"""QRS onset and offset of a median beat (500 Hz) from its slope.

Where the slope stays below a share of the QRS's steepest slope for ``QRS_HOLD_S`` (a threshold on the
derivative, as ecgpuwave does), refined to the Q (S) wave's own 13.5 % point when a Q (S) wave shows as a
slope lobe clear of the slope noise: the convention of :mod:`m2ae.signal.intervals` (a wave starts / ends
at centre -/+ 2 sigma of a Gaussian wave).
"""
from __future__ import annotations

import numpy as np

FS_500_HZ = 500.0   # the median beat's rate (m2ae.signal.median_beat resamples every beat to it)
QRS_SLOPE_FRACTION = (0.03, 0.06)   # QRS onset, offset: slope below this share of the steepest QRS slope ...
QRS_HOLD_S = 0.012             # ... for this long (a single zero crossing at a Q or S trough is not an end)
Q_SLOPE_AT_ONSET = 2.0 * float(np.exp(-1.5))   # slope at a Gaussian's centre - 2 sigma / its steepest
Q_NOISE_K, Q_MIN_FRACTION = 3.0, 0.01          # a Q lobe: steeper than 3 x the slope noise and 1 % of R's
Q_REACH_S = 0.03   # a Q (S) wave's steepest slope lies within this of the R wave's steep flank
Q_WALK_S = 0.015   # a Q or S wave's 13.5 % point lies one sigma (<= 11 ms) past its steepest slope: a
#                    lobe that keeps that slope longer has merged with a P or T wave


def smooth(x: np.ndarray, width: int) -> np.ndarray:
    """Moving average of ``x`` over ``width`` samples (made odd), edges padded with the end values."""
    width = max(int(width), 1) | 1
    return np.convolve(np.pad(x, width // 2, mode="edge"), np.ones(width) / width, mode="valid")


def qrs_bounds(beat: np.ndarray, r: int) -> tuple[float, float]:
    """QRS onset and offset of ``beat`` (500 Hz, R at sample ``r``) in samples; NaN where not found."""
    d = smooth(np.gradient(beat), 3)
    lo, hi = max(r - int(0.1 * FS_500_HZ), 0), min(r + int(0.15 * FS_500_HZ), len(beat) - 1)
    steep = np.abs(d[lo:hi]).max()
    # residual noise sets a floor: the slope of the median beat's noise (robust spread of its slope
    # changes, which the slow waves barely move) would otherwise hold the boundary open
    floor = 3.0 * 1.4826 * float(np.median(np.abs(np.diff(d))))
    h = int(QRS_HOLD_S * FS_500_HZ)
    below = np.abs(d) < max(QRS_SLOPE_FRACTION[0] * steep, floor)
    on = next((i for i in range(r, lo + h, -1) if below[i - h:i + 1].all()), None)
    if on is not None:
        on = _q_wave_onset(d, on, r, steep)
    below = np.abs(d) < max(QRS_SLOPE_FRACTION[1] * steep, floor)
    off = next((i for i in range(r, hi - h) if below[i:i + h + 1].all()), None)
    if off is not None:
        off = _s_wave_offset(d, off, r, steep)
    return (float("nan") if on is None else float(on)), (float("nan") if off is None else float(off))


def _slope_noise(d: np.ndarray, r: int) -> float:
    """Slope noise: the spread of the slope ``d`` around its own 20-ms average outside the QRS (the slow
    waves' slopes removed); the median beat's noise is correlated at 500 Hz, so sample-to-sample changes
    would underrate it."""
    q = int(0.06 * FS_500_HZ)
    rest = np.concatenate([d[:max(r - q, 0)], d[r + q:]])
    hp = rest - smooth(rest, int(0.02 * FS_500_HZ))
    return 1.4826 * float(np.median(np.abs(hp - np.median(hp))))


def _edge_wave(d: np.ndarray, a: int, b: int, steep: float, first: bool, starts_by: int | None = None
               ) -> tuple[int, float] | None:
    """The slope lobe of ``d[a:b]`` just before the first (``first``) or just after the last steep QRS
    flank, of opposite sign to it: (its steepest sample, its sign), or None when there is no such lobe, its
    slope peak is not clear of the slope noise, lies over ``Q_REACH_S`` from the flank or is not a peak
    inside the lobe (a P or T wave's slope running on into the lobe rises to its far end), or the lobe
    begins after ``starts_by`` (after the last flank: a flat stretch first means ST segment, not S)."""
    seg = d[a:b]
    big = np.nonzero(np.abs(seg) > 0.5 * steep)[0]
    if b - a < 3 or not len(big):
        return None
    runs = np.split(np.arange(len(seg)), np.nonzero(np.diff(np.sign(seg)))[0] + 1)
    edge = int(big[0] if first else big[-1])
    k = next(i for i, run in enumerate(runs) if edge in run) + (-1 if first else 1)
    if not 0 <= k < len(runs) or (starts_by is not None and a + int(runs[k][0]) > starts_by):
        return None
    run = runs[k][::-1] if first else runs[k]          # from the flank outwards
    m = np.abs(seg[run])
    peaks = [i for i in range(1, len(m) - 1) if m[i] >= m[i - 1] and m[i] > m[i + 1]]
    if not peaks:
        return None
    j = int(run[peaks[0]])                             # the slope peak nearest the flank
    if (abs(seg[j]) < max(Q_NOISE_K * _slope_noise(d, (a + b) // 2), Q_MIN_FRACTION * steep)
            or abs(j - edge) > Q_REACH_S * FS_500_HZ):
        return None
    return a + j, float(np.sign(seg[j]))


def _lobe_end(d: np.ndarray, wave: tuple[int, float], step: int) -> int | None:
    """From a lobe's slope peak, the last sample ``step``-wards before its slope falls below
    ``Q_SLOPE_AT_ONSET`` of the peak: a bell-shaped wave's 13.5 % point. None when the slope holds up
    for over ``Q_WALK_S`` (the lobe has merged with a P or T wave)."""
    i, sign = wave
    peak = sign * d[i]
    for _ in range(int(Q_WALK_S * FS_500_HZ)):
        if not 0 < i + step < len(d):
            return None
        if sign * d[i + step] <= Q_SLOPE_AT_ONSET * peak:
            return i
        i += step
    return None


def _q_wave_onset(d: np.ndarray, on: int, r: int, steep: float) -> int:
    """The QRS onset at the Q wave's own 13.5 % point when a Q wave shows on the slope ``d`` (the lobe
    before the first steep flank, :func:`_edge_wave`; its end, :func:`_lobe_end`). A fixed share of the R
    wave's slope misses a small Q (its whole lobe lies under the threshold: QRS onset 12-16 ms late) and
    runs past a large one. Without a Q lobe, ``on`` stands."""
    wave = _edge_wave(d, max(on - int(0.03 * FS_500_HZ), 1), r, steep, first=True)
    end = None if wave is None else _lobe_end(d, wave, -1)
    return on if end is None else end


def _s_wave_offset(d: np.ndarray, off: int, r: int, steep: float) -> int:
    """The QRS offset at the S wave's 13.5 % point, as :func:`_q_wave_onset` on the lobe after the last
    steep flank (the S wave's return to the baseline); without one, ``off`` stands."""
    wave = _edge_wave(d, r, min(off + int(0.03 * FS_500_HZ), len(d) - 1), steep, first=False, starts_by=off)
    end = None if wave is None else _lobe_end(d, wave, 1)
    return off if end is None else end
