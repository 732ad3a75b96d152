"""EDF, EDF+ and BDF files (pyEDFlib): per-channel rates, physical units, patient code and sex.

Channels sampled at different rates are resampled to the highest of the picked ones, so ECG and PPG
share one rate. ``channel_names`` reads the labels from the fixed-layout header bytes alone, which
works on a header that pyEDFlib would refuse as a whole file.
"""
from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np

from ..errors import InputError
from ..record import Record
from .assemble import add_channel, make_record, new_meta
from .channels import choose_channels
from .sources import Source
from .writers import EDF_UNKNOWN_START

# EDF header (EDF spec, section 2): 256 fixed bytes, the signal count at bytes 252-256, then one
# 16-character label per signal. BDF uses the same layout.
_FIXED_BYTES, _NS_AT, _LABEL_BYTES = 256, slice(252, 256), 16
# EDF+/BDF+ annotation channels hold text, not samples; pyEDFlib leaves them out of its channels.
_ANNOTATION_LABELS = ("EDF Annotations", "BDF Annotations")


def channel_names(source: Source) -> list[str]:
    """The signal labels of an EDF/BDF header (annotation channels left out, as the reader does)."""
    head = source.head(_FIXED_BYTES)
    try:
        ns = int(head[_NS_AT].decode("ascii").strip())
    except (ValueError, UnicodeDecodeError):
        return []
    raw = source.head(_FIXED_BYTES + _LABEL_BYTES * ns)[_FIXED_BYTES:].decode("ascii", errors="replace")
    labels = [raw[i * _LABEL_BYTES:(i + 1) * _LABEL_BYTES].strip() for i in range(ns)]
    return [lb for lb in labels if lb not in _ANNOTATION_LABELS]


def _resample_to(x: np.ndarray, fs_from: float, fs_to: float) -> np.ndarray:
    from scipy.signal import resample_poly

    frac = Fraction(fs_to / fs_from).limit_denominator(1000)
    return resample_poly(x, frac.numerator, frac.denominator)


def _header_meta(f: Any, meta: dict[str, Any]) -> None:
    """Start time, patient code and sex from an open ``pyedflib.EdfReader`` into ``meta``."""
    start = f.getStartdatetime()
    if start.replace(tzinfo=None) != EDF_UNKNOWN_START:  # 01.01.85 00:00 means "not known"
        meta["start_time"] = start.isoformat()
    code = (f.getPatientCode() or "").strip()
    if code:
        meta["subject_id"] = code
    sex = (getattr(f, "getSex", None) or f.getGender)()
    if isinstance(sex, str) and sex[:1].upper() in ("M", "F"):
        meta["labels"]["sex"] = sex[:1].upper()


def read(source: Source, fs: float | None = None, ecg: str | int | None = None,
         ppg: str | int | None = None) -> Record:
    """Read an EDF/EDF+/BDF file; ``fs`` (Hz) replaces the file's rate (noted in ``meta['notes']``)."""
    import pyedflib

    with source.on_disk() as path:
        try:
            f = pyedflib.EdfReader(str(path))
        except OSError as e:
            raise InputError(f"{source.name}: not a readable EDF/BDF file ({' '.join(str(e).split())[:160]})") from None
        try:
            names = list(f.getSignalLabels())
            choice = choose_channels(names, source.name, ecg=ecg, ppg=ppg)
            meta = new_meta(source, "edf", units=True)
            _header_meta(f, meta)
            sig, rates = {}, {}
            for m in ("ecg", "ppg"):
                i = getattr(choice, m)
                if i is None:
                    continue
                x = f.readSignal(i).astype(np.float64)
                sig[m] = add_channel(meta, m, x, f.getPhysicalDimension(i).strip(), names[i])
                rates[m] = float(f.getSampleFrequency(i))
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
    choice.to_meta(meta)
    if fs is not None and float(fs) != rate:
        meta["notes"].append(f"sampling rate {float(fs):g} Hz given instead of the file's {rate:g} Hz")
        rate = fs
    return make_record(source.name, rate, sig.get("ecg"), sig.get("ppg"), meta)
