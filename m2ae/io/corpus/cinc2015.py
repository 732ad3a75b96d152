"""PhysioNet/CinC Challenge 2015 layout: real ICU alarm records joined with their expert alarm labels.

Layout (as ``../shared/data/cinc2015`` and ``m2ae data fetch cinc2015`` write it)::

    labels.csv            record, alarm_type (VT | other), true_alarm (0 | 1), original_name, ...
    records/rNNN.hea      WFDB header; signals in format 516 (FLAC), 250 Hz, ECG leads + PLETH
    records/rNNN.dat      (``m2ae data fetch`` keeps PhysioNet's names and files: a103l.hea + a103l.mat)

``iter_corpus`` accepts the corpus folder or its ``records/`` folder (``labels.csv`` one level up).
One record is one patient stay, so ``meta['subject_id']`` is the record name. ``meta['labels']``:
``alarm_type`` (str), ``true_alarm`` (bool, the Challenge annotators' verdict), ``alarm_time_s``
(300.0: the alarm sounds 300 s into every record, whether it lasts 300 or 330 s), ``split`` (the
fixed train / validation / test split, ``cinc2015_split``) and ``original_name`` (the Challenge's
own record name, when labels.csv gives it). A record that cannot be read, a labels row without its
header and a row with an unreadable label are skipped with the reason; a header not listed in
labels.csv is read without alarm labels and says so in ``meta['notes']``.
"""
from __future__ import annotations

import csv
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

from ...errors import InputError
from ...record import Record
from ..wfdb import read_wfdb_path
from .cinc2015_split import split_table
from .common import guard, read_opened

ALARM_TIME_S = 300.0  # every Challenge 2015 record ends its 300th second as the alarm sounds
LABELS_FILE = "labels.csv"
LABEL_COLUMNS = ("record", "alarm_type", "true_alarm")
_TRUE, _FALSE = ("1", "true", "yes"), ("0", "false", "no")


def _has_label_columns(table: Path) -> bool:
    """``table`` exists and its header row names the record, alarm_type and true_alarm columns."""
    try:
        with open(table, newline="") as f:
            header = next(csv.reader(f), [])
    except (OSError, UnicodeDecodeError):
        return False
    return set(LABEL_COLUMNS) <= {h.strip() for h in header}


def _has_headers(folder: Path) -> bool:
    return folder.is_dir() and next(folder.glob("*.hea"), None) is not None


def locate(path: Path) -> tuple[Path, Path] | None:
    """(labels.csv, records folder) of a CinC 2015 corpus given its folder or its records folder, else None."""
    if not path.is_dir():
        return None
    if _has_label_columns(path / LABELS_FILE):
        for records in (path / "records", path):  # records/ as shipped, or headers beside labels.csv
            if _has_headers(records):
                return path / LABELS_FILE, records
    if _has_headers(path) and _has_label_columns(path.parent / LABELS_FILE):
        return path.parent / LABELS_FILE, path
    return None


def matches(path: Path) -> bool:
    """A CinC 2015 corpus folder, or its records folder (see ``locate``)."""
    return locate(path) is not None


def _row_labels(row: dict[str, str], where: Path) -> dict[str, Any]:
    """One labels.csv row -> ``meta['labels']`` entries; InputError for a value that is neither 0 nor 1."""
    name = row["record"].strip()
    kind = (row.get("alarm_type") or "").strip()
    flag = (row.get("true_alarm") or "").strip().lower()
    if not kind:
        raise InputError(f"{where}: {name} has no alarm_type")
    if flag not in _TRUE + _FALSE:
        raise InputError(f"{where}: {name} has true_alarm {row.get('true_alarm')!r}, expected 0 or 1")
    labels: dict[str, Any] = {"alarm_type": kind, "true_alarm": flag in _TRUE, "alarm_time_s": ALARM_TIME_S}
    original = (row.get("original_name") or "").strip()
    if original:
        labels["original_name"] = original
    return labels


def iterate(path: Path, sides: Collection[str] | None = None) -> Iterator[Record | InputError]:
    """Records of the corpus at ``path`` (the corpus folder or its records folder) with their labels.

    ``sides``: only records on these sides of the fixed split are read (records outside the split
    table too when ``sides`` is None); the others are never opened, so training and index builds
    leave the held-out records untouched.
    Raises InputError at once when ``path`` is not a CinC 2015 corpus (no labels.csv with the
    record/alarm_type/true_alarm columns beside or above a folder of .hea headers)."""
    found = locate(path)
    if found is None:
        raise InputError(f"{path}: not a CinC 2015 corpus: expected {LABELS_FILE} with columns "
                         f"{', '.join(LABEL_COLUMNS)} and a records/ folder of WFDB .hea headers")
    table, records = found
    with open(table, newline="") as f:
        rows = {row["record"].strip(): row for row in csv.DictReader(f) if (row.get("record") or "").strip()}
    splits = split_table()
    headers = {h.stem: h for h in sorted(records.glob("*.hea"))}
    for name, hea in headers.items():
        if sides is not None and splits.get(name) not in sides:
            continue
        labels: dict[str, Any] = {"alarm_time_s": ALARM_TIME_S}
        if name in rows:
            try:
                labels = _row_labels(rows[name], table)
            except InputError as e:
                yield e
                continue
        if name in splits:
            labels["split"] = splits[name]
        extra = {"subject_id": name, "record_id": name, "labels": labels}
        rec = guard(hea, read_opened, read_wfdb_path, hea.with_suffix(""), hea, extra_meta=extra)
        if isinstance(rec, Record):
            if name not in rows:
                rec.meta["notes"].append(f"{name} is not listed in {table.name}: no alarm labels")
            if name not in splits:
                rec.meta["notes"].append(f"{name} is not in the fixed CinC 2015 split (r001–r550)")
        yield rec
    for name in rows:
        if name not in headers and (sides is None or splits.get(name) in sides):
            yield InputError(f"{table}: {name} is listed but {records / (name + '.hea')} is missing")
