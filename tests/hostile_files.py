"""Hostile and malformed input files for ``m2ae read`` (issue 12 item 8), written into a folder.

``generate(root)`` writes every case and returns its ``Case`` list: the file(s), the arguments given
to ``m2ae read``, and what must happen:

- ``ok``: exit 0 and a summary that is right (``check``: rate, duration, a note that says what was
  guessed or dropped);
- ``error``: exit 2 and exactly one line on stderr, ``error: ...`` (``error``: a pattern it matches);
- ``clean``: either of the two (a case where refusing and reading correctly are both right), but
  never a traceback, a crash or a second line.

The cases are the ones issue 12 lists (CSV gap bombs, a 1 GiB zero member in a small NPZ, .vital
span / rate bombs, a 20 MB single line, the regex-backtracking CSVs, WFDB rate fields ``-250`` /
``-500`` / ``abc``, ``II µV`` / ``II uV`` columns, a 1000 Hz header on 250 Hz data, duplicate
columns) and the classics (empty, header only, NaN, inf, flat, 1 s, truncated, zip bombs,
traversal and control characters in names, binary as text, UTF-16, NUL bytes, huge declared
shapes, pickled object arrays, lying EDF headers). Large members are written by streaming zlib,
so generating the suite costs seconds and little memory. Run ``python tests/hostile_files.py DIR``
to write them for a look by hand.

One concept (the catalogue of hostile cases), hence longer than the package's module limit.
"""
from __future__ import annotations

import io
import json
import os
import re
import struct
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FS = 125.0
CHUNK = 1 << 22  # bytes per streamed write (4 MiB)


@dataclass
class Case:
    """One hostile input: ``path`` (relative to the suite folder) is given to ``m2ae read --json``."""

    id: str
    path: str
    expect: str  # "ok" | "error" | "clean"
    args: tuple[str, ...] = ()
    error: str | None = None  # regex the error line must match
    check: Callable[[dict[str, Any]], str | None] | None = None  # None when the summary is right, else why not
    why: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def summary_check(fs: float | None = None, duration_s: float | None = None, note: str | None = None,
                  ecg: bool | None = None, ppg: bool | None = None, tol_s: float = 0.05) -> Callable:
    """A check of ``m2ae read --json``'s summary: rate (Hz), duration (s), a note pattern, channels present."""

    def check(s: dict[str, Any]) -> str | None:
        if fs is not None and abs(float(s.get("fs_hz", -1)) - fs) > 1e-6 * fs:
            return f"fs_hz {s.get('fs_hz')} != {fs}"
        if duration_s is not None and abs(float(s.get("duration_s", -1)) - duration_s) > tol_s:
            return f"duration_s {s.get('duration_s')} != {duration_s}"
        chans = s.get("channels") or {}
        for m, want in (("ecg", ecg), ("ppg", ppg)):
            present = bool(chans.get(m))
            if want is not None and present != want:
                return f"{m} present is {present}, expected {want}"
        if note is not None:
            text = json.dumps(s.get("notes", [])) + json.dumps(s.get("dropped", {}))
            if not re.search(note, text):
                return f"no note matching {note!r} in {text[:400]}"
        return None

    return check


# ---------------------------------------------------------------------------------------------- signals

def ecg_like(fs: float, seconds: float, hr_bpm: float = 72.0) -> np.ndarray:
    """A synthetic lead-II-like trace (mV): narrow R waves, small T waves, at ``hr_bpm``."""
    t = np.arange(int(round(seconds * fs))) / fs
    beat = 60.0 / hr_bpm
    phase = (t % beat) / beat
    return (1.2 * np.exp(-((phase - 0.3) / 0.012) ** 2) + 0.25 * np.exp(-((phase - 0.6) / 0.06) ** 2)
            - 0.1 * np.exp(-((phase - 0.27) / 0.01) ** 2))


def ppg_like(fs: float, seconds: float, hr_bpm: float = 72.0) -> np.ndarray:
    """A synthetic pulse wave (a.u.) at ``hr_bpm``, 0.25 s after the R wave."""
    t = np.arange(int(round(seconds * fs))) / fs
    beat = 60.0 / hr_bpm
    phase = ((t - 0.25) % beat) / beat
    return np.exp(-((phase - 0.25) / 0.1) ** 2) + 0.4 * np.exp(-((phase - 0.55) / 0.12) ** 2)


def csv_text(fs: float = FS, seconds: float = 30.0, header: str = "time,II,PLETH", sep: str = ",",
             time: bool = True, decimal: str = ".") -> str:
    e, p = ecg_like(fs, seconds), ppg_like(fs, seconds)
    rows = []
    for i, (a, b) in enumerate(zip(e, p)):
        vals = ([f"{i / fs:.4f}"] if time else []) + [f"{a:.4f}", f"{b:.4f}"]
        if decimal == ",":
            vals = [v.replace(".", ",") for v in vals]
        rows.append(sep.join(vals))
    return header + "\n" + "\n".join(rows) + "\n"


# ---------------------------------------------------------------------------------------------- writers

def _npy_header(shape: tuple[int, ...], descr: str = "<f8") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def deflate_zeros(n_bytes: int, prefix: bytes = b"") -> tuple[list[bytes], int]:
    """Raw deflate of ``prefix`` + ``n_bytes`` zero bytes, and its CRC-32, without compressing them all:
    after a full flush the compressor forgets its history, so every 4 MiB zero block compresses to the
    same bytes; the stream is those bytes repeated (a list holding one object many times)."""
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    head = c.compress(prefix) + c.flush(zlib.Z_FULL_FLUSH)
    zero = bytes(CHUNK)
    block = c.compress(zero) + c.flush(zlib.Z_FULL_FLUSH)
    n_full, rest = divmod(n_bytes, CHUNK)
    tail_c = zlib.compressobj(6, zlib.DEFLATED, -15)
    tail = tail_c.compress(zero[:rest]) + tail_c.flush()
    return [head] + [block] * n_full + [tail], crc32_zeros(zlib.crc32(prefix), n_bytes)


def _gf2_times(mat: list[int], vec: int) -> int:
    out, i = 0, 0
    while vec:
        if vec & 1:
            out ^= mat[i]
        vec >>= 1
        i += 1
    return out


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """CRC-32 of A + B from crc(A), crc(B) and len(B) (zlib's crc32_combine, GF(2) matrix powers)."""
    if len2 <= 0:
        return crc1
    odd = [0xEDB88320] + [1 << n for n in range(31)]  # the operator for one zero bit
    even = [_gf2_times(odd, odd[n]) for n in range(32)]
    odd = [_gf2_times(even, even[n]) for n in range(32)]
    while True:
        even = [_gf2_times(odd, odd[n]) for n in range(32)]
        if len2 & 1:
            crc1 = _gf2_times(even, crc1)
        len2 >>= 1
        if not len2:
            break
        odd = [_gf2_times(even, even[n]) for n in range(32)]
        if len2 & 1:
            crc1 = _gf2_times(odd, crc1)
        len2 >>= 1
        if not len2:
            break
    return (crc1 ^ crc2) & 0xFFFFFFFF


def crc32_zeros(crc: int, n: int) -> int:
    """``zlib.crc32(bytes(n), crc)`` in O(log n) (a 1 GiB member would take seconds byte by byte)."""
    zeros_crc, size, block = 0, 0, (zlib.crc32(bytes(1)), 1)  # CRC of n zeros by doubling
    k = n
    while k:
        if k & 1:
            zeros_crc, size = crc32_combine(zeros_crc, block[0], block[1]), size + block[1]
        block = (crc32_combine(block[0], block[0], block[1]), 2 * block[1])
        k >>= 1
    return crc32_combine(crc, zeros_crc, n)


def write_zip(path: Path, members: dict[str, tuple[list[bytes], int, int]]) -> None:
    """A zip archive of deflated members ``name -> (raw deflate pieces, crc32, uncompressed size)``,
    written by hand so a member's pieces can repeat (< 4 GiB each; no zip64)."""
    central, offset = [], 0
    with open(path, "wb") as f:
        for name, (pieces, crc, usize) in members.items():
            fname = name.encode()
            csize = sum(len(x) for x in pieces)
            local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, csize, usize, len(fname), 0)
            f.write(local + fname)
            for x in pieces:
                f.write(x)
            central.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0x21, crc, csize, usize,
                                       len(fname), 0, 0, 0, 0, 0, offset) + fname)
            offset += len(local) + len(fname) + csize
        cd = b"".join(central)
        f.write(cd)
        f.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(central), len(central), len(cd), offset, 0))


def write_npz(path: Path, members: dict[str, Any]) -> None:
    """An NPZ archive whose members are arrays, raw bytes (the member's content as is) or
    ``("zeros", shape)``: a float64 zero array that is never held in memory nor fully compressed."""
    out: dict[str, tuple[list[bytes], int, int]] = {}
    for key, v in members.items():
        name = key if key.endswith(".npy") else f"{key}.npy"
        if isinstance(v, tuple) and v and v[0] == "zeros":
            shape = v[1]
            head = _npy_header(shape)
            pieces, crc = deflate_zeros(int(np.prod(shape)) * 8, head)
            out[name] = (pieces, crc, len(head) + int(np.prod(shape)) * 8)
        else:
            data = bytes(v) if isinstance(v, (bytes, bytearray)) else _npy_bytes(np.asarray(v))
            c = zlib.compressobj(6, zlib.DEFLATED, -15)
            out[name] = ([c.compress(data) + c.flush()], zlib.crc32(data) & 0xFFFFFFFF, len(data))
    write_zip(path, out)


def write_gzip_zeros(path: Path, n_bytes: int, prefix: bytes = b"") -> None:
    """A gzip stream that expands to ``prefix`` + ``n_bytes`` zero bytes (a decompression bomb)."""
    pieces, crc = deflate_zeros(n_bytes, prefix)
    with open(path, "wb") as f:
        f.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff")
        for x in pieces:
            f.write(x)
        f.write(struct.pack("<II", crc, (len(prefix) + n_bytes) & 0xFFFFFFFF))


def write_wfdb(folder: Path, name: str, fs: float = 250.0, seconds: float = 30.0, units=("mV", "NU"),
               names=("II", "PLETH")) -> Path:
    """A two-channel WFDB record (format 16); returns the .hea path."""
    import wfdb

    sig = np.column_stack([ecg_like(fs, seconds), ppg_like(fs, seconds)])
    wfdb.wrsamp(name, fs=fs, units=list(units), sig_name=list(names), p_signal=sig, fmt=["16", "16"],
                write_dir=str(folder))
    return folder / f"{name}.hea"


def patch_header(hea: Path, fn: Callable[[list[str]], list[str]]) -> None:
    lines = hea.read_text().splitlines()
    hea.write_text("\n".join(fn(lines)) + "\n")


def record_line(field_no: int, value: str) -> Callable[[list[str]], list[str]]:
    """Replace field ``field_no`` (0 name, 1 signals, 2 rate, 3 length) of a WFDB record line."""

    def fn(lines: list[str]) -> list[str]:
        parts = lines[0].split()
        while len(parts) <= field_no:
            parts.append("0")
        parts[field_no] = value
        return [" ".join(parts)] + lines[1:]

    return fn


def write_edf(path: Path, fs: float = 250.0, seconds: float = 30.0) -> Path:
    from m2ae.io import write_record
    from m2ae.record import Record

    rec = Record(ecg_like(fs, seconds), ppg_like(fs, seconds), fs, {"lead": "II"})
    return write_record(rec, path)


def patch_edf(path: Path, offset: int, width: int, value: str) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset:offset + width] = value.ljust(width).encode("ascii")[:width]
    path.write_bytes(bytes(raw))


def write_vital(path: Path, seconds: float = 20.0, srate: float = 500.0, gap_s: float = 0.0) -> Path:
    """A .vital file with SNUADC/ECG_II and SNUADC/PLETH at ``srate`` Hz; ``gap_s`` puts a second ECG
    chunk that long after the first (a declared span far beyond the samples held)."""
    import vitaldb

    dt0 = 1_600_000_000.0
    vf = vitaldb.VitalFile()
    vf.dtstart, vf.dtend = dt0, dt0 + seconds + gap_s
    n = int(seconds * min(srate, 500.0))
    e = ecg_like(min(srate, 500.0), seconds)[:n].astype(np.float32)
    p = ppg_like(min(srate, 500.0), seconds)[:n].astype(np.float32)
    recs = [{"dt": dt0, "val": e}] + ([{"dt": dt0 + gap_s, "val": e[:500]}] if gap_s else [])
    vf.add_track("SNUADC/ECG_II", recs, srate=srate, unit="mV")
    vf.add_track("SNUADC/PLETH", [{"dt": dt0, "val": p}], srate=srate, unit="")
    # packed=False: each chunk is written as it is; packing would fill the span with NaN (gap_s x srate)
    vf.to_vital(str(path), packed=False)
    return path


# ---------------------------------------------------------------------------------------------- the cases

def generate(root: str | Path) -> list[Case]:
    """Write every hostile case under ``root`` and return the list (ids are unique)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []

    def add(case: Case) -> None:
        cases.append(case)

    def text(name: str, content: str | bytes) -> Path:
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content)
        return p

    good = csv_text()
    good_check = summary_check(fs=FS, duration_s=30.0, ecg=True, ppg=True)

    # ---- the baseline and plain good files (the memory / time reference)
    text("baseline.csv", good)
    add(Case("baseline_csv", "baseline.csv", "ok", check=good_check, why="30 s of ECG + PPG at 125 Hz"))

    # ---- CSV memory bombs: the time column jumps after a few seconds (issue 12)
    for label, jump in (("3e5s", 3e5), ("3e6s", 3e6), ("1e9s", 1e9), ("1e15s", 1e15)):
        body = csv_text(fs=250.0, seconds=4.0).rstrip("\n")
        text(f"gap_bomb_{label}.csv", body + f"\n{jump:.1f},0.1,0.2\n")
        add(Case(f"csv_gap_bomb_{label}", f"gap_bomb_{label}.csv", "error",
                 why=f"4 s at 250 Hz, then one row at t = {jump:g} s: a gap grid of the whole span"))
    body = csv_text(fs=250.0, seconds=12.0).rstrip("\n")
    text("gap_small.csv", body + "\n13.0,0.1,0.2\n")
    add(Case("csv_gap_small_is_read", "gap_small.csv", "ok", check=summary_check(fs=250.0, duration_s=13.0, tol_s=0.1),
             why="a 1 s gap is an ordinary gap: read, kept as NaN"))
    t_ms = csv_text(fs=250.0, seconds=4.0, header="time_ms,II,PLETH").rstrip("\n")
    rows = t_ms.split("\n")
    rows = [rows[0]] + [f"{float(r.split(',')[0]) * 1000:.1f}," + ",".join(r.split(",")[1:]) for r in rows[1:]]
    text("gap_bomb_ms.csv", "\n".join(rows) + "\n3e11,0.1,0.2\n")
    add(Case("csv_gap_bomb_ms_column", "gap_bomb_ms.csv", "error", why="a time_ms column that jumps to 3e11 ms"))

    # ---- CPU: tokens that made the old number pattern backtrack quadratically
    for label, n in (("50kb", 50_000), ("210kb", 210_000)):
        text(f"regex_digits_{label}.csv", "time,II,PLETH\n0,1,2\n0.008,1,2\n" + "1" * n + "x,1,2\n")
        add(Case(f"csv_regex_digits_{label}", f"regex_digits_{label}.csv", "error",
                 why=f"a {n}-digit token ending in a letter"))
        text(f"regex_exp_{label}.csv", "time,II,PLETH\n0,1,2\n0.008,1,2\n0.016," + "1" * (n // 2) + "e"
             + "1" * (n // 2) + "e,2\n")
        add(Case(f"csv_regex_exponent_{label}", f"regex_exp_{label}.csv", "error", why="digits, e, digits, e"))
        text(f"regex_signs_{label}.csv", "II,PLETH\n" + "+-." * (n // 3) + "\n")
        add(Case(f"csv_regex_signs_dots_{label}", f"regex_signs_{label}.csv", "error",
                 why="a run of signs and dots without separators"))
        text(f"regex_dotted_{label}.csv", "time,II,PLETH\n" + "1." * (n // 2) + ",1,2\n")
        add(Case(f"csv_regex_dotted_{label}", f"regex_dotted_{label}.csv", "error", why="1.1.1.1... without separators"))
    text("regex_long_number.csv", "time,II,PLETH\n0,1,2\n0.008," + "9" * 60_000 + ",2\n")
    add(Case("csv_regex_60k_digit_number", "regex_long_number.csv", "error", why="a 60,000-digit number (inf)"))

    # ---- a 20 MB single-line file
    p = root / "one_line_20mb.csv"
    with open(p, "w") as f:
        chunk = "1.25," * 200_000
        for _ in range(20):
            f.write(chunk)
    add(Case("csv_single_line_20mb", "one_line_20mb.csv", "error", why="20 MB without a line break"))
    p = root / "one_line_20mb_header.csv"
    with open(p, "w") as f:
        f.write("time,II,PLETH\n")
        chunk = "0.5," * 250_000
        for _ in range(20):
            f.write(chunk)
    add(Case("csv_header_then_20mb_line", "one_line_20mb_header.csv", "error", why="a header, then a 20 MB row"))

    # ---- silently wrong results the issue found: units in names, duplicate columns, a rate that lies
    uv = csv_text(header="time,II µV,PLETH").split("\n")
    uv = [uv[0]] + [",".join([r.split(",")[0], f"{float(r.split(',')[1]) * 1000:.1f}", r.split(",")[2]])
                    for r in uv[1:] if r]
    text("ii_uV_micro.csv", "\n".join(uv) + "\n")
    add(Case("csv_ii_microvolt_micro_sign", "ii_uV_micro.csv", "ok",
             check=summary_check(fs=FS, duration_s=30.0, ecg=True, ppg=True), why="'II µV': ECG in µV, not dropped"))
    text("ii_uV_ascii.csv", "\n".join([uv[0].replace("µV", "uV")] + uv[1:]) + "\n")
    add(Case("csv_ii_microvolt_ascii", "ii_uV_ascii.csv", "ok",
             check=summary_check(fs=FS, duration_s=30.0, ecg=True, ppg=True), why="'II uV'"))
    text("ii_mV_brackets.csv", csv_text(header="time [s],II [mV],PLETH [a.u.]"))
    add(Case("csv_units_in_brackets", "ii_mV_brackets.csv", "ok", check=good_check, why="'II [mV]'"))
    text("ii_uV_latin1.csv", ("\n".join(uv) + "\n").encode("latin-1"))
    add(Case("csv_ii_microvolt_latin1", "ii_uV_latin1.csv", "ok",
             check=summary_check(fs=FS, duration_s=30.0, ecg=True, ppg=True), why="'II µV' in a latin-1 file"))
    dup = csv_text(header="time,II,II,PLETH").split("\n")
    dup = [dup[0]] + [",".join([*r.split(",")[:2], r.split(",")[1], r.split(",")[2]]) for r in dup[1:] if r]
    text("duplicate_columns.csv", "\n".join(dup) + "\n")
    add(Case("csv_duplicate_column_names", "duplicate_columns.csv", "clean",
             check=summary_check(fs=FS, note=r"(?i)duplicate|columns are named 'II'"),
             why="two columns named II: a note or an error"))
    text("rate_1000_for_250.csv", csv_text(fs=250.0, seconds=60.0, time=False, header="II,PLETH"))
    add(Case("csv_fs_1000_for_250hz_data", "rate_1000_for_250.csv", "ok", args=("--fs", "1000"),
             check=summary_check(fs=1000.0, note=r"(?i)(sampling rate|implausib|inconsistent|disagree)"),
             why="--fs 1000 on 250 Hz data: heart rate 288 bpm in both channels, flagged"))

    # ---- classics: empty, header only, NaN, inf, flat, short
    text("empty.csv", "")
    add(Case("csv_empty", "empty.csv", "error", error=r"empty"))
    text("header_only.csv", "time,II,PLETH\n")
    add(Case("csv_header_only", "header_only.csv", "error"))
    text("blank_lines.csv", "\n\n   \n\t\n")
    add(Case("csv_blank_lines", "blank_lines.csv", "error"))
    text("all_nan.csv", "time,II,PLETH\n" + "".join(f"{i / FS},nan,nan\n" for i in range(3750)))
    add(Case("csv_all_nan", "all_nan.csv", "error"))
    text("nan_ppg.csv", "\n".join([good.split("\n")[0]] + [",".join([*r.split(",")[:2], "nan"])
                                                            for r in good.split("\n")[1:] if r]) + "\n")
    add(Case("csv_nan_ppg_column", "nan_ppg.csv", "clean", check=summary_check(fs=FS, ecg=True),
             why="an all-NaN PPG column: refused or dropped with the ECG kept"))
    rows = good.split("\n")
    rows[200] = ",".join([rows[200].split(",")[0], "inf", rows[200].split(",")[2]])
    text("inf.csv", "\n".join(rows))
    add(Case("csv_inf_value", "inf.csv", "error", error=r"(?i)infinite"))
    text("flat.csv", "time,II,PLETH\n" + "".join(f"{i / FS:.3f},0.5,0.5\n" for i in range(3750)))
    add(Case("csv_flat_both", "flat.csv", "error"))
    rows = good.split("\n")
    text("flat_ppg.csv", "\n".join([rows[0]] + [",".join([*r.split(",")[:2], "0.5"]) for r in rows[1:] if r]) + "\n")
    add(Case("csv_flat_ppg_dropped", "flat_ppg.csv", "ok", check=summary_check(fs=FS, note=r"(?i)flat|PPG"),
             why="a flat PPG is dropped with a reason, the ECG read"))
    text("one_second.csv", csv_text(seconds=1.0))
    add(Case("csv_1s", "one_second.csv", "error", why="no 10-s window"))
    text("nine_seconds.csv", csv_text(seconds=9.9))
    add(Case("csv_9_9s", "nine_seconds.csv", "error"))
    text("ten_seconds.csv", csv_text(seconds=10.0))
    add(Case("csv_10s", "ten_seconds.csv", "ok", check=summary_check(fs=FS, duration_s=10.0, tol_s=0.01)))
    text("one_row.csv", "time,II,PLETH\n0,1,2\n")
    add(Case("csv_one_row", "one_row.csv", "error"))
    text("huge_values.csv", "\n".join([rows[0]] + [",".join([r.split(",")[0], "1e300", "-1e300"])
                                                    for r in rows[1:] if r]) + "\n")
    add(Case("csv_1e300_values", "huge_values.csv", "error", why="constant 1e300: no usable channel"))

    # ---- classics: encodings, binary, NUL bytes, delimiters
    text("utf8_bom.csv", b"\xef\xbb\xbf" + good.encode())
    add(Case("csv_utf8_bom", "utf8_bom.csv", "ok", check=good_check, why="a BOM before 'time'"))
    text("utf16.csv", good.encode("utf-16"))
    add(Case("csv_utf16_bom", "utf16.csv", "clean", check=good_check, why="Excel's 'Unicode text'"))
    text("utf16le_nobom.csv", good.encode("utf-16-le"))
    add(Case("csv_utf16le_without_bom", "utf16le_nobom.csv", "clean", check=good_check))
    text("nul_bytes.csv", good[:2000] + "\x00" * 64 + good[2000:])
    add(Case("csv_nul_bytes", "nul_bytes.csv", "error"))
    text("binary.csv", np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    add(Case("csv_random_binary", "binary.csv", "error"))
    text("png_as.csv", b"\x89PNG\r\n\x1a\n" + bytes(2000))
    add(Case("csv_png_named_csv", "png_as.csv", "error"))
    text("semicolon_decimal_comma.csv", csv_text(sep=";", decimal=",", header="time;II;PLETH"))
    add(Case("csv_semicolon_decimal_comma", "semicolon_decimal_comma.csv", "ok", check=good_check))
    text("tabs.tsv", csv_text(sep="\t", header="time\tII\tPLETH"))
    add(Case("tsv_ok", "tabs.tsv", "ok", check=good_check))
    text("ragged.csv", good.replace("\n0.0800,", "\n0.0800,1,2,3,4,", 1))
    add(Case("csv_ragged_row", "ragged.csv", "clean", check=good_check))
    rows = good.split("\n")
    rows[100] = ",".join([rows[100].split(",")[0], "abc", rows[100].split(",")[2]])
    text("text_in_column.csv", "\n".join(rows))
    add(Case("csv_text_in_numeric_column", "text_in_column.csv", "error"))
    text("no_header.csv", csv_text(time=False, header="").lstrip("\n"))
    add(Case("csv_no_header_needs_columns", "no_header.csv", "error"))
    add(Case("csv_no_header_with_columns", "no_header.csv", "ok", args=("--fs", "125", "--ecg", "0", "--ppg", "1"),
             check=summary_check(fs=FS, duration_s=30.0)))
    rows = good.split("\n")
    rows[500], rows[501] = rows[501], rows[500]
    text("time_backwards.csv", "\n".join(rows))
    add(Case("csv_time_not_monotonic", "time_backwards.csv", "error"))
    text("time_constant.csv", "time,II,PLETH\n" + "".join(f"0,{a:.3f},{b:.3f}\n" for a, b in zip(
        ecg_like(FS, 30), ppg_like(FS, 30))))
    add(Case("csv_time_constant", "time_constant.csv", "error"))
    text("rate_1mhz.csv", "time,II,PLETH\n" + "".join(f"{i * 1e-6:.7f},{a:.3f},{b:.3f}\n" for i, (a, b) in enumerate(
        zip(ecg_like(FS, 30), ppg_like(FS, 30)))))
    add(Case("csv_time_step_1us", "rate_1mhz.csv", "error", why="a 1 MHz rate from the time column"))
    text("many_columns.csv", ",".join(f"c{i}" for i in range(20_000)) + "\n" + ",".join("1" for _ in range(20_000))
         + "\n")
    add(Case("csv_20000_columns", "many_columns.csv", "error"))
    text("long_header_name.csv", "time," + "I" * 2_000_000 + ",PLETH\n0,1,2\n")
    add(Case("csv_2mb_column_name", "long_header_name.csv", "error"))
    rows = good.rstrip("\n").split("\n")
    text("markup_header.csv", "\n".join([rows[0] + ",![x](http://evil.example/p.png)"] + [r + ",1" for r in rows[1:]])
         + "\n")
    add(Case("csv_markdown_in_column_name", "markup_header.csv", "ok", check=good_check))

    # ---- names: traversal, control characters, a leading dash
    (root / "a" / "b").mkdir(parents=True, exist_ok=True)
    text("trav_target.csv", good)
    add(Case("name_dotdot_path", "a/b/../../trav_target.csv", "ok", check=good_check, why="a path through .."))
    text("..%2F..%2Fx.csv", "")
    add(Case("name_encoded_traversal", "..%2F..%2Fx.csv", "error"))
    text("..\\..\\evil.csv", good)
    add(Case("name_backslash_traversal", "..\\..\\evil.csv", "ok", check=good_check))
    text("bad\nname.csv", "time,RESP\n0,1\n")
    add(Case("name_with_newline", "bad\nname.csv", "error", why="the one error line must stay one line"))
    text("ansi\x1b[31mred.csv", "time,RESP\n0,1\n")
    add(Case("name_with_ansi_escape", "ansi\x1b[31mred.csv", "error", why="no terminal escape reaches stderr"))
    text("-dash.csv", good)
    add(Case("name_leading_dash", "./-dash.csv", "ok", check=good_check))
    text("no_extension", good)
    add(Case("name_no_extension_csv_content", "no_extension", "clean", check=good_check))
    text("unknown.xyz", b"\x00\x01garbage")
    add(Case("name_unknown_extension", "unknown.xyz", "error"))
    add(Case("path_missing", "does/not/exist.csv", "error"))
    add(Case("path_is_a_folder", "a", "error"))
    os.symlink("/dev/zero", root / "dev_zero.csv")
    add(Case("path_symlink_to_dev_zero", "dev_zero.csv", "error", why="an endless file"))
    os.symlink("/dev/urandom", root / "dev_urandom.npz")
    add(Case("path_symlink_to_dev_urandom", "dev_urandom.npz", "error"))
    os.mkfifo(root / "fifo.csv")
    add(Case("path_fifo", "fifo.csv", "error", why="a named pipe nobody writes to: must not hang"))

    # ---- NPZ / NPY
    e, pp = ecg_like(FS, 30), ppg_like(FS, 30)
    write_npz(root / "ok.npz", {"ecg": e, "ppg": pp, "fs": np.array(FS)})
    add(Case("npz_ok", "ok.npz", "ok", check=good_check))
    write_npz(root / "unused_1gib.npz", {"ecg": e, "ppg": pp, "fs": np.array(FS), "junk": ("zeros", (2 ** 27,))})
    add(Case("npz_unused_1gib_zero_member", "unused_1gib.npz", "ok", check=good_check,
             why="a 1 MB archive with an unused 1 GiB zero array: not decompressed"))
    write_npz(root / "bomb_ecg.npz", {"ecg": ("zeros", (2 ** 27,)), "ppg": pp, "fs": np.array(FS)})
    add(Case("npz_zip_bomb_in_used_member", "bomb_ecg.npz", "error", why="the ECG member expands to 1 GiB"))
    write_npz(root / "bomb_ecg_2d.npz", {"ecg": ("zeros", (2 ** 14, 2 ** 13)), "fs": np.array(FS)})
    add(Case("npz_zip_bomb_2d", "bomb_ecg_2d.npz", "error"))
    write_npz(root / "declared_huge.npz", {"ecg": _npy_header((10 ** 12,)) + bytes(64), "ppg": pp,
                                           "fs": np.array(FS)})
    add(Case("npz_declared_shape_1e12", "declared_huge.npz", "error"))
    write_npz(root / "declared_huge_2d.npz", {"ecg": _npy_header((10 ** 6, 10 ** 6)) + bytes(64), "fs": np.array(FS)})
    add(Case("npz_declared_shape_1e6x1e6", "declared_huge_2d.npz", "error"))
    write_npz(root / "declared_negative.npz", {"ecg": _npy_header((10,)).replace(b"(10,)", b"(-1,)"),
                                               "fs": np.array(FS)})
    add(Case("npz_declared_negative_shape", "declared_negative.npz", "error"))
    obj = io.BytesIO()
    np.save(obj, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    write_npz(root / "pickle.npz", {"ecg": obj.getvalue(), "fs": np.array(FS)})
    add(Case("npz_pickled_object_array", "pickle.npz", "error", error=r"(?i)pickle|object"))
    write_npz(root / "pickle_unused.npz", {"ecg": e, "ppg": pp, "fs": np.array(FS), "evil": obj.getvalue()})
    add(Case("npz_pickled_unused_member", "pickle_unused.npz", "clean", check=good_check,
             why="a pickled member the reader does not need: never unpickled"))
    for label, fsv in (("nan", np.nan), ("negative", -125.0), ("zero", 0.0), ("huge", 1e12)):
        write_npz(root / f"fs_{label}.npz", {"ecg": e, "ppg": pp, "fs": np.array(fsv)})
        add(Case(f"npz_fs_{label}", f"fs_{label}.npz", "error"))
    write_npz(root / "fs_array.npz", {"ecg": e, "ppg": pp, "fs": np.arange(5.0)})
    add(Case("npz_fs_array", "fs_array.npz", "error"))
    write_npz(root / "fs_text.npz", {"ecg": e, "ppg": pp, "fs": np.array("fast")})
    add(Case("npz_fs_text", "fs_text.npz", "error"))
    write_npz(root / "meta_units_5.npz", {"ecg": e, "ppg": pp, "fs": np.array(FS),
                                          "meta_json": np.array(json.dumps({"units": 5, "lead": ["II"]}))})
    add(Case("npz_meta_json_wrong_types", "meta_units_5.npz", "ok", check=good_check, why="units: 5 must not crash"))
    write_npz(root / "meta_markup.npz", {"ecg": e, "ppg": pp, "fs": np.array(FS), "meta_json": np.array(json.dumps(
        {"labels": {"age": "![x](http://evil.example/p.png)"}, "subject_id": "<script>alert(1)</script>"}))})
    add(Case("npz_meta_json_markup", "meta_markup.npz", "ok", check=good_check))
    write_npz(root / "meta_not_json.npz", {"ecg": e, "ppg": pp, "fs": np.array(FS), "meta_json": np.array("{{{")})
    add(Case("npz_meta_json_garbage", "meta_not_json.npz", "ok", check=good_check))
    write_npz(root / "meta_json_huge.npz", {"ecg": e, "ppg": pp, "fs": np.array(FS),
                                            "meta_json": _npy_header((2 ** 30,), "<U1") + bytes(256)})
    add(Case("npz_meta_json_declared_4gib", "meta_json_huge.npz", "clean", check=good_check))
    okb = (root / "ok.npz").read_bytes()
    text("truncated.npz", okb[: len(okb) // 2])
    add(Case("npz_truncated", "truncated.npz", "error"))
    write_npz(root / "empty_archive.npz", {})
    add(Case("npz_empty_archive", "empty_archive.npz", "error"))
    text("not_zip.npz", b"PK\x03\x04" + bytes(500))
    add(Case("npz_bad_zip_header", "not_zip.npz", "error"))
    write_npz(root / "nan_ecg.npz", {"ecg": np.full(3750, np.nan), "ppg": np.full(3750, np.nan), "fs": np.array(FS)})
    add(Case("npz_all_nan", "nan_ecg.npz", "error"))
    write_npz(root / "inf_ppg.npz", {"ecg": e, "ppg": np.where(np.arange(len(pp)) == 7, np.inf, pp), "fs": np.array(FS)})
    add(Case("npz_inf_sample", "inf_ppg.npz", "error"))
    write_npz(root / "int8_flat.npz", {"ecg": np.zeros(3750, np.int8), "ppg": np.zeros(3750, np.int8),
                                       "fs": np.array(FS)})
    add(Case("npz_flat_zeros", "int8_flat.npz", "error"))
    write_npz(root / "complex.npz", {"ecg": e.astype(complex), "ppg": pp, "fs": np.array(FS)})
    add(Case("npz_complex_ecg", "complex.npz", "clean", check=summary_check(fs=FS)))
    write_npz(root / "short.npz", {"ecg": e[:125], "ppg": pp[:125], "fs": np.array(FS)})
    add(Case("npz_1s", "short.npz", "error"))
    write_npz(root / "many_members.npz", {**{f"k{i}": np.zeros(1) for i in range(3000)}, "fs": np.array(FS)})
    add(Case("npz_3000_members", "many_members.npz", "error"))

    text("ok.npy", _npy_bytes(np.column_stack([e, pp])))
    add(Case("npy_ok_with_fs", "ok.npy", "ok", args=("--fs", "125", "--ecg", "0", "--ppg", "1"), check=good_check))
    add(Case("npy_without_fs", "ok.npy", "error", error=r"(?i)rate|--fs"))
    text("declared_huge.npy", _npy_header((10 ** 12,)) + bytes(64))
    add(Case("npy_declared_shape_1e12", "declared_huge.npy", "error", args=("--fs", "125", "--ecg", "0")))
    text("declared_huge_2d.npy", _npy_header((2 ** 31, 4)) + bytes(64))
    add(Case("npy_declared_shape_2e31x4", "declared_huge_2d.npy", "error", args=("--fs", "125", "--ecg", "0")))
    text("pickle.npy", obj.getvalue())
    add(Case("npy_pickled_object_array", "pickle.npy", "error", args=("--fs", "125"), error=r"(?i)pickle|object"))
    okn = (root / "ok.npy").read_bytes()
    text("truncated.npy", okn[: len(okn) // 3])
    add(Case("npy_truncated", "truncated.npy", "error", args=("--fs", "125", "--ecg", "0", "--ppg", "1")))
    text("bad_magic.npy", b"\x93NUMPY\x09\x09" + bytes(100))
    add(Case("npy_bad_version", "bad_magic.npy", "error", args=("--fs", "125")))
    text("header_eval.npy", b"\x93NUMPY\x01\x00" + struct.pack("<H", 118)
         + b"{'descr': __import__('os').system('echo pwned'), 'fortran_order': False, 'shape': (3,), }".ljust(117)
         + b"\n")
    add(Case("npy_header_code_injection", "header_eval.npy", "error", args=("--fs", "125")))

    # ---- WFDB
    w = root / "wfdb"
    w.mkdir()
    write_wfdb(w, "ok")
    add(Case("wfdb_ok", "wfdb/ok.hea", "ok", check=summary_check(fs=250.0, duration_s=30.0, ecg=True, ppg=True)))
    for label, value in (("minus250", "-250"), ("minus500", "-500"), ("abc", "abc"), ("zero", "0"), ("1e9", "1e9"),
                         ("nan", "nan")):
        write_wfdb(w, f"rate_{label}")
        patch_header(w / f"rate_{label}.hea", record_line(2, value))
        add(Case(f"wfdb_rate_{label}", f"wfdb/rate_{label}.hea", "error",
                 why=f"rate field {value!r}: wfdb would fall back to 250 Hz silently"))
    add(Case("wfdb_rate_minus250_with_fs", "wfdb/rate_minus250.hea", "ok", args=("--fs", "250"),
             check=summary_check(fs=250.0, duration_s=30.0)))
    write_wfdb(w, "rate_missing")
    patch_header(w / "rate_missing.hea", lambda ls: [" ".join(ls[0].split()[:2])] + ls[1:])
    add(Case("wfdb_rate_missing", "wfdb/rate_missing.hea", "error", why="no rate field: wfdb assumes 250 Hz"))
    write_wfdb(w, "rate_1000", seconds=60.0)
    patch_header(w / "rate_1000.hea", record_line(2, "1000"))
    add(Case("wfdb_1000hz_header_for_250hz_data", "wfdb/rate_1000.hea", "ok",
             check=summary_check(fs=1000.0, note=r"(?i)(sampling rate|implausib|inconsistent|disagree)"),
             why="ECG 288 bpm and PPG 288 bpm: the rate is flagged"))
    write_wfdb(w, "siglen_huge")
    patch_header(w / "siglen_huge.hea", record_line(3, str(10 ** 12)))
    add(Case("wfdb_declared_length_1e12", "wfdb/siglen_huge.hea", "error"))
    write_wfdb(w, "nsig_huge")
    patch_header(w / "nsig_huge.hea", record_line(1, "100000"))
    add(Case("wfdb_declared_100000_signals", "wfdb/nsig_huge.hea", "error"))
    write_wfdb(w, "uv", units=("uV", "NU"))
    add(Case("wfdb_units_uV", "wfdb/uv.hea", "ok", check=summary_check(fs=250.0, ecg=True, ppg=True)))
    write_wfdb(w, "names_uv", names=("II uV", "PLETH"))
    add(Case("wfdb_name_II_uV", "wfdb/names_uv.hea", "ok", check=summary_check(fs=250.0, ecg=True, ppg=True)))
    write_wfdb(w, "dup_names")
    patch_header(w / "dup_names.hea", lambda ls: [ls[0], ls[1], ls[2].replace("PLETH", "II")] + ls[3:])
    add(Case("wfdb_duplicate_signal_names", "wfdb/dup_names.hea", "clean", check=summary_check(fs=250.0)))
    write_wfdb(w, "truncated")
    dat = (w / "truncated.dat").read_bytes()
    (w / "truncated.dat").write_bytes(dat[: len(dat) // 3 + 1])
    add(Case("wfdb_truncated_dat", "wfdb/truncated.hea", "clean", check=summary_check(fs=250.0)))
    write_wfdb(w, "nodat")
    (w / "nodat.dat").unlink()
    add(Case("wfdb_missing_dat", "wfdb/nodat.hea", "error"))
    text("wfdb/garbage.hea", "this is not a header\n\x01\x02\n")
    add(Case("wfdb_header_garbage", "wfdb/garbage.hea", "error"))
    text("wfdb/empty.hea", "")
    add(Case("wfdb_header_empty", "wfdb/empty.hea", "error"))
    text("wfdb/utf16.hea", (w / "ok.hea").read_text().encode("utf-16"))
    add(Case("wfdb_header_utf16", "wfdb/utf16.hea", "error"))
    write_wfdb(w, "markup")
    patch_header(w / "markup.hea", lambda ls: ls + ["# age: ![x](http://evil.example/p.png)", "# <script>x</script>"])
    add(Case("wfdb_markdown_comment", "wfdb/markup.hea", "ok", check=summary_check(fs=250.0, duration_s=30.0)))
    text("wfdb/dotdot.hea", "dotdot 2 250 7500\n../../../etc/passwd 16 200 12 0 0 0 0 II\n"
         "../../../etc/passwd 16 200 12 0 0 0 0 PLETH\n")
    add(Case("wfdb_data_file_traversal", "wfdb/dotdot.hea", "error", why="a signal file outside the folder"))
    text("wfdb/multi.hea", "multi/2 2 250 15000\nseg_a 7500\nmissing_seg 7500\n")
    shutil_copy(w / "ok.hea", w / "seg_a.hea", "ok", "seg_a")
    shutil_copy(w / "ok.dat", w / "seg_a.dat")
    add(Case("wfdb_multisegment_missing_segment", "wfdb/multi.hea", "error"))
    text("wfdb/multi_huge.hea", "mh/3 2 250 " + str(10 ** 13) + "\nseg_a 7500\n~ " + str(10 ** 13) + "\nseg_a 7500\n")
    add(Case("wfdb_multisegment_huge_gap", "wfdb/multi_huge.hea", "error"))
    text("wfdb/multi_many.hea", "mm/50000 2 250 375000000\n" + "".join("seg_a 7500\n" for _ in range(50_000)))
    add(Case("wfdb_multisegment_50000_segments", "wfdb/multi_many.hea", "error"))

    # ---- EDF
    d = root / "edf"
    d.mkdir()
    write_edf(d / "ok.edf")
    add(Case("edf_ok", "edf/ok.edf", "ok", check=summary_check(fs=250.0, duration_s=30.0, ecg=True, ppg=True)))
    raw = (d / "ok.edf").read_bytes()
    ns = int(raw[252:256].decode().strip())
    spr_off = 256 + ns * (16 + 80 + 8 + 8 + 8 + 8 + 8 + 80)
    for label, (off, width, value) in {
        "records_1e7": (236, 8, "10000000"),
        "records_negative": (236, 8, "-5"),
        "duration_zero": (244, 8, "0"),
        "duration_1e-9": (244, 8, "1e-9"),
        "samples_per_record_1e7": (spr_off, 8, "10000000"),
        "signals_9999": (252, 4, "9999"),
        "header_bytes_lie": (184, 8, "99999999"),
    }.items():
        (d / f"{label}.edf").write_bytes(raw)
        patch_edf(d / f"{label}.edf", off, width, value)
        add(Case(f"edf_lying_{label}", f"edf/{label}.edf", "error" if label != "records_negative" else "clean",
                 check=summary_check(fs=250.0), why=f"EDF header field patched: {label}"))
    dmin_off = 256 + ns * (16 + 80 + 8 + 8 + 8)  # digital minimum, then digital maximum 8 x ns bytes later
    (d / "digital_range_zero.edf").write_bytes(raw)
    patch_edf(d / "digital_range_zero.edf", dmin_off, 8, "0")
    patch_edf(d / "digital_range_zero.edf", dmin_off + 8 * ns, 8, "0")
    add(Case("edf_lying_digital_range_zero", "edf/digital_range_zero.edf", "clean", check=summary_check(fs=250.0),
             why="digital min == max: a scale of x / 0"))
    (d / "truncated.edf").write_bytes(raw[: len(raw) // 2])
    add(Case("edf_truncated", "edf/truncated.edf", "clean", check=summary_check(fs=250.0)))
    (d / "header_only.edf").write_bytes(raw[:spr_off + ns * 40])
    add(Case("edf_header_only", "edf/header_only.edf", "error"))
    (d / "empty.edf").write_bytes(b"")
    add(Case("edf_empty", "edf/empty.edf", "error"))
    (d / "garbage.edf").write_bytes(b"0       " + bytes(300))
    add(Case("edf_garbage", "edf/garbage.edf", "error"))

    # ---- VitalDB .vital
    v = root / "vital"
    v.mkdir()
    write_vital(v / "ok.vital")
    add(Case("vital_ok", "vital/ok.vital", "ok", check=summary_check(fs=500.0, duration_s=20.0, ecg=True, ppg=True)))
    write_vital(v / "long_span.vital", seconds=4.0, gap_s=1e7)
    add(Case("vital_long_span", "vital/long_span.vital", "error", why="a second chunk 1e7 s later: span x rate"))
    write_vital(v / "span_1e5.vital", seconds=4.0, gap_s=1e5)
    add(Case("vital_span_28h_mostly_empty", "vital/span_1e5.vital", "clean",
             why="a 28 h span holding 4 s: refused or read within bounds"))
    write_vital(v / "rate_5e7.vital", seconds=4.0, srate=5e7)
    add(Case("vital_rate_5e7", "vital/rate_5e7.vital", "error", why="a 5e7 Hz track"))
    text("vital/not_gzip.vital", b"VITA" + bytes(100))
    add(Case("vital_not_gzip", "vital/not_gzip.vital", "error"))
    okv = (v / "ok.vital").read_bytes()
    text("vital/truncated.vital", okv[: len(okv) // 2])
    add(Case("vital_truncated", "vital/truncated.vital", "clean", check=summary_check(fs=500.0)))
    write_gzip_zeros(v / "gzip_bomb.vital", 2 ** 30, prefix=b"VITA\x03\x00\x00\x00\x0a\x00")
    add(Case("vital_gzip_bomb_1gib", "vital/gzip_bomb.vital", "error"))

    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids)), [i for i in ids if ids.count(i) > 1]
    return cases


def shutil_copy(src: Path, dst: Path, old: str | None = None, new: str | None = None) -> None:
    """Copy a file; for a header, rename its record (``old`` -> ``new``) on the record line."""
    data = src.read_bytes()
    if old is not None and new is not None:
        lines = data.decode().splitlines()
        lines[0] = lines[0].replace(old, new, 1)
        lines = [ln.replace(f"{old}.dat", f"{new}.dat") for ln in lines]
        data = ("\n".join(lines) + "\n").encode()
    dst.write_bytes(data)


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "hostile_files")
    cs = generate(out)
    for c in cs:
        print(f"{c.expect:5}  {c.id:45} {c.path!r} {' '.join(c.args)}")
    print(f"{len(cs)} cases in {out}")
