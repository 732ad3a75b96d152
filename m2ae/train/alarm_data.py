"""The CinC 2015 alarm records as the alarm heads, their baselines and ``m2ae eval`` read them: the
contract windows of the minute that ends at the alarm, cached per record.

Every CinC 2015 record sounds its alarm 300 s in (``m2ae.io.corpus.ALARM_TIME_S``); the event that set
it off lies in the seconds before. For each record this module keeps the 10-s windows that start
``SPAN_START_S`` … 290 s (``m2ae.preprocess`` at a 10-s stride: 240–250, …, 290–300 s), the R-peaks and
pulse peaks detected on the whole record that fall in that span, and what ``preprocess`` dropped or
noted. Heads and baselines read the last ``ALARM_WINDOWS`` of them (``AlarmRecord.window``: 290–300 s
and 280–290 s on a record without gaps; where gaps cut the last minute, the last complete windows before
300 s). A record with one dead channel comes back with that modality ``None`` (``dropped`` says why);
a record ``preprocess`` refuses has no windows and ``error`` says why.

Preprocessing a record takes ~0.3 s, the corpus ~3 min on one core, so the result of each record is
cached as one small ``.npz`` (~60 kB) under ``cache_root()`` (``$M2AE_CACHE_DIR``, else
``~/.cache/m2ae``), in a folder keyed by the corpus path, ``CACHE_VERSION`` and a hash of the
``m2ae.signal`` sources: a change to preprocessing makes a fresh cache instead of reusing stale
windows. The cache is never inside the repository, and it holds derived windows only.

>>> recs = load_alarm_records("../shared/data/cinc2015", splits=("validation",))   # doctest: +SKIP
>>> recs[0].window(0)[0].shape                                                     # doctest: +SKIP
(1250,)
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..contract import FS_HZ, WINDOW_S
from ..errors import InputError

ALARM_TIME_S = 300.0           # the alarm sounds 300 s into every record (m2ae.io.corpus.ALARM_TIME_S)
SPAN_START_S = 240.0           # cached windows start 240 … 290 s: the minute that ends at the alarm
ALARM_WINDOWS = 2              # heads and baselines read the last two windows before the alarm
CACHE_VERSION = 1
CACHE_ENV = "M2AE_CACHE_DIR"
CINC2015_ENV = "M2AE_CINC2015_DATA"
START_TOLERANCE_S = 0.5        # float slack on window bounds (gaps move the stride grid off whole seconds)


def default_cinc2015_dir() -> Path:
    """``$M2AE_CINC2015_DATA`` when set, else ``../shared/data/cinc2015`` from the current directory."""
    configured = os.environ.get(CINC2015_ENV)
    return Path(configured) if configured else Path.cwd().parent / "shared" / "data" / "cinc2015"


def cache_root() -> Path:
    """Where derived data is cached: ``$M2AE_CACHE_DIR`` when set, else ``~/.cache/m2ae``."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "m2ae"


@dataclass
class AlarmRecord:
    """One CinC 2015 record cut to the minute before its alarm.

    ecg, ppg : float32 [K, 1250] normalised contract windows (``m2ae.preprocess``), or None when the
        record has no such channel or it was dropped (``dropped`` says why).
    starts_s : float [K] window starts in s from the record's start (240 … 290 for a clean record).
    r_peaks_s, pulse_peaks_s : beat times in s from the record's start, detected on the whole record,
        that fall inside the cached windows (empty when the channel is absent or shows no beats).
    low_quality : bool [K] windows flagged below the quality threshold (kept).
    """

    name: str
    split: str
    alarm_type: str
    true_alarm: bool
    ecg: np.ndarray | None = None
    ppg: np.ndarray | None = None
    starts_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    r_peaks_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    pulse_peaks_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    low_quality: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    modalities_in_file: tuple[str, ...] = ()
    dropped: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def modalities(self) -> tuple[str, ...]:
        """The modalities with windows: ("ecg", "ppg"), ("ecg",), ("ppg",) or () when refused."""
        return tuple(m for m in ("ecg", "ppg") if getattr(self, m) is not None)

    def back_index(self, back: int) -> int | None:
        """Index of the cached window ``back`` windows before the alarm: 0 = the last one (290–300 s
        on a record without gaps), 1 = the one before it (280–290 s); None when there is none."""
        n = len(self.starts_s)
        return n - 1 - back if 0 <= back < n else None

    def window(self, back: int) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(ECG, PPG) [1250] of the window ``back`` windows before the alarm (None when missing)."""
        i = self.back_index(back)
        if i is None:
            return None, None
        return (None if self.ecg is None else self.ecg[i]), (None if self.ppg is None else self.ppg[i])

    def beats_in(self, modality: str, start_s: float, stop_s: float) -> np.ndarray:
        """Beat times (s from the record's start) of ``modality`` in [start_s, stop_s)."""
        t = self.r_peaks_s if modality == "ecg" else self.pulse_peaks_s
        return t[(t >= start_s) & (t < stop_s)]

    def window_peaks(self, modality: str, i: int) -> np.ndarray:
        """Beat positions (samples at 125 Hz from the window start) inside cached window ``i``."""
        a = float(self.starts_s[i])
        return np.round((self.beats_in(modality, a, a + WINDOW_S) - a) * FS_HZ).astype(np.int64)


# --- reading and caching ------------------------------------------------------------------------

def _signal_sources_hash() -> str:
    """SHA-256 (12 hex) of the ``m2ae.signal`` sources: cached windows are only as valid as the code."""
    h = hashlib.sha256()
    pkg = resources.files("m2ae.signal")
    for entry in sorted(pkg.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".py"):
            h.update(entry.name.encode())
            h.update(entry.read_bytes())
    return h.hexdigest()[:12]


def cache_dir_for(data_dir: str | Path, cache_dir: str | Path | None = None) -> Path:
    """The folder that holds the cached records of ``data_dir`` (one per corpus, version and signal code)."""
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    key = hashlib.sha256(f"{Path(data_dir).resolve()}|{CACHE_VERSION}|{_signal_sources_hash()}".encode())
    return root / "cinc2015-alarm" / key.hexdigest()[:16]


def _corpus_table(data_dir: Path) -> tuple[Path, dict[str, dict[str, str]]]:
    """(records folder, {record: labels.csv row}) of a CinC 2015 corpus; InputError when it is not one."""
    from ..io.corpus.cinc2015 import locate

    found = locate(data_dir)
    if found is None:
        raise InputError(f"{data_dir}: not a CinC 2015 corpus (labels.csv + records/ of WFDB headers)")
    table, records = found
    with open(table, newline="") as f:
        rows = {r["record"].strip(): r for r in csv.DictReader(f) if (r.get("record") or "").strip()}
    return records, rows


def _is_true(value: str | None) -> bool:
    return str(value or "").strip().lower() in ("1", "true", "yes")


def _from_windows(base: AlarmRecord, win: Any) -> AlarmRecord:
    """Keep the windows inside [SPAN_START_S, ALARM_TIME_S] and the beats that fall in them."""
    starts = np.asarray(win.starts_s, np.float64)
    keep = np.flatnonzero((starts >= SPAN_START_S - START_TOLERANCE_S)
                          & (starts + WINDOW_S <= ALARM_TIME_S + START_TOLERANCE_S))
    base.starts_s = starts[keep]
    base.ecg = None if win.ecg is None or not len(keep) else np.asarray(win.ecg[keep], np.float32)
    base.ppg = None if win.ppg is None or not len(keep) else np.asarray(win.ppg[keep], np.float32)
    base.low_quality = (np.zeros(len(keep), bool) if win.low_quality is None
                        else np.asarray(win.low_quality, bool)[keep])
    lo = float(base.starts_s.min()) if len(keep) else 0.0
    hi = float(base.starts_s.max()) + WINDOW_S if len(keep) else 0.0
    for peaks, attr in ((win.r_peaks, "r_peaks_s"), (win.pulse_peaks, "pulse_peaks_s")):
        t = np.zeros(0) if peaks is None else np.asarray(peaks, np.float64) / win.fs
        setattr(base, attr, t[(t >= lo) & (t < hi)])
    base.dropped = dict(win.meta.get("dropped") or {})
    base.notes = [str(n) for n in win.meta.get("notes", [])]
    if not len(keep):
        base.error = "no 10-s window between 240 and 300 s (gaps)"
    return base


def _prepare(name: str, hea: Path, row: dict[str, str], split: str) -> AlarmRecord:
    """Read and preprocess one record (never raises for bad data: ``error`` says what happened)."""
    from ..io import load_record
    from ..signal import preprocess

    base = AlarmRecord(name=name, split=split, alarm_type=(row.get("alarm_type") or "").strip(),
                       true_alarm=_is_true(row.get("true_alarm")))
    try:
        rec = load_record(hea)
        base.modalities_in_file = rec.modalities
        return _from_windows(base, preprocess(rec))
    except InputError as e:
        base.error = str(e).splitlines()[0]
    return base


def _save(path: Path, r: AlarmRecord) -> None:
    meta = {"name": r.name, "split": r.split, "alarm_type": r.alarm_type, "true_alarm": r.true_alarm,
            "modalities_in_file": list(r.modalities_in_file), "dropped": r.dropped, "notes": r.notes,
            "error": r.error}
    arrays: dict[str, Any] = {"starts_s": r.starts_s, "r_peaks_s": r.r_peaks_s, "pulse_peaks_s": r.pulse_peaks_s,
              "low_quality": r.low_quality}
    for m in ("ecg", "ppg"):
        if getattr(r, m) is not None:
            arrays[m] = getattr(r, m)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npz")
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(tmp, **arrays)
    os.replace(tmp, path)  # atomic: a reader never sees half a file


def _load(path: Path) -> AlarmRecord:
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        return AlarmRecord(name=meta["name"], split=meta["split"], alarm_type=meta["alarm_type"],
                           true_alarm=bool(meta["true_alarm"]),
                           ecg=z["ecg"] if "ecg" in z and len(z["ecg"]) else None,
                           ppg=z["ppg"] if "ppg" in z and len(z["ppg"]) else None,
                           starts_s=z["starts_s"], r_peaks_s=z["r_peaks_s"], pulse_peaks_s=z["pulse_peaks_s"],
                           low_quality=z["low_quality"], modalities_in_file=tuple(meta["modalities_in_file"]),
                           dropped=dict(meta["dropped"]), notes=list(meta["notes"]), error=meta["error"])


def load_alarm_records(data_dir: str | Path, splits: Sequence[str] = ("train", "validation", "test"),
                       records: Iterable[str] | None = None, cache_dir: str | Path | None = None,
                       quiet: bool = True) -> list[AlarmRecord]:
    """The alarm records of a CinC 2015 corpus on the given sides of the fixed split, sorted by name.

    records : only these record names (e.g. a few per split for a quick test); None = all.
    cache_dir : cache root (default ``cache_root()``); each record is preprocessed once and reused.
    Only records of the committed split (``m2ae.io.cinc2015_split``) with a labels.csv row are
    returned: a record outside it cannot be placed on a side of the split.
    """
    from ..io import cinc2015_split

    data_dir = Path(data_dir)
    folder, rows = _corpus_table(data_dir)
    where = cache_dir_for(data_dir, cache_dir)
    where.mkdir(parents=True, exist_ok=True)
    wanted = None if records is None else set(records)
    out: list[AlarmRecord] = []
    names = sorted(h.stem for h in folder.glob("*.hea"))
    todo = []
    for name in names:
        try:
            split = cinc2015_split(name)
        except KeyError:
            continue
        if split in splits and name in rows and (wanted is None or name in wanted):
            todo.append((name, split))
    for k, (name, split) in enumerate(todo):
        path = where / f"{name}.npz"
        if path.exists():
            out.append(_load(path))
            continue
        if not quiet and (k % 50 == 0):
            print(f"cinc2015: preprocessing records {k + 1}-{min(k + 50, len(todo))} of {len(todo)} "
                  f"(cached in {where})", file=sys.stderr, flush=True)
        rec = _prepare(name, folder / f"{name}.hea", rows[name], split)
        _save(path, rec)
        out.append(rec)
    return out


def split_counts(records: Sequence[AlarmRecord]) -> dict[str, dict[str, int]]:
    """{split: {"records", "true", "false", "with_ppg", "without_windows"}} — what a fit or an eval saw
    (``without_windows``: no usable 10-s window in the minute before the alarm, ``AlarmRecord.error``)."""
    out: dict[str, dict[str, int]] = {}
    for r in records:
        c = out.setdefault(r.split, {"records": 0, "true": 0, "false": 0, "with_ppg": 0, "without_windows": 0})
        c["records"] += 1
        c["true" if r.true_alarm else "false"] += 1
        c["with_ppg"] += int(r.ppg is not None)
        c["without_windows"] += int(not r.modalities)
    return out


def window_count(records: Sequence[AlarmRecord]) -> int:
    """Cached windows over ``records``."""
    return int(sum(len(r.starts_s) for r in records))


__all__ = ["AlarmRecord", "load_alarm_records", "default_cinc2015_dir", "cache_root", "cache_dir_for",
           "split_counts", "window_count", "ALARM_WINDOWS", "ALARM_TIME_S"]
