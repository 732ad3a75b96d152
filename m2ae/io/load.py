"""``load_record``: one ECG/PPG file (path or in-memory upload) -> ``m2ae.Record``.

Formats: WFDB (.hea + .dat/.mat, multi-segment too), CSV/TSV/TXT, NPZ, NPY, EDF/EDF+/BDF and
VitalDB .vital, each read by its own module; this one tells them apart (``sniff_format``: file name,
then magic bytes) and calls the reader. The ECG channel is lead II when present (else another ECG
lead), PPG is PLETH/PPG/BVP; ``ecg=``/``ppg=`` name a column/channel/key (or a 0-based index) when
names do not tell, and ``"none"`` leaves a modality out; every other ECG lead goes to
``Record.ecg_leads`` (mV). NaN samples are kept for preprocessing to fill or split at; inf values,
all-NaN channels, rates outside [MIN_FS_HZ, MAX_FS_HZ], files over MAX_FILE_BYTES, records that
declare more than ``m2ae.io.limits`` allows and missing or invalid rates (unless ``fs`` is given)
are refused with a one-line ``InputError``.

>>> rec = load_record("bidmc_01_Signals.csv")           # doctest: +SKIP
>>> rec.fs, rec.meta["ecg_column"], rec.meta["ppg_column"]  # doctest: +SKIP
(125.0, 'II', 'PLETH')
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..record import Record
from . import delimited, edf, npz, vital, wfdb
from .sources import Source, open_source

SUPPORTED = "WFDB (.hea + .dat/.mat), CSV/TSV/TXT, NPZ, NPY, EDF/BDF, VitalDB .vital"
# File extension (lower case) -> format. A .mat is WFDB only beside its .hea (see sniff_format).
EXTENSIONS: dict[str, str] = {".hea": "wfdb", ".dat": "wfdb", ".csv": "csv", ".tsv": "csv", ".txt": "csv",
                              ".npz": "npz", ".npy": "npy", ".edf": "edf", ".bdf": "edf", ".rec": "edf",
                              ".vital": "vital"}

READERS: dict[str, Callable[..., Record]] = {
    "wfdb": wfdb.read, "csv": delimited.read, "npz": npz.read_npz, "npy": npz.read_npy, "edf": edf.read,
    "vital": vital.read,
}
# Formats whose channel names can be listed from the header alone (NPY and .vital have none to offer).
_CHANNEL_NAMES: dict[str, Callable[[Source], list[str]]] = {
    "wfdb": wfdb.channel_names, "csv": delimited.channel_names, "npz": npz.channel_names, "edf": edf.channel_names,
}


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


def channel_names(source: Source) -> list[str]:
    """The column/channel names a file offers for ``ecg=``/``ppg=``, read from its header only;
    ``[]`` for formats without names (NPY, .vital). Raises what the format's header parsing raises."""
    lister = _CHANNEL_NAMES.get(sniff_format(source))
    return lister(source) if lister else []


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
    if ext in EXTENSIONS:
        return EXTENSIONS[ext]
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
