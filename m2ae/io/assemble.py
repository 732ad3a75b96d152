"""The last step of every reader: channels, units and rate checked one way, then the ``Record``.

Readers start ``Record.meta`` with ``new_meta``, pass each picked channel through ``add_channel``
(ECG to mV, lead and unit noted) and finish with ``make_record``, which refuses what the signal
contract cannot use.
"""
from __future__ import annotations

from pathlib import Path
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import contract
from ..errors import InputError
from ..record import Record
from .channels import lead_from_name
from .sources import Source

# Scale factors to mV for the ECG units monitors and files use (keys lower case, no spaces or dots).
_TO_MV = {"uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "microvolt": 1e-3, "microvolts": 1e-3, "v": 1e3, "volt": 1e3,
          "volts": 1e3, "nv": 1e-6, "nanovolt": 1e-6, "nanovolts": 1e-6, "mv": 1.0, "millivolt": 1.0,
          "millivolts": 1.0}


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


def units_to_mv(x: np.ndarray, unit: str | None, notes: list[str] | None,
                what: str = "ECG") -> tuple[np.ndarray, str | None]:
    """ECG in µV, nV or V is scaled to mV (the unit the clinical grid uses; 'uV', 'microvolts', 'mV'
    spelt any way); other units are kept as they are. A conversion is noted in ``notes`` (unless None)."""
    u = (unit or "").strip()[:40]
    scale = _TO_MV.get(u.lower().replace(" ", "").replace(".", ""))
    if scale is None:
        return x, (u or None)
    if scale == 1.0:
        return x, "mV"
    if notes is not None:
        notes.append(f"{what} converted from {u} to mV")
    return x * scale, "mV"


def lead_key(channel_name: str | None, fallback: str = "ECG") -> str:
    """The key of a lead in ``Record.ecg_leads``: its lead name ('II', 'V5', 'aVL'), else the channel name."""
    return lead_from_name(channel_name) or (str(channel_name or "").strip()[:40] or fallback)


def collect_leads(meta: dict[str, Any], ecg: np.ndarray | None,
                  others: Sequence[tuple[str, np.ndarray, str | None]]) -> dict[str, np.ndarray] | None:
    """``Record.ecg_leads``: the model's input lead ``ecg`` (already in mV, named by ``meta['lead']`` or
    ``meta['ecg_column']``) and each other lead ``(channel name, samples, unit)`` scaled to mV; None when
    there is only one lead. Keys are lead names, made unique with a suffix (' #2')."""
    if ecg is None or not others:
        return None
    leads = {lead_key(meta.get("lead") or meta.get("ecg_column")): ecg}
    converted = []
    for name, x, unit in others:
        y, u = units_to_mv(np.asarray(x, dtype=np.float64), unit, None)
        if u != unit and unit:
            converted.append(f"{lead_key(name)} ({unit})")
        key, k = lead_key(name), 2
        while key in leads:
            key, k = f"{lead_key(name)} #{k}", k + 1
        leads[key] = y
    if converted:
        meta["notes"].append(f"other ECG leads converted to mV: {', '.join(converted[:12])}")
    return leads


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


def make_record(source: str, fs: Any, ecg: Any = None, ppg: Any = None, meta: dict | None = None,
                ecg_leads: dict[str, np.ndarray] | None = None) -> Record:
    """Validate channels and rate (Hz) the same way for every format and build the ``Record``.

    ecg_leads : every ECG lead (``collect_leads``), the input lead among them; leads whose length
    differs from the ECG's or that hold infinite values are left out with a note.

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
    leads = None
    if ecg_leads and "ecg" in chans:
        leads, bad = {}, []
        for key, x in ecg_leads.items():
            a = chans["ecg"] if x is ecg else np.asarray(x, dtype=np.float64).reshape(-1)
            if len(a) == len(chans["ecg"]) and not np.isinf(a).any():
                leads[key] = a
            else:
                bad.append(key)
        if bad:
            meta["notes"].append(f"ECG lead(s) {', '.join(bad[:12])} left out (other length or infinite values)")
    return Record(ecg=chans.get("ecg"), ppg=chans.get("ppg"), fs=fs, meta=meta,
                  ecg_leads=leads if leads and len(leads) > 1 else None)
