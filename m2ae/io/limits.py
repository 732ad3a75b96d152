"""Size limits every reader checks from headers and file sizes *before* it allocates an array.

A file may declare more than it holds (a WFDB ``sig_len``, an EDF record count, an NPY shape inside
an NPZ, a ``.vital`` span and rate, a CSV time column that jumps by days): each reader turns what the
file declares into samples and calls the checks here first, so a small hostile file costs little
memory and time. Each limit is a module setting; its error names the setting, e.g.
``m2ae.io.limits.MAX_RECORD_SAMPLES``, so a user with a real need knows what to raise.

>>> check_span("x.csv", 3e6, 250.0)                                # doctest: +ELLIPSIS
Traceback (most recent call last):
...
m2ae.errors.InputError: x.csv: declares 3000000 s (833.3 h), longer than the 48 h limit (m2ae.io.limits.MAX_RECORD_S)...
"""
from __future__ import annotations

from ..errors import InputError

# Longest record a reader builds: 48 h (two days of ICU monitoring, a Holter twice over).
MAX_RECORD_S: float = 48 * 3600.0
# Most samples per channel: 2**25 = 33.5 M (256 MiB as float64) = 74.6 h at the contract's 125 Hz,
# 18.6 h at 500 Hz. Longer or faster records are read in pieces (WFDB segments, iter_corpus).
MAX_RECORD_SAMPLES: int = 2 ** 25
# Most samples over every channel read for one record (ECG leads included): 512 MiB as float64.
MAX_READ_SAMPLES: int = 2 ** 26
# Most bytes a compressed container (NPZ member, .vital gzip stream) may expand to, and (.vital) by
# what factor once past the floor: recorded signals compress a few times, zeros a thousand times.
MAX_DECOMPRESSED_BYTES: int = 512 * 1024 * 1024
MAX_COMPRESSION_RATIO: float = 100.0
COMPRESSION_FLOOR_BYTES: int = 64 * 1024 * 1024
# A time grid (CSV gaps, .vital tracks) may hold at most this many slots per sample the file has;
# grids up to GRID_FLOOR_SAMPLES slots are always allowed (cheap, and short records with gaps are common).
MAX_GRID_EXPANSION: float = 10.0
GRID_FLOOR_SAMPLES: int = 2 ** 20
# Text tables: longest line and most columns; a 20 MB one-line file is refused, not split.
MAX_LINE_CHARS: int = 1 << 20
MAX_COLUMNS: int = 4096
# Containers: most members of an NPZ archive, most segments of a multi-segment WFDB record.
MAX_ARCHIVE_MEMBERS: int = 256
MAX_SEGMENTS: int = 4096
# Annotations (WFDB) kept as meta["events"], and the largest annotation file read.
MAX_EVENTS: int = 1000
MAX_ANNOTATION_BYTES: int = 32 * 1024 * 1024


def _setting(name: str) -> str:
    return f"m2ae.io.limits.{name}"


def check_span(source: str, span_s: float, fs: float) -> None:
    """Refuse a declared record length over MAX_RECORD_S (s) or over MAX_RECORD_SAMPLES at ``fs`` (Hz)."""
    if not span_s == span_s or span_s > MAX_RECORD_S:  # NaN or too long
        raise InputError(f"{source}: declares {span_s:.0f} s ({span_s / 3600:.1f} h), longer than the "
                         f"{MAX_RECORD_S / 3600:g} h limit ({_setting('MAX_RECORD_S')}); split the record")
    check_samples(source, span_s * fs, fs)


def check_samples(source: str, n_samples: float, fs: float | None = None) -> None:
    """Refuse more than MAX_RECORD_SAMPLES samples per channel (and, with ``fs`` in Hz, over MAX_RECORD_S)."""
    if not n_samples == n_samples or n_samples > MAX_RECORD_SAMPLES:
        at = f" ({n_samples / fs / 3600:.1f} h at {fs:g} Hz)" if fs else ""
        raise InputError(f"{source}: {n_samples:,.0f} samples per channel{at}, more than the limit of "
                         f"{MAX_RECORD_SAMPLES:,} ({_setting('MAX_RECORD_SAMPLES')}); split the record")
    if fs and n_samples / fs > MAX_RECORD_S:
        check_span(source, n_samples / fs, fs)


def check_read(source: str, n_samples: float, n_channels: int) -> None:
    """Refuse reading ``n_channels`` channels of ``n_samples`` each over MAX_READ_SAMPLES in all."""
    check_samples(source, n_samples)
    total = n_samples * max(1, n_channels)
    if total > MAX_READ_SAMPLES:
        raise InputError(f"{source}: {n_channels} channels x {n_samples:,.0f} samples = {total:,.0f} values, more "
                         f"than the limit of {MAX_READ_SAMPLES:,} ({_setting('MAX_READ_SAMPLES')}); split the record")


def fits_read(n_samples: float, n_channels: int) -> bool:
    """Whether ``n_channels`` channels of ``n_samples`` stay within MAX_READ_SAMPLES (for optional extra leads)."""
    return n_samples * max(1, n_channels) <= MAX_READ_SAMPLES


def check_decompressed(source: str, what: str, n_bytes: float) -> None:
    """Refuse a compressed member or stream that declares or reaches more than MAX_DECOMPRESSED_BYTES."""
    if not n_bytes == n_bytes or n_bytes > MAX_DECOMPRESSED_BYTES:
        raise InputError(f"{source}: {what} expands to {n_bytes / 2**20:,.0f} MiB, more than the "
                         f"{MAX_DECOMPRESSED_BYTES / 2**20:.0f} MiB limit ({_setting('MAX_DECOMPRESSED_BYTES')})")


def check_grid(source: str, n_grid: float, n_present: int, fs: float, what: str = "time column") -> None:
    """Refuse a sampling grid (``n_grid`` slots at ``fs`` Hz) that is mostly gaps: over
    MAX_GRID_EXPANSION slots per present sample (beyond GRID_FLOOR_SAMPLES), or over the record limits."""
    check_span(source, n_grid / fs, fs)
    allowed = max(GRID_FLOOR_SAMPLES, MAX_GRID_EXPANSION * max(1, n_present))
    if n_grid > allowed:
        empty = 100.0 * (1 - n_present / n_grid)
        raise InputError(f"{source}: the {what} spans {n_grid / fs:.0f} s but holds {n_present:,} samples: "
                         f"{empty:.2f}% of the {fs:g} Hz grid would be gaps, more than "
                         f"{_setting('MAX_GRID_EXPANSION')} = {MAX_GRID_EXPANSION:g} slots per sample allows")


def check_line(source: str, n_chars: int, line_no: int = 1) -> None:
    """Refuse a text line over MAX_LINE_CHARS characters (a one-line file is not a table)."""
    if n_chars > MAX_LINE_CHARS:
        raise InputError(f"{source}: line {line_no} is {n_chars:,} characters long, more than the limit of "
                         f"{MAX_LINE_CHARS:,} ({_setting('MAX_LINE_CHARS')}); not a table of samples")


def check_columns(source: str, n_columns: int) -> None:
    """Refuse a table with more than MAX_COLUMNS columns."""
    if n_columns > MAX_COLUMNS:
        raise InputError(f"{source}: {n_columns:,} columns, more than the limit of {MAX_COLUMNS:,} "
                         f"({_setting('MAX_COLUMNS')}); not a table of ECG/PPG channels")


def check_count(source: str, what: str, n: int, setting: str) -> None:
    """Refuse more than the limit ``setting`` (a name in this module, e.g. MAX_SEGMENTS) of ``what``."""
    limit = globals()[setting]
    if n > limit:
        raise InputError(f"{source}: {n:,} {what}, more than the limit of {limit:,} ({_setting(setting)})")
