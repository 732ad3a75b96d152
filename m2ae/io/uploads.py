"""Uploaded files (``{file name: bytes}``, as a web app receives them) -> ``Record``, in memory only.

``upload_files`` names them (refusing two different files with one name); ``read_upload`` reads them
with ``load_record`` (never written to the working directory; readers that need a path get a
RAM-backed temp dir); ``list_channels`` names the columns/channels they offer,
for a form that maps unrecognised ones to ECG/PPG; ``content_key`` is the per-record cache key.
Nothing here imports streamlit.

>>> content_key({"a.csv": b"1,2"}, 125.0) == content_key({"a.csv": b"1,2"}, 125.0)
True
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import PurePosixPath
from typing import Any

from ..errors import InputError
from ..record import Record
from .load import channel_names, load_record
from .sources import open_source

# File types an upload widget offers (extensions without the dot).
UPLOAD_TYPES: tuple[str, ...] = ("hea", "dat", "mat", "csv", "tsv", "txt", "npz", "npy", "edf", "vital")


def content_key(*parts: Any) -> str:
    """A stable hex digest of bytes, strings, numbers and {name: bytes} maps (the per-record cache key).

    Map entries are hashed in name order, so the order files were uploaded in does not matter.
    """
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, Mapping):
            for name in sorted(part):
                h.update(str(name).encode())
                h.update(b"\0")
                value = part[name]
                h.update(value if isinstance(value, (bytes, bytearray)) else repr(value).encode())
                h.update(b"\1")
        elif isinstance(part, (bytes, bytearray)):
            h.update(part)
        else:
            h.update(repr(part).encode())
        h.update(b"\2")
    return h.hexdigest()[:32]


def upload_files(pairs: Iterable[tuple[str, bytes]]) -> dict[str, bytes]:
    """``{base name: bytes}`` from ``(file name, bytes)`` pairs as an upload widget gives them.

    Names are cut to their base name (a browser may send a relative path; a name like ``../x.hea`` must
    not reach a reader as a path). The same file chosen twice is kept once; two *different* files with
    the same base name (e.g. ``r065.hea`` from two folders) would silently replace each other, so that
    raises InputError naming them.

    >>> sorted(upload_files([("a/r1.hea", b"x"), ("r1.hea", b"x"), ("r1.dat", b"y")]))
    ['r1.dat', 'r1.hea']
    """
    out: dict[str, bytes] = {}
    for raw_name, data in pairs:
        name = PurePosixPath(str(raw_name).replace("\\", "/")).name or "upload"
        if name in out and out[name] != data:
            raise InputError(f"{name}: two different uploaded files share this name (from different folders?); "
                             "upload the files of one record at a time")
        out[name] = bytes(data)
    return out


def read_upload(files: Mapping[str, bytes], fs: float | None = None, ecg: str | None = None,
                ppg: str | None = None) -> Record:
    """Read uploaded files (``{file name: bytes}``: one file, or a WFDB ``.hea`` with its data files).

    fs : sampling rate in Hz (0 or None: from the file); ecg, ppg : column/channel names ('' or None:
    recognised by name). Empty, missing or oversized files are refused by ``open_source`` like any
    input. Raises ``InputError`` with the reader's one-line message.
    """
    return load_record(dict(files), fs=float(fs) if fs else None, ecg=ecg or None, ppg=ppg or None)


def list_channels(files: Mapping[str, bytes]) -> list[str]:
    """Names of the columns/channels the uploaded files offer (for the ECG/PPG mapping form).

    Reads headers only, with each format's own header parsing (CSV/TSV header row, NPZ keys, EDF
    labels, WFDB signal names); ``[]`` when the format has no names (a bare ``.npy`` array: give
    ``fs`` and indices) or the header cannot be parsed (reading the record then says why).
    """
    try:
        names = channel_names(open_source(dict(files)))
    except Exception:  # the form just offers no names; read_upload reports what is wrong
        return []
    return list(dict.fromkeys(names))
