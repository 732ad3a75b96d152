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
from .assemble import add_channel, make_record, merge_extra_meta, new_meta
from .channels import choose_channels
from .sources import Source
from .writers import META_COMMENT

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


def _check_data_files(h: Any, folder: Path, source: Source) -> None:
    """Every segment header and data file the record needs is there, together under MAX_FILE_BYTES."""
    import wfdb

    where = "upload it together with the .hea" if source.path is None else "keep it next to the .hea"
    data_files: list[Path] = []
    if isinstance(h, wfdb.MultiRecord):
        for seg in h.seg_name:
            if seg == "~":
                continue
            if not (folder / f"{seg}.hea").exists():
                raise InputError(f"{source.name}: segment header {seg}.hea is missing ({where})")
            sh = wfdb.rdheader(str(folder / seg))
            for f in set(sh.file_name or []):
                if sh.sig_len and not (folder / f).exists():
                    raise InputError(f"{source.name}: data file {f} of segment {seg} is missing ({where})")
                data_files.append(folder / f)
    else:
        for f in set(h.file_name or []):
            if not (folder / f).exists():
                raise InputError(f"{source.name}: data file {f} is missing ({where})")
            data_files.append(folder / f)
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

    try:
        h = wfdb.rdheader(str(rec_path))
    except Exception as e:
        raise InputError(f"{source.name}: not a valid WFDB header ({' '.join(str(e).split())[:160]})") from None
    _check_data_files(h, rec_path.parent, source)
    names = _signal_names(h, rec_path.parent)
    if not names:
        raise InputError(f"{source.name}: the WFDB header lists no signals")
    choice = choose_channels(names, source.name, ecg=ecg, ppg=ppg)
    picked = [i for i in (choice.ecg, choice.ppg) if i is not None]
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
    out = {}
    for m in ("ecg", "ppg"):
        i = getattr(choice, m)
        if i is None:
            continue
        j = picked.index(i)
        if r.sig_name[j] != names[i]:  # the library returned channels in another order
            j = col[names[i]]
        unit = (r.units or [None] * len(r.sig_name))[j]
        out[m] = add_channel(meta, m, sig[:, j].astype(np.float64), unit, names[i])
    choice.to_meta(meta)
    rate = r.fs
    if fs is not None and float(fs) != float(r.fs):
        meta["notes"].append(f"sampling rate {float(fs):g} Hz given instead of the header's {r.fs:g} Hz")
        rate = fs
    return make_record(source.name, rate, out.get("ecg"), out.get("ppg"), meta)


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
