"""Signal contract: resample to 125 Hz, band-pass, PPG polarity, 10-s windows, normalisation, quality, peaks.

``m2ae.signal.filters`` is pure numpy/scipy: training and bulk embedding use its
``contract_windows_fast``. ``preprocess`` adds per-window quality, R-peaks, pulse peaks, heart rate
and R → pulse-peak delay with neurokit2, imported only when called. ``usable.dead_channel_reasons``
is the cheap dead-channel check (flat, nearly flat, empty, absurd scale) that ``preprocess`` and
training data share.

>>> import m2ae
>>> win = m2ae.preprocess(m2ae.load_record("sample.csv"))   # doctest: +SKIP
"""
from __future__ import annotations

from .filters import (contract_windows_fast, cut_windows, ecg_bandpass, fill_gaps, ppg_bandpass,  # noqa: F401
                      ppg_fix_polarity, resample_to, robust_normalise)
from .pipeline import preprocess  # noqa: F401
from .summary import format_summary, summarize  # noqa: F401

__all__ = ["preprocess", "summarize", "format_summary", "contract_windows_fast", "resample_to", "ecg_bandpass",
           "ppg_bandpass", "ppg_fix_polarity", "robust_normalise", "cut_windows", "fill_gaps"]
