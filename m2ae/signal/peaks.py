"""R-peaks, pulse peaks, per-window heart rate and R → pulse-peak delay.

Peaks come from neurokit2's detectors (``nk.ecg_findpeaks`` method "neurokit", ``nk.ppg_findpeaks``
method "elgendi": the same peaks ``nk.ecg_peaks`` / ``nk.ppg_peaks`` return without artefact
correction, minus their per-sample DataFrame, which cost half the detection time), called once per
gap-free segment of the record; per-window numbers are read off those peak lists by
slicing, never by re-detecting per window. neurokit2 is imported lazily.
"""
from __future__ import annotations

import warnings

import numpy as np

HR_MIN_BPM = 25.0
HR_MAX_BPM = 240.0
RR_OUTLIER_LOW, RR_OUTLIER_HIGH = 0.5, 1.8  # beat intervals outside these x median: detection errors
PAT_MIN_S = -0.3  # R → pulse-peak delays outside this range are not taken as the same beat (s)
PAT_MAX_S = 1.3
PAIRING_SPREAD_RATIO = 2 / 3  # another beat pairing must vary this much less than "next pulse peak"


def detect_r_peaks(ecg_clean: np.ndarray, fs_hz: float, method: str = "neurokit") -> np.ndarray:
    """R-peak sample indices (int64, sorted, unique) of a band-passed ECG segment (``nk.ecg_findpeaks`` with
    ``method``, e.g. "neurokit", "pantompkins1985", "kalidas2017").

    Returns an empty array when the detector finds nothing or fails on a pathological segment.
    """
    import neurokit2 as nk

    x = np.asarray(ecg_clean, dtype=np.float64)
    if len(x) < int(2 * fs_hz) or not np.isfinite(x).all() or np.ptp(x) == 0:
        return np.empty(0, dtype=np.int64)
    try:
        with warnings.catch_warnings():  # neurokit2 warns on short/odd segments; quality reports those
            warnings.simplefilter("ignore")
            found = nk.ecg_findpeaks(x, sampling_rate=int(round(fs_hz)), method=method)
        peaks = np.asarray(found["ECG_R_Peaks"], dtype=np.int64)
    except (ValueError, IndexError, ZeroDivisionError, KeyError, TypeError):
        peaks = np.empty(0, dtype=np.int64)
    return np.unique(peaks[(peaks >= 0) & (peaks < len(x))])


def detect_pulse_peaks(ppg_clean: np.ndarray, fs_hz: float) -> np.ndarray:
    """Systolic peak sample indices (int64) of a band-passed, upright PPG segment (``nk.ppg_findpeaks``)."""
    import neurokit2 as nk

    x = np.asarray(ppg_clean, dtype=np.float64)
    if len(x) < int(2 * fs_hz) or not np.isfinite(x).all() or np.ptp(x) == 0:
        return np.empty(0, dtype=np.int64)
    try:
        with warnings.catch_warnings():  # neurokit2 warns on short/odd segments; quality reports those
            warnings.simplefilter("ignore")
            found = nk.ppg_findpeaks(x, sampling_rate=int(round(fs_hz)), method="elgendi")
        peaks = np.asarray(found["PPG_Peaks"], dtype=np.int64)
    except (ValueError, IndexError, ZeroDivisionError):
        peaks = np.empty(0, dtype=np.int64)
    return np.unique(peaks[(peaks >= 0) & (peaks < len(x))])


def window_heart_rate(peaks: np.ndarray, starts: np.ndarray, width: int, fs_hz: float,
                      breaks: np.ndarray | None = None) -> np.ndarray:
    """Heart rate in bpm per window: 60 / mean beat interval of the peaks inside the window.

    peaks : sorted sample indices; starts : window start indices; width : window length in samples.
    Intervals that span a gap (``breaks``: sample indices where a segment starts) or fall outside
    25–240 bpm are ignored, and so are those outside 0.5–1.8x the window's median interval (a missed
    or doubled beat); fewer than 2 valid intervals in a window gives NaN. The mean of the rest, not
    the median, is the rate a clinician counts, which matters in irregular rhythms (AF).
    """
    hr = np.full(len(starts), np.nan, dtype=np.float64)
    if len(peaks) < 2:
        return hr
    rr_s = np.diff(peaks) / fs_hz
    valid = (rr_s >= 60.0 / HR_MAX_BPM) & (rr_s <= 60.0 / HR_MIN_BPM)
    if breaks is not None and len(breaks):
        # an interval whose two peaks sit in different segments spans a gap
        seg = np.searchsorted(breaks, peaks, side="right")
        valid &= seg[1:] == seg[:-1]
    lo = np.searchsorted(peaks, starts, side="left")
    hi = np.searchsorted(peaks, starts + width, side="left")
    for i, (a, b) in enumerate(zip(lo, hi)):
        # intervals between peaks a..b-1 are rr[a : b-1]
        if b - a >= 3:
            rr = rr_s[a:b - 1][valid[a:b - 1]]
            if len(rr) >= 2:
                med = np.median(rr)
                rr = rr[(rr >= RR_OUTLIER_LOW * med) & (rr <= RR_OUTLIER_HIGH * med)]
                hr[i] = 60.0 / np.mean(rr)
    return hr


def refine_peak_times_s(x: np.ndarray, peaks: np.ndarray, fs_hz: float) -> np.ndarray:
    """Peak times in s with sub-sample precision (parabola through each peak and its two neighbours).

    At 125 Hz one sample is 8 ms, as large as the beat-to-beat variation of the R → pulse delay;
    the parabolic vertex recovers the time between samples.
    """
    t = np.asarray(peaks, dtype=np.float64)
    inner = (peaks > 0) & (peaks < len(x) - 1)
    i = peaks[inner]
    y0, y1, y2 = x[i - 1], x[i], x[i + 1]
    curv = y0 - 2 * y1 + y2
    offset = np.where(curv != 0, 0.5 * (y0 - y2) / np.where(curv != 0, curv, 1.0), 0.0)
    t[inner] += np.clip(np.nan_to_num(offset), -0.5, 0.5)
    return t / fs_hz


def _paired_delays(r_s: np.ndarray, pulse_s: np.ndarray, k: int, breaks_s: np.ndarray | None) -> np.ndarray:
    """Delay from each R-peak to the (k+1)-th pulse peak after it (k = -1: the last one before it)."""
    j = np.searchsorted(pulse_s, r_s, side="right") + k
    has = (j >= 0) & (j < len(pulse_s))
    jj = np.clip(j, 0, len(pulse_s) - 1)
    d = pulse_s[jj] - r_s
    ok = has & (d >= PAT_MIN_S) & (d <= PAT_MAX_S)
    if breaks_s is not None and len(breaks_s):
        ok &= np.searchsorted(breaks_s, r_s, side="right") == np.searchsorted(breaks_s, pulse_s[jj], side="right")
    return np.where(ok, d, np.nan)


def beat_delays_s(r_s: np.ndarray, pulse_s: np.ndarray, breaks_s: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """Per R-peak: delay in s to *its* pulse (systolic) peak; returns (delays, pairing offset k).

    r_s, pulse_s : sorted peak times in s (see ``refine_peak_times_s``); breaks_s : segment starts.
    Which pulse belongs to which beat is ambiguous once the device delay (−0.3 … 1.3 s across
    monitors) exceeds a beat interval: the next pulse peak then belongs to an earlier beat. The
    pairing is decided once per record: pulse peak ``k`` places after the next one (k = −1, 0, 1, 2),
    choosing the k whose delays vary least over the record, because the true R → pulse delay is
    nearly constant while a wrong pairing adds the beat-to-beat RR variation. k = 0 (the next pulse
    peak) stays unless another pairing clearly (by a third) lowers the spread; with a perfectly
    regular rhythm the delay is only known modulo one beat interval. NaN where no pulse peak fits or
    the pair spans a gap.
    """
    if len(r_s) == 0 or len(pulse_s) == 0:
        return np.full(len(r_s), np.nan), 0
    candidates = {k: _paired_delays(r_s, pulse_s, k, breaks_s) for k in (-1, 0, 1, 2)}
    spread = {}
    for k, d in candidates.items():
        d = d[np.isfinite(d)]
        if len(d) >= max(5, 0.5 * len(r_s)):
            spread[k] = float(np.median(np.abs(d - np.median(d))))
    if not spread:
        return candidates[0], 0
    best = min(spread, key=spread.__getitem__)
    k = best if (0 not in spread or spread[best] < PAIRING_SPREAD_RATIO * spread[0]) else 0
    return candidates[k], k


def window_pat_ms(r_peaks: np.ndarray, delays_s: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """Median R → pulse-peak delay in ms of the R-peaks inside each window (NaN if fewer than 2)."""
    out = np.full(len(starts), np.nan)
    lo = np.searchsorted(r_peaks, starts, side="left")
    hi = np.searchsorted(r_peaks, starts + width, side="left")
    for i, (a, b) in enumerate(zip(lo, hi)):
        d = delays_s[a:b]
        d = d[np.isfinite(d)]
        if len(d) >= 2:
            out[i] = 1000.0 * np.median(d)
    return out
