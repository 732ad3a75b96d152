"""NumPy files: ``.npz`` archives (named arrays + ``fs``) and bare ``.npy`` arrays.

Both are loaded with ``allow_pickle=False``: object arrays are refused, never unpickled. An NPZ
archive is read member by member (only the keys used; each member's declared shape checked against
``m2ae.io.limits`` before it is decompressed) and names its channels by key (``ecg``/``ppg``
first, then any recognised name) and carries its rate in a key such as ``fs`` and optional
``meta_json`` (what ``write_record`` stores); an NPY array has no rate and, unless structured, no
channel names.
"""
from __future__ import annotations

import contextlib
import io
import json
import zipfile
from typing import Any

import numpy as np

from ..errors import InputError
from ..record import Record
from . import limits
from .assemble import collect_leads, make_record, new_meta
from .channels import choose_channels, ecg_lead_columns, lead_from_name, normalize_name
from .sources import Source
from .writers import NPZ_META_KEY

_META_BYTES = 1 << 20  # the largest meta_json member read
_FS_KEYS = ("fs", "fs_hz", "sampling_rate", "sample_rate", "samplingrate", "sfreq", "freq", "srate", "rate")


def _pickle_error(source: Source, what: str) -> InputError:
    return InputError(f"{source.name}: {what} holds Python objects (pickle); m2ae never unpickles uploaded data, "
                      f"save plain numeric arrays instead")


def _is_pickle_refusal(e: ValueError) -> bool:
    return "allow_pickle" in str(e) or "Object arrays" in str(e)


def _npy_header(f: Any) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran order, dtype) from the NPY header at the start of ``f``, nothing more read."""
    version = np.lib.format.read_magic(f)
    header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    return header(f, max_header_size=10_000)


class _Archive:
    """An NPZ archive read member by member: each member's declared shape and size are checked
    (``m2ae.io.limits``) from its zip and NPY headers before the member is decompressed."""

    def __init__(self, source: Source) -> None:
        self.source = source
        try:
            self.zip = zipfile.ZipFile(source.path if source.path is not None else io.BytesIO(source.read_bytes()))
        except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
            raise InputError(f"{source.name}: not a readable NPZ archive ({' '.join(str(e).split())[:120]})") from None
        names = self.zip.namelist()
        limits.check_count(source.name, "members in the NPZ archive", len(names), "MAX_ARCHIVE_MEMBERS")
        self.members = {(n[:-4] if n.endswith(".npy") else n): n for n in names}
        if not self.members:
            raise InputError(f"{source.name}: the NPZ archive is empty")

    def __enter__(self) -> _Archive:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.zip.close()

    @property
    def files(self) -> list[str]:
        """The array keys, as ``np.load(...).files`` names them."""
        return list(self.members)

    def refuse_objects(self) -> None:
        """Refuse an archive any of whose members holds Python objects, judged from the NPY headers
        alone (a few bytes of each member are decompressed, never an unused member's data)."""
        for key in self.members:
            dtype = None
            with contextlib.suppress(ValueError, OSError, EOFError, zipfile.BadZipFile, RuntimeError):
                with self.zip.open(self.members[key]) as f:
                    _, _, dtype = _npy_header(f)
            if dtype is not None and dtype.hasobject:  # unreadable members are judged when (if) loaded
                raise _pickle_error(self.source, f"array {key!r}")

    def load(self, key: str, max_bytes: int | None = None) -> np.ndarray:
        """One member as an array, refused before decompression when its headers declare too much."""
        name, info = self.source.name, self.zip.getinfo(self.members[key])
        limits.check_decompressed(name, f"array {key!r}", info.file_size)
        try:
            with self.zip.open(info) as f:
                shape, fortran, dtype = _npy_header(f)
                if dtype.hasobject:
                    raise _pickle_error(self.source, f"array {key!r}")
                n = int(np.prod(shape, dtype=object))
                n_bytes = n * dtype.itemsize
                if max_bytes is not None and n_bytes > max_bytes:
                    raise InputError(f"{name}: array {key!r} declares shape {shape}, too large for what it is "
                                     f"({n_bytes:,} bytes, at most {max_bytes:,})")
                limits.check_decompressed(name, f"array {key!r} (shape {shape})", n_bytes)
                limits.check_samples(name, n)
                if n_bytes > info.file_size:
                    raise InputError(f"{name}: array {key!r} declares shape {shape} but its member holds only "
                                     f"{info.file_size:,} bytes (truncated or corrupt)")
            with self.zip.open(info) as f:  # from the start again: read_array parses the header itself
                a = np.lib.format.read_array(f, allow_pickle=False, max_header_size=10_000)
        except InputError:
            raise
        except ValueError as e:
            if _is_pickle_refusal(e):
                raise _pickle_error(self.source, f"array {key!r}") from None
            raise InputError(f"{name}: array {key!r} is unreadable ({' '.join(str(e).split())[:120]})") from None
        except (zipfile.BadZipFile, OSError, EOFError, RuntimeError) as e:
            msg = " ".join(str(e).split())[:120]
            raise InputError(f"{name}: array {key!r} is truncated or corrupt ({msg})") from None
        return a


def _fs_key(keys: list[str]) -> str | None:
    return next((k for k in keys if normalize_name(k) in _FS_KEYS), None)


def channel_names(source: Source) -> list[str]:
    """The keys of an NPZ archive that may hold channels (not its rate or metadata), without loading them."""
    with _Archive(source) as z:
        keys = [k for k in z.files if k != NPZ_META_KEY]
    fs_key = _fs_key(keys)
    return [k for k in keys if k != fs_key]


def read_npz(source: Source, fs: float | None = None, ecg: str | int | None = None,
             ppg: str | int | None = None) -> Record:
    """Read an NPZ archive; ``fs`` (Hz) overrides the archive's own rate key. Only the members used
    are decompressed: the rate, ``meta_json``, the PPG and the ECG leads."""
    with _Archive(source) as z:
        z.refuse_objects()
        return _read_archive(z, source, fs, ecg, ppg)


def _read_archive(z: _Archive, source: Source, fs: float | None, ecg: str | int | None,
                  ppg: str | int | None) -> Record:
    meta = new_meta(source, "npz")
    if NPZ_META_KEY in z.files:
        try:
            stored = json.loads(str(z.load(NPZ_META_KEY, max_bytes=_META_BYTES)))
            if isinstance(stored, dict):
                meta.update({k: v for k, v in stored.items() if k not in ("source", "notes")})
        except json.JSONDecodeError:
            meta["notes"].append("meta_json could not be parsed and was ignored")
    keys_all = [k for k in z.files if k != NPZ_META_KEY]
    fs_key = _fs_key(keys_all)
    rate = fs
    if rate is None:
        if fs_key is None:
            raise InputError(f"{source.name}: no sampling rate (key 'fs') in the archive; pass --fs HZ "
                             f"(keys: {', '.join(keys_all) or 'none'})")
        v = z.load(fs_key, max_bytes=64)
        if v.size != 1 or not np.issubdtype(v.dtype, np.number):
            raise InputError(f"{source.name}: key {fs_key!r} must be one number (the rate in Hz), got shape {v.shape}")
        rate = float(v.reshape(-1)[0])
    keys = [k for k in keys_all if k != fs_key]
    # 'ecg'/'ppg' keys first (the documented layout), then any recognised name.
    plain = {"ecg": "ecg" if "ecg" in keys else None, "ppg": "ppg" if "ppg" in keys else None}
    choice = choose_channels(keys, source.name, ecg=ecg if ecg is not None else plain["ecg"],
                             ppg=ppg if ppg is not None else plain["ppg"])
    for m in ("ecg", "ppg"):
        if getattr(choice, m) is not None and plain[m] is not None and (ecg if m == "ecg" else ppg) is None:
            setattr(choice, f"{m}_how", "name")
    sig = {m: z.load(keys[i]) for m, i in (("ecg", choice.ecg), ("ppg", choice.ppg)) if i is not None}
    choice.to_meta(meta)
    if "ecg" in sig and not meta.get("lead"):
        meta["lead"] = lead_from_name(choice.ecg_name)
    extra = ecg_lead_columns(keys, choice)[1:]
    n = max((a.size for a in sig.values()), default=0)
    if extra and not limits.fits_read(n, len(sig) + len(extra)):
        meta["notes"].append(f"{len(extra)} other ECG lead(s) not read (m2ae.io.limits.MAX_READ_SAMPLES)")
        extra = []
    others = [(keys[i], z.load(keys[i]), None) for i in extra]
    ecg_leads = collect_leads(meta, sig.get("ecg"), [o for o in others if o[1].size == n and o[1].ndim <= 1])
    return make_record(source.name, rate, sig.get("ecg"), sig.get("ppg"), meta, ecg_leads=ecg_leads)


def _check_npy_header(source: Source) -> None:
    """Refuse an NPY file whose header declares more than the file holds or the limits allow, before
    ``np.load`` allocates the declared shape."""
    f = io.BytesIO(source.head(1 << 16))
    try:
        shape, _, dtype = _npy_header(f)
    except (ValueError, OSError, EOFError) as e:
        raise InputError(f"{source.name}: not a readable NPY array ({' '.join(str(e).split())[:120]})") from None
    if dtype.hasobject:
        raise _pickle_error(source, "the array")
    n = int(np.prod(shape, dtype=object))
    longest = max(shape, default=1)
    limits.check_read(source.name, longest, n // max(1, longest))
    if n * dtype.itemsize > source.size - f.tell():
        raise InputError(f"{source.name}: the NPY header declares shape {shape} ({n * dtype.itemsize:,} bytes) but "
                         f"the file holds {source.size - f.tell():,} bytes of data (truncated or corrupt)")


def read_npy(source: Source, fs: float | None = None, ecg: str | int | None = None,
             ppg: str | int | None = None) -> Record:
    """Read a bare NPY array (samples x channels, or structured); needs ``fs`` in Hz."""
    _check_npy_header(source)
    try:
        a = np.load(io.BytesIO(source.read_bytes()), allow_pickle=False)
    except ValueError as e:
        if _is_pickle_refusal(e):
            raise _pickle_error(source, "the array") from None
        raise InputError(f"{source.name}: not a readable NPY array ({' '.join(str(e).split())[:120]})") from None
    except (OSError, EOFError) as e:
        raise InputError(f"{source.name}: not a readable NPY array ({' '.join(str(e).split())[:120]})") from None
    if fs is None:
        raise InputError(f"{source.name}: NPY files carry no sampling rate; pass --fs HZ")
    meta = new_meta(source, "npy")
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
    choice.to_meta(meta)
    if choice.ecg is not None:
        meta["lead"] = lead_from_name(choice.ecg_name) if a.dtype.names else None
    return make_record(source.name, fs, cols[choice.ecg] if choice.ecg is not None else None,
                       cols[choice.ppg] if choice.ppg is not None else None, meta)
