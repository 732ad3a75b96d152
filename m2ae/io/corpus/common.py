"""What every corpus layout shares: turning one reader's failure into a skippable item, and WFDB segments.

A layout module's ``iterate(folder)`` yields ``Record`` or ``InputError`` items; ``iter_corpus``
(``m2ae.io.corpus``) skips or raises the errors. ``guard`` is how a layout produces them, so one
corrupt file deep in a corpus never ends a long pass.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ...errors import InputError
from ...record import Record
from ..sources import open_source, wfdb_segments
from .report import must_stop, unexpected

# Every layout logs on the package's logger, so one caplog / handler sees all skips.
log = logging.getLogger("m2ae.io")

# Tables that describe a corpus rather than hold a record; a folder walk leaves them out.
CORPUS_TABLES = ("clinical_data.csv", "ptbxl_database.csv", "scp_statements.csv", "manifest.csv")


def wfdb_segment_headers(headers: Iterable[str | Path]) -> set[Path]:
    """Headers that are segments of a multi-segment WFDB record among ``headers`` (.hea paths).

    Segments are read through their master header, so folder walkers skip them."""
    segments: set[Path] = set()
    for h in headers:
        try:
            names = wfdb_segments(Path(h).read_text(errors="replace"))
        except OSError:
            continue
        if names is not None:
            segments.update(Path(h).parent / f"{n}.hea" for n in names if n != "~")
    return segments


def read_opened(reader: Callable[..., Record], path: Path, file: Path, **kwargs: Any) -> Record:
    """``reader(path, open_source(file), **kwargs)``: opened inside ``guard``, so a file that cannot be
    opened (too large, empty) is skipped like one that cannot be read."""
    return reader(path, open_source(file), **kwargs)


def guard(where: Any, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run one reader; turn its failure into an InputError item for iter_corpus to skip or raise."""
    try:
        return fn(*args, **kwargs)
    except InputError as e:
        return e
    except Exception as e:  # a corrupt file deep in a corpus must not end a long pass
        if must_stop(e):  # MemoryError is an Exception too, and must still end the run
            raise
        return InputError(f"{where}: {unexpected(e)}")
