"""Beat timing between ECG and PPG windows: pulse-arrival delays and putting a rebuilt modality at
a physiological delay from the one it was rebuilt from.

The model learns cross-modal reconstruction with a lag-tolerant loss (real devices add unknown,
constant ECG→PPG delays of up to a second), so the decoder's output has the right *shape and beat
timing pattern* but an arbitrary offset. ``align_pulse_arrival`` moves each rebuilt window so that
its beats follow (PPG) or precede (ECG) the given modality's beats by a typical R → pulse-peak
delay measured on training data, which is what a reader expects to see overlaid.

>>> import numpy as np
>>> from m2ae.signal.timing import shift_periodic
>>> shift_periodic(np.arange(6.0), 2, period_samples=3).tolist()   # content 2 samples later
[1.0, 2.0, 0.0, 1.0, 2.0, 3.0]
"""
from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ..contract import FS_HZ

MAX_ARRIVAL_DELAY_S = 1.2  # a pulse peak later than this after an R peak is not taken as its beat


def arrival_delays_s(r_peaks: np.ndarray, pulse_peaks: np.ndarray, fs_hz: float = FS_HZ,
                     max_delay_s: float = MAX_ARRIVAL_DELAY_S) -> np.ndarray:
    """Delay in s from each R peak (sample index) to the first pulse peak after it, within ``max_delay_s``."""
    r, p = np.asarray(r_peaks), np.asarray(pulse_peaks)
    if len(r) == 0 or len(p) == 0:
        return np.zeros(0)
    j = np.searchsorted(p, r, side="right")
    ok = j < len(p)
    d = (p[j[ok]] - r[ok]) / fs_hz
    return d[d <= max_delay_s]


def median_beat_period_samples(peaks: np.ndarray) -> float:
    """Median interval between successive beats in samples (NaN with fewer than 2 beats)."""
    peaks = np.asarray(peaks)
    return float(np.median(np.diff(peaks))) if len(peaks) >= 2 else float("nan")


def shift_periodic(x: np.ndarray, shift_samples: int, period_samples: float) -> np.ndarray:
    """``x`` [T] delayed by ``shift_samples`` (negative = earlier); the samples shifted in at the
    edge are copied from one beat period (``period_samples``) away, so a quasi-periodic waveform
    continues instead of holding a flat line. Needs ``|shift| < period <= T``."""
    x = np.asarray(x)
    s, T = int(shift_samples), len(x)
    if s == 0:
        return x.copy()
    P = int(round(period_samples))
    if not (abs(s) < P <= T):
        raise ValueError(f"shift_periodic: need |shift| < period <= length, got shift {s}, period {P}, length {T}")
    out = np.empty_like(x)
    if s > 0:
        out[s:] = x[:T - s]
        out[:s] = x[P - s:P]                # x[t - s + P] for t < s
    else:
        s = -s
        out[:T - s] = x[s:]
        out[T - s:] = x[T - P:T - P + s]    # x[t + s - P] for t >= T - s
    return out


def pulse_arrival_shift_samples(r_peaks: np.ndarray, pulse_peaks: np.ndarray, target_delay_s: float,
                                period_samples: float, fs_hz: float = FS_HZ) -> int | None:
    """How many samples the PPG must move (positive = later) so that its median R → pulse-peak
    delay (to the *next* pulse peak) becomes ``target_delay_s``. A move of a beat period or more is
    taken modulo the period (the beat pattern repeats; only very fast rhythms need it). None when
    the delay cannot be measured (too few beats).

    Not the smallest move modulo a period in general: in irregular rhythms (AF, ectopy) moving by
    "one beat less" puts beats against the wrong partners, and windows of one record would not
    share one offset."""
    d = arrival_delays_s(r_peaks, pulse_peaks, fs_hz)
    if len(d) < 2 or not np.isfinite(period_samples) or period_samples < 2:
        return None
    move = target_delay_s * fs_hz - float(np.median(d)) * fs_hz
    if abs(move) >= period_samples - 1:
        move = (move + period_samples / 2) % period_samples - period_samples / 2
    return int(round(move))


def align_pulse_arrival(rebuilt: np.ndarray, given: np.ndarray, rebuilt_modality: str, target_delay_s: float,
                        fs_hz: float = FS_HZ, groups: npt.ArrayLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Move each rebuilt window so its beats sit ``target_delay_s`` from the given modality's beats.

    rebuilt : [N, T] the modality rebuilt from the other ("ecg" or "ppg" = ``rebuilt_modality``);
    given : [N, T] the modality it was rebuilt from (normalised contract windows);
    groups : optional [N] record (or subject) of each window: windows of one group then share one
        move, the median of their own (the delay of one recording is nearly constant, and one
        window's beats measure it to only a sample or two).
    Returns (aligned [N, T], move in samples [N] float, NaN where a window was left as it was
    because beats could not be found; positive = later).

    >>> aligned, move = align_pulse_arrival(ppg_hat, ecg, "ppg", 0.35)   # doctest: +SKIP
    """
    from .peaks import detect_pulse_peaks, detect_r_peaks

    if rebuilt_modality not in ("ecg", "ppg"):
        raise ValueError(f"align_pulse_arrival: rebuilt_modality must be 'ecg' or 'ppg', got {rebuilt_modality!r}")
    rebuilt, given = np.atleast_2d(rebuilt), np.atleast_2d(given)
    n, T = rebuilt.shape
    moves, periods = np.full(n, np.nan), np.full(n, np.nan)
    for i, (y, x) in enumerate(zip(rebuilt, given)):
        if rebuilt_modality == "ppg":
            r, p = detect_r_peaks(x, fs_hz), detect_pulse_peaks(y, fs_hz)
            periods[i] = median_beat_period_samples(r)
            move = pulse_arrival_shift_samples(r, p, target_delay_s, periods[i], fs_hz)
        else:
            r, p = detect_r_peaks(y, fs_hz), detect_pulse_peaks(x, fs_hz)
            periods[i] = median_beat_period_samples(p)
            ppg_move = pulse_arrival_shift_samples(r, p, target_delay_s, periods[i], fs_hz)
            move = None if ppg_move is None else -ppg_move   # moving the ECG earlier = the PPG later
        if move is not None:
            moves[i] = move
    if groups is not None:
        groups = np.asarray(groups)
        if len(groups) != n:
            raise ValueError(f"align_pulse_arrival: groups has {len(groups)} entries for {n} windows")
        for g in np.unique(groups):
            rows = groups == g
            if np.isfinite(moves[rows]).any():
                moves[rows] = np.round(np.nanmedian(moves[rows]))
    out = rebuilt.copy()
    for i in range(n):
        ok = np.isfinite(moves[i]) and np.isfinite(periods[i]) and abs(moves[i]) < periods[i] <= T
        if ok:
            out[i] = shift_periodic(rebuilt[i], int(moves[i]), periods[i])
        else:
            moves[i] = np.nan
    return out, moves


def typical_pulse_arrival_s(ecg: np.ndarray, ppg: np.ndarray, fs_hz: float = FS_HZ) -> float:
    """Median R-peak → next pulse-peak delay (s) over all beats of paired windows ecg, ppg [N, T]
    (NaN when no beat pairs): the delay a model's training data teaches it to expect.

    >>> typical_pulse_arrival_s(win.ecg, win.ppg)   # doctest: +SKIP
    0.36
    """
    from .peaks import detect_pulse_peaks, detect_r_peaks

    ecg, ppg = np.atleast_2d(ecg), np.atleast_2d(ppg)
    delays = [arrival_delays_s(detect_r_peaks(e, fs_hz), detect_pulse_peaks(p, fs_hz), fs_hz) for e, p in zip(ecg, ppg)]
    d = np.concatenate(delays) if delays else np.zeros(0)
    return float(np.median(d)) if len(d) else float("nan")


# R-peak -> finger pulse-peak delay of the body alone: pre-ejection period (~50-120 ms) plus pulse
# transit to the finger (~100-300 ms) and the upstroke to the systolic peak. Monitors add their own,
# constant ECG/PPG delay (BIDMC 01: ~640 ms, CinC r001: ~690 ms, a103l: ~120 ms).
PAT_TYPICAL_MS = (150.0, 450.0)
PAT_DEVICE_MS = 500.0      # beyond this, a device delay is likely
ONE_BEAT_TOLERANCE = 0.15  # a PAT within 15 % of the beat interval reads as "about one beat later"


def pat_plausibility(pat_ms: float, rr_ms: float | None = None) -> str:
    """Whether a pulse arrival time (ms, R-peak -> pulse peak) is physiologically plausible, as one plain
    sentence. ``rr_ms``: the window's beat interval in ms (60000 / heart rate), when known.

    Typical at the finger: 150-450 ms. Above 500 ms, or about one beat interval, the figure most
    likely includes a delay between the device's ECG and PPG (or pairs each R-peak with the next
    beat's pulse): changes over time still mean something, the absolute value does not.

    >>> pat_plausibility(650.0, rr_ms=660.0).startswith("650 ms is about one beat interval")
    True
    """
    if pat_ms is None or not np.isfinite(pat_ms):
        return "No pulse arrival time: it needs R-peaks and pulse peaks in the same window."
    lo, hi = PAT_TYPICAL_MS
    typical = f"the {lo:.0f}-{hi:.0f} ms a pulse typically takes from the R-peak to the finger"
    device = ("it most likely includes a device delay between the monitor's ECG and PPG channels (or pairs each "
              "R-peak with the next beat's pulse): read changes over time, not the absolute value")
    beat = rr_ms is not None and np.isfinite(rr_ms) and rr_ms > 0 and abs(pat_ms - rr_ms) <= ONE_BEAT_TOLERANCE * rr_ms
    if pat_ms < 0:
        return (f"{pat_ms:.0f} ms is negative (the pulse peak comes before the R-peak): the ECG and PPG "
                f"channels are not aligned in time; the figure is not a pulse arrival time.")
    if beat and pat_ms > hi:
        return f"{pat_ms:.0f} ms is about one beat interval ({rr_ms:.0f} ms) and longer than {typical}: {device}."
    if pat_ms > PAT_DEVICE_MS:
        return f"{pat_ms:.0f} ms is longer than {typical}: {device}."
    if pat_ms > hi:
        return f"{pat_ms:.0f} ms is at the upper edge of {typical}; a device delay may be part of it."
    if pat_ms < lo:
        return (f"{pat_ms:.0f} ms is shorter than {typical}; the channels may be offset in time "
                f"(a device delay can be negative too).")
    return f"{pat_ms:.0f} ms is physiologically plausible ({typical})."
