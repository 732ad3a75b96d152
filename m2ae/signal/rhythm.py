"""Beat-interval regularity, and a plain check of a rhythm call against it.

``interval_summary`` measures what an ICU reader looks for in one window's beats: the fastest run of
5 beats (a ventricular tachycardia run is >= 5 beats at >= 100 bpm), pauses (a beat interval over
1.5x the window's median or over 2 s, with durations in ms), the irregularity below, and with beat
classes the longest run of ventricular beats. ``IntervalSummary.regular`` is False when a pause
interrupts otherwise even intervals.

The rhythm head reads a learned fingerprint; on recordings unlike its (simulated) training data it
can call atrial fibrillation on a perfectly regular rhythm. The measured beat intervals are a
model-free second opinion every clinician reads first, so the app sets them beside the call.

Thresholds come from the simulator's labelled subjects (200 subjects, one 10-s window each, R peaks
from ``m2ae.preprocess``'s detector): irregularity = median |ΔRR| / mean RR was below 0.044 in 90 %
of sinus-rhythm windows and above 0.10 in 90 % of atrial-fibrillation windows.

>>> round(rr_irregularity([0.0, 0.8, 1.6, 2.4, 3.2]), 6)
0.0
>>> rhythm_interval_check("AF", 0.01) is not None
True
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from ..contract import WINDOW_S

REGULAR_MAX = 0.05     # below: regular intervals (sinus rhythms)
IRREGULAR_MIN = 0.10   # above: irregular intervals (atrial fibrillation, frequent ectopy)
MIN_BEATS = 4
IRREGULAR_CALLS = {"AF": "atrial fibrillation"}
REGULAR_CALLS = {"NSR": "sinus rhythm", "SB": "sinus bradycardia", "ST": "sinus tachycardia"}
RUN_BEATS = 5          # a run: this many consecutive beats (4 intervals), as in the VT alarm definition
VT_RUN_MIN_BPM = 100.0
PAUSE_RATIO = 1.5      # a beat interval this many times the window's median is a pause ...
PAUSE_MIN_S = 2.0      # ... and so is any interval longer than this


def rr_irregularity(beat_times_s: npt.ArrayLike, min_beats: int = MIN_BEATS) -> float:
    """Median absolute change of successive beat intervals divided by the mean interval (unitless;
    0 for a metronome). ``beat_times_s``: sorted beat times in s (R peaks or pulse peaks). NaN with
    fewer than ``min_beats`` (at least 3) beats."""
    t = np.asarray(beat_times_s, dtype=np.float64)
    if len(t) < max(3, min_beats):
        return float("nan")
    rr = np.diff(t)
    return float(np.median(np.abs(np.diff(rr))) / np.mean(rr))


def rhythm_interval_check(rhythm_code: str, irregularity: float, beats_from: str = "R peaks",
                          pauses_ms: list[float] | None = None) -> str | None:
    """A one-line warning when a rhythm call contradicts the measured beat intervals, else None.

    rhythm_code : the call ("NSR", "AF", "SB", "ST", "PVC"); irregularity : ``rr_irregularity``;
    beats_from : where the beats came from, said in the warning ("R peaks", "pulse peaks": pulse
    peaks are noisier, so the reader should know).
    pauses_ms : the window's pauses (``find_pauses``): intervals interrupted by pauses are not called
    regular, so an AF call is then not contradicted.
    Ectopy (PVC) is never contradicted: a 10-s window may hold no ectopic beat.
    """
    if not np.isfinite(irregularity):
        return None
    if rhythm_code in IRREGULAR_CALLS and irregularity < REGULAR_MAX and not pauses_ms:
        return (f"The rhythm head calls {IRREGULAR_CALLS[rhythm_code]}, but this window's beat intervals "
                f"({beats_from}) are regular (irregularity {irregularity:.3f}; sinus rhythm is typically "
                f"below {REGULAR_MAX:g}). Trust the measured intervals over the model here.")
    if rhythm_code in REGULAR_CALLS and irregularity > IRREGULAR_MIN:
        return (f"The rhythm head calls {REGULAR_CALLS[rhythm_code]}, but this window's beat intervals "
                f"({beats_from}) are irregular (irregularity {irregularity:.3f}; atrial fibrillation is "
                f"typically above {IRREGULAR_MIN:g}). Look at the trace for fibrillation or ectopic beats.")
    return None


def fastest_run_bpm(beat_times_s: npt.ArrayLike, n_beats: int = RUN_BEATS) -> tuple[float, float]:
    """(rate in bpm, start time in s) of the fastest ``n_beats`` consecutive beats: 60 / their mean
    interval. (NaN, NaN) with fewer beats. ``beat_times_s``: sorted beat times in s."""
    t = np.asarray(beat_times_s, dtype=np.float64)
    k = n_beats - 1
    if k < 1 or len(t) < n_beats:
        return float("nan"), float("nan")
    span = t[k:] - t[:-k]
    i = int(np.argmin(span))
    return (60.0 * k / float(span[i]) if span[i] > 0 else float("nan")), float(t[i])


def find_pauses(beat_times_s: npt.ArrayLike) -> tuple[list[float], list[float]]:
    """(durations in ms, start times in s) of the beat intervals longer than 1.5x the median interval
    or 2 s. Needs 3 beats (2 intervals) for a median; fewer give no pauses."""
    t = np.asarray(beat_times_s, dtype=np.float64)
    if len(t) < 3:
        return [], []
    rr = np.diff(t)
    long = (rr > PAUSE_RATIO * np.median(rr)) | (rr > PAUSE_MIN_S)
    return [round(1000.0 * float(d), 1) for d in rr[long]], [float(x) for x in t[:-1][long]]


def longest_class_run(classes: npt.ArrayLike | None, code: int = 1) -> int:
    """Longest run of consecutive beats of class ``code`` (1 = ventricular, ``beats.BEAT_CLASSES``)."""
    if classes is None:
        return 0
    c = np.asarray(classes) == code
    if not c.any():
        return 0
    edges = np.diff(np.concatenate(([0], c.view(np.int8), [0])))
    return int((np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)).max())


@dataclass
class IntervalSummary:
    """Measured beat intervals of one window (see the module docstring). Times in s from the record's
    start, rates in bpm, pauses in ms; NaN where too few beats."""

    n_beats: int
    mean_hr_bpm: float
    fastest_run_bpm: float
    fastest_run_start_s: float
    pauses_ms: list[float] = field(default_factory=list)
    pause_starts_s: list[float] = field(default_factory=list)
    irregularity: float = float("nan")
    ventricular_beats: int = 0
    longest_ventricular_run: int = 0

    @property
    def fast_run(self) -> bool:
        """A run of 5 beats at >= 100 bpm (what a VT alarm needs, if the beats are ventricular)."""
        return bool(np.isfinite(self.fastest_run_bpm) and self.fastest_run_bpm >= VT_RUN_MIN_BPM)

    @property
    def regular(self) -> bool | None:
        """True: even intervals and no pause; False: irregular or interrupted by pauses; None: too few beats."""
        if not np.isfinite(self.irregularity):
            return None
        return bool(self.irregularity < REGULAR_MAX and not self.pauses_ms)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (NaN as None), with ``fast_run``, ``regular`` and ``sentence``."""
        d = {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in asdict(self).items()}
        return d | {"fast_run": self.fast_run, "regular": self.regular, "sentence": self.sentence()}

    def sentence(self) -> str:
        """The measurement in one plain line, e.g. "18 beats, mean 109 bpm; fastest 5 beats at 166 bpm
        (from 291.2 s); 2 pauses (816, 984 ms); 7 ventricular beats, longest run 5"."""
        if self.n_beats < 2:
            return f"{self.n_beats} beat(s) detected: intervals cannot be measured"
        parts = [f"{self.n_beats} beats" + (f", mean {self.mean_hr_bpm:.0f} bpm" if np.isfinite(self.mean_hr_bpm)
                                            else "")]
        if np.isfinite(self.fastest_run_bpm):
            parts.append(f"fastest {RUN_BEATS} beats at {self.fastest_run_bpm:.0f} bpm "
                         f"(from {self.fastest_run_start_s:.1f} s)")
        if self.pauses_ms:
            parts.append(f"{len(self.pauses_ms)} pause(s) ("
                         + ", ".join(f"{p:.0f}" for p in self.pauses_ms) + " ms)")
        elif self.regular:
            parts.append("regular intervals")
        if self.ventricular_beats:
            parts.append(f"{self.ventricular_beats} ventricular beat(s), longest run {self.longest_ventricular_run}")
        return "; ".join(parts)


def interval_summary(beat_times_s: npt.ArrayLike, classes: npt.ArrayLike | None = None) -> IntervalSummary:
    """``IntervalSummary`` of one window's beats (sorted times in s; ``classes`` per beat, optional).

    >>> s = interval_summary([0.0, 0.4, 0.8, 1.2, 1.6, 2.416, 2.816, 3.8, 4.2])
    >>> round(s.fastest_run_bpm), s.pauses_ms, s.regular
    (150, [816.0, 984.0], False)
    """
    t = np.asarray(beat_times_s, dtype=np.float64)
    rate, start = fastest_run_bpm(t)
    pauses, pause_t = find_pauses(t)
    mean_hr = 60.0 / float(np.mean(np.diff(t))) if len(t) >= 2 and t[-1] > t[0] else float("nan")
    c = None if classes is None else np.asarray(classes)
    return IntervalSummary(
        n_beats=len(t), mean_hr_bpm=mean_hr, fastest_run_bpm=rate, fastest_run_start_s=start, pauses_ms=pauses,
        pause_starts_s=pause_t, irregularity=rr_irregularity(t),
        ventricular_beats=int(np.sum(c == 1)) if c is not None else 0, longest_ventricular_run=longest_class_run(c))


def window_interval_summary(r_peaks: np.ndarray, classes: np.ndarray | None, start_s: float, fs_hz: float,
                            window_s: float = WINDOW_S) -> IntervalSummary:
    """``interval_summary`` of the R-peaks (sample indices at ``fs_hz``, e.g. ``Windows.r_peaks`` with
    ``Windows.r_peak_classes``) inside the window [start_s, start_s + window_s)."""
    p = np.asarray(r_peaks, dtype=np.int64)
    inside = (p >= int(round(start_s * fs_hz))) & (p < int(round((start_s + window_s) * fs_hz)))
    return interval_summary(p[inside] / fs_hz, None if classes is None else np.asarray(classes)[inside])


def window_interval_summaries(win: Any) -> list[IntervalSummary]:
    """``IntervalSummary`` of every window of a ``Windows`` (R-peaks with their classes; pulse peaks
    when the record has no ECG; empty summaries when neither)."""
    use_r = win.r_peaks is not None
    peaks = win.r_peaks if use_r else win.pulse_peaks
    classes = win.r_peak_classes if use_r else None
    if peaks is None:
        return [interval_summary([]) for _ in win.starts_s]
    return [window_interval_summary(peaks, classes, float(s), win.fs, WINDOW_S) for s in win.starts_s]
