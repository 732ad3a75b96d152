"""The last step of every reader: channels, units and rate checked one way, then the ``Record``.

Readers start ``Record.meta`` with ``new_meta``, pass each picked channel through ``add_channel``
(ECG to mV, lead and unit noted) and finish with ``make_record``, which refuses what the signal
contract cannot use.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .. import contract
from ..errors import InputError
from ..record import Record
from .channels import lead_from_name
from .sources import Source

# Scale factors to mV for the ECG units monitors and files use (keys lower case).
_TO_MV = {"uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "microvolt": 1e-3, "v": 1e3, "volt": 1e3, "nv": 1e-6}


def new_meta(source: Source, fmt: str, record_id: str | None = None, units: bool = False) -> dict[str, Any]:
    """The ``Record.meta`` every reader starts from: source, format, notes, labels, record id.

    record_id : defaults to the main file's stem; units : also start an empty ``units`` map.
    """
    meta: dict[str, Any] = {"source": source.name, "format": fmt, "notes": [], "labels": {},
                            "record_id": Path(source.main).stem if record_id is None else record_id}
    if units:
        meta["units"] = {}
    return meta


def merge_extra_meta(meta: dict[str, Any], extra_meta: dict[str, Any] | None) -> None:
    """Overlay a corpus' ids and labels on what the file said; labels merge key by key."""
    if extra_meta:
        labels = {**meta["labels"], **extra_meta.get("labels", {})}
        meta.update(extra_meta)
        meta["labels"] = labels


def units_to_mv(x: np.ndarray, unit: str | None, notes: list[str]) -> tuple[np.ndarray, str | None]:
    """ECG in µV or V is scaled to mV (the unit the clinical grid uses); other units are kept."""
    u = (unit or "").strip()
    scale = _TO_MV.get(u.lower())
    if scale is None:
        return x, (u or None)
    notes.append(f"ECG converted from {u} to mV")
    return x * scale, "mV"


def add_channel(meta: dict[str, Any], mod: str, x: np.ndarray, unit: str | None,
                channel_name: str | None) -> np.ndarray:
    """One picked channel: ECG scaled to mV with its lead from ``channel_name``; the unit goes to
    ``meta['units'][mod]``. Returns the (scaled) samples."""
    if mod == "ecg":
        x, unit = units_to_mv(x, unit, meta["notes"])
        meta["lead"] = lead_from_name(channel_name)
    if unit:
        meta["units"][mod] = unit
    return x


def check_fs(fs: Any, source: str) -> float:
    """The sampling rate as a float in Hz, refused outside [MIN_FS_HZ, MAX_FS_HZ]."""
    try:
        fs = float(fs)
    except (TypeError, ValueError):
        raise InputError(f"{source}: sampling rate {fs!r} is not a number") from None
    if not np.isfinite(fs) or not contract.MIN_FS_HZ <= fs <= contract.MAX_FS_HZ:
        raise InputError(f"{source}: sampling rate {fs:g} Hz is outside the supported range "
                         f"[{contract.MIN_FS_HZ:g}, {contract.MAX_FS_HZ:g}] Hz")
    return float(fs)


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
    """Validate channels and rate (Hz) the same way for every format and build the ``Record``.

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
