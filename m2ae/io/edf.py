"""EDF, EDF+ and BDF files (pyEDFlib): per-channel rates, physical units, patient code and sex.

Channels sampled at different rates are resampled to the highest of the picked ones, so ECG and PPG
share one rate. ``channel_names`` reads the labels from the fixed-layout header bytes alone, which
works on a header that pyEDFlib would refuse as a whole file.
"""
from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np

from .. import contract
from ..errors import InputError
from ..record import Record
from . import limits
from .assemble import add_channel, collect_leads, make_record, new_meta
from .channels import choose_channels, ecg_lead_columns
from .sources import Source
from .writers import EDF_UNKNOWN_START

# EDF header (EDF spec, section 2): 256 fixed bytes, the signal count at bytes 252-256, then one
# 16-character label per signal. BDF uses the same layout.
_FIXED_BYTES, _NS_AT, _LABEL_BYTES = 256, slice(252, 256), 16
# Per-signal header bytes (label 16, transducer 80, dimension 8, 4 x 8 min/max, prefilter 80) before
# the samples-per-record field, and the record count and duration fields of the fixed part.
_SPR_OFFSET, _N_RECORDS_AT, _DURATION_AT = 216, slice(236, 244), slice(244, 252)
_MAX_SIGNALS = 4096
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


def check_header(source: Source, picked_labels: list[str] | None = None) -> None:
    """Rates and span the header declares, checked against ``m2ae.io.limits`` and the file size before
    pyEDFlib allocates anything: record count x duration (s), samples per record / duration (Hz).

    picked_labels : the signals that will be read (all non-annotation signals when None).
    """
    head = source.head(_FIXED_BYTES)
    try:
        ns = int(head[_NS_AT].decode("ascii").strip())
        n_records = int(head[_N_RECORDS_AT].decode("ascii").strip())
        duration = float(head[_DURATION_AT].decode("ascii").strip())
    except (ValueError, UnicodeDecodeError):
        raise InputError(f"{source.name}: not a readable EDF/BDF file (header fields are not numbers)") from None
    if not 0 < ns <= _MAX_SIGNALS:
        raise InputError(f"{source.name}: not a readable EDF/BDF file (header declares {ns} signals)")
    header = source.head(_FIXED_BYTES * (ns + 1))
    if len(header) < _FIXED_BYTES * (ns + 1):
        raise InputError(f"{source.name}: not a readable EDF/BDF file (header cut short)")
    labels = [header[_FIXED_BYTES + i * _LABEL_BYTES:_FIXED_BYTES + (i + 1) * _LABEL_BYTES].decode("ascii", "replace")
              .strip() for i in range(ns)]
    at = _FIXED_BYTES + ns * _SPR_OFFSET
    try:
        spr = [int(header[at + 8 * i:at + 8 * (i + 1)].decode("ascii").strip()) for i in range(ns)]
    except (ValueError, UnicodeDecodeError):
        raise InputError(f"{source.name}: not a readable EDF/BDF file (samples per record are not numbers)") from None
    per_sample = 3 if head[:8] == b"\xffBIOSEMI" else 2
    record_bytes = sum(max(0, n) for n in spr) * per_sample
    held = (source.size - len(header)) // record_bytes if record_bytes > 0 else 0
    n_records = held if n_records < 0 else n_records  # -1: not known while recording
    if not duration > 0 or not np.isfinite(duration):  # a zero duration means "not timed": pyEDFlib says so
        return
    if held < n_records:
        raise InputError(f"{source.name}: EDF data is truncated ({held:,} of {n_records:,} data records)")
    wanted = [(lb, n) for lb, n in zip(labels, spr) if lb not in _ANNOTATION_LABELS
              and (picked_labels is None or lb in picked_labels)]
    for lb, n in wanted:
        rate = n / duration
        if not contract.MIN_FS_HZ <= rate <= contract.MAX_FS_HZ:
            raise InputError(f"{source.name}: signal {lb[:16]!r} is sampled at {rate:g} Hz, outside the supported "
                             f"range [{contract.MIN_FS_HZ:g}, {contract.MAX_FS_HZ:g}] Hz")
        limits.check_span(source.name, n_records * duration, rate)
    if wanted:
        limits.check_read(source.name, n_records * max(n for _, n in wanted), len(wanted))


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

    names = channel_names(source)
    if names:
        first = choose_channels(names, source.name, ecg=ecg, ppg=ppg)
        check_header(source, [names[i] for i in (first.ppg, *ecg_lead_columns(names, first)) if i is not None])
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
            leads = ecg_lead_columns(names, choice)[1:]
            others = [(names[i], f.readSignal(i).astype(np.float64), f.getPhysicalDimension(i).strip(),
                       float(f.getSampleFrequency(i))) for i in leads]
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
    n = len(sig["ecg"]) if "ecg" in sig else 0
    resampled = [(lb, _resample_to(x, r, rate)[:n] if r != rate else x, u) for lb, x, u, r in others]
    ecg_leads = collect_leads(meta, sig.get("ecg"), resampled)
    if fs is not None and float(fs) != rate:
        meta["notes"].append(f"sampling rate {float(fs):g} Hz given instead of the file's {rate:g} Hz")
        rate = fs
    return make_record(source.name, rate, sig.get("ecg"), sig.get("ppg"), meta, ecg_leads=ecg_leads)
