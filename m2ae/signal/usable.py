"""Cheap dead-channel check: is a raw channel worth processing at all? (no peak detection).

Real bedside monitors often record one dead channel: a PPG clip that fell off reads all zeros, a
switched-off lead a constant. ``dead_channel_reasons`` tells those apart from signal on the raw
samples alone (finite values, scale, range, distinct levels, per-10-s range against the ADC step),
so training-data code can skip a dead channel at the cost of one pass over the samples, and
``m2ae.preprocess`` drops it before filtering. Deeper checks that need beats (a PPG without a
pulse, a channel unusable in every window) live in the pipeline.

>>> import numpy as np, m2ae
>>> from m2ae.signal.usable import dead_channel_reasons
>>> rec = m2ae.Record(ecg=np.sin(np.arange(2500) / 20), ppg=np.zeros(2500), fs=250.0)
>>> dead_channel_reasons(rec)
{'ppg': 'flat line (every sample = 0)'}
"""
from __future__ import annotations

import numpy as np

from ..contract import WINDOW_S
from ..record import Record
from .quality import FLAT_STEPS, adc_step

MAX_ABS_VALUE = 1e12  # no unit of ECG/PPG reaches this: a scaling error, and float filters would overflow
# Fewer distinct values than this over a whole record is no waveform: a disconnected sensor that
# toggles between a few ADC codes (a real 16-bit ECG or PPG has thousands, a coarse 8-bit one >= 20).
MIN_LEVELS = int(FLAT_STEPS) + 1
MAX_CHECKED_WINDOWS = 2000  # per-window ranges of days of samples: an even sample of windows tells as well


def channel_problem(x: np.ndarray, fs_hz: float) -> str | None:
    """Why one raw channel (1-D, its own units, sampled at ``fs_hz``) is dead, or None when it may carry signal.

    Dead: no finite sample; absurd scale (|x| > 1e12); a flat line (one value, or a range below 1e-9
    of its magnitude); fewer than 11 distinct values (no waveform: a sensor toggling between a few
    codes); nearly flat (every 10-s stretch spans fewer than 10 ADC steps between its 1st and 99th
    percentile).
    """
    x = np.asarray(x, dtype=np.float64)
    finite = np.isfinite(x)
    if not finite.any():
        return "no finite samples"
    values = x[finite]
    lo, hi = float(values.min()), float(values.max())
    peak = max(abs(lo), abs(hi))
    if peak > MAX_ABS_VALUE:
        return (f"absurd scale (reaches {peak:.3g}, not a physiological signal in any unit; "
                f"check the file's scaling)")
    if hi == lo:
        return f"flat line (every sample = {hi:g})"
    if hi - lo <= max(1e-9 * peak, 1e-15):
        return f"flat line (it varies by only {hi - lo:.3g} around {hi:g})"
    levels = np.unique(values[: 2_000_000])
    if len(levels) < MIN_LEVELS:
        return f"only {len(levels)} distinct values: no waveform (sensor off, disconnected or stuck)"
    step = adc_step(values)
    span = _max_window_span(x, fs_hz)
    if step > 0 and span is not None and span < FLAT_STEPS * step:
        return (f"nearly flat (no 10-s stretch spans {FLAT_STEPS:g} ADC steps of {step:.3g}: "
                f"sensor off or disconnected)")
    return None


def _max_window_span(x: np.ndarray, fs_hz: float) -> float | None:
    """Largest 1-99 % range over back-to-back 10-s stretches of ``x`` (its units); None if none is long enough."""
    w = int(round(WINDOW_S * fs_hz))
    n = len(x) // w
    if w < 2 or n == 0:
        return None
    idx = np.unique(np.linspace(0, n - 1, min(n, MAX_CHECKED_WINDOWS)).astype(np.int64))
    windows = x[: n * w].reshape(n, w)[idx]
    ok = np.isfinite(windows).sum(axis=1) >= 2
    if not ok.any():
        return None
    lo, hi = np.nanpercentile(windows[ok], [1.0, 99.0], axis=1)
    return float(np.max(hi - lo))


def dead_channel_reasons(rec: Record) -> dict[str, str]:
    """{modality: reason} for each channel of ``rec`` that is dead before any processing; {} when none is.

    Cheap (one pass over the samples, no filtering, no peak detection): see ``channel_problem``.
    Reasons are plain phrases, e.g. ``"flat line (every sample = 0)"``.
    """
    out = {}
    for mod in rec.modalities:
        why = channel_problem(getattr(rec, mod), rec.fs)
        if why is not None:
            out[mod] = why
    return out
