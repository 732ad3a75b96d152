"""R-peaks, pulse peaks, per-window heart rate and R → pulse-peak delay.

Peaks come from neurokit2 (``nk.ecg_peaks`` method "neurokit", ``nk.ppg_peaks`` method "elgendi"),
called once per gap-free segment of the record; per-window numbers are read off those peak lists by
slicing, never by re-detecting per window. neurokit2 is imported lazily.
"""
from __future__ import annotations

import warnings

import numpy as np

HR_MIN_BPM = 25.0
HR_MAX_BPM = 240.0
PAT_MAX_S = 1.2  # R → next pulse peak beyond this is not taken as the same beat


def detect_r_peaks(ecg_clean: np.ndarray, fs_hz: float) -> np.ndarray:
    """R-peak sample indices (int64) of a band-passed ECG segment (``nk.ecg_peaks``, "neurokit").

    Returns an empty array when the detector finds nothing or fails on a pathological segment.
    """
    import neurokit2 as nk

    x = np.asarray(ecg_clean, dtype=np.float64)
    if len(x) < int(2 * fs_hz) or not np.isfinite(x).all() or np.ptp(x) == 0:
        return np.empty(0, dtype=np.int64)
    try:
        with warnings.catch_warnings():  # neurokit2 warns on short/odd segments; quality reports those
            warnings.simplefilter("ignore")
            _, info = nk.ecg_peaks(x, sampling_rate=int(round(fs_hz)), method="neurokit")
        peaks = np.asarray(info["ECG_R_Peaks"], dtype=np.int64)
    except (ValueError, IndexError, ZeroDivisionError):
        peaks = np.empty(0, dtype=np.int64)
    return np.unique(peaks[(peaks >= 0) & (peaks < len(x))])


def detect_pulse_peaks(ppg_clean: np.ndarray, fs_hz: float) -> np.ndarray:
    """Systolic peak sample indices (int64) of a band-passed, upright PPG segment (``nk.ppg_peaks``)."""
    import neurokit2 as nk

    x = np.asarray(ppg_clean, dtype=np.float64)
    if len(x) < int(2 * fs_hz) or not np.isfinite(x).all() or np.ptp(x) == 0:
        return np.empty(0, dtype=np.int64)
    try:
        with warnings.catch_warnings():  # neurokit2 warns on short/odd segments; quality reports those
            warnings.simplefilter("ignore")
            _, info = nk.ppg_peaks(x, sampling_rate=int(round(fs_hz)), method="elgendi")
        peaks = np.asarray(info["PPG_Peaks"], dtype=np.int64)
    except (ValueError, IndexError, ZeroDivisionError):
        peaks = np.empty(0, dtype=np.int64)
    return np.unique(peaks[(peaks >= 0) & (peaks < len(x))])


def window_heart_rate(peaks: np.ndarray, starts: np.ndarray, width: int, fs_hz: float,
                      breaks: np.ndarray | None = None) -> np.ndarray:
    """Heart rate in bpm per window: 60 / median beat interval of the peaks inside the window.

    peaks : sorted sample indices; starts : window start indices; width : window length in samples.
    Intervals that span a gap (``breaks``: sample indices where a segment starts) or fall outside
    25–240 bpm are ignored; fewer than 2 valid intervals in a window gives NaN. The median (not the
    mean) keeps one missed or doubled beat from moving the rate.
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
                hr[i] = 60.0 / np.median(rr)
    return hr


def beat_delays_s(r_peaks: np.ndarray, pulse_peaks: np.ndarray, fs_hz: float,
                  breaks: np.ndarray | None = None) -> np.ndarray:
    """Per R-peak: time in s to the next pulse (systolic) peak, NaN if none within 1.2 s or across a gap."""
    delays = np.full(len(r_peaks), np.nan)
    if len(r_peaks) == 0 or len(pulse_peaks) == 0:
        return delays
    j = np.searchsorted(pulse_peaks, r_peaks, side="right")
    has = j < len(pulse_peaks)
    d = np.full(len(r_peaks), np.nan)
    d[has] = (pulse_peaks[j[has]] - r_peaks[has]) / fs_hz
    ok = has & (d <= PAT_MAX_S)
    if breaks is not None and len(breaks):
        seg_r = np.searchsorted(breaks, r_peaks, side="right")
        seg_p = np.searchsorted(breaks, pulse_peaks[np.minimum(j, len(pulse_peaks) - 1)], side="right")
        ok &= seg_r == seg_p
    delays[ok] = d[ok]
    return delays


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
