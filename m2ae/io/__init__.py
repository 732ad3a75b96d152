"""Readers and writers: any ECG/PPG file or corpus layout -> ``m2ae.Record``.

>>> from m2ae.io import load_record                          # doctest: +SKIP
>>> rec = load_record("bidmc_01_Signals.csv")                # II -> ECG, PLETH -> PPG, 125 Hz
>>> rec = load_record(uploaded_file)                         # Streamlit UploadedFile, kept in memory
>>> rec = load_record({"a.hea": hea_bytes, "a.dat": dat_bytes})  # multi-file WFDB upload
>>> for rec in iter_corpus("/data/mimic3wdb-matched/p00"):  # layout detected: mimic3wdb
...     rec.meta["subject_id"], rec.meta["labels"]

Modules: ``load`` (format sniffing and dispatch) calls one reader module per format (``wfdb``,
``delimited`` for CSV/TSV with ``timecol`` for its time column, ``npz`` for NPZ/NPY, ``edf``,
``vital``), which share ``sources`` (path or in-memory upload, size limit), ``limits`` (sizes checked
from headers before any array is allocated), ``channels`` (which column is ECG/PPG, every ECG lead,
units in names) and ``assemble`` (units to mV, ``Record.ecg_leads``, checks and ``Record``);
``annotations`` turns WFDB annotation files into ``meta["events"]``; ``corpus`` walks corpus layouts
(one module per layout; ``cinc2015_split`` is the fixed record-level split of the CinC 2015 ICU
alarm corpus), ``writers`` writes records, ``uploads`` serves the app.

Heavy format libraries (wfdb, pyEDFlib, h5py, vitaldb, pandas) are imported inside the functions
that need them, so ``import m2ae.io`` works on a training box that lacks some of them.
"""
from __future__ import annotations

from .corpus import LAYOUTS, cinc2015_records, cinc2015_split, detect_layout, iter_corpus
from .load import SUPPORTED, load_record, sniff_format
from .writers import FORMATS, write_record

__all__ = ["load_record", "iter_corpus", "detect_layout", "write_record", "sniff_format", "SUPPORTED", "FORMATS",
           "LAYOUTS", "cinc2015_split", "cinc2015_records"]
