"""The fallback layout: any folder (or single file) of records ``load_record`` reads, one record per file.

Segments of multi-segment WFDB records are read through their master header; corpus tables
(``common.CORPUS_TABLES``) and hidden files are left out.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ...errors import InputError
from ...record import Record
from ..load import EXTENSIONS, load_record
from .common import CORPUS_TABLES, guard, wfdb_segment_headers


def matches(path: Path) -> bool:
    """A file, or a folder holding (anywhere below it) a file, whose extension ``load_record`` reads."""
    if path.is_file():
        return path.suffix.lower() in EXTENSIONS
    return any(f.is_file() and f.suffix.lower() in EXTENSIONS for f in path.rglob("*"))


def iterate(folder: Path) -> Iterator[Record | InputError]:
    """Records (or the InputError of each one not read) of the corpus at ``folder``."""
    if folder.is_file():
        yield guard(folder, load_record, folder)
        return
    files = sorted(f for f in folder.rglob("*") if f.is_file())
    heads = [f for f in files if f.suffix.lower() == ".hea"]
    segments = wfdb_segment_headers(heads)
    for f in files:
        ext = f.suffix.lower()
        if ext not in EXTENSIONS or ext == ".dat" or f in segments or f.name.startswith("."):
            continue
        if ext == ".csv" and f.name in CORPUS_TABLES:
            continue
        yield guard(f, load_record, f)

