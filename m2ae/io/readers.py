"""``load_record``: one ECG/PPG file (path or in-memory upload) -> ``m2ae.Record``.

Formats: WFDB (.hea + .dat/.mat, multi-segment too), CSV/TSV/TXT, NPZ, NPY, EDF/EDF+/BDF and
VitalDB .vital. The ECG channel is lead II when present (else another ECG lead), PPG is
PLETH/PPG/BVP; ``ecg=``/``ppg=`` name a column/channel/key (or a 0-based index) when names do not
tell, and ``"none"`` leaves a modality out. NaN samples are kept for preprocessing to fill or split
at; inf values, all-NaN channels, rates outside [MIN_FS_HZ, MAX_FS_HZ] and files over MAX_FILE_BYTES
are refused with a one-line ``InputError``.

>>> rec = load_record("bidmc_01_Signals.csv")           # doctest: +SKIP
>>> rec.fs, rec.meta["ecg_column"], rec.meta["ppg_column"]  # doctest: +SKIP
(125.0, 'II', 'PLETH')
"""
from __future__ import annotations

import io
import json
import re
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import InputError
from ..record import Record
from ._common import (ChannelChoice, Source, choose_channels, ecg_rank, make_record, normalize_name, open_source,
                      units_to_mv)

SUPPORTED = "WFDB (.hea + .dat/.mat), CSV/TSV/TXT, NPZ, NPY, EDF/BDF, VitalDB .vital"
_EXT = {".hea": "wfdb", ".dat": "wfdb", ".csv": "csv", ".tsv": "csv", ".txt": "csv", ".npz": "npz",
        ".npy": "npy", ".edf": "edf", ".bdf": "edf", ".rec": "edf", ".vital": "vital"}


def load_record(src: Any, fs: float | None = None, ecg: str | int | None = None, ppg: str | int | None = None,
                name: str | None = None, fmt: str | None = None) -> Record:
    """Read one record of ECG and/or PPG.

    src : a path (str/Path); a binary file-like with ``.name`` (Streamlit ``UploadedFile``, ``BytesIO``);
        or ``{filename: bytes}`` for multi-file uploads (WFDB ``.hea`` + ``.dat``/``.mat``, segments).
        Uploads stay in memory; libraries that need a path get a RAM-backed temp dir, removed at once.
    fs : sampling rate in Hz, for files that do not carry one (NPY, CSV without a time column);
        overrides the file's own rate when given.
    ecg, ppg : column/channel/key name or 0-based index to use; ``"none"`` drops that modality.
    name : name to show in messages (and to sniff the format from) instead of the path/upload name.
    fmt : force a format: wfdb, csv, npz, npy, edf, vital.

    Raises ``InputError`` with one line naming the input and the problem.
    """
    source = open_source(src, name)
    fmt = (fmt or sniff_format(source)).lower()
    if fmt not in READERS:
        raise InputError(f"{source.name}: unknown format {fmt!r}; supported: {', '.join(READERS)}")
    try:
        return READERS[fmt](source, fs=fs, ecg=ecg, ppg=ppg)
    except InputError:
        raise
    except MemoryError:
        raise InputError(f"{source.name}: not enough memory to read this record; split it into smaller files") from None
    except Exception as e:  # a library's complaint about a malformed file, shown as one line
        msg = " ".join(str(e).split()) or type(e).__name__
        raise InputError(f"{source.name}: could not read as {fmt.upper()}: {msg[:300]}") from e


def sniff_format(source: Source) -> str:
    """Format from the file name, then from magic bytes; unknown formats are refused."""
    ext = source.suffix
    if ext == ".mat":
        if _has_sibling(source, ".hea"):
            return "wfdb"
        if source.head(8).startswith(b"\x89HDF") or b"MATLAB 7.3" in source.head(128):
            raise InputError(f"{source.name}: MATLAB v7.3 (HDF5) file without a WFDB header; for PulseDB segment "
                             f"files use m2ae.io.iter_corpus(path, layout='pulsedb')")
        raise InputError(f"{source.name}: .mat file without its WFDB header {Path(source.main).stem}.hea "
                         f"(upload/keep both together)")
    if ext == ".dat" and not _has_sibling(source, ".hea"):
        raise InputError(f"{source.name}: .dat file without its WFDB header {Path(source.main).stem}.hea "
                         f"(upload/keep both together)")
    if ext in _EXT:
        return _EXT[ext]
    head = source.head(256)
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith(b"PK\x03\x04"):
        return "npz"
    if head.startswith(b"\x1f\x8b"):
        return "vital"  # VitalDB files are gzip streams
    if len(head) >= 8 and (head[:8] == b"0       " or head[:8] == b"\xffBIOSEMI"):
        return "edf"
    shown = ext or "no extension"
    raise InputError(f"{source.name}: unknown format ({shown}); supported: {SUPPORTED}")


def _has_sibling(source: Source, ext: str) -> bool:
    stem = Path(source.main).stem
    if source.path is not None:
        return source.path.with_suffix(ext).exists() or source.path.with_suffix(ext.upper()).exists()
    return any(Path(f).stem == stem and Path(f).suffix.lower() == ext for f in source.files)


def _channel_meta(choice: ChannelChoice, meta: dict) -> dict:
    if choice.ecg is not None:
        meta["ecg_column"], meta["ecg_matched_by"] = choice.ecg_name, choice.ecg_how
    if choice.ppg is not None:
        meta["ppg_column"], meta["ppg_matched_by"] = choice.ppg_name, choice.ppg_how
    return meta


def _lead_from_name(name: str | None) -> str | None:
    """'ECG_II' -> 'II', 'Lead V5' -> 'V5'; None when the lead is unknown ('ECG') or the name is
    not an ECG name at all (a column picked with --ecg)."""
    if not name or ecg_rank(name) is None:
        return None
    n = normalize_name(name)
    for p in ("ecg", "ekg", "lead"):
        if n.startswith(p):
            n = n[len(p):]
    n = n[4:] if n.startswith("lead") else n
    if not n or n.isdigit() or n in ("signal", "raw", "wave", "filtered", "mv", "uv"):
        return None
    return {"avr": "aVR", "avl": "aVL", "avf": "aVF"}.get(n, n.upper())


# --- CSV / TSV ------------------------------------------------------------------------------------

_TIME_NAMES = {"time", "times", "t", "timestamp", "timestamps", "elapsedtime", "seconds", "sec", "secs",
               "ms", "millis", "milliseconds", "timems", "timesec", "times", "timeins", "timeinseconds",
               "datetime", "date", "clocktime", "timestampms", "tms", "ts", "zeit", "tiempo", "temps", "tempo"}
_EPOCH_2000_S, _EPOCH_2100_S = 946_684_800.0, 4_102_444_800.0
_FS_COMMENT = re.compile(r"(?:\bfs\b|sampl\w*\s*(?:rate|frequency)|sfreq)\s*[:=]?\s*([0-9]+(?:\.[0-9]*)?)", re.I)
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_NA_TOKENS = {"", "nan", "na", "n/a", "null", "none", "-", "--", "?"}


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


def _is_number(tok: str, decimal: str) -> bool:
    t = tok.strip().strip("'\"")
    if decimal == ",":
        t = t.replace(",", ".")
    return t.lower() in _NA_TOKENS or bool(_NUMBER.match(t)) or t.lower() in ("inf", "-inf", "+inf")


def _split(line: str, sep: str | None) -> list[str]:
    return line.split() if sep is None else line.split(sep)


def _detect_delimiter(lines: list[str]) -> str | None:
    """The delimiter splitting every sample line into the same number (>1) of fields; None = whitespace."""
    sample = lines[:50]
    best = None
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


def _parse_clock(values: list[str]) -> np.ndarray | None:
    """'h:mm:ss.fff' / 'm:ss.fff' elapsed times (PhysioNet CSV exports) -> seconds, else None."""
    out = np.empty(len(values))
    for i, v in enumerate(values):
        parts = v.strip().strip("'\"[]").split(":")
        try:
            secs = 0.0
            for p in parts:
                secs = secs * 60 + float(p)
        except ValueError:
            return None
        out[i] = secs
    return out


def _time_seconds(col, name: str, unit_hint: str, source: str, meta: dict) -> np.ndarray:
    """A time column -> seconds from the first sample; clock times set ``meta['start_time']``."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(col):
        t = col.to_numpy(dtype=np.float64)
        low = (name + " " + unit_hint).lower()
        if re.search(r"(\[|\(|_|\b)ms\b|milli", low) or normalize_name(name) in ("ms", "timems", "millis",
                                                                                "milliseconds", "timestampms"):
            t = t / 1000.0
        elif not re.search(r"(\[|\(|_|\b)(s|sec|secs|seconds)\b", low):
            d = np.diff(t[np.isfinite(t)])
            if d.size and np.median(d) >= 1.0:
                # Without a unit, steps >= 1 cannot be seconds at >= 20 Hz: read them as milliseconds.
                t = t / 1000.0
                meta["notes"].append(f"time column {name.strip()!r} read as milliseconds")
        if not np.isfinite(t).any():
            return t
        t0 = t[np.isfinite(t)][0]
        if _EPOCH_2000_S <= t0 <= _EPOCH_2100_S:  # Unix time stamps: keep the clock time
            import datetime as dt

            meta["start_time"] = dt.datetime.fromtimestamp(t0, dt.timezone.utc).isoformat()
        return t - t0
    values = col.astype(str).tolist()
    clock = _parse_clock(values)
    if clock is not None:
        return clock - clock[0]
    ts = pd.to_datetime(col, errors="coerce")
    if ts.isna().mean() > 0.01:
        bad = int(np.argmax(ts.isna().to_numpy()))
        raise InputError(f"{source}: time column {name.strip()!r} has an unreadable value {values[bad]!r} "
                         f"at data row {bad + 1}")
    meta["start_time"] = ts.iloc[0].isoformat()
    return (ts - ts.iloc[0]).dt.total_seconds().to_numpy()


def _fs_from_time(t: np.ndarray, name: str, source: str, meta: dict) -> tuple[float, np.ndarray | None]:
    """Sampling rate from a time column; returns (fs, grid positions when the column has gaps)."""
    ok = np.isfinite(t)
    if ok.sum() < 2:
        raise InputError(f"{source}: time column {name.strip()!r} has fewer than two readable values")
    tt = t[ok]
    d = np.diff(tt)
    if (d < 0).any():
        i = int(np.argmax(d < 0))
        raise InputError(f"{source}: time column {name.strip()!r} is not increasing "
                         f"(data row {i + 2}: {tt[i]:g} -> {tt[i + 1]:g} s)")
    if tt[-1] <= tt[0]:
        raise InputError(f"{source}: time column {name.strip()!r} does not advance ({tt[0]:g} s throughout)")
    # Exported time stamps are often rounded (BIDMC: 100.02, 100.02, 100.03): judge the column by
    # its average rate and allow each stamp one sample interval of rounding.
    fs_avg = (len(tt) - 1) / (tt[-1] - tt[0])
    resid = tt - (tt[0] + np.arange(len(tt)) / fs_avg)
    if np.abs(resid).max() <= 1.0 / fs_avg:
        fs = fs_avg
        if abs(fs - round(fs)) <= 1e-3 * fs:
            fs = float(round(fs))
        return fs, None
    dt = float(np.median(d[d > 0]))
    fs_med = 1.0 / dt
    # Gaps: place samples on the sampling grid so missing stretches become NaN runs.
    fs = fs_med if abs(fs_med - round(fs_med)) > 1e-3 * fs_med else float(round(fs_med))
    pos = np.round((t[ok] - tt[0]) * fs).astype(np.int64)
    if len(np.unique(pos)) != len(pos):
        return fs, None
    n_gaps = int((d > 1.5 * dt).sum())
    meta["notes"].append(f"time column has {n_gaps} gaps; missing samples set to NaN on a {fs:g} Hz grid")
    full = np.full(t.shape, -1, dtype=np.int64)
    full[ok] = pos
    return fs, full


def _read_csv(source: Source, fs=None, ecg=None, ppg=None) -> Record:
    import pandas as pd

    text = _decode_text(source.read_bytes(), source.name)
    # Only the head is scanned in Python (comments, header, delimiter); pandas' C parser reads the rest.
    comments: list[str] = []
    body: list[str] = []
    starts: list[int] = []
    pos = 0
    while len(body) < 80 and pos < len(text):
        end = text.find("\n", pos)
        end = len(text) if end < 0 else end
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
        raise InputError(f"{source.name}: no data rows (the file holds no table)")
    sep = forced_sep or _detect_delimiter(body[:1] + body[2:60] if len(body) > 2 else body)
    data_sample = [ln for ln in body[1:60]]
    decimal = "."
    if sep != "," and any(re.search(r"\d,\d", ln) for ln in data_sample):
        decimal = ","

    def header_like(line: str) -> bool:
        toks = [t for t in _split(line, sep) if t.strip()]
        return bool(toks) and sum(not _is_number(t, decimal) for t in toks) > len(toks) / 2

    n_head = 0
    while n_head < min(2, len(body)) and header_like(body[n_head]):
        n_head += 1
    first = _split(body[0], sep)
    if n_head:
        names = [t.strip().strip("'\"").strip() for t in first]
    else:
        names = [str(i) for i in range(len(first))]
    units_row = [t.strip().strip("'\"") for t in _split(body[1], sep)] if n_head == 2 else []
    if len(body) <= n_head:
        raise InputError(f"{source.name}: header only, no data rows (columns: {', '.join(names)})")

    meta: dict[str, Any] = {"source": source.name, "format": "csv", "notes": [], "labels": {},
                            "record_id": Path(source.main).stem}
    # The time column, by name; it is never the ECG/PPG column.
    time_idx = None
    if n_head:
        for i, n in enumerate(names):
            if normalize_name(n) in _TIME_NAMES and (ecg is None or str(ecg) != n) and (ppg is None or str(ppg) != n):
                time_idx = i
                break
    exclude = (time_idx,) if time_idx is not None else ()
    if not n_head and ecg is None and ppg is None:
        raise InputError(f"{source.name}: no header row naming the columns ({len(names)} columns); "
                         f"pass --ecg INDEX and/or --ppg INDEX (0-based) and --fs HZ")
    choice = choose_channels(names, source.name, ecg=ecg, ppg=ppg, exclude=exclude)
    try:
        df = pd.read_csv(io.StringIO(text[starts[n_head]:]), sep=r"\s+" if sep is None else sep, header=None,
                         decimal=decimal, skipinitialspace=True, quotechar='"', engine="c", comment="#",
                         na_values=list(_NA_TOKENS - {""}), keep_default_na=True, dtype=None, low_memory=False)
    except pd.errors.ParserError as e:
        raise InputError(f"{source.name}: malformed table: {' '.join(str(e).split())}") from None
    except pd.errors.EmptyDataError:
        raise InputError(f"{source.name}: header only, no data rows (columns: {', '.join(names)})") from None
    if df.shape[1] != len(names):
        raise InputError(f"{source.name}: the header names {len(names)} columns but the rows have {df.shape[1]}")

    def numeric(idx: int) -> np.ndarray:
        col = df.iloc[:, idx]
        if not pd.api.types.is_numeric_dtype(col):  # object, or pandas >= 3's str dtype
            s = col.astype(str).str.strip().str.strip("'\"")
            if decimal == ",":
                s = s.str.replace(",", ".", regex=False)
            num = pd.to_numeric(s, errors="coerce")
            bad = num.isna() & ~s.str.lower().isin(_NA_TOKENS) & col.notna()
            if bad.any():
                row = int(np.argmax(bad.to_numpy()))
                raise InputError(f"{source.name}: column {names[idx].strip()!r} holds text {str(col.iloc[row])[:40]!r} "
                                 f"at data row {row + 1}, where numbers are expected")
            return num.to_numpy(dtype=np.float64)
        return col.to_numpy(dtype=np.float64)

    sig = {m: numeric(i) for m, i in (("ecg", choice.ecg), ("ppg", choice.ppg)) if i is not None}
    grid = None
    if fs is not None:
        rate = fs
        if time_idx is not None:
            meta["notes"].append(f"sampling rate {float(fs):g} Hz given; time column {names[time_idx]!r} ignored")
    elif time_idx is not None:
        t = _time_seconds(df.iloc[:, time_idx], names[time_idx], units_row[time_idx] if units_row else "",
                          source.name, meta)
        rate, grid = _fs_from_time(t, names[time_idx], source.name, meta)
        meta["time_column"] = names[time_idx].strip()
    else:
        m = next((m for c in comments if (m := _FS_COMMENT.search(c))), None)
        if m is None:
            raise InputError(f"{source.name}: no time column and no sampling rate; pass --fs HZ")
        rate = float(m.group(1))
        meta["notes"].append(f"sampling rate {rate:g} Hz read from a comment line")
    if grid is not None:
        n = int(grid.max()) + 1
        for m_, x in sig.items():
            y = np.full(n, np.nan)
            y[grid[grid >= 0]] = x[grid >= 0]
            sig[m_] = y
    units = {}
    if units_row:
        for m_, i in (("ecg", choice.ecg), ("ppg", choice.ppg)):
            if i is not None and units_row[i]:
                units[m_] = units_row[i]
    else:
        for m_, i in (("ecg", choice.ecg), ("ppg", choice.ppg)):
            u = re.search(r"[\[(]([^\])]+)[\])]", names[i]) if i is not None else None
            if u:
                units[m_] = u.group(1).strip()
    if "ecg" in sig:
        sig["ecg"], u = units_to_mv(sig["ecg"], units.get("ecg"), meta["notes"])
        if u:
            units["ecg"] = u
        meta["lead"] = _lead_from_name(choice.ecg_name)
    meta["units"] = units
    _channel_meta(choice, meta)
    return make_record(source.name, rate, sig.get("ecg"), sig.get("ppg"), meta)


# --- NPZ / NPY ------------------------------------------------------------------------------------

_FS_KEYS = ("fs", "fs_hz", "sampling_rate", "sample_rate", "samplingrate", "sfreq", "freq", "srate", "rate")


def _pickle_error(source: Source, what: str) -> InputError:
    return InputError(f"{source.name}: {what} holds Python objects (pickle); m2ae never unpickles uploaded data, "
                      f"save plain numeric arrays instead")


def _read_npz(source: Source, fs=None, ecg=None, ppg=None) -> Record:
    import zipfile

    try:
        z = np.load(io.BytesIO(source.read_bytes()), allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise InputError(f"{source.name}: not a readable NPZ archive ({' '.join(str(e).split())[:120]})") from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise InputError(f"{source.name}: holds a single array, not an NPZ archive; rename it .npy")
    arrays: dict[str, np.ndarray] = {}
    with z:
        for k in z.files:
            try:
                arrays[k] = z[k]
            except ValueError as e:
                if "allow_pickle" in str(e) or "Object arrays" in str(e):
                    raise _pickle_error(source, f"array {k!r}") from None
                raise InputError(f"{source.name}: array {k!r} is unreadable ({e})") from None
            except (zipfile.BadZipFile, OSError, EOFError) as e:
                raise InputError(f"{source.name}: array {k!r} is truncated or corrupt ({e})") from None
    meta: dict[str, Any] = {"source": source.name, "format": "npz", "notes": [], "labels": {},
                            "record_id": Path(source.main).stem}
    if "meta_json" in arrays:
        try:
            stored = json.loads(str(arrays.pop("meta_json")))
            if isinstance(stored, dict):
                meta.update({k: v for k, v in stored.items() if k not in ("source", "notes")})
        except json.JSONDecodeError:
            meta["notes"].append("meta_json could not be parsed and was ignored")
    fs_key = next((k for k in arrays if normalize_name(k) in _FS_KEYS), None)
    rate = fs
    if rate is None:
        if fs_key is None:
            raise InputError(f"{source.name}: no sampling rate (key 'fs') in the archive; pass --fs HZ "
                             f"(keys: {', '.join(arrays) or 'none'})")
        v = arrays[fs_key]
        if v.size != 1 or not np.issubdtype(v.dtype, np.number):
            raise InputError(f"{source.name}: key {fs_key!r} must be one number (the rate in Hz), got shape {v.shape}")
        rate = float(v.reshape(-1)[0])
    keys = [k for k in arrays if k != fs_key]
    # 'ecg'/'ppg' keys first (the documented layout), then any recognised name.
    plain = {"ecg": "ecg" if "ecg" in arrays else None, "ppg": "ppg" if "ppg" in arrays else None}
    choice = choose_channels(keys, source.name, ecg=ecg if ecg is not None else plain["ecg"],
                             ppg=ppg if ppg is not None else plain["ppg"])
    for m in ("ecg", "ppg"):
        if getattr(choice, m) is not None and plain[m] is not None and (ecg if m == "ecg" else ppg) is None:
            setattr(choice, f"{m}_how", "name")
    sig = {m: arrays[keys[i]] for m, i in (("ecg", choice.ecg), ("ppg", choice.ppg)) if i is not None}
    _channel_meta(choice, meta)
    if "ecg" in sig and not meta.get("lead"):
        meta["lead"] = _lead_from_name(choice.ecg_name)
    return make_record(source.name, rate, sig.get("ecg"), sig.get("ppg"), meta)


def _read_npy(source: Source, fs=None, ecg=None, ppg=None) -> Record:
    try:
        a = np.load(io.BytesIO(source.read_bytes()), allow_pickle=False)
    except ValueError as e:
        if "allow_pickle" in str(e) or "Object arrays" in str(e):
            raise _pickle_error(source, "the array") from None
        raise InputError(f"{source.name}: not a readable NPY array ({' '.join(str(e).split())[:120]})") from None
    except (OSError, EOFError) as e:
        raise InputError(f"{source.name}: not a readable NPY array ({' '.join(str(e).split())[:120]})") from None
    if fs is None:
        raise InputError(f"{source.name}: NPY files carry no sampling rate; pass --fs HZ")
    meta: dict[str, Any] = {"source": source.name, "format": "npy", "notes": [], "labels": {},
                            "record_id": Path(source.main).stem}
    if a.dtype.names:  # structured array: fields are named channels
        names = list(a.dtype.names)
        cols = [np.asarray(a[n]).reshape(-1) for n in names]
    elif a.ndim == 1:
        if ecg is None and ppg is None:
            raise InputError(f"{source.name}: a 1-D array is one channel; say which with --ecg 0 or --ppg 0")
        names, cols = ["0"], [a]
    elif a.ndim == 2:
        if a.shape[0] < a.shape[1] and a.shape[0] <= 16:
            a = a.T  # channels stored as rows
        names = [str(i) for i in range(a.shape[1])]
        cols = [a[:, i] for i in range(a.shape[1])]
    else:
        raise InputError(f"{source.name}: expected a 1-D or 2-D array (samples x channels), got shape {a.shape}")
    if not a.dtype.names and (ecg is None and ppg is None):
        raise InputError(f"{source.name}: NPY channels have no names ({len(names)} columns); "
                         f"pass --ecg INDEX and/or --ppg INDEX (0-based)")
    choice = choose_channels(names, source.name, ecg=ecg, ppg=ppg)
    _channel_meta(choice, meta)
    if choice.ecg is not None:
        meta["lead"] = _lead_from_name(choice.ecg_name) if a.dtype.names else None
    return make_record(source.name, fs, cols[choice.ecg] if choice.ecg is not None else None,
                       cols[choice.ppg] if choice.ppg is not None else None, meta)


# --- WFDB -----------------------------------------------------------------------------------------

_COMMENT_KV = re.compile(r"<\s*([\w ]+?)\s*>\s*:?\s*([^<]*)")
_COMMENT_LINE = re.compile(r"^\s*(age|sex|gender|dx|diagnosis)\s*:\s*(.+?)\s*$", re.I)


def labels_from_comments(comments: list[str], meta: dict) -> None:
    """WFDB header comments -> labels: ``<age>: 88 <sex>: F`` (MIMIC/BIDMC), ``Age: 60``, m2ae's JSON."""
    from .writers import META_COMMENT

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


def _wfdb_names_and_check(rec_path: Path, source: Source):
    """Read the header, make sure every data file is there, return (header, channel names)."""
    import wfdb

    try:
        h = wfdb.rdheader(str(rec_path))
    except Exception as e:
        raise InputError(f"{source.name}: not a valid WFDB header ({' '.join(str(e).split())[:160]})") from None
    where = "upload it together with the .hea" if source.path is None else "keep it next to the .hea"
    folder = rec_path.parent
    if isinstance(h, wfdb.MultiRecord):
        names = None
        data_files: list[Path] = []
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
            if names is None:
                names = list(sh.sig_name or [])
        if h.layout == "variable":
            names = list(wfdb.rdheader(str(folder / h.seg_name[0])).sig_name or [])
        _check_total_size(data_files, source)
        return h, names or []
    for f in set(h.file_name or []):
        if not (folder / f).exists():
            raise InputError(f"{source.name}: data file {f} is missing ({where})")
    _check_total_size([folder / f for f in set(h.file_name or [])], source)
    return h, list(h.sig_name or [])


def _check_total_size(files: list[Path], source: Source) -> None:
    from .. import contract

    total = sum(f.stat().st_size for f in files if f.exists())
    if total > contract.MAX_FILE_BYTES:
        raise InputError(f"{source.name}: data files hold {total / 2**20:.1f} MiB, more than the "
                         f"{contract.MAX_FILE_BYTES / 2**20:.0f} MiB limit (m2ae.contract.MAX_FILE_BYTES); "
                         f"read it in pieces (segments) with m2ae.io.iter_corpus")


class _Joined:
    """A multi-segment record joined into one array (the few attributes read_wfdb_path uses)."""

    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)


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


def read_wfdb_path(rec_path: Path, source: Source, fs=None, ecg=None, ppg=None,
                   extra_meta: dict | None = None) -> Record:
    """Read a WFDB record (single or multi-segment) at ``rec_path`` (no extension) into a Record."""
    import wfdb

    h, names = _wfdb_names_and_check(rec_path, source)
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
    meta: dict[str, Any] = {"source": source.name, "format": "wfdb", "notes": [], "labels": {},
                            "record_id": r.record_name, "units": {}}
    if getattr(r, "base_datetime", None) is not None:
        meta["start_time"] = r.base_datetime.isoformat()
    meta["comments"] = list(r.comments or [])
    labels_from_comments(meta["comments"], meta)
    if extra_meta:
        labels = {**meta["labels"], **extra_meta.get("labels", {})}
        meta.update(extra_meta)
        meta["labels"] = labels
    out = {}
    for m in ("ecg", "ppg"):
        i = getattr(choice, m)
        if i is None:
            continue
        j = picked.index(i)
        if r.sig_name[j] != names[i]:  # the library returned channels in another order
            j = col[names[i]]
        x = sig[:, j].astype(np.float64)
        unit = (r.units or [None] * len(r.sig_name))[j]
        if m == "ecg":
            x, unit = units_to_mv(x, unit, meta["notes"])
            meta["lead"] = _lead_from_name(names[i])
        if unit:
            meta["units"][m] = unit
        out[m] = x
    _channel_meta(choice, meta)
    rate = r.fs
    if fs is not None and float(fs) != float(r.fs):
        meta["notes"].append(f"sampling rate {float(fs):g} Hz given instead of the header's {r.fs:g} Hz")
        rate = fs
    return make_record(source.name, rate, out.get("ecg"), out.get("ppg"), meta)


def _read_wfdb(source: Source, fs=None, ecg=None, ppg=None) -> Record:
    if source.suffix in (".dat", ".mat"):
        stem = Path(source.main).stem
        hea = next((f for f in source.files if f.lower() == f"{stem.lower()}.hea"), f"{stem}.hea")
        source = Source(name=source.name, path=source.path.with_suffix(".hea") if source.path else None,
                        files=source.files, main=hea)
    if source.path is None and source.main not in source.files:
        raise InputError(f"{source.name}: WFDB header {source.main} was not uploaded")
    with source.on_disk() as hea_path:
        return read_wfdb_path(hea_path.with_suffix(""), source, fs=fs, ecg=ecg, ppg=ppg)


# --- EDF / BDF ------------------------------------------------------------------------------------

def _resample_to(x: np.ndarray, fs_from: float, fs_to: float) -> np.ndarray:
    from scipy.signal import resample_poly

    frac = Fraction(fs_to / fs_from).limit_denominator(1000)
    return resample_poly(x, frac.numerator, frac.denominator)


def _read_edf(source: Source, fs=None, ecg=None, ppg=None) -> Record:
    import pyedflib

    with source.on_disk() as path:
        try:
            f = pyedflib.EdfReader(str(path))
        except OSError as e:
            raise InputError(f"{source.name}: not a readable EDF/BDF file ({' '.join(str(e).split())[:160]})") from None
        try:
            names = list(f.getSignalLabels())
            choice = choose_channels(names, source.name, ecg=ecg, ppg=ppg)
            meta: dict[str, Any] = {"source": source.name, "format": "edf", "notes": [], "labels": {},
                                    "record_id": Path(source.main).stem, "units": {}}
            from .writers import EDF_UNKNOWN_START

            start = f.getStartdatetime()
            if start.replace(tzinfo=None) != EDF_UNKNOWN_START:  # 01.01.85 00:00 means "not known"
                meta["start_time"] = start.isoformat()
            code = (f.getPatientCode() or "").strip()
            if code:
                meta["subject_id"] = code
            sex = (getattr(f, "getSex", None) or f.getGender)()
            if isinstance(sex, str) and sex[:1].upper() in ("M", "F"):
                meta["labels"]["sex"] = sex[:1].upper()
            sig, rates = {}, {}
            for m in ("ecg", "ppg"):
                i = getattr(choice, m)
                if i is None:
                    continue
                x = f.readSignal(i).astype(np.float64)
                unit = f.getPhysicalDimension(i).strip()
                if m == "ecg":
                    x, unit = units_to_mv(x, unit, meta["notes"])
                    meta["lead"] = _lead_from_name(names[i])
                if unit:
                    meta["units"][m] = unit
                sig[m], rates[m] = x, float(f.getSampleFrequency(i))
        finally:
            f.close()
    rate = max(rates.values())
    for m in sig:
        if rates[m] != rate:
            sig[m] = _resample_to(sig[m], rates[m], rate)
            meta["notes"].append(f"{m.upper()} resampled from {rates[m]:g} to {rate:g} Hz to share one rate")
    if len(sig) == 2 and len(sig["ecg"]) != len(sig["ppg"]):
        n = min(len(sig["ecg"]), len(sig["ppg"]))
        if abs(len(sig["ecg"]) - len(sig["ppg"])) > 2:
            raise InputError(f"{source.name}: ECG and PPG cover different durations "
                             f"({len(sig['ecg']) / rate:.2f} vs {len(sig['ppg']) / rate:.2f} s)")
        sig = {m: x[:n] for m, x in sig.items()}
    _channel_meta(choice, meta)
    if fs is not None and float(fs) != rate:
        meta["notes"].append(f"sampling rate {float(fs):g} Hz given instead of the file's {rate:g} Hz")
        rate = fs
    return make_record(source.name, rate, sig.get("ecg"), sig.get("ppg"), meta)


# --- VitalDB --------------------------------------------------------------------------------------

def vital_tracks(names: list[str]) -> list[str]:
    """Track names without the device prefix ('SNUADC/ECG_II' -> 'ECG_II') for channel matching."""
    return [n.split("/", 1)[-1] for n in names]


def read_vital_path(path: Path, source: Source, fs=None, ecg=None, ppg=None,
                    extra_meta: dict | None = None) -> Record:
    import vitaldb

    vf = vitaldb.VitalFile(str(path))
    waves = [n for n, trk in vf.trks.items() if getattr(trk, "srate", 0) and trk.srate > 0]
    if not waves:
        raise InputError(f"{source.name}: the .vital file holds no waveform tracks")
    # SNUADC is VitalDB's 500 Hz analogue recorder: prefer it over monitor re-exports of the same wave.
    waves.sort(key=lambda n: (not n.startswith("SNUADC/"), n))
    short = vital_tracks(waves)
    # Overrides may name a track in full ('SNUADC/ECG_II') or without its device ('ECG_II').
    ecg = waves.index(ecg) if isinstance(ecg, str) and ecg in waves else ecg
    ppg = waves.index(ppg) if isinstance(ppg, str) and ppg in waves else ppg
    choice = choose_channels(short, source.name, ecg=ecg, ppg=ppg)
    picked = {m: waves[i] for m, i in (("ecg", choice.ecg), ("ppg", choice.ppg)) if i is not None}
    rate = float(fs) if fs is not None else max(vf.trks[t].srate for t in picked.values())
    arr = vf.to_numpy(list(picked.values()), interval=1.0 / rate)
    meta: dict[str, Any] = {"source": source.name, "format": "vital", "notes": [], "labels": {},
                            "record_id": Path(source.main).stem, "units": {}}
    if getattr(vf, "dtstart", None):
        import datetime as _dt

        meta["start_time"] = _dt.datetime.fromtimestamp(vf.dtstart, _dt.timezone.utc).isoformat()
    sig = {}
    for j, (m, trk) in enumerate(picked.items()):
        x = np.asarray(arr[:, j], dtype=np.float64)
        unit = getattr(vf.trks[trk], "unit", "") or None
        if m == "ecg":
            x, unit = units_to_mv(x, unit, meta["notes"])
            meta["lead"] = _lead_from_name(trk.split("/", 1)[-1])
        if unit:
            meta["units"][m] = unit
        sig[m] = x
        meta[f"{m}_column"] = trk
        meta[f"{m}_matched_by"] = getattr(choice, f"{m}_how")
    # Tracks start and stop at different times: trim the shared NaN edges, keep inner NaN gaps.
    both = np.zeros(len(arr), dtype=bool)
    for x in sig.values():
        both |= np.isfinite(x)
    if both.any():
        lo, hi = int(np.argmax(both)), len(both) - int(np.argmax(both[::-1]))
        sig = {m: x[lo:hi] for m, x in sig.items()}
    if extra_meta:
        labels = {**meta["labels"], **extra_meta.get("labels", {})}
        meta.update(extra_meta)
        meta["labels"] = labels
    return make_record(source.name, rate, sig.get("ecg"), sig.get("ppg"), meta)


def _read_vital(source: Source, fs=None, ecg=None, ppg=None) -> Record:
    if not source.head(2) == b"\x1f\x8b":
        raise InputError(f"{source.name}: not a VitalDB .vital file (not gzip-compressed)")
    with source.on_disk() as path:
        return read_vital_path(path, source, fs=fs, ecg=ecg, ppg=ppg)


READERS: dict[str, Callable[..., Record]] = {
    "wfdb": _read_wfdb, "csv": _read_csv, "npz": _read_npz, "npy": _read_npy, "edf": _read_edf, "vital": _read_vital,
}
