"""Corpus layouts -> streams of ``Record`` with the labels each corpus carries.

One module per layout (how that corpus' folder maps to records, subjects and labels); the files
themselves are read by the format modules (``m2ae.io.wfdb``, ``m2ae.io.vital``, ...). This module
tells the layouts apart (``detect_layout``, from the folder's contents) and runs one
(``iter_corpus``), skipping or raising what a layout could not read. Layouts:

- ``cinc2015``: PhysioNet/CinC Challenge 2015 ICU alarm records, ``labels.csv`` (record,
  alarm_type, true_alarm, ...) + ``records/rNNN.hea`` (WFDB, FLAC format 516); one record per
  patient stay, labels alarm type, true/false alarm, alarm time (300 s) and the fixed split
  (``cinc2015_split``).
- ``bidmc``: BIDMC PPG and Respiration Dataset, ``bidmc_NN_Signals.csv`` (+ ``_Numerics.csv``,
  ``_Fix.txt``) and/or WFDB ``bidmcNN.hea``; one record per subject, labels age/sex when given.
- ``mimic3wdb``: MIMIC-III matched waveform database folders ``pXX/pXXXXXX/`` with multi-segment
  master headers ``pXXXXXX-YYYY-MM-DD-hh-mm.hea``; one record per segment holding II and/or PLETH
  (segments are contiguous stretches; a master record can last days), subject id from the folder.
- ``vitaldb``: ``NNNN.vital`` files (tracks SNUADC/ECG_II, SNUADC/PLETH) and an optional
  ``clinical_data.csv`` (caseid, subjectid, age, sex, preop_htn, death_inhosp, ...).
- ``pulsedb``: PulseDB segment files (MATLAB v7.3 = HDF5, struct array ``Subj_Wins`` with ECG_F,
  PPG_F, SegSBP, SegDBP, Age, Gender, ...) or generated ``Subset`` files; one 10-s record per segment.
- ``ptbxl``: PTB-XL ``ptbxl_database.csv`` + ``scp_statements.csv`` + ``records500``/``records100``;
  ECG only (lead II), labels age, sex, diagnostic superclasses (NORM, MI, STTC, CD, HYP).
- ``folder``: any folder of files ``load_record`` reads.

>>> for rec in iter_corpus("/data/mimic3wdb-matched/p00"):   # doctest: +SKIP
...     print(rec.meta["subject_id"], rec.duration_s)
"""
from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any

from ...errors import InputError
from ...record import Record
from . import bidmc, cinc2015, folder, mimic3wdb, ptbxl, pulsedb, vitaldb
from .cinc2015 import ALARM_TIME_S
from .cinc2015_split import SPLITS, cinc2015_records, cinc2015_split, make_cinc2015_split, write_cinc2015_split
from .common import log, wfdb_segment_headers
from .report import SkipReport, must_stop, report_lines, unexpected
from .ptbxl import ptbxl_superclasses
from .pulsedb import HTN_DBP_MMHG, HTN_SBP_MMHG, PULSEDB_FS_HZ

LAYOUTS = ("cinc2015", "bidmc", "mimic3wdb", "vitaldb", "pulsedb", "ptbxl", "folder")

# layout -> generator of Record | InputError items over a folder (or a single corpus file).
_ITERATE: dict[str, Callable[[Path], Iterator[Any]]] = {
    "cinc2015": cinc2015.iterate, "bidmc": bidmc.iterate, "mimic3wdb": mimic3wdb.iterate,
    "vitaldb": vitaldb.iterate, "pulsedb": pulsedb.iterate, "ptbxl": ptbxl.iterate, "folder": folder.iterate,
}


def detect_layout(path: str | Path) -> str | None:
    """Name the corpus layout of a folder (or a single corpus file), or None when nothing is readable."""
    p = Path(path)
    if p.is_file():
        if p.suffix.lower() == ".vital":
            return "vitaldb"
        if pulsedb.matches(p):
            return "pulsedb"
        return "folder" if folder.matches(p) else None
    if not p.is_dir():
        return None
    # Checked in order: the layouts named by a table they carry first, the generic folder last.
    if ptbxl.matches(p):
        return "ptbxl"
    if cinc2015.matches(p):
        return "cinc2015"
    names = [f.name for f in p.iterdir()]
    if bidmc.matches(names):
        return "bidmc"
    if mimic3wdb.matches(p):
        return "mimic3wdb"
    if vitaldb.matches(names):
        return "vitaldb"
    if pulsedb.matches(p):
        return "pulsedb"
    if folder.matches(p):
        return "folder"
    return None


# What each layout reads, for the message when a folder yields no records.
LOOKED_FOR: dict[str, str] = {
    "cinc2015": "labels.csv + records/rNNN.hea",
    "bidmc": "bidmc_NN_Signals.csv or bidmcNN.hea",
    "mimic3wdb": "pXX/pXXXXXX/ multi-segment WFDB headers",
    "vitaldb": "NNNN.vital files",
    "pulsedb": "PulseDB .mat files (MATLAB v7.3 Subj_Wins or Subset)",
    "ptbxl": "ptbxl_database.csv + records500/ or records100/",
    "folder": "record files: " + ", ".join(sorted(set(folder.EXTENSIONS))),
}


def no_records_error(path: str | Path, layout: str | None = None) -> InputError:
    """The one-line error for a corpus folder that yields no records, saying what was looked for."""
    what = LOOKED_FOR[layout] if layout in LOOKED_FOR else "; ".join(LOOKED_FOR.values())
    return InputError(f"no records found in {path} (looked for: {what})")


def iter_corpus(path: str | Path | list, layout: str | None = None, *, on_error: str = "skip",
                min_duration_s: float = 0.0, split: str | Collection[str] | None = None,
                report: SkipReport | None = None) -> Iterator[Record]:
    """Yield the records of a corpus folder, with ``meta['subject_id']`` and ``meta['labels']``.

    path : a corpus folder or file, or a list of them (each laid out on its own).
    layout : one of LAYOUTS; None detects it (``detect_layout``).
    on_error : "skip" logs each record that cannot be read on the ``m2ae.io`` logger, counts it in
        ``report`` and goes on; "raise" stops with its InputError. Under "skip" even an unexpected
        exception from one record (a reader bug, a corrupt file) is a skip with its type as the reason;
        Ctrl-C and MemoryError still stop the run.
    min_duration_s : records shorter than this (s) are skipped (reason "shorter than N s"), e.g.
        ``m2ae.WINDOW_S`` to drop MIMIC segments too short for one window.
    split : keep only records whose ``meta['labels']['split']`` is this ("train", "validation",
        "test") or one of these (e.g. ``("train", "validation")``); in layouts without a split, records
        without a split label are kept. The cinc2015 layout never opens the others, and under a split it
        leaves out records outside its fixed split table (e.g. a fetched copy's held-out records).
    report : a ``SkipReport`` that collects every skipped record with its reason (counts per reason).

    Raises InputError (one line) when a path is missing or a folder yields no records at all
    ("no records found in DIR (looked for: ...)").
    """
    if isinstance(path, (list, tuple)):
        for one in path:
            yield from iter_corpus(one, layout, on_error=on_error, min_duration_s=min_duration_s, split=split,
                                   report=report)
        return
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: corpus folder not found")
    sides = frozenset([split] if isinstance(split, str) else split) if split is not None else None
    if layout is not None and layout not in LAYOUTS:
        raise InputError(f"{p}: unknown layout {layout!r}; use one of {', '.join(LAYOUTS)}")
    layout = layout or detect_layout(p)
    if layout is None:
        raise no_records_error(p)
    if on_error not in ("skip", "raise"):
        raise ValueError("on_error must be 'skip' or 'raise'")
    # cinc2015 knows each record's split from its name, so it skips the other sides unread
    items = cinc2015.iterate(p, sides) if layout == "cinc2015" else _ITERATE[layout](p)
    n_items = 0
    for item in _each(items, p, layout, on_error):
        n_items += 1
        if isinstance(item, Exception):
            if on_error == "raise":
                raise item
            log.warning("skipped: %s", item)
            if report is not None:
                report.add(str(item))
            continue
        side = (item.meta.get("labels") or {}).get("split")
        if sides is not None and side is not None and side not in sides:
            continue
        if item.duration_s < min_duration_s:
            log.info("skipped %s: %.1f s is shorter than %.1f s", item.meta.get("source"), item.duration_s,
                     min_duration_s)
            if report is not None:
                report.add(f"shorter than {min_duration_s:g} s", str(item.meta.get("source") or "record"))
            continue
        item.meta.setdefault("corpus", layout)
        yield item
    if n_items == 0 and sides is None:  # under a split, a folder may rightly hold none of those sides
        raise no_records_error(p, layout)


def _each(items: Iterator[Any], p: Path, layout: str, on_error: str) -> Iterator[Any]:
    """The layout's items; an exception the layout's generator itself raises (which ends it) becomes
    one last error item, unless it must stop the run (``report.must_stop``) or ``on_error`` is "raise".
    An InputError before the first item is about the whole corpus (e.g. its label table is missing): raised,
    since no record of it can be read."""
    started = False
    while True:
        try:
            item = next(items)
        except StopIteration:
            return
        except Exception as e:
            if must_stop(e) or on_error == "raise" or (isinstance(e, InputError) and not started):
                raise
            msg = str(e) if isinstance(e, InputError) else f"{p}: {unexpected(e)}"
            yield InputError(f"{msg} (the {layout} reader stopped here; later records of {p.name} were not read)")
            return
        started = True
        if not isinstance(item, (Record, InputError)):
            item = InputError(f"{p}: the {layout} reader gave a {type(item).__name__}, not a Record")
        yield item


__all__ = ["iter_corpus", "detect_layout", "LAYOUTS", "SkipReport", "report_lines", "no_records_error",
           "ptbxl_superclasses", "wfdb_segment_headers",
           "PULSEDB_FS_HZ", "HTN_SBP_MMHG", "HTN_DBP_MMHG", "ALARM_TIME_S", "SPLITS", "cinc2015_split",
           "cinc2015_records", "make_cinc2015_split", "write_cinc2015_split"]
