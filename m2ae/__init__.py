"""m2ae: a cross-modal ECG/PPG foundation model (Multi-modal Masked Autoencoder) and its tools.

The top-level API (see ARCHITECTURE in the README) is imported lazily so that ``import m2ae`` stays
fast and the training path needs only numpy, scipy and torch (no neurokit2/wfdb on a GPU box).

>>> import m2ae
>>> rec = m2ae.load_record("sample_data/nsr_wfdb/nsr.hea")      # doctest: +SKIP
>>> win = m2ae.preprocess(rec)                                   # doctest: +SKIP
>>> fp = m2ae.load_model().fingerprint(ecg=win.ecg, ppg=win.ppg) # doctest: +SKIP
"""
from __future__ import annotations

import importlib

from .contract import FS_HZ, N_PATCHES, PATCH_SAMPLES, WINDOW_S, WINDOW_SAMPLES
from .errors import InputError, ModelMismatchError
from .record import Record, Windows

__version__ = "0.1.0"

_LAZY = {
    "load_record": ("m2ae.io", "load_record"),
    "iter_corpus": ("m2ae.io", "iter_corpus"),
    "preprocess": ("m2ae.signal", "preprocess"),
    "simulate_record": ("m2ae.simulate", "simulate_record"),
    "load_model": ("m2ae.model", "load_model"),
    "M2AE": ("m2ae.model", "M2AE"),
    "explain": ("m2ae.explain", "explain"),
    "open_index": ("m2ae.index", "open_index"),
}


def __getattr__(name: str):
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'm2ae' has no attribute {name!r}")


__all__ = [
    "FS_HZ", "WINDOW_S", "WINDOW_SAMPLES", "PATCH_SAMPLES", "N_PATCHES",
    "InputError", "ModelMismatchError", "Record", "Windows", "__version__", *_LAZY,
]
