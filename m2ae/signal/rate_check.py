"""Is the declared sampling rate believable? Judged from the heart rates it implies.

A wrong rate in a header (1000 Hz written for 250 Hz data) squeezes or stretches time: every beat
interval is scaled by the same factor, so the heart rate comes out implausible (ECG and PPG both
repeating ~400 times a minute), while the beat detectors, tuned for real heart rates, report rates
that look normal but are not (ECG 157 bpm against PPG 106 bpm on the same beats). So the rate at
which each window repeats itself (autocorrelation of its slope, not bounded like the detector's
25–240 bpm) is what is judged; the detector's rate serves as a check.

>>> print(rate_note([157.0], [106.0], fs_hz=1000.0, repeat_ecg_bpm=394.0, repeat_ppg_bpm=395.0))  # doctest: +ELLIPSIS
declared sampling rate 1000 Hz looks wrong: ECG 394 bpm and PPG 395 bpm ... at 250 Hz they would be 98 and 99 bpm; ...
"""
from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ..contract import FS_HZ
from ..record import Windows

HR_PLAUSIBLE_BPM: tuple[float, float] = (25.0, 300.0)  # a human heart's electrical rate, alarms included
PULSE_MAX_BPM = 250.0       # a pulse the finger feels: the fastest tachycardias that still perfuse
AGREE_FACTOR = 1.15         # ECG and PPG repeat rates this close count as the same rhythm
_REPEAT_BPM = (15.0, 720.0)  # repetition rates looked for (lags 4 s .. 83 ms)
_MIN_PEAK = 0.3             # autocorrelation a repetition needs to count
_MAX_WINDOWS = 60           # windows looked at (evenly spread): enough for a median, bounded cost
_COMMON_RATES_HZ = (100, 125, 128, 200, 250, 256, 300, 360, 400, 500, 512, 1000, 1024, 2000)


def repeat_rate_bpm(windows: npt.ArrayLike | None, fs_hz: float = FS_HZ) -> float:
    """Median rate (per minute) at which windows [N, T] sampled at ``fs_hz`` repeat themselves: the
    first strong autocorrelation peak of each window's absolute slope. NaN when none repeats."""
    if windows is None:
        return float("nan")
    x = np.asarray(windows, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        return float("nan")
    x = x[np.unique(np.linspace(0, len(x) - 1, min(len(x), _MAX_WINDOWS)).astype(int))]
    e = np.abs(np.diff(np.nan_to_num(x), axis=1))
    e -= e.mean(axis=1, keepdims=True)
    n = e.shape[1]
    spec = np.fft.rfft(e, 2 * n, axis=1)
    ac = np.fft.irfft(spec * np.conj(spec), axis=1)[:, :n]
    lo = max(1, int(fs_hz * 60 / _REPEAT_BPM[1]))
    hi = min(n - 1, int(fs_hz * 60 / _REPEAT_BPM[0]))
    rates = []
    for row in ac:
        if row[0] <= 0:
            continue
        seg = row[lo:hi] / row[0]
        k = int(np.argmax(seg))
        if seg[k] >= _MIN_PEAK:
            rates.append(60.0 * fs_hz / (k + lo))
    return float(np.median(rates)) if rates else float("nan")


def _median(x: npt.ArrayLike | None) -> float:
    a = np.asarray(x if x is not None else [], dtype=np.float64)
    a = a[np.isfinite(a)]
    return float(np.median(a)) if a.size else float("nan")


def _likely_rate(fs_hz: float, bpm: float) -> float | None:
    """A common sampling rate (Hz) that would put ``bpm`` within 40–150 bpm: one a power of two away
    from ``fs_hz`` first (the usual slip: 1000 written for 250), then the one nearest 75 bpm."""
    fits = [r for r in _COMMON_RATES_HZ if 40.0 <= bpm * r / fs_hz <= 150.0]

    def rank(r: float) -> tuple[bool, float]:
        octaves = np.log2(fs_hz / r)
        return abs(octaves - round(octaves)) > 1e-9, abs(np.log(bpm * r / fs_hz / 75.0))

    return min(fits, key=rank, default=None)


def rate_note(hr_ecg_bpm: npt.ArrayLike | None, hr_ppg_bpm: npt.ArrayLike | None, fs_hz: float,
              repeat_ecg_bpm: float = float("nan"), repeat_ppg_bpm: float = float("nan")) -> str | None:
    """A plain sentence when the declared rate ``fs_hz`` (Hz) is implausible, else None.

    hr_*_bpm : per-window heart rates from the beat detector (NaN where none; None when the channel is
    absent); repeat_*_bpm : the channels' repetition rates (``repeat_rate_bpm``), NaN when unknown.

    With ECG and PPG: flagged when both repeat at one rate (within AGREE_FACTOR: one heart, so a wrong
    clock would scale both alike) outside 25 bpm .. PULSE_MAX_BPM (a pulse the PPG shows perfuses).
    With one channel: flagged when it repeats outside HR_PLAUSIBLE_BPM (PPG: above PULSE_MAX_BPM) and
    its beat detector finds no plausible rate either (a slope that repeats fast may be a QRS's own
    notches). A disagreement between the ECG and PPG detectors alone is not flagged: a pulse deficit
    or missed pulses give the same picture at the right rate.
    """
    lo = HR_PLAUSIBLE_BPM[0]
    top = {"ECG": HR_PLAUSIBLE_BPM[1], "PPG": PULSE_MAX_BPM}
    present = {m: (hr, float(rep)) for m, hr, rep in (("ECG", hr_ecg_bpm, repeat_ecg_bpm),
                                                       ("PPG", hr_ppg_bpm, repeat_ppg_bpm)) if hr is not None}
    reps = {m: rep for m, (_, rep) in present.items()}
    if not reps or not all(np.isfinite(r) for r in reps.values()):
        return None
    if len(reps) == 2:
        if max(reps.values()) / min(reps.values()) >= AGREE_FACTOR:
            return None
        if lo <= float(np.mean(list(reps.values()))) <= PULSE_MAX_BPM:
            return None
        limit = f"{lo:g}–{PULSE_MAX_BPM:g} bpm (a pulse the PPG shows)"
    else:
        mod, (hr, rep) = next(iter(present.items()))
        det = _median(hr)
        if lo <= rep <= top[mod] or (np.isfinite(det) and lo <= det <= top[mod]):
            return None
        limit = f"{lo:g}–{top[mod]:g} bpm"
    rates = " and ".join(f"{m} {r:.0f} bpm" for m, r in reps.items())
    likely = _likely_rate(fs_hz, float(np.median(list(reps.values()))))
    would = " and ".join(f"{r * likely / fs_hz:.0f}" for r in reps.values()) if likely else ""
    at = f"; at {likely:g} Hz {'they' if len(reps) > 1 else 'it'} would be {would} bpm" if likely else ""
    return (f"declared sampling rate {fs_hz:g} Hz looks wrong: {rates} {'are' if len(reps) > 1 else 'is'} outside "
            f"{limit}{at}; check the file's rate or pass --fs HZ")


def check_declared_rate(win: Windows, fs_hz: float) -> str | None:
    """``rate_note`` for preprocessed windows of a record declared at ``fs_hz`` Hz (None = plausible)."""
    return rate_note(win.hr_ecg_bpm if win.ecg is not None else None,
                     win.hr_ppg_bpm if win.ppg is not None else None, fs_hz,
                     repeat_rate_bpm(win.ecg, win.fs), repeat_rate_bpm(win.ppg, win.fs))


def with_rate_note(win: Windows, fs_hz: float) -> Windows:
    """``win`` with ``check_declared_rate``'s sentence appended to ``meta['notes']`` when there is one."""
    if note := check_declared_rate(win, fs_hz):
        win.meta.setdefault("notes", []).append(note)
    return win
