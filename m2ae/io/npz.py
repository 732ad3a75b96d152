"""NumPy files: ``.npz`` archives (named arrays + ``fs``) and bare ``.npy`` arrays.

Both are loaded with ``allow_pickle=False``: object arrays are refused, never unpickled. An NPZ
archive names its channels by key (``ecg``/``ppg`` first, then any recognised name) and carries its
rate in a key such as ``fs`` and optional ``meta_json`` (what ``write_record`` stores); an NPY array
has no rate and, unless structured, no channel names.
"""
from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import numpy as np

from ..errors import InputError
from ..record import Record
from .assemble import make_record, new_meta
from .channels import choose_channels, lead_from_name, normalize_name
from .sources import Source
from .writers import NPZ_META_KEY

_FS_KEYS = ("fs", "fs_hz", "sampling_rate", "sample_rate", "samplingrate", "sfreq", "freq", "srate", "rate")


def _pickle_error(source: Source, what: str) -> InputError:
    return InputError(f"{source.name}: {what} holds Python objects (pickle); m2ae never unpickles uploaded data, "
                      f"save plain numeric arrays instead")


def _is_pickle_refusal(e: ValueError) -> bool:
    return "allow_pickle" in str(e) or "Object arrays" in str(e)


def _open_npz(source: Source) -> Any:
    """The archive as a lazily read ``NpzFile``; refuses files that are not NPZ archives."""
    try:
        z = np.load(io.BytesIO(source.read_bytes()), allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise InputError(f"{source.name}: not a readable NPZ archive ({' '.join(str(e).split())[:120]})") from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise InputError(f"{source.name}: holds a single array, not an NPZ archive; rename it .npy")
    return z


def _fs_key(keys: list[str]) -> str | None:
    return next((k for k in keys if normalize_name(k) in _FS_KEYS), None)


def channel_names(source: Source) -> list[str]:
    """The keys of an NPZ archive that may hold channels (not its rate or metadata), without loading them."""
    with _open_npz(source) as z:
        keys = [k for k in z.files if k != NPZ_META_KEY]
    fs_key = _fs_key(keys)
    return [k for k in keys if k != fs_key]


def read_npz(source: Source, fs: float | None = None, ecg: str | int | None = None,
             ppg: str | int | None = None) -> Record:
    """Read an NPZ archive; ``fs`` (Hz) overrides the archive's own rate key."""
    arrays: dict[str, np.ndarray] = {}
    with _open_npz(source) as z:
        for k in z.files:
            try:
                arrays[k] = z[k]
            except ValueError as e:
                if _is_pickle_refusal(e):
                    raise _pickle_error(source, f"array {k!r}") from None
                raise InputError(f"{source.name}: array {k!r} is unreadable ({e})") from None
            except (zipfile.BadZipFile, OSError, EOFError) as e:
                raise InputError(f"{source.name}: array {k!r} is truncated or corrupt ({e})") from None
    meta = new_meta(source, "npz")
    if NPZ_META_KEY in arrays:
        try:
            stored = json.loads(str(arrays.pop(NPZ_META_KEY)))
            if isinstance(stored, dict):
                meta.update({k: v for k, v in stored.items() if k not in ("source", "notes")})
        except json.JSONDecodeError:
            meta["notes"].append("meta_json could not be parsed and was ignored")
    fs_key = _fs_key(list(arrays))
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
    choice.to_meta(meta)
    if "ecg" in sig and not meta.get("lead"):
        meta["lead"] = lead_from_name(choice.ecg_name)
    return make_record(source.name, rate, sig.get("ecg"), sig.get("ppg"), meta)


def read_npy(source: Source, fs: float | None = None, ecg: str | int | None = None,
             ppg: str | int | None = None) -> Record:
    """Read a bare NPY array (samples x channels, or structured); needs ``fs`` in Hz."""
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
