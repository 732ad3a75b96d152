"""Signal contract: resample to 125 Hz, band-pass, PPG polarity, 10-s windows, normalisation, quality, peaks.

``m2ae.signal.filters`` is pure numpy/scipy (training and bulk embedding use its
``contract_windows_fast``); ``preprocess`` (coming next) adds quality and peaks with neurokit2.
"""
from __future__ import annotations

from .filters import contract_windows_fast  # noqa: F401
