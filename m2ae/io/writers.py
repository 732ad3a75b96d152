"""Write a ``Record`` as NPZ, CSV, WFDB or EDF, so sample data and tests use the real formats.

Every format reads back with ``m2ae.io.load_record`` to the same channels, rate and (for NPZ and
WFDB) labels. Example::

    >>> from m2ae.io import write_record, load_record          # doctest: +SKIP
    >>> hea = write_record(rec, "sample_data/nsr/nsr", "wfdb")  # -> sample_data/nsr/nsr.hea (+ .dat)
    >>> load_record(hea).fs                                     # doctest: +SKIP
    250.0
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..record import Record

FORMATS = ("npz", "csv", "wfdb", "edf")
_SUFFIX = {"npz": ".npz", "csv": ".csv", "wfdb": ".hea", "edf": ".edf"}
META_COMMENT = "m2ae-meta:"  # WFDB header comment carrying the record's labels/ids as JSON
NPZ_META_KEY = "meta_json"  # NPZ key of the same JSON (a unicode array)
EDF_UNKNOWN_START = dt.datetime(1985, 1, 1)  # EDF+ convention for an unknown start date


def _json_meta(rec: Record) -> dict[str, Any]:
    """The part of meta worth carrying inside a file (ids, lead, units, labels, start time)."""
    keep = ("record_id", "subject_id", "lead", "units", "labels", "start_time", "origin")
    out = {k: rec.meta[k] for k in keep if k in rec.meta}
    return json.loads(json.dumps(out, default=_json_default))


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def _channels(rec: Record) -> list[tuple[str, str, np.ndarray, str]]:
    """(modality, channel name, samples, unit) for each present modality, ECG first."""
    units = rec.meta.get("units") or {}
    out = []
    if rec.ecg is not None:
        lead = rec.meta.get("lead") or "II"
        out.append(("ecg", str(lead), rec.ecg, units.get("ecg") or "mV"))
        out += _other_leads(rec, str(lead), units.get("ecg") or "mV")
    if rec.ppg is not None:
        out.append(("ppg", "PLETH", rec.ppg, units.get("ppg") or "NU"))
    return out


def _other_leads(rec: Record, lead: str, unit: str) -> list[tuple[str, str, np.ndarray, str]]:
    """``rec.ecg_leads`` besides the input lead, as ("ecg_lead", name, samples, unit) — only when none of
    them would be chosen over the input lead on reading (lead II ranks first), so a round trip keeps
    the model's input lead."""
    from .channels import ecg_rank

    others = [(str(k), x) for k, x in (rec.ecg_leads or {}).items() if x is not rec.ecg and str(k) != lead]
    names = {lead} | {k for k, _ in others}
    if not others or len(names) != len(others) + 1 or {k.lower() for k in names} & {"ecg", "ppg", "pleth", "fs"}:
        return []
    rank = ecg_rank(lead)
    if rank is None or any((r := ecg_rank(k)) is None or r < rank for k, _ in others):
        return []
    return [("ecg_lead", k, x, unit) for k, x in others]


def write_record(rec: Record, path: str | Path, fmt: str | None = None) -> Path:
    """Write ``rec`` to ``path`` in ``fmt`` (npz, csv, wfdb, edf; default: from the suffix).

    path : file path; for WFDB the record path with or without ``.hea`` (the ``.dat`` goes beside it).
    Returns the path to open with ``load_record`` (the ``.hea`` for WFDB). Parent folders are created.
    ECG is written as lead ``meta['lead']`` (default II), PPG as ``PLETH``; the record's other ECG
    leads (``ecg_leads``) are written beside it when reading back would still pick the same input lead.
    """
    path = Path(path)
    if fmt is None:
        fmt = {".npz": "npz", ".csv": "csv", ".hea": "wfdb", ".edf": "edf"}.get(path.suffix.lower())
        if fmt is None:
            raise InputError(f"{path}: cannot tell the format from the suffix; pass fmt= one of {FORMATS}")
    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise InputError(f"{path}: unknown output format {fmt!r}; use one of {FORMATS}")
    if path.suffix.lower() != _SUFFIX[fmt]:
        path = path.with_name(path.name + _SUFFIX[fmt]) if fmt != "wfdb" or path.suffix.lower() != ".hea" else path
    path.parent.mkdir(parents=True, exist_ok=True)
    return {"npz": _write_npz, "csv": _write_csv, "wfdb": _write_wfdb, "edf": _write_edf}[fmt](rec, path)


def _write_npz(rec: Record, path: Path) -> Path:
    arrays: dict[str, Any] = {"fs": np.asarray(rec.fs, dtype=np.float64)}
    if rec.ecg is not None:
        arrays["ecg"] = np.asarray(rec.ecg, dtype=np.float32)
    if rec.ppg is not None:
        arrays["ppg"] = np.asarray(rec.ppg, dtype=np.float32)
    for mod, name, x, _ in _channels(rec):
        if mod == "ecg_lead":
            arrays[name] = np.asarray(x, dtype=np.float32)
    # A unicode string array, not an object array, so it loads with allow_pickle=False.
    arrays[NPZ_META_KEY] = np.asarray(json.dumps(_json_meta(rec)))
    np.savez_compressed(path, **arrays)
    return path


def _write_csv(rec: Record, path: Path) -> Path:
    chans = _channels(rec)
    t = np.arange(rec.n_samples) / rec.fs
    header = ["Time [s]"] + [("ECG " + name if mod != "ppg" else name) + f" [{unit}]" for mod, name, _, unit in chans]
    data = np.column_stack([t] + [x for _, _, x, _ in chans])
    fmt = ["%.6f"] + ["%.6g"] * len(chans)
    np.savetxt(path, data, delimiter=",", header=",".join(header), comments="", fmt=fmt)
    return path


def _write_wfdb(rec: Record, path: Path) -> Path:
    import wfdb

    chans = _channels(rec)
    name = path.stem
    signal = np.column_stack([x for _, _, x, _ in chans])
    comments = [f"{META_COMMENT} {json.dumps(_json_meta(rec))}"]
    labels = rec.meta.get("labels") or {}
    # The <key>: value comments MIMIC/BIDMC use, so other WFDB tools see age and sex too.
    if "age" in labels or "sex" in labels:
        comments.insert(0, " ".join(f"<{k}>: {labels[k]}" for k in ("age", "sex") if k in labels))
    wfdb.wrsamp(name, fs=rec.fs, units=[u for *_, u in chans], sig_name=[n for _, n, _, _ in chans],
                p_signal=signal, fmt=["16"] * len(chans), comments=comments, write_dir=str(path.parent))
    return path.with_suffix(".hea")


def _write_edf(rec: Record, path: Path) -> Path:
    from pyedflib import highlevel

    chans = _channels(rec)
    signals, headers = [], []
    for mod, name, x, unit in chans:
        x = np.asarray(x, dtype=np.float64)
        if mod == "ecg_lead" and not np.isfinite(x).all():
            continue  # an extra lead with gaps is left out rather than failing the export
        if not np.isfinite(x).all():
            raise InputError(f"{path}: EDF cannot store NaN samples ({mod.upper()}); write NPZ, CSV or WFDB instead")
        lo, hi = float(x.min()), float(x.max())
        pad = max(1e-3, 0.01 * (hi - lo))  # EDF needs physical_min < physical_max
        label = ("ECG " + name) if mod != "ppg" else name
        headers.append(highlevel.make_signal_header(label[:16], dimension=unit[:8], sample_frequency=rec.fs,
                                                    physical_min=round(lo - pad, 4), physical_max=round(hi + pad, 4)))
        signals.append(x)
    labels = rec.meta.get("labels") or {}
    header = highlevel.make_header(patientcode=str(rec.meta.get("subject_id", ""))[:20],
                                   startdate=_edf_start(rec.meta.get("start_time")))
    if labels.get("sex") in ("M", "F"):
        header["sex"] = "Male" if labels["sex"] == "M" else "Female"
    highlevel.write_edf(str(path), signals, headers, header=header)
    return path


def _edf_start(start_time: Any):
    """EDF needs a start date; unknown ones get 01.01.1985, the EDF+ convention for 'not known'."""
    if start_time:
        try:
            return dt.datetime.fromisoformat(str(start_time)).replace(tzinfo=None, microsecond=0)
        except ValueError:
            pass
    return EDF_UNKNOWN_START
