"""WFDB records (PhysioNet): a ``.hea`` header with ``.dat``/``.mat`` data, single or multi-segment.

The header is read with ``wfdb.rdheader`` (signal names, rate, units, comments); labels come from
header comments (``<age>: 88 <sex>: F`` as MIMIC/BIDMC write them, ``Age: 60``, m2ae's own JSON).
Multi-segment records are joined here, NaN where a segment lacks a channel or is a gap (``~``).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .. import contract
from ..errors import InputError
from ..record import Record
from . import limits
from .annotations import read_events
from .assemble import add_channel, collect_leads, make_record, merge_extra_meta, new_meta
from .channels import choose_channels, ecg_lead_columns
from .sources import Source
from .writers import META_COMMENT

# Bytes per sample of the WFDB storage formats (FLAC formats 508/516/524 are compressed: not listed).
_FORMAT_BYTES = {"8": 1, "16": 2, "24": 3, "32": 4, "61": 2, "80": 1, "160": 2, "212": 1.5, "310": 4 / 3,
                 "311": 4 / 3}
_HEADER_BYTES = 16 << 20  # the largest .hea read (a multi-segment master lists one line per segment)
_RATE = re.compile(r"([^/(\s]*)")  # the frequency part of "250", "250/1000(0)", "360(0)"

_COMMENT_KV = re.compile(r"<\s*([\w ]+?)\s*>\s*:?\s*([^<]*)")
_COMMENT_LINE = re.compile(r"^\s*(age|sex|gender|dx|diagnosis)\s*:\s*(.+?)\s*$", re.I)


def labels_from_comments(comments: list[str], meta: dict[str, Any]) -> None:
    """WFDB header comments -> labels: ``<age>: 88 <sex>: F`` (MIMIC/BIDMC), ``Age: 60``, m2ae's JSON."""
    labels = meta.setdefault("labels", {})
    for c in comments:
        c = c.strip()
        if c.startswith(META_COMMENT):
            try:
                stored = json.loads(c[len(META_COMMENT):])
            except json.JSONDecodeError:
                continue
            for k, v in stored.items():
                if k == "labels" and isinstance(v, dict):
                    labels.update(v)
                elif k not in ("source", "notes", "units", "lead"):
                    meta[k] = v
            continue
        pairs = _COMMENT_KV.findall(c) or [m.groups() for m in [_COMMENT_LINE.match(c)] if m]
        for k, v in pairs:
            k, v = k.strip().lower(), v.strip()
            if k == "age":
                try:
                    labels["age"] = float(v.rstrip("+"))
                except ValueError:
                    pass
            elif k in ("sex", "gender") and v[:1].upper() in ("M", "F"):
                labels["sex"] = v[:1].upper()
            elif k in ("dx", "diagnosis") and v:
                labels["dx"] = v


def _signal_names(h: Any, folder: Path) -> list[str]:
    """Signal names of a header: its own, or a multi-segment record's layout header's (variable
    layout) or first segment's (fixed layout)."""
    import wfdb

    if not isinstance(h, wfdb.MultiRecord):
        return list(h.sig_name or [])
    first = h.seg_name[0] if h.layout == "variable" else next((s for s in h.seg_name if s != "~"), None)
    return list(wfdb.rdheader(str(folder / first)).sig_name or []) if first else []


def declared_rate(hea: Path, source: Source, fs: float | None) -> str | None:
    """Refuse a header whose rate field is missing, not a positive number, or one wfdb reads otherwise
    (``1e9`` as 1 Hz) unless ``fs`` (Hz) is given: wfdb would use 250 Hz without a word (``-250``,
    ``abc`` and a missing field alike). Also refuses a record line declaring more signals than the
    header describes. With ``fs`` given, returns a note saying what the header had (None when its rate
    was fine)."""
    if hea.stat().st_size > _HEADER_BYTES:
        raise InputError(f"{source.name}: WFDB header is {hea.stat().st_size / 2**20:.1f} MiB, more than "
                         f"{_HEADER_BYTES >> 20} MiB; not a header")
    with open(hea, encoding="latin-1") as f:
        lines = [ln.split() for ln in f if ln.strip() and not ln.lstrip().startswith("#")]
    line = lines[0] if lines else []
    if len(line) < 2 or not line[1].isdigit():  # not a record line: wfdb refuses the header
        return None
    if "/" not in line[0] and int(line[1]) > len(lines) - 1:
        limits.check_count(source.name, "signals declared by the WFDB header", int(line[1]), "MAX_COLUMNS")
        raise InputError(f"{source.name}: the WFDB header declares {int(line[1]):,} signals but describes "
                         f"{len(lines) - 1}")
    if len(line) < 3:
        problem = "the WFDB header gives no sampling rate (wfdb would assume 250 Hz)"
    else:
        matched = _RATE.match(line[2])
        field_ = matched.group(1) if matched else ""
        try:
            rate = float(field_)
        except ValueError:
            rate = float("nan")
        if rate > 0 and np.isfinite(rate) and re.fullmatch(r"\d+(\.\d*)?", field_):
            return None
        what = ("is not a positive number (wfdb would read 250 Hz)" if not rate > 0 else
                "is not written as wfdb reads rates, in digits (wfdb would read another rate)")
        problem = f"the WFDB header's sampling rate {line[2][:20]!r} {what}"
    if fs is None:
        raise InputError(f"{source.name}: {problem}; pass --fs HZ")
    return f"{problem}; {float(fs):g} Hz given instead"


def _check_declared(source: Source, folder: Path, h: Any, fs: float) -> None:
    """The samples a (segment) header declares, checked against ``m2ae.io.limits`` and against the size
    of its data files (a short file is truncated) before anything is read."""
    names = list(h.file_name or [])
    if not names:
        return
    n = int(h.sig_len or 0)
    for f in set(names):
        path = folder / f
        if not path.exists():
            continue
        chans = [k for k, g in enumerate(names) if g == f]
        fmt = str((h.fmt or [None] * len(names))[chans[0]])
        per_sample = _FORMAT_BYTES.get(fmt)
        offset = int((h.byte_offset or [0] * len(names))[chans[0]] or 0)
        if per_sample is None:  # compressed (FLAC): only the declared length can be checked
            if not n:
                raise InputError(f"{source.name}: the WFDB header gives no signal length that wfdb can read, "
                                 f"which compressed data (format {fmt}) needs")
            continue
        held = (path.stat().st_size - offset) / (per_sample * len(chans))
        if n and held < n - 1:
            raise InputError(f"{source.name}: data file {f} is truncated ({int(held):,} of {n:,} samples)")
        n = n or int(held)
    limits.check_samples(source.name, n, fs)
    limits.check_read(source.name, n, len(names))


def _check_file_name(source: Source, fname: str, what: str) -> None:
    """A header may only name files beside it: no folders, no '..' (a header must not read /etc/passwd)."""
    if fname in ("~", "") and what == "segment":
        return
    if "/" in fname or "\\" in fname or fname in (".", "..") or "\x00" in fname:
        raise InputError(f"{source.name}: the header names {what} {fname[:60]!r} outside the record's folder; "
                         f"only files beside the .hea are read")


def _check_data_files(h: Any, folder: Path, source: Source, fs: float) -> None:
    """Every segment header and data file the record needs is there, together under MAX_FILE_BYTES,
    and none declares more samples than it holds or the limits allow."""
    import wfdb

    where = "upload it together with the .hea" if source.path is None else "keep it next to the .hea"
    data_files: list[Path] = []
    if isinstance(h, wfdb.MultiRecord):
        limits.check_count(source.name, "segments", len(h.seg_name), "MAX_SEGMENTS")
        for seg in h.seg_name:
            _check_file_name(source, seg, "segment")
            if seg == "~":
                continue
            if not (folder / f"{seg}.hea").exists():
                raise InputError(f"{source.name}: segment header {seg}.hea is missing ({where})")
            sh = wfdb.rdheader(str(folder / seg))
            for f in set(sh.file_name or []):
                _check_file_name(source, f, "data file")
                if sh.sig_len and not (folder / f).exists():
                    raise InputError(f"{source.name}: data file {f} of segment {seg} is missing ({where})")
                data_files.append(folder / f)
            _check_declared(source, folder, sh, fs)
        limits.check_samples(source.name, int(h.sig_len or sum(int(n) for n in h.seg_len)), fs)
    else:
        for f in set(h.file_name or []):
            _check_file_name(source, f, "data file")
            if not (folder / f).exists():
                raise InputError(f"{source.name}: data file {f} is missing ({where})")
            data_files.append(folder / f)
        _check_declared(source, folder, h, fs)
    total = sum(f.stat().st_size for f in data_files if f.exists())
    if total > contract.MAX_FILE_BYTES:
        raise InputError(f"{source.name}: data files hold {total / 2**20:.1f} MiB, more than the "
                         f"{contract.MAX_FILE_BYTES / 2**20:.0f} MiB limit (m2ae.contract.MAX_FILE_BYTES); "
                         f"read it in pieces (segments) with m2ae.io.iter_corpus")


@dataclass
class _Joined:
    """A multi-segment record joined into one array (the attributes of ``wfdb.Record`` read_wfdb_path uses)."""

    p_signal: np.ndarray          # samples x channels, physical units
    sig_name: list[str]
    units: list[str | None]
    fs: float                     # Hz
    record_name: str
    base_datetime: Any            # datetime.datetime or None
    comments: list[str]


def _read_multisegment(rec_path: Path, h: Any, wanted: list[str], source: Source) -> _Joined:
    """Join a multi-segment record's segments, NaN where a segment lacks a channel or is a gap ('~').

    Done here rather than with ``rdrecord(m2s=True)``, which fails on fixed-layout records with gaps.
    """
    import wfdb

    folder = rec_path.parent
    seg_lens = [int(n) for n in h.seg_len]
    total = int(h.sig_len) if h.sig_len else sum(seg_lens)
    out = np.full((total, len(wanted)), np.nan)
    units: list[str | None] = [None] * len(wanted)
    pos = 0
    for seg, n in zip(h.seg_name, seg_lens):
        if seg == "~" or n == 0:
            pos += n
            continue
        seg_names = list(wfdb.rdheader(str(folder / seg)).sig_name or [])
        present = [w for w in wanted if w in seg_names]
        if present:
            r = wfdb.rdrecord(str(folder / seg), channel_names=present)
            if r.fs != h.fs:
                raise InputError(f"{source.name}: segment {seg} is sampled at {r.fs:g} Hz, the record at {h.fs:g} Hz")
            if r.p_signal.shape[0] < n:
                raise InputError(f"{source.name}: segment {seg} is truncated ({r.p_signal.shape[0]} of {n} samples)")
            for k, w in enumerate(wanted):
                if w in r.sig_name:
                    j = r.sig_name.index(w)
                    out[pos:pos + n, k] = r.p_signal[:n, j]
                    units[k] = units[k] or r.units[j]
        pos += n
    return _Joined(p_signal=out[:pos], sig_name=list(wanted), units=units, fs=h.fs, record_name=h.record_name,
                   base_datetime=getattr(h, "base_datetime", None), comments=list(h.comments or []))


def read_wfdb_path(rec_path: Path, source: Source, fs: float | None = None, ecg: str | int | None = None,
                   ppg: str | int | None = None, extra_meta: dict[str, Any] | None = None) -> Record:
    """Read a WFDB record (single or multi-segment) at ``rec_path`` (no extension) into a Record.

    fs : rate in Hz replacing the header's (noted in ``meta['notes']``); extra_meta : a corpus' ids
    and labels, laid over what the header comments say.
    """
    import wfdb

    hea = rec_path.with_suffix(".hea")
    rate_note = declared_rate(hea, source, fs) if hea.exists() else None
    try:
        h = wfdb.rdheader(str(rec_path))
    except Exception as e:
        raise InputError(f"{source.name}: not a valid WFDB header ({' '.join(str(e).split())[:160]})") from None
    _check_data_files(h, rec_path.parent, source, float(fs if fs is not None else h.fs))
    names = _signal_names(h, rec_path.parent)
    if not names:
        raise InputError(f"{source.name}: the WFDB header lists no signals")
    choice = choose_channels(names, source.name, ecg=ecg, ppg=ppg)
    leads = ecg_lead_columns(names, choice)
    picked = [i for i in (choice.ecg, choice.ppg, *leads[1:]) if i is not None]
    if isinstance(h, wfdb.MultiRecord):
        r = _read_multisegment(rec_path, h, [names[i] for i in picked], source)
    else:
        r = wfdb.rdrecord(str(rec_path), channels=picked)
    sig = r.p_signal
    expected = h.sig_len
    if sig is None or sig.shape[0] == 0:
        raise InputError(f"{source.name}: the WFDB record holds no samples")
    if expected and sig.shape[0] != expected:
        raise InputError(f"{source.name}: data file is truncated ({sig.shape[0]} of {expected} samples)")
    col = {n: j for j, n in enumerate(r.sig_name)}
    meta = new_meta(source, "wfdb", record_id=r.record_name, units=True)
    if getattr(r, "base_datetime", None) is not None:
        meta["start_time"] = r.base_datetime.isoformat()
    meta["comments"] = list(r.comments or [])
    labels_from_comments(meta["comments"], meta)
    merge_extra_meta(meta, extra_meta)
    units = list(r.units or [None] * len(r.sig_name))

    def column(i: int) -> tuple[np.ndarray, str | None]:
        j = picked.index(i)
        if r.sig_name[j] != names[i]:  # the library returned channels in another order
            j = col[names[i]]
        return sig[:, j].astype(np.float64), units[j]

    out = {m: add_channel(meta, m, *column(i), names[i]) for m in ("ecg", "ppg")
           if (i := getattr(choice, m)) is not None}
    choice.to_meta(meta)
    ecg_leads = collect_leads(meta, out.get("ecg"), [(names[i], *column(i)) for i in leads[1:]])
    rate = r.fs
    if rate_note:
        meta["notes"].append(rate_note)
        assert fs is not None, "an invalid header rate without --fs was refused above"
        rate = float(fs)
    elif fs is not None and float(fs) != float(r.fs):
        meta["notes"].append(f"sampling rate {float(fs):g} Hz given instead of the header's {r.fs:g} Hz")
        rate = fs
    data_files = {str(f) for f in (getattr(h, "file_name", None) or [])}
    read_events(rec_path, data_files, float(rate), meta)
    return make_record(source.name, rate, out.get("ecg"), out.get("ppg"), meta, ecg_leads=ecg_leads)


def _header_source(source: Source) -> Source:
    """The same input with the record's ``.hea`` as its main file (a ``.dat``/``.mat`` names its header)."""
    if source.suffix in (".dat", ".mat"):
        stem = Path(source.main).stem
        hea = next((f for f in source.files if f.lower() == f"{stem.lower()}.hea"), f"{stem}.hea")
        source = replace(source, path=source.path.with_suffix(".hea") if source.path else None, main=hea)
    if source.path is None and source.main not in source.files:
        raise InputError(f"{source.name}: WFDB header {source.main} was not uploaded")
    return source


def read(source: Source, fs: float | None = None, ecg: str | int | None = None,
         ppg: str | int | None = None) -> Record:
    """Read a WFDB record given by its .hea (or its .dat/.mat beside the .hea), on disk or uploaded."""
    source = _header_source(source)
    with source.on_disk() as hea_path:
        return read_wfdb_path(hea_path.with_suffix(""), source, fs=fs, ecg=ecg, ppg=ppg)


def channel_names(source: Source) -> list[str]:
    """The signal names a record's header lists, read from the .hea files alone (no data files)."""
    import wfdb

    source = _header_source(source)
    headers = replace(source, files={f: b for f, b in source.files.items() if f.lower().endswith(".hea")})
    with headers.on_disk() as hea_path:
        return _signal_names(wfdb.rdheader(str(hea_path.with_suffix(""))), hea_path.parent)
