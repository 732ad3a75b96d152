"""CSV / TSV / TXT tables: delimiter, decimal comma, header and unit rows, and the time column.

The head of the file (comments, ``sep=`` line, header rows, delimiter) is scanned in Python by
``_scan``, which ``read`` and ``channel_names`` share; pandas' C parser reads the body, only the
columns used (time, ECG leads, PPG). The rate comes from ``fs=``, else a time column (``timecol``:
seconds, milliseconds, clock or Unix time; gaps become NaN runs on the sampling grid), else an
``fs = 125`` comment line; without any of them the reader asks for ``--fs``. Sizes (line length,
columns, rows, the gap grid) are checked against ``m2ae.io.limits`` before the body is parsed, and
every pattern run on file text is linear in its length (no backtracking on hostile input).
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from ..record import Record
from . import limits
from .assemble import add_channel, collect_leads, make_record, new_meta
from .channels import choose_channels, ecg_lead_columns, normalize_name, unit_from_name
from .sources import Source
from .timecol import TIME_NAMES, fs_from_time, time_seconds

# Searched in the first _COMMENT_CHARS of a comment line only ('sampl\w*' would rescan long lines).
_FS_COMMENT = re.compile(r"(?:\bfs\b|sampl\w*\s*(?:rate|frequency)|sfreq)\s*[:=]?\s*([0-9]+(?:\.[0-9]*)?)", re.I)
_COMMENT_CHARS = 200
# Possessive quantifiers (Python >= 3.11): a failed match never backtracks, so a check is linear in
# the token's length (the old pattern took 42 s on a 50 KB line of digits). Tokens are also capped.
_NUMBER = re.compile(r"[+-]?+(?:\d++(?:\.\d*+)?+|\.\d++)(?:[eE][+-]?+\d++)?+")
_NUMBER_CHARS = 64
_NA_TOKENS = {"", "nan", "na", "n/a", "null", "none", "-", "--", "?"}
_HEAD_LINES = 80  # non-blank lines scanned for the header, delimiter and decimal mark
_NAMES_BYTES = 1 << 16  # how much of a file ``channel_names`` decodes
_HEAD_BYTES = 4 << 20  # how much of a file ``read`` decodes in Python; pandas decodes the rest


def _decode_text(raw: bytes, name: str) -> str:
    if b"\x00" in raw[:65536]:
        raise InputError(f"{name}: binary data, not a text CSV/TSV file")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
        sample = text[:65536]
        printable = sum(c.isprintable() or c in "\r\n\t" for c in sample) / max(1, len(sample))
        if printable < 0.97:
            raise InputError(f"{name}: binary data, not a text CSV/TSV file") from None
        return text


def is_number(tok: str, decimal: str = ".") -> bool:
    """Whether a table cell reads as a number (or a missing-value word such as 'NaN'); linear time."""
    t = tok.strip().strip("'\"")
    if len(t) > _NUMBER_CHARS:
        return False
    if decimal == ",":
        t = t.replace(",", ".")
    return t.lower() in _NA_TOKENS or bool(_NUMBER.fullmatch(t)) or t.lower() in ("inf", "-inf", "+inf")


def _split(line: str, sep: str | None) -> list[str]:
    return line.split() if sep is None else line.split(sep)


def _detect_delimiter(lines: list[str]) -> str | None:
    """The delimiter splitting every sample line into the same number (>1) of fields; None = whitespace."""
    sample = lines[:50]
    best: tuple[str, int] | None = None
    for sep in ("\t", ";", ",", "|"):
        counts = {ln.count(sep) for ln in sample}
        if len(counts) == 1 and (c := counts.pop()) > 0 and (best is None or c > best[1]):
            best = (sep, c)
    if best:
        return best[0]
    ws = {len(ln.split()) for ln in sample}
    if len(ws) == 1 and ws.pop() > 1:
        return None
    for sep in ("\t", ";", ","):  # ragged files: the most common separator, pandas reports the bad row
        if sum(sep in ln for ln in sample) > len(sample) // 2:
            return sep
    return ","


@dataclass
class _Head:
    """What the scan of a table's first lines found."""

    comments: list[str]       # comment lines, without their '#'/'%'
    body: list[str]           # the first non-blank, non-comment lines
    starts: list[int]         # character offset of each body line in the text
    sep: str | None           # delimiter; None = runs of whitespace
    decimal: str              # '.' or ','
    n_head: int               # header rows (0, 1 names, 2 names + units)
    names: list[str]          # column names; '0', '1', ... without a header row
    units_row: list[str]      # the units row under the names, [] when there is none


def _scan(text: str, name: str) -> _Head:
    """Comments, ``sep=`` line, delimiter, decimal mark and header rows of a table's first lines."""
    comments: list[str] = []
    body: list[str] = []
    starts: list[int] = []
    pos = 0
    while len(body) < _HEAD_LINES and pos < len(text):
        end = text.find("\n", pos)
        end = len(text) if end < 0 else end
        limits.check_line(name, end - pos, len(comments) + len(body) + 1)
        ln = text[pos:end].rstrip("\r")
        if ln.lstrip().startswith(("#", "%")):
            comments.append(ln.lstrip()[1:])
        elif ln.strip():
            body.append(ln)
            starts.append(pos)
        pos = end + 1
    forced_sep = None
    if body and re.fullmatch(r"\s*sep=.\s*", body[0]):  # Excel's "sep=;" first line
        forced_sep = body[0].strip()[4]
        body, starts = body[1:], starts[1:]
    if not body:
        raise InputError(f"{name}: no data rows (the file holds no table)")
    sep = forced_sep or _detect_delimiter(body[:1] + body[2:60] if len(body) > 2 else body)
    decimal = "."
    if sep != "," and any(re.search(r"\d,\d", ln) for ln in body[1:60]):
        decimal = ","

    def header_like(line: str) -> bool:
        toks = [t for t in _split(line, sep) if t.strip()]
        return bool(toks) and sum(not is_number(t, decimal) for t in toks) > len(toks) / 2

    n_head = 0
    while n_head < min(2, len(body)) and header_like(body[n_head]):
        n_head += 1
    first = _split(body[0], sep)
    limits.check_columns(name, len(first))
    if n_head:
        names = [t.strip().strip("'\"").strip() for t in first]
    else:
        names = [str(i) for i in range(len(first))]
    units_row = [t.strip().strip("'\"") for t in _split(body[1], sep)] if n_head == 2 else []
    return _Head(comments, body, starts, sep, decimal, n_head, names, units_row)


def channel_names(source: Source) -> list[str]:
    """The column names of a table (``'0'``, ``'1'``, … without a header row), from its first 64 KiB."""
    raw = source.head(_NAMES_BYTES)
    # Cut at the last full line, so a multi-byte character split at the limit cannot spoil decoding.
    if len(raw) == _NAMES_BYTES and b"\n" in raw:
        raw = raw[:raw.rfind(b"\n") + 1]
    return _scan(_lines_text(_decode_text(raw, source.name)), source.name).names


def _lines_text(text: str) -> str:
    """Old Mac files end lines with '\\r' alone: make those '\\n' (same length, so offsets still hold)."""
    return text.replace("\r", "\n") if "\n" not in text and "\r" in text else text


def _head_of(raw: bytes, name: str) -> tuple[str, str, int]:
    """(decoded head text, encoding for pandas, bytes before the text) of a table's first _HEAD_BYTES."""
    part = raw[:_HEAD_BYTES]
    if len(raw) > _HEAD_BYTES:
        cut = max(part.rfind(b"\n"), part.rfind(b"\r"))
        if cut < 0:  # not one line end in the first 4 MiB
            limits.check_line(name, len(raw))
        part = part[:cut + 1]
        # The line after the head: a giant one would otherwise leave the head looking like a header alone.
        ends = [e for e in (raw.find(b"\n", cut + 1, cut + 2 + limits.MAX_LINE_CHARS),
                            raw.find(b"\r", cut + 1, cut + 2 + limits.MAX_LINE_CHARS)) if e >= 0]
        if not ends and len(raw) - cut - 1 > limits.MAX_LINE_CHARS:
            limits.check_line(name, len(raw) - cut - 1, part.count(b"\n") + 1)
    text = _decode_text(part, name)
    bom = 3 if raw.startswith(b"\xef\xbb\xbf") else 0
    try:
        part[bom:].decode("utf-8")
        encoding = "utf-8"
    except UnicodeDecodeError:
        encoding = "latin-1"
    return _lines_text(text), encoding, bom


def _time_column(names: list[str], n_head: int, ecg: Any, ppg: Any) -> int | None:
    """The time column, by name; never a column the user named as ECG/PPG."""
    if not n_head:
        return None
    for i, n in enumerate(names):
        if normalize_name(n) in TIME_NAMES and (ecg is None or str(ecg) != n) and (ppg is None or str(ppg) != n):
            return i
    return None


def _check_rows(head: _Head, name: str) -> None:
    """Each scanned row has as many fields as the header names columns (pandas reads only the used ones)."""
    for k, ln in enumerate(head.body[head.n_head:], start=head.n_head):
        n = len(_split(ln, head.sep))
        if n > len(head.names):
            raise InputError(f"{name}: malformed table: non-blank row {k + 1} has {n} fields, "
                             f"the first row {len(head.names)}")


def _units_of(head: _Head, cols: list[int]) -> dict[int, str]:
    """Unit per column: from a units row under the names, else from the name ('II [mV]', 'II µV')."""
    units: dict[int, str] = {}
    for i in cols:
        u = (head.units_row[i] if i < len(head.units_row) else "") if head.units_row else unit_from_name(head.names[i])
        if u:
            units[i] = u
    return units


def read(source: Source, fs: float | None = None, ecg: str | int | None = None,
         ppg: str | int | None = None) -> Record:
    """Read a CSV/TSV/TXT table; ``fs`` (Hz) overrides the time column and comment lines."""
    import pandas as pd

    raw = source.read_bytes()
    text, encoding, bom = _head_of(raw, source.name)
    head = _scan(text, source.name)
    names, units_row, decimal = head.names, head.units_row, head.decimal
    if len(head.body) <= head.n_head:
        raise InputError(f"{source.name}: header only, no data rows (columns: {', '.join(names)})")
    n_lines = max(raw.count(b"\n"), raw.count(b"\r"))
    limits.check_samples(source.name, n_lines - head.n_head)

    meta = new_meta(source, "csv")
    time_idx = _time_column(names, head.n_head, ecg, ppg)
    exclude = (time_idx,) if time_idx is not None else ()
    if not head.n_head and ecg is None and ppg is None:
        raise InputError(f"{source.name}: no header row naming the columns ({len(names)} columns); "
                         f"pass --ecg INDEX and/or --ppg INDEX (0-based) and --fs HZ")
    rate_comment = next((m for c in head.comments if (m := _FS_COMMENT.search(c[:_COMMENT_CHARS]))), None)
    if fs is None and time_idx is None and rate_comment is None:
        raise InputError(f"{source.name}: no time column and no sampling rate; pass --fs HZ (the rate in Hz)")
    choice = choose_channels(names, source.name, ecg=ecg, ppg=ppg, exclude=exclude)
    _check_rows(head, source.name)
    leads = ecg_lead_columns(names, choice, exclude)
    used = sorted({i for i in (*exclude, *leads, choice.ppg) if i is not None})
    body = io.BytesIO(raw)  # shares raw's buffer: no copy of a large file
    body.seek(bom + len(text[:head.starts[head.n_head]].encode(encoding)))
    try:
        df = pd.read_csv(body, sep=r"\s+" if head.sep is None else head.sep, header=None, usecols=used,
                         decimal=decimal, skipinitialspace=True, quotechar='"', engine="c", comment="#",
                         encoding=encoding, na_values=list(_NA_TOKENS - {""}), keep_default_na=True, dtype=None,
                         low_memory=False, nrows=limits.MAX_RECORD_SAMPLES + 1)
    except pd.errors.ParserError as e:
        raise InputError(f"{source.name}: malformed table: {' '.join(str(e).split())[:300]}") from None
    except pd.errors.EmptyDataError:
        raise InputError(f"{source.name}: header only, no data rows (columns: {', '.join(names)})") from None
    except ValueError as e:  # usecols beyond the rows' fields
        raise InputError(f"{source.name}: malformed table: {' '.join(str(e).split())[:300]}") from None
    limits.check_samples(source.name, len(df))

    def numeric(idx: int) -> np.ndarray:
        col = df[idx]
        if not pd.api.types.is_numeric_dtype(col):  # object, or pandas >= 3's str dtype
            s = col.astype(str).str.strip().str.strip("'\"")
            if decimal == ",":
                s = s.str.replace(",", ".", regex=False)
            num = pd.to_numeric(s, errors="coerce")
            bad = num.isna() & ~s.str.lower().isin(_NA_TOKENS) & col.notna()
            if bad.any():
                row = int(np.argmax(bad.to_numpy()))
                raise InputError(f"{source.name}: column {names[idx].strip()[:40]!r} holds text "
                                 f"{str(col.iloc[row])[:40]!r} at data row {row + 1}, where numbers are expected")
            return num.to_numpy(dtype=np.float64)
        return col.to_numpy(dtype=np.float64)

    picked = {mod: i for mod, i in (("ecg", choice.ecg), ("ppg", choice.ppg)) if i is not None}
    extra = leads[1:] if limits.fits_read(len(df), len(picked) + len(leads[1:])) else []
    if len(leads) > 1 and not extra:
        meta["notes"].append(f"{len(leads) - 1} other ECG lead(s) not read: the record is too long to hold "
                             f"every lead (m2ae.io.limits.MAX_READ_SAMPLES)")
    sig = {mod: numeric(i) for mod, i in picked.items()}
    other = {i: numeric(i) for i in extra}
    grid = None
    if fs is not None:
        rate = fs
        if time_idx is not None:
            meta["notes"].append(f"sampling rate {float(fs):g} Hz given; time column {names[time_idx]!r} ignored")
    elif time_idx is not None:
        t = time_seconds(df[time_idx], names[time_idx], units_row[time_idx] if units_row else "", source.name, meta)
        rate, grid = fs_from_time(t, names[time_idx], source.name, meta)
        meta["time_column"] = names[time_idx].strip()
    else:
        assert rate_comment is not None, "a record without a rate was refused above"
        rate = float(rate_comment.group(1))
        meta["notes"].append(f"sampling rate {rate:g} Hz read from a comment line")
    if grid is not None:
        n_samples = int(grid.max()) + 1
        placed = grid >= 0

        def on_grid(x: np.ndarray) -> np.ndarray:
            y = np.full(n_samples, np.nan)
            y[grid[placed]] = x[placed]
            return y

        sig = {key: on_grid(x) for key, x in sig.items()}
        other = {key: on_grid(x) for key, x in other.items()}
    units = _units_of(head, [*picked.values(), *extra])
    meta["units"] = {}
    for mod, i in picked.items():
        sig[mod] = add_channel(meta, mod, sig[mod], units.get(i), choice.ecg_name if mod == "ecg" else None)
    choice.to_meta(meta)
    ecg_leads = collect_leads(meta, sig.get("ecg"), [(names[i].strip(), other[i], units.get(i)) for i in extra])
    return make_record(source.name, rate, sig.get("ecg"), sig.get("ppg"), meta, ecg_leads=ecg_leads)
