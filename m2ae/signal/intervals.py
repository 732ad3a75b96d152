"""Interval measurements per 10-s window: ECG PR, QRS, QT, QTc (Bazett, Fridericia); PPG pulse amplitude,
rise time and pulse arrival (R peak → foot, R peak → systolic peak).

ECG: the window's aligned median beat at 500 Hz (:mod:`m2ae.signal.median_beat`: beats aligned on the QRS,
unlike beats left out), delineated by the tangent method (P onset, T end; a T wave and the next P wave that
overlap are separated first) and the slope (QRS onset / offset at the Q / S wave's 13.5 % point), with
NeuroKit2's ``dwt`` filling a P or QRS boundary not found. Each beat's own boundaries are the median beat's
moved by that beat's best local match; they give the IQR and the markers, ``n`` is the beats averaged and
``ecg_template_corr`` their median correlation with the median beat. Onset/offset convention: where a wave
is at exp(-2) ≈ 13.5 % of its peak (centre ± 2 sigma of a Gaussian wave; the tangent points are the same).
PR = P onset → QRS onset, withheld where :mod:`.p_wave` finds no P wave there (as in atrial fibrillation:
a "P" that differs from beat to beat or is no clearer than the median's noise), QRS = onset → offset,
QT = QRS onset → T end (ms); QTc with the median RR (Bazett QT/√RR, Fridericia QT/∛RR, RR in s).
Ventricular beats (``r_peak_classes`` 1) are left out: no P wave, and their QT is not the rhythm's.

PPG: foot = intersecting tangent (steepest upstroke meets the level of the preceding minimum); rise time =
foot → systolic peak (ms; the 0.5-8 Hz band-pass lengthens short rises: a simulated 83 ms reads ~115 ms);
amplitude = peak − preceding minimum (record units); arrival = the R peak before the pulse → foot / peak (ms).

Quality: a window flagged low quality, without detected beats or with fewer than ``MIN_BEATS`` alike
beats gives NaN and the reason (``ecg_reason`` / ``ppg_reason``), never a number from noise; a measurement
whose single beats disagree (IQR above ``MAX_IQR_MS``) is withheld with its own reason (``Spread.why``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..contract import FS_HZ, WINDOW_SAMPLES
from ..record import Windows
from .filters import resample_to
from .median_beat import (DELINEATE_FS_HZ, MedianBeat, beat_shifts, build_median_beat, median_beat_boundaries,
                          nk_delineate, nk_wave_times)
from .p_wave import has_p_wave, p_wave_evidence

ONSET_FRACTION = float(np.exp(-2.0))   # onset/offset: wave at 13.5 % of its peak (centre ± 2 sigma)
MIN_BEATS = 2
CONTEXT_S = 1.0                        # signal kept either side of the window so edge beats delineate
# A measurement whose single-beat values spread wider than this (IQR, ms) is withheld as unreliable.
MAX_IQR_MS = {"pr": 40.0, "qrs": 30.0, "qt": 60.0}
# Per-beat values outside these ranges (ms) are delineation failures, not physiology; they are dropped.
PLAUSIBLE_MS = {"pr": (60.0, 400.0), "qrs": (40.0, 240.0), "qt": (180.0, 700.0),
                "rise": (30.0, 500.0), "arrival_foot": (20.0, 600.0), "arrival_peak": (60.0, 800.0)}


@dataclass
class Spread:
    """Median and interquartile range of per-beat values (ms or record units) and how many beats."""

    median: float = float("nan")
    iqr: float = float("nan")
    n: int = 0
    why: str | None = None   # why there is no value, when a value was withheld

    @classmethod
    def of(cls, values: np.ndarray) -> Spread:
        v = np.asarray(values, dtype=np.float64)
        v = v[np.isfinite(v)]
        if len(v) == 0:
            return cls()
        q1, q2, q3 = np.percentile(v, [25, 50, 75])
        return cls(float(q2), float(q3 - q1), int(len(v)))


@dataclass
class WindowIntervals:
    """Measurements of one window. ECG fields in ms; ``ppg_amplitude`` in the PPG's units.

    ``*_reason`` is None when the values are measured, else one sentence why they are NaN.
    PR, QRS, QT, QTc medians come from the window's median beat, IQR from the single beats
    (``beat_medians_ms``: their medians), ``n`` = ``ecg_beats_used`` (beats averaged, of
    ``ecg_beats_offered``; ``ecg_template_corr``: their median correlation with the median beat).
    ``markers``: per-beat times in s from the record's start (``p_onset``, ``qrs_onset``, ``qrs_offset``,
    ``t_offset``, ``ppg_foot``, ``ppg_peak``) for the grid.
    """

    window: int
    start_s: float
    pr_ms: Spread = field(default_factory=Spread)
    qrs_ms: Spread = field(default_factory=Spread)
    qt_ms: Spread = field(default_factory=Spread)
    qtc_bazett_ms: Spread = field(default_factory=Spread)
    qtc_fridericia_ms: Spread = field(default_factory=Spread)
    rr_ms: Spread = field(default_factory=Spread)
    ppg_amplitude: Spread = field(default_factory=Spread)
    rise_time_ms: Spread = field(default_factory=Spread)
    arrival_foot_ms: Spread = field(default_factory=Spread)
    arrival_peak_ms: Spread = field(default_factory=Spread)
    ecg_reason: str | None = None
    ppg_reason: str | None = None
    markers: dict[str, list[float]] = field(default_factory=dict)
    beat_medians_ms: dict[str, float] = field(default_factory=dict)
    ecg_beats_used: int = 0
    ecg_beats_offered: int = 0
    ecg_template_corr: float = float("nan")

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (for ``--json`` / tables)."""
        return asdict(self)


def _plausible(values: np.ndarray, key: str) -> np.ndarray:
    lo, hi = PLAUSIBLE_MS[key]
    v = np.asarray(values, dtype=np.float64)
    return np.where((v >= lo) & (v <= hi), v, np.nan)


def _upsampled(x: np.ndarray, peaks: np.ndarray, fs_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """``x`` at 500 Hz and its R peaks there (largest |deflection| within ±1 original sample)."""
    up = resample_to(x, fs_hz, DELINEATE_FS_HZ)
    k = DELINEATE_FS_HZ / fs_hz
    half = int(np.ceil(k))
    idx = np.clip(np.round(peaks * k).astype(np.int64), half, len(up) - half - 1)
    offs = np.stack([np.abs(up[idx + d]) for d in range(-half, half + 1)], 1).argmax(1) - half
    return up, idx + offs


def _intervals_ms(t: dict[str, Any]) -> dict[str, Any]:
    ms = 1000.0 / DELINEATE_FS_HZ
    return {"pr": _plausible((np.asarray(t["qrs_onset"]) - t["p_onset"]) * ms, "pr"),
            "qrs": _plausible((np.asarray(t["qrs_offset"]) - t["qrs_onset"]) * ms, "qrs"),
            "qt": _plausible((np.asarray(t["t_end"]) - t["qrs_onset"]) * ms, "qt")}


def median_beat_intervals(ecg: np.ndarray, r_peaks: np.ndarray, fs_hz: float = FS_HZ, method: str = "dwt"
                          ) -> dict[str, float]:
    """PR, QRS and QT (ms) of the median beat of ``ecg`` around ``r_peaks``, as ECG carts measure them
    (:mod:`m2ae.signal.median_beat`); NaN where there are fewer than ``MIN_BEATS`` alike beats or a
    boundary is not found."""
    mb = build_median_beat(ecg, r_peaks, fs_hz, MIN_BEATS)
    if mb is None:
        return {"pr": float("nan"), "qrs": float("nan"), "qt": float("nan")}
    t = median_beat_boundaries(mb, method)
    peaks = np.asarray(r_peaks, dtype=np.float64)
    _drop_absent_p(t, mb, np.diff(peaks) / fs_hz, ecg, peaks, fs_hz)
    return {k: float(v) for k, v in _intervals_ms(t).items()}


def _drop_absent_p(t: dict[str, float], mb: MedianBeat, rr_s: np.ndarray, ecg: np.ndarray, r_peaks: np.ndarray,
                   fs_hz: float) -> bool:
    """Clear the P onset in ``t`` when :mod:`.p_wave` finds no P wave there (its position is then a
    fibrillatory or T-wave remnant); True when it did so. ``rr_s``: the beats' RR intervals (s);
    ``ecg`` and ``r_peaks`` (samples at ``fs_hz``): the stretch and beats ``mb`` was built from."""
    if not np.isfinite(t["p_onset"]):
        return False
    evidence = p_wave_evidence(mb, t["p_onset"], t["qrs_onset"], rr_s, ecg, r_peaks, fs_hz)
    # no P stretch to judge (a P onset within ~40 ms of the QRS): the PR range check withholds it
    if not np.isfinite(evidence["corr"]) or has_p_wave(evidence):
        return False
    t["p_onset"] = float("nan")
    return True


def delineate_ecg_beats(ecg: np.ndarray, r_peaks: np.ndarray, fs_hz: float = FS_HZ, method: str = "dwt"
                        ) -> dict[str, np.ndarray]:
    """Per-beat wave boundaries of ``ecg`` (filtered, any units) around ``r_peaks`` (samples at ``fs_hz``).

    Returns times in s from the start of ``ecg`` (NaN where the delineator found nothing):
    ``r``, ``p_onset``, ``qrs_onset``, ``qrs_offset``, ``t_offset``. The signal is upsampled to 500 Hz
    first; ``method`` is NeuroKit2's (``dwt`` or ``peak``; ``peak`` gives no QRS boundaries).
    """
    x, peaks = np.asarray(ecg, dtype=np.float64), np.asarray(r_peaks, dtype=np.int64)
    out = {k: np.full(len(peaks), np.nan) for k in ("r", "p_onset", "qrs_onset", "qrs_offset", "t_offset")}
    if len(peaks) < MIN_BEATS or len(x) < int(fs_hz):
        return out
    up, idx = _upsampled(x, peaks, fs_hz)
    if (waves := nk_delineate(up, idx, method)) is None:
        return out
    n = len(idx)
    out["r"] = idx / DELINEATE_FS_HZ
    out["p_onset"] = nk_wave_times(waves, "ECG_P_Onsets", n) / DELINEATE_FS_HZ
    out["qrs_onset"] = nk_wave_times(waves, "ECG_R_Onsets", n) / DELINEATE_FS_HZ
    out["qrs_offset"] = nk_wave_times(waves, "ECG_R_Offsets", n) / DELINEATE_FS_HZ
    out["t_offset"] = nk_wave_times(waves, "ECG_T_Offsets", n) / DELINEATE_FS_HZ
    return out


def ecg_beat_intervals(times: dict[str, np.ndarray], rr_s: np.ndarray) -> dict[str, np.ndarray]:
    """Per-beat PR, QRS, QT, QTc Bazett / Fridericia (ms) from :func:`delineate_ecg_beats` times and the RR
    interval before each beat (s); implausible values are NaN."""
    pr = _plausible(1000.0 * (times["qrs_onset"] - times["p_onset"]), "pr")
    qrs = _plausible(1000.0 * (times["qrs_offset"] - times["qrs_onset"]), "qrs")
    qt = _plausible(1000.0 * (times["t_offset"] - times["qrs_onset"]), "qt")
    rr = np.where((rr_s > 0.24) & (rr_s < 2.5), rr_s, np.nan)
    return {"pr": pr, "qrs": qrs, "qt": qt, "qtc_bazett": qt / np.sqrt(rr), "qtc_fridericia": qt / np.cbrt(rr),
            "rr": 1000.0 * rr}


def ppg_pulse_measures(ppg: np.ndarray, pulse_peaks: np.ndarray, fs_hz: float = FS_HZ) -> dict[str, np.ndarray]:
    """Per pulse of ``ppg`` (filtered, record units): ``foot`` and ``peak`` times (s from the start of
    ``ppg``; peak refined by a parabola), ``amplitude`` (peak − preceding minimum) and ``rise`` (ms)."""
    x = np.asarray(ppg, dtype=np.float64)
    peaks = np.asarray(pulse_peaks, dtype=np.int64)
    out = {k: np.full(len(peaks), np.nan) for k in ("foot", "peak", "amplitude", "rise")}
    back = int(0.6 * fs_hz)
    for j, p in enumerate(peaks):
        lo = max(int(peaks[j - 1]) if j else 0, p - back, 0)
        if p - lo < 3 or p >= len(x) - 1:
            continue
        seg = x[lo:p + 1]
        trough = int(np.argmin(seg))
        if p - (lo + trough) < 2:
            continue
        slope = np.diff(seg[trough:])
        steep = int(np.argmax(slope))
        s = slope[steep]
        if s <= 0:
            continue
        # tangent at the steepest point (midway between samples) meets the trough's level
        t_steep = lo + trough + steep + 0.5
        y_steep = 0.5 * (seg[trough + steep] + seg[trough + steep + 1])
        foot = t_steep - (y_steep - seg[trough]) / s
        y0, y1, y2 = x[p - 1], x[p], x[p + 1]
        curv = y0 - 2 * y1 + y2
        peak = p + (float(np.clip(0.5 * (y0 - y2) / curv, -0.5, 0.5)) if curv != 0 else 0.0)
        out["foot"][j], out["peak"][j] = foot / fs_hz, peak / fs_hz
        out["amplitude"][j] = y1 - seg[trough]
        out["rise"][j] = 1000.0 * (peak - foot) / fs_hz
    out["rise"] = _plausible(out["rise"], "rise")
    return out


def pulse_arrival_ms(r_s: np.ndarray, foot_s: np.ndarray, peak_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """R peak → pulse foot and → systolic peak (ms) per pulse, pairing each pulse with the last R peak
    before its foot; implausible delays are NaN."""
    r = np.sort(np.asarray(r_s, dtype=np.float64))
    foot = np.asarray(foot_s, dtype=np.float64)
    if len(r) == 0:
        return np.full(len(foot), np.nan), np.full(len(foot), np.nan)
    k = np.searchsorted(r, np.nan_to_num(foot, nan=-1.0)) - 1
    r_before = np.where(k >= 0, r[np.clip(k, 0, None)], np.nan)
    return (_plausible(1000.0 * (foot - r_before), "arrival_foot"),
            _plausible(1000.0 * (peak_s - r_before), "arrival_peak"))


def _in_window(peaks: np.ndarray | None, a: int, b: int) -> np.ndarray:
    p = np.asarray(peaks if peaks is not None else [], dtype=np.int64)
    return np.nonzero((p >= a) & (p < b))[0]


# modality -> (its name, the Windows field of its beats, what its beats are called)
_CHANNELS = {"ecg": ("ECG", "r_peaks", "beats"), "ppg": ("PPG", "pulse_peaks", "pulses")}


def _channel_reason(win: Windows, i: int, modality: str) -> str | None:
    """Why window ``i`` of ``modality`` is not measured (None when it is)."""
    name, peaks, called = _CHANNELS[modality]
    if getattr(win, f"{modality}_clean") is None or getattr(win, peaks) is None:
        return f"no {name} in this record"
    no_beats = getattr(win, f"{modality}_no_beats")
    if no_beats is not None and bool(no_beats[i]):
        return f"no {called} detected in this window"
    quality = getattr(win, f"{modality}_quality")
    if quality is not None and win.low_quality is not None and bool(win.low_quality[i]):
        return f"low-quality window ({name} quality {float(quality[i]):.2f})"
    return None


# per-beat boundaries: each beat's own wave matched to the median beat's within ± this half-width (s)
MATCH_HALF_S = {"p_onset": 0.04, "qrs_onset": 0.03, "qrs_offset": 0.03, "t_end": 0.08}
NOT_FOUND = {"pr": "no P wave found in the median beat (absent, flat, or fused with the T wave before it)",
             "qrs": "QRS boundaries not found in the median beat",
             "qt": "T-wave end not found in the median beat (flat, or fused with the next P wave)"}
NO_P_WAVE = "no P wave found (e.g. atrial fibrillation)"


def _measure_ecg(win: Windows, i: int, a: int, b: int, method: str, res: WindowIntervals) -> np.ndarray:
    """Fill the ECG fields of ``res``; returns the window's R-peak times (s) for pulse arrival."""
    assert win.ecg_clean is not None and win.r_peaks is not None
    fs = float(win.fs)
    ctx = int(CONTEXT_S * fs)
    lo, hi = max(a - ctx, 0), min(b + ctx, len(win.ecg_clean))
    sel = _in_window(win.r_peaks, lo, hi)
    r_all = np.asarray(win.r_peaks, dtype=np.int64)
    inside = (r_all[sel] >= a) & (r_all[sel] < b)
    if win.r_peak_classes is not None and len(win.r_peak_classes) == len(r_all):
        inside &= np.asarray(win.r_peak_classes)[sel] != 1
    rr = np.diff(np.concatenate([[np.nan], r_all / fs]))[sel][inside]
    res.rr_ms = Spread.of(1000.0 * np.where((rr > 0.24) & (rr < 2.5), rr, np.nan))
    mb = build_median_beat(win.ecg_clean[lo:hi], r_all[sel][inside] - lo, fs, MIN_BEATS)
    if mb is None:
        res.ecg_reason = f"fewer than {MIN_BEATS} beats alike enough to measure"
        return r_all[sel] / fs
    res.ecg_beats_used, res.ecg_beats_offered = len(mb.beats), mb.offered
    res.ecg_template_corr = round(mb.correlation, 3)
    t = median_beat_boundaries(mb, method)
    no_p = _drop_absent_p(t, mb, rr, win.ecg_clean[lo:hi], r_all[sel][inside] - lo, fs)
    tmpl = {k: float(v) for k, v in _intervals_ms(t).items()}
    # each beat's boundaries: the median beat's moved by that beat's own best match around it
    beat_t = {k: mb.starts + t[k] + beat_shifts(mb, t[k], MATCH_HALF_S[k]) for k in t}
    beats = _intervals_ms(beat_t)
    rr_s = res.rr_ms.median / 1000.0
    for key in ("pr", "qrs", "qt"):
        spread = Spread.of(beats[key])
        res.beat_medians_ms[key] = spread.median
        setattr(res, f"{key}_ms", Spread(tmpl[key], spread.iqr, len(mb.beats)) if np.isfinite(tmpl[key])
                else Spread(why=NO_P_WAVE if key == "pr" and no_p else NOT_FOUND[key]))
    if res.qt_ms.n and np.isfinite(rr_s):
        res.qtc_bazett_ms = Spread(res.qt_ms.median / np.sqrt(rr_s), res.qt_ms.iqr / np.sqrt(rr_s), res.qt_ms.n)
        res.qtc_fridericia_ms = Spread(res.qt_ms.median / np.cbrt(rr_s), res.qt_ms.iqr / np.cbrt(rr_s),
                                       res.qt_ms.n)
    else:
        res.qtc_bazett_ms, res.qtc_fridericia_ms = Spread(why=res.qt_ms.why), Spread(why=res.qt_ms.why)
    for key, limit in MAX_IQR_MS.items():
        spread = getattr(res, f"{key}_ms")
        if spread.n and spread.iqr > limit:
            # single beats this far apart mean the boundary follows noise, not a wave
            withheld = Spread(why=f"beats disagree (IQR {spread.iqr:.0f} ms > {limit:.0f} ms)")
            setattr(res, f"{key}_ms", withheld)
            if key == "qt":
                res.qtc_bazett_ms, res.qtc_fridericia_ms = withheld, dataclasses.replace(withheld)
    for key, name in (("p_onset", "p_onset"), ("qrs_onset", "qrs_onset"), ("qrs_offset", "qrs_offset"),
                      ("t_end", "t_offset")):
        times = lo / fs + beat_t[key] / DELINEATE_FS_HZ
        res.markers[name] = [round(float(x), 4) for x in times if np.isfinite(x)]
    if not (res.qt_ms.n or res.qrs_ms.n):
        res.ecg_reason = "no QRS or T-wave boundary found in the window's median beat"
    return r_all[sel] / fs


def window_intervals(win: Windows, i: int, method: str = "dwt") -> WindowIntervals:
    """Measurements of window ``i`` of ``win`` (see the module docstring); NaN with a reason where the
    window's quality or beats do not allow them."""
    if not 0 <= i < len(win):
        raise IndexError(f"window {i} outside 0-{len(win) - 1}")
    fs = float(win.fs)
    a = int(round(float(win.starts_s[i]) * fs))
    b = a + WINDOW_SAMPLES
    res = WindowIntervals(window=int(i), start_s=float(win.starts_s[i]))
    res.ecg_reason = _channel_reason(win, i, "ecg")
    r_s = np.array([])
    if res.ecg_reason is None:
        r_s = _measure_ecg(win, i, a, b, method, res)
    elif win.r_peaks is not None and res.ecg_reason != "no beats detected in this window":
        r_s = np.asarray(win.r_peaks, dtype=np.float64) / fs
    res.ppg_reason = _channel_reason(win, i, "ppg")
    if res.ppg_reason is None:
        assert win.ppg_clean is not None and win.pulse_peaks is not None
        sel = _in_window(win.pulse_peaks, a, b)
        m = ppg_pulse_measures(win.ppg_clean, np.asarray(win.pulse_peaks)[sel], fs)
        res.ppg_amplitude, res.rise_time_ms = Spread.of(m["amplitude"]), Spread.of(m["rise"])
        if len(r_s):
            foot_ms, peak_ms = pulse_arrival_ms(r_s, m["foot"], m["peak"])
            res.arrival_foot_ms, res.arrival_peak_ms = Spread.of(foot_ms), Spread.of(peak_ms)
        res.markers["ppg_foot"] = [round(float(t), 4) for t in m["foot"] if np.isfinite(t)]
        res.markers["ppg_peak"] = [round(float(t), 4) for t in m["peak"] if np.isfinite(t)]
        if res.rise_time_ms.n < MIN_BEATS:
            res.ppg_reason = f"fewer than {MIN_BEATS} pulses could be measured"
            res.ppg_amplitude, res.rise_time_ms = Spread(), Spread()
            res.arrival_foot_ms, res.arrival_peak_ms = Spread(), Spread()
    return res


def record_intervals(win: Windows, method: str = "dwt") -> list[WindowIntervals]:
    """:func:`window_intervals` for every window of ``win``."""
    return [window_intervals(win, i, method) for i in range(len(win))]


def interval_rows(res: WindowIntervals) -> list[tuple[str, str, str]]:
    """(measurement, "median (IQR) ms", "n beats or the reason") rows for a table or a report."""
    rows = []
    e, p = res.ecg_reason, res.ppg_reason
    for label, key, unit, reason in (
            ("PR", "pr_ms", "ms", e), ("QRS", "qrs_ms", "ms", e), ("QT", "qt_ms", "ms", e),
            ("QTc Bazett", "qtc_bazett_ms", "ms", e), ("QTc Fridericia", "qtc_fridericia_ms", "ms", e),
            ("PPG pulse amplitude", "ppg_amplitude", "units", p), ("PPG rise time", "rise_time_ms", "ms", p),
            ("Arrival R->foot", "arrival_foot_ms", "ms", p), ("Arrival R->peak", "arrival_peak_ms", "ms", p)):
        s: Spread = getattr(res, key)
        if s.n:
            fmt = "{:.0f}" if unit == "ms" else "{:.3g}"
            value = f"{fmt.format(s.median)} (IQR {fmt.format(s.iqr)}) {unit}"
            rows.append((label, value, f"{s.n} beats"))
        else:
            rows.append((label, "n/a", reason or s.why or "not measured"))
    return rows
