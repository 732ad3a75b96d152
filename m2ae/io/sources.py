"""Where a record's bytes come from: a path on disk or in-memory uploads, as one ``Source``.

Uploads (a Streamlit ``UploadedFile``, ``BytesIO`` or a ``{filename: bytes}`` mapping) are kept in
memory. Where a library insists on a file on disk (wfdb, pyEDFlib, vitaldb) the bytes go to a
``tempfile.TemporaryDirectory`` under ``/dev/shm`` (RAM-backed on Linux) that is deleted as soon as
the reader returns; on systems without ``/dev/shm`` the OS temp dir is used, also deleted at once.
Every input is held to ``m2ae.contract.MAX_FILE_BYTES`` by ``check_size``.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import contract
from ..errors import InputError
from .channels import list_names


@dataclass
class Source:
    """Where a record's bytes are: a path on disk, or in-memory files keyed by base name."""

    name: str                                  # what messages call it
    path: Path | None = None                   # main file on disk
    files: dict[str, bytes] = field(default_factory=dict)  # in-memory uploads, base name -> bytes
    main: str = ""                             # base name of the main file

    @property
    def suffix(self) -> str:
        """The main file's extension, lower case with its dot ('.csv')."""
        return Path(self.main).suffix.lower()

    @property
    def size(self) -> int:
        """The main file's size in bytes."""
        return self.path.stat().st_size if self.path is not None else len(self.files[self.main])

    def read_bytes(self) -> bytes:
        """The whole main file."""
        if self.path is not None:
            return self.path.read_bytes()
        return self.files[self.main]

    def head(self, n: int = 512) -> bytes:
        """The first ``n`` bytes of the main file (for magic numbers and fixed headers)."""
        if self.path is not None:
            with open(self.path, "rb") as f:
                return f.read(n)
        return self.files[self.main][:n]

    @contextlib.contextmanager
    def on_disk(self) -> Iterator[Path]:
        """The main file as a path: itself on disk, or uploads in a RAM-backed temp dir, removed after."""
        if self.path is not None:
            yield self.path
            return
        with ram_tempdir() as d:
            for fname, data in self.files.items():
                (d / fname).write_bytes(data)
            yield d / self.main


@contextlib.contextmanager
def ram_tempdir() -> Iterator[Path]:
    """A temporary directory under /dev/shm when it exists (RAM, never normal disk), deleted on exit."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="m2ae-upload-", dir=base) as d:
        yield Path(d)


def check_size(name: str, n_bytes: int) -> None:
    """Refuse an input of more than ``contract.MAX_FILE_BYTES`` bytes with a one-line InputError."""
    lim = contract.MAX_FILE_BYTES
    if n_bytes > lim:
        raise InputError(f"{name}: file is {n_bytes / 2**20:.1f} MiB, larger than the {lim / 2**20:.0f} MiB limit "
                         f"(m2ae.contract.MAX_FILE_BYTES); split the record into smaller files")


def _upload_bytes(obj: Any, name: str) -> bytes:
    """The bytes of a file-like upload, read at most one byte past the size limit."""
    size = getattr(obj, "size", None)
    if isinstance(size, int):
        check_size(name, size)
    if hasattr(obj, "getvalue"):
        data = obj.getvalue()
    else:
        if hasattr(obj, "seek"):
            with contextlib.suppress(Exception):
                obj.seek(0)
        data = obj.read(contract.MAX_FILE_BYTES + 1)
    if isinstance(data, str):
        data = data.encode("utf-8")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InputError(f"{name}: upload did not give bytes (got {type(data).__name__})")
    data = bytes(data)
    check_size(name, len(data))
    return data


def _safe_basename(fname: str) -> str:
    base = os.path.basename(str(fname).replace("\\", "/"))
    if base in ("", ".", "..") or "\x00" in base:
        raise InputError(f"{fname!r}: not a usable file name")
    return base


def open_source(src: Any, name: str | None = None) -> Source:
    """Turn a path, a file-like upload or a ``{filename: bytes}`` mapping into a ``Source``.

    name : what messages call the input, and (for a mapping) which file is the main one.
    Raises InputError for missing, empty or oversized inputs and for several uploads that are not
    one WFDB record.
    """
    if isinstance(src, (str, os.PathLike)):
        path = Path(src).expanduser()
        shown = name or str(src)
        if path.is_dir():
            raise InputError(f"{shown}: is a folder, not a record file (use m2ae.io.iter_corpus for folders)")
        if not path.exists():
            raise InputError(f"{shown}: file not found")
        if not path.is_file():  # /dev/zero, a named pipe, a socket: reading would never end or never start
            raise InputError(f"{shown}: not a regular file (a device, pipe or socket); give a record file")
        size = path.stat().st_size
        check_size(shown, size)
        if size == 0:
            raise InputError(f"{shown}: file is empty")
        return Source(name=shown, path=path, main=path.name)
    if isinstance(src, Mapping):
        return _open_mapping(src, name)
    if isinstance(src, (list, tuple)) and src and all(hasattr(f, "name") for f in src):
        # st.file_uploader(accept_multiple_files=True) gives a list of UploadedFile
        return open_source({_safe_basename(f.name): f for f in src}, name)
    if hasattr(src, "read") or hasattr(src, "getvalue"):
        fname = name or getattr(src, "name", None)
        if not fname or not isinstance(fname, str):
            raise InputError("upload: a file-like object needs a file name (.name or name=) to tell its format")
        base = _safe_basename(fname)
        data = _upload_bytes(src, base)
        if not data:
            raise InputError(f"{base}: file is empty")
        return Source(name=base, files={base: data}, main=base)
    raise InputError(f"{src!r}: expected a path, a file-like upload or a {{filename: bytes}} mapping")


def _open_mapping(src: Mapping[str, Any], name: str | None) -> Source:
    """``{filename: bytes or file-like}`` -> Source; no file may be empty, several must be one WFDB record."""
    if not src:
        raise InputError(f"{name or 'upload'}: no files given")
    files = {}
    total = 0
    for fname, content in src.items():
        base = _safe_basename(fname)
        data = content if isinstance(content, (bytes, bytearray)) else _upload_bytes(content, base)
        if not data:
            raise InputError(f"{base}: file is empty")
        total += len(data)
        check_size(base, total)
        files[base] = bytes(data)
    heads = [f for f in files if f.lower().endswith(".hea")]
    if name and _safe_basename(name) in files:
        main = _safe_basename(name)
    elif len(files) == 1:
        main = next(iter(files))
    elif heads:
        main = _master_header(heads, files)
    else:
        raise InputError(f"{name or 'upload'}: several files uploaded ({list_names(list(files))}) but no "
                         f"WFDB .hea header among them; upload one record at a time")
    return Source(name=name or main, files=files, main=main)


def wfdb_segments(header_text: str) -> list[str] | None:
    """The segment names a multi-segment WFDB master header lists ('~' gaps included), else None.

    A master's record line reads ``name/n_segments ...`` (WFDB header format); read here from the
    text alone because the main file of an upload must be chosen before anything is on disk.
    """
    lines = [ln.split() for ln in header_text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines or "/" not in lines[0][0]:
        return None
    return [ln[0] for ln in lines[1:] if ln]


def _master_header(heads: list[str], files: dict[str, bytes]) -> str:
    """Among uploaded .hea files, the record to read: a multi-segment master, else the only one."""
    masters = [h for h in heads if wfdb_segments(files[h].decode("latin-1", "replace")) is not None]
    if len(masters) == 1:
        return masters[0]
    if len(heads) == 1:
        return heads[0]
    raise InputError(f"upload: several WFDB headers ({list_names(heads)}) and no single multi-segment "
                     f"master among them; upload one record at a time")
