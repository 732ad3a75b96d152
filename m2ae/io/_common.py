"""Shared reader machinery: where the bytes come from, which channel is ECG/PPG, and final checks.

Uploads (a Streamlit ``UploadedFile``, ``BytesIO`` or a ``{filename: bytes}`` mapping) are kept in
memory. Where a library insists on a file on disk (wfdb, pyEDFlib, vitaldb) the bytes go to a
``tempfile.TemporaryDirectory`` under ``/dev/shm`` (RAM-backed on Linux) that is deleted as soon as
the reader returns; on systems without ``/dev/shm`` the OS temp dir is used, also deleted at once.
"""
from __future__ import annotations

import contextlib
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from .. import contract
from ..errors import InputError
from ..record import Record

# --- channel names --------------------------------------------------------------------------------

# Lead names after normalisation (lower case, no spaces/punctuation). II first: it is the lead the
# signal contract prefers, and the one most monitors (and MIMIC/BIDMC/VitalDB) record.
_LEAD_II = ("ii", "mlii")
_OTHER_LEADS = ("i", "iii", "avr", "avl", "avf", "v", "v1", "v2", "v3", "v4", "v5", "v6", "mli",
                "mliii", "mlv", "mv1", "mv2", "mv5", "cm5", "ds1", "d1", "d2", "d3")
_ECG_PREFIXES = ("ecg", "ekg", "lead")
_PPG_EXACT = ("pleth", "ppg", "bvp", "spo2wave", "plethwave", "plethysmogram", "photoplethysmogram",
              "pulseoximetry", "pulseox", "pulseoximeter", "spo2pleth", "pleth1", "ppg1")
_PPG_PREFIXES = ("pleth", "ppg", "bvp", "spo2wave")
# Words that look like channel names but hold numerics derived from a channel (rates, saturation).
_NOT_A_WAVE = ("hr", "rate", "pulse", "spo2", "pr", "bpm", "resp", "rr")

_BRACKETS = re.compile(r"[\[(][^\])]*[\])]")
_PUNCT = re.compile(r"[\s_\-.,:;/\\'\"`|#]+")


def normalize_name(name: Any) -> str:
    """``' Lead II [mV]'`` -> ``'leadii'``: case, spaces, punctuation and a unit suffix dropped."""
    s = str(name).strip().lower()
    s = _BRACKETS.sub("", s)
    return _PUNCT.sub("", s)


def ecg_rank(name: Any) -> int | None:
    """How good a name is as the ECG channel: 0 lead II, 1 generic ECG, 2 another lead, None no ECG."""
    n = normalize_name(name)
    if not n:
        return None
    rest = n
    for p in _ECG_PREFIXES:
        if rest.startswith(p):
            rest = rest[len(p):]
            if rest.startswith("lead"):
                rest = rest[4:]
            break
    else:
        # A bare lead name ("II", "MLII", "V5") counts only as a whole name.
        if n in _LEAD_II:
            return 0
        if n in _OTHER_LEADS:
            return 2
        return None
    if rest in _LEAD_II or rest == "2" and n.startswith("lead"):
        return 0
    if rest in _OTHER_LEADS:
        return 2
    if rest == "" or rest.isdigit() or rest in ("signal", "raw", "wave", "filtered", "mv", "uv"):
        return 1
    if any(w in rest for w in _NOT_A_WAVE):
        return None
    return 1


def ppg_rank(name: Any) -> int | None:
    """How good a name is as the PPG channel: 0 exact (PLETH, PPG, BVP…), 1 prefixed, None no PPG."""
    n = normalize_name(name)
    if not n:
        return None
    if n in _PPG_EXACT:
        return 0
    for p in _PPG_PREFIXES:
        if n.startswith(p):
            rest = n[len(p):]
            if any(rest.startswith(w) for w in _NOT_A_WAVE):
                return None
            return 1
    return None


def _list_names(names: list[str], limit: int = 20) -> str:
    shown = [str(n).strip() or "<blank>" for n in names[:limit]]
    more = f", … ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(shown) + more


def _find_override(names: list[str], want: str | int, source: str, flag: str) -> int:
    """Resolve ``--ecg/--ppg``: an exact or normalised column name, else a 0-based column index."""
    if isinstance(want, (int, np.integer)):
        idx = int(want)
    else:
        w = str(want).strip()
        for i, n in enumerate(names):
            if str(n).strip() == w:
                return i
        wn = normalize_name(w)
        hits = [i for i, n in enumerate(names) if wn and normalize_name(n) == wn]
        if len(hits) >= 1:
            return hits[0]
        if not re.fullmatch(r"-?\d+", w):
            raise InputError(f"{source}: {flag} column {w!r} not found (columns: {_list_names(names)})")
        idx = int(w)
    if not -len(names) <= idx < len(names):
        raise InputError(f"{source}: {flag} index {idx} out of range: the file has {len(names)} channels "
                         f"({_list_names(names)})")
    return idx % len(names)


_NONE_WORDS = ("none", "-", "no", "off", "")


@dataclass
class ChannelChoice:
    ecg: int | None
    ppg: int | None
    ecg_name: str | None = None
    ppg_name: str | None = None
    ecg_how: str | None = None  # "name" or "override"
    ppg_how: str | None = None


def choose_channels(names: list[str], source: str, ecg: str | int | None = None,
                    ppg: str | int | None = None, exclude: tuple[int, ...] = ()) -> ChannelChoice:
    """Pick the ECG and PPG channels among ``names``; overrides win, then the best-ranked names.

    ``ecg``/``ppg`` may be a column name, a 0-based index (int or digit string), or ``"none"`` to
    leave that modality out. Raises InputError listing the columns when nothing is recognised.
    """
    names = [str(n) for n in names]
    choice = ChannelChoice(None, None)
    wants = {"ecg": ecg, "ppg": ppg}
    skip = {m for m, w in wants.items() if isinstance(w, str) and w.strip().lower() in _NONE_WORDS}
    # Overrides first, so a column the user assigned is not also picked by name for the other modality.
    for mod in ("ecg", "ppg"):
        if mod not in skip and wants[mod] is not None:
            idx = _find_override(names, wants[mod], source, f"--{mod}")
            setattr(choice, mod, idx)
            setattr(choice, f"{mod}_name", names[idx].strip())
            setattr(choice, f"{mod}_how", "override")
    taken = set(exclude) | {i for i in (choice.ecg, choice.ppg) if i is not None}
    for mod, rank in (("ecg", ecg_rank), ("ppg", ppg_rank)):
        if mod in skip or wants[mod] is not None:
            continue
        ranked = [(r, i) for i, n in enumerate(names) if i not in taken and (r := rank(n)) is not None]
        if not ranked:
            continue
        idx = min(ranked)[1]
        setattr(choice, mod, idx)
        setattr(choice, f"{mod}_name", names[idx].strip())
        setattr(choice, f"{mod}_how", "name")
    if choice.ecg is not None and choice.ecg == choice.ppg:
        raise InputError(f"{source}: the same column {names[choice.ecg].strip()!r} was chosen for ECG and PPG")
    if choice.ecg is None and choice.ppg is None:
        raise InputError(f"{source}: no ECG or PPG column recognised (columns: {_list_names(names)}); "
                         f"pass --ecg COLUMN and/or --ppg COLUMN")
    return choice


# --- sources --------------------------------------------------------------------------------------

@dataclass
class Source:
    """Where a record's bytes are: a path on disk, or in-memory files keyed by base name."""

    name: str                                  # what messages call it
    path: Path | None = None                   # main file on disk
    files: dict[str, bytes] = field(default_factory=dict)  # in-memory uploads, base name -> bytes
    main: str = ""                             # base name of the main file

    @property
    def suffix(self) -> str:
        return Path(self.main).suffix.lower()

    def read_bytes(self) -> bytes:
        if self.path is not None:
            return self.path.read_bytes()
        return self.files[self.main]

    def head(self, n: int = 512) -> bytes:
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


def _size_error(name: str, size: int) -> InputError:
    lim = contract.MAX_FILE_BYTES
    return InputError(f"{name}: file is {size / 2**20:.1f} MiB, larger than the {lim / 2**20:.0f} MiB limit "
                      f"(m2ae.contract.MAX_FILE_BYTES); split the record into smaller files")


def _read_upload(obj: Any, name: str) -> bytes:
    size = getattr(obj, "size", None)
    if isinstance(size, int) and size > contract.MAX_FILE_BYTES:
        raise _size_error(name, size)
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
    if len(data) > contract.MAX_FILE_BYTES:
        raise _size_error(name, len(data))
    return data


def _safe_basename(fname: str) -> str:
    base = os.path.basename(str(fname).replace("\\", "/"))
    if base in ("", ".", "..") or "\x00" in base:
        raise InputError(f"{fname!r}: not a usable file name")
    return base


def open_source(src: Any, name: str | None = None) -> Source:
    """Turn a path, a file-like upload or a ``{filename: bytes}`` mapping into a ``Source``."""
    if isinstance(src, (str, os.PathLike)):
        path = Path(src).expanduser()
        shown = name or str(src)
        if path.is_dir():
            raise InputError(f"{shown}: is a folder, not a record file (use m2ae.io.iter_corpus for folders)")
        if not path.exists():
            raise InputError(f"{shown}: file not found")
        size = path.stat().st_size
        if size > contract.MAX_FILE_BYTES:
            raise _size_error(shown, size)
        if size == 0:
            raise InputError(f"{shown}: file is empty")
        return Source(name=shown, path=path, main=path.name)
    if isinstance(src, Mapping):
        if not src:
            raise InputError(f"{name or 'upload'}: no files given")
        files = {}
        total = 0
        for fname, content in src.items():
            base = _safe_basename(fname)
            data = content if isinstance(content, (bytes, bytearray)) else _read_upload(content, base)
            total += len(data)
            if total > contract.MAX_FILE_BYTES:
                raise _size_error(base, total)
            files[base] = bytes(data)
        heads = [f for f in files if f.lower().endswith(".hea")]
        if name and _safe_basename(name) in files:
            main = _safe_basename(name)
        elif len(files) == 1:
            main = next(iter(files))
        elif heads:
            main = _master_header(heads, files)
        else:
            raise InputError(f"{name or 'upload'}: several files uploaded ({_list_names(list(files))}) but no "
                             f"WFDB .hea header among them; upload one record at a time")
        if not files[main]:
            raise InputError(f"{main}: file is empty")
        return Source(name=name or main, files=files, main=main)
    if isinstance(src, (list, tuple)) and src and all(hasattr(f, "name") for f in src):
        # st.file_uploader(accept_multiple_files=True) gives a list of UploadedFile
        return open_source({_safe_basename(f.name): f for f in src}, name)
    if hasattr(src, "read") or hasattr(src, "getvalue"):
        fname = name or getattr(src, "name", None)
        if not fname or not isinstance(fname, str):
            raise InputError("upload: a file-like object needs a file name (.name or name=) to tell its format")
        base = _safe_basename(fname)
        data = _read_upload(src, base)
        if not data:
            raise InputError(f"{base}: file is empty")
        return Source(name=base, files={base: data}, main=base)
    raise InputError(f"{src!r}: expected a path, a file-like upload or a {{filename: bytes}} mapping")


def _master_header(heads: list[str], files: dict[str, bytes]) -> str:
    """Among uploaded .hea files, the record to read: a multi-segment master, else the only one."""
    masters = []
    for h in heads:
        first = _first_header_line(files[h].decode("latin-1", "replace"))
        if first and "/" in first.split()[0]:
            masters.append(h)
    if len(masters) == 1:
        return masters[0]
    if len(heads) == 1:
        return heads[0]
    raise InputError(f"upload: several WFDB headers ({_list_names(heads)}) and no single multi-segment "
                     f"master among them; upload one record at a time")


def _first_header_line(text: str) -> str | None:
    for line in text.splitlines():
        s = line.strip()
        if s and not s.startswith("#"):
            return s
    return None


# --- the last step of every reader ------------------------------------------------------------------

def check_fs(fs: Any, source: str) -> float:
    try:
        fs = float(fs)
    except (TypeError, ValueError):
        raise InputError(f"{source}: sampling rate {fs!r} is not a number") from None
    if not np.isfinite(fs) or not contract.MIN_FS_HZ <= fs <= contract.MAX_FS_HZ:
        raise InputError(f"{source}: sampling rate {fs:g} Hz is outside the supported range "
                         f"[{contract.MIN_FS_HZ:g}, {contract.MAX_FS_HZ:g}] Hz")
    return fs


def _as_channel(x: Any, what: str, source: str) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise InputError(f"{source}: {what} is not numeric data (dtype {a.dtype})")
    if np.issubdtype(a.dtype, np.complexfloating):
        raise InputError(f"{source}: {what} holds complex numbers")
    a = np.asarray(a, dtype=np.float64).reshape(-1) if a.ndim <= 1 else a
    if a.ndim != 1:
        raise InputError(f"{source}: {what} must be one channel (1-D), got shape {a.shape}")
    return a


def make_record(source: str, fs: Any, ecg: Any = None, ppg: Any = None, meta: dict | None = None) -> Record:
    """Validate channels and rate the same way for every format and build the ``Record``.

    NaN samples stay (preprocessing interpolates short gaps and splits at long ones) and are counted
    in ``meta['notes']``; inf values, all-NaN channels, empty channels, mismatched lengths and rates
    outside [MIN_FS_HZ, MAX_FS_HZ] are refused.
    """
    meta = dict(meta or {})
    meta.setdefault("source", source)
    meta.setdefault("notes", [])
    meta.setdefault("labels", {})
    fs = check_fs(fs, source)
    chans = {}
    for mod, x in (("ecg", ecg), ("ppg", ppg)):
        if x is None:
            continue
        col = meta.get(f"{mod}_column")
        what = f"{mod.upper()} channel {col!r}" if col else mod.upper()
        a = _as_channel(x, what, source)
        if a.size == 0:
            raise InputError(f"{source}: {what} has no samples")
        bad = np.isinf(a)
        if bad.any():
            raise InputError(f"{source}: {what} contains infinite values (first at sample {int(np.argmax(bad))}, "
                             f"t = {np.argmax(bad) / fs:.3f} s)")
        nan = np.isnan(a)
        if nan.all():
            raise InputError(f"{source}: {what} has no numeric samples (all {a.size} are NaN or blank)")
        if nan.any():
            meta["notes"].append(f"{mod.upper()}: {int(nan.sum())} NaN samples "
                                 f"({100 * nan.mean():.2f}%) left for preprocessing to fill or split at")
        chans[mod] = a
    if not chans:
        raise InputError(f"{source}: neither ECG nor PPG present")
    if len(chans) == 2 and len(chans["ecg"]) != len(chans["ppg"]):
        raise InputError(f"{source}: ECG and PPG lengths differ ({len(chans['ecg'])} vs {len(chans['ppg'])} samples)")
    return Record(ecg=chans.get("ecg"), ppg=chans.get("ppg"), fs=fs, meta=meta)


def units_to_mv(x: np.ndarray, unit: str | None, notes: list[str]) -> tuple[np.ndarray, str | None]:
    """ECG in µV or V is scaled to mV (the unit the clinical grid uses); other units are kept."""
    u = (unit or "").strip()
    scale = {"uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "microvolt": 1e-3, "v": 1e3, "volt": 1e3, "nv": 1e-6}.get(u.lower())
    if scale is None:
        return x, (u or None)
    notes.append(f"ECG converted from {u} to mV")
    return x * scale, "mV"
