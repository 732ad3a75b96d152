"""The rule-checker baseline of the alarm evaluation: test the alarm's own criterion on the detected beats.

The PhysioNet/CinC Challenge 2015 defines the five alarms (Clifford et al., CinC 2015;42:273):

- ventricular tachycardia: at least ``VT_BEATS`` (5) consecutive ventricular beats above 100 bpm;
- asystole: no beat for more than ``ASYSTOLE_S`` (4) s;
- extreme bradycardia: heart rate below 40 bpm for ``BRADY_BEATS`` (5) consecutive beats;
- extreme tachycardia: heart rate above 140 bpm for ``TACHY_BEATS`` (17) consecutive beats;
- ventricular flutter / fibrillation: a fibrillatory, flutter or oscillatory waveform for at least 4 s.

``check_rules`` applies them to the 20 s before the alarm (the windows 280–290 and 290–300 s): a beat is
"ventricular-looking" when its QRS is at least ``WIDE_QRS_S`` (120 ms, the clinical bound of a wide
complex) wide (``qrs_widths_s``); the heart rate of a beat is 60 / the interval to the beat before it.
Beats come from ECG R-peaks; where the record has no usable ECG, from PPG pulse peaks (no width, so
no VT call). A PPG that shows a pulse vetoes asystole: the heart beat. Brady- and tachycardia are
called on whichever channel shows them (a detector that misses beats on one rarely misses them on
both). VF is called on a window whose ECG power lies mostly (≥ ``VF_BAND_SHARE``) in the 3–8 Hz
band with no organised beats (median beat correlation with the window's template below
``VF_MAX_BEAT_R``, or fewer than 3 beats).

Nothing here is fitted: every threshold is the Challenge's or the clinical one (the QRS measure was
only checked to read 80–100 ms on the normal beats of training-split records). For ranking (AUROC)
each criterion also gives a graded score, how far the record got towards it (e.g. the longest run of
wide fast beats / 5); a score of at least 1 is the criterion met. A VT alarm is judged by the VT
criterion, an "other" alarm (the four other types, which this corpus does not tell apart) by the
highest of the four others. A record without any usable channel is called true (never silenced unseen).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..contract import FS_HZ, WINDOW_S

VT_BEATS = 5
VT_MIN_BPM = 100.0
WIDE_QRS_S = 0.12
ASYSTOLE_S = 4.0
BRADY_BEATS, BRADY_MAX_BPM = 5, 40.0
TACHY_BEATS, TACHY_MIN_BPM = 17, 140.0
VF_BAND_HZ = (3.0, 8.0)      # 180-480 /min: flutter and fibrillation waves
VF_BAND_SHARE = 0.6          # of the 1-40 Hz power
VF_MAX_BEAT_R = 0.5          # median beat-template correlation below this: no organised beats
QRS_SEARCH_S = 0.25          # QRS boundaries are searched within this of the R peak
QRS_LEVEL = 0.2              # a QRS spans where the slope envelope exceeds this share of its peak
SLOPE_SMOOTH_S = 0.04        # envelope of |slope|: fills the zero slope at the R apex


def qrs_widths_s(ecg: np.ndarray, r_peaks: np.ndarray, fs_hz: float = FS_HZ) -> np.ndarray:
    """QRS width (s) of each beat: the span around its R peak where the smoothed absolute slope stays
    above ``QRS_LEVEL`` of its peak (NaN for beats within ``QRS_SEARCH_S`` of the edges).

    The slope envelope marks where the ECG moves fast: a narrow complex (80–100 ms) is a short burst,
    a ventricular one a long one; P and T waves are slow and stay below the level.
    """
    x = np.asarray(ecg, np.float64)
    slope = np.abs(np.gradient(x)) * fs_hz
    k = max(1, int(round(SLOPE_SMOOTH_S * fs_hz)))
    env = np.convolve(slope, np.ones(k) / k, mode="same")
    half = int(round(QRS_SEARCH_S * fs_hz))
    near = int(round(0.06 * fs_hz))
    out = np.full(len(r_peaks), np.nan)
    for i, p in enumerate(np.asarray(r_peaks, np.int64)):
        a, b = p - half, p + half
        if a < 0 or b >= len(x):
            continue
        seg = env[a:b + 1]
        c = half - near + int(np.argmax(seg[half - near:half + near + 1]))
        level = QRS_LEVEL * seg[c]
        left, right = c, c
        while left > 0 and seg[left - 1] > level:
            left -= 1
        while right < len(seg) - 1 and seg[right + 1] > level:
            right += 1
        # not corrected for the smoothing: with it, normal beats of the training split read 80-100 ms,
        # the clinical range of a narrow QRS, so the clinical 120-ms bound applies as it is
        out[i] = (right - left + 1) / fs_hz
    return out


def longest_run(flags: np.ndarray) -> int:
    """Length of the longest run of consecutive True values."""
    best = run = 0
    for f in np.asarray(flags, bool):
        run = run + 1 if f else 0
        best = max(best, run)
    return best


def vt_run(beat_times_s: np.ndarray, widths_s: np.ndarray) -> int:
    """Longest run of consecutive beats that are wide (≥ 120 ms) and come faster than 100 bpm."""
    t = np.asarray(beat_times_s, np.float64)
    if len(t) < 2:
        return 0
    rate = np.r_[np.nan, 60.0 / np.diff(t)]
    return longest_run((np.asarray(widths_s) >= WIDE_QRS_S) & (rate > VT_MIN_BPM))


def longest_pause_s(beat_times_s: np.ndarray, start_s: float, stop_s: float) -> float:
    """Longest stretch without a beat in [start_s, stop_s], edges included (s)."""
    t = np.concatenate([[start_s], np.sort(np.asarray(beat_times_s, np.float64)), [stop_s]])
    return float(np.max(np.diff(t)))


def rate_run(beat_times_s: np.ndarray, slow: bool) -> int:
    """Longest run of consecutive beats below 40 bpm (``slow``) or above 140 bpm, counted in beats
    (n intervals in a row span n + 1 beats)."""
    t = np.asarray(beat_times_s, np.float64)
    if len(t) < 2:
        return 0
    rate = 60.0 / np.diff(t)
    run = longest_run(rate < BRADY_MAX_BPM if slow else rate > TACHY_MIN_BPM)
    return run + 1 if run else 0


def vf_band_share(ecg: np.ndarray, fs_hz: float = FS_HZ) -> float:
    """Share of an ECG window's 1–40 Hz power in the flutter/fibrillation band 3–8 Hz."""
    from scipy.signal import welch

    f, pxx = welch(np.asarray(ecg, np.float64), fs=fs_hz, nperseg=min(len(ecg), 512))
    total = pxx[(f >= 1) & (f <= 40)].sum()
    return float(pxx[(f >= VF_BAND_HZ[0]) & (f <= VF_BAND_HZ[1])].sum() / total) if total > 0 else 0.0


def organised_beats(ecg: np.ndarray, r_peaks: np.ndarray, fs_hz: float = FS_HZ) -> bool:
    """At least 3 beats whose median correlation with the window's template beat reaches ``VF_MAX_BEAT_R``."""
    from ..signal.quality import beat_template_correlation

    if len(r_peaks) < 3:
        return False
    r = beat_template_correlation(np.asarray(ecg, np.float64), np.asarray(r_peaks, np.int64), fs_hz)
    return bool(np.isfinite(r).any() and np.nanmedian(r) >= VF_MAX_BEAT_R)


def check_rules(ecg_windows: list[np.ndarray], ecg_peaks: list[np.ndarray], window_starts_s: list[float],
                r_times_s: np.ndarray | None, pulse_times_s: np.ndarray | None, alarm_type: str,
                span_s: tuple[float, float], fs_hz: float = FS_HZ) -> dict[str, Any]:
    """Every criterion on one record's last seconds before the alarm.

    ecg_windows, ecg_peaks, window_starts_s : the ECG windows covering ``span_s`` (normalised, [1250]
        each), their R-peaks (samples from the window start) and start times (s); empty without ECG.
    r_times_s, pulse_times_s : beat times (s from the record's start) in ``span_s``; None when the
        record has no such channel.
    Returns {"score", "called_true", "criterion", "measures": {...}, "scores": {criterion: score}}.
    """
    lo, hi = span_s
    has_ecg, has_ppg = r_times_s is not None, pulse_times_s is not None
    measures: dict[str, Any] = {"beats_from": "ECG R peaks" if has_ecg else "PPG pulse peaks" if has_ppg else None}
    if not (has_ecg or has_ppg):
        return {"score": float("inf"), "called_true": True, "criterion": "no usable channel",
                "measures": measures, "scores": {}}
    beats = np.sort(np.asarray(r_times_s if has_ecg else pulse_times_s, np.float64))
    widths, times = [], []
    for x, pk, s0 in zip(ecg_windows, ecg_peaks, window_starts_s):
        widths.append(qrs_widths_s(x, pk, fs_hz))
        times.append(s0 + np.asarray(pk) / fs_hz)
    if widths:
        order = np.argsort(np.concatenate(times))
        w_all, t_all = np.concatenate(widths)[order], np.concatenate(times)[order]
        measures["vt_run_beats"] = vt_run(t_all, w_all)
        measures["median_qrs_ms"] = float(np.nanmedian(w_all) * 1000) if np.isfinite(w_all).any() else None
    else:
        measures["vt_run_beats"] = 0
    pause = longest_pause_s(beats, lo, hi)
    if has_ecg and has_ppg:  # a pulse on the PPG means the heart beat: asystole only if both pause
        pause = min(pause, longest_pause_s(np.asarray(pulse_times_s), lo, hi))
    measures["longest_pause_s"] = pause
    # a rate shows on either channel, and a detector that misses beats on one rarely misses them on both
    channels = [beats] + ([np.sort(np.asarray(pulse_times_s, np.float64))] if has_ecg and has_ppg else [])
    measures["brady_run_beats"] = max(rate_run(b, slow=True) for b in channels)
    measures["tachy_run_beats"] = max(rate_run(b, slow=False) for b in channels)
    vf = [vf_band_share(x, fs_hz) if not organised_beats(x, pk, fs_hz) else 0.0
          for x, pk in zip(ecg_windows, ecg_peaks)]
    measures["vf_band_share"] = float(max(vf)) if vf else 0.0
    scores = {"vt": measures["vt_run_beats"] / VT_BEATS, "asystole": pause / ASYSTOLE_S,
              "brady": measures["brady_run_beats"] / BRADY_BEATS, "tachy": measures["tachy_run_beats"] / TACHY_BEATS,
              "vf": measures["vf_band_share"] / VF_BAND_SHARE}
    wanted = ("vt",) if alarm_type == "VT" else ("asystole", "brady", "tachy", "vf")
    criterion = max(wanted, key=lambda k: scores[k])
    score = float(scores[criterion])
    return {"score": score, "called_true": score >= 1.0, "criterion": criterion, "measures": measures,
            "scores": scores}


def record_rules(rec: Any, backs: tuple[int, ...] = (1, 0)) -> dict[str, Any]:
    """``check_rules`` on an ``m2ae.train.alarm_data.AlarmRecord`` over its windows ``backs`` windows
    before the alarm (default the last two: 280–300 s on a record without gaps)."""
    idx = sorted(i for i in (rec.back_index(b) for b in backs) if i is not None)
    if not idx:
        return check_rules([], [], [], None, None, rec.alarm_type, (0.0, 0.0))
    lo, hi = float(rec.starts_s[idx[0]]), float(rec.starts_s[idx[-1]]) + WINDOW_S
    ecg_w = [rec.ecg[i] for i in idx] if rec.ecg is not None else []
    ecg_p = [rec.window_peaks("ecg", i) for i in idx] if rec.ecg is not None else []
    return check_rules(ecg_w, ecg_p, [float(rec.starts_s[i]) for i in idx],
                       rec.beats_in("ecg", lo, hi) if rec.ecg is not None else None,
                       rec.beats_in("ppg", lo, hi) if rec.ppg is not None else None, rec.alarm_type, (lo, hi))
