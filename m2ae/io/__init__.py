"""Readers and writers: any ECG/PPG file or corpus layout -> ``m2ae.Record``.

Heavy format libraries (wfdb, pyEDFlib, h5py, vitaldb, pandas) are imported inside the functions
that need them, so ``import m2ae.io`` works on a training box that lacks some of them.
"""
from __future__ import annotations

from .writers import FORMATS, write_record

__all__ = ["write_record", "FORMATS"]
