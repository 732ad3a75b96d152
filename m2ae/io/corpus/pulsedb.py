"""PulseDB layout: segment files (MATLAB v7.3 = HDF5, struct array ``Subj_Wins`` with ECG_F, PPG_F,
SegSBP, SegDBP, Age, Gender, ...) or generated ``Subset`` files; one 10-s record per segment.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import InputError
from ...record import Record
from ..assemble import make_record
from .common import guard

PULSEDB_FS_HZ = 125.0  # PulseDB segments: 10 s at 125 Hz
# Hypertension label from a segment's reference blood pressure: SBP >= 140 or DBP >= 90 mmHg
# (stage-2 / JNC 7 threshold, the usual cut in cuff-less BP papers built on PulseDB).
HTN_SBP_MMHG, HTN_DBP_MMHG = 140.0, 90.0


def is_hdf5(path: Path) -> bool:
    """True when ``path`` is HDF5, bare or as MATLAB v7.3 (a 512-byte text header, then HDF5)."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if head.startswith(b"\x89HDF"):
                return True
            f.seek(512)  # MATLAB v7.3 files carry a 512-byte text header before the HDF5 superblock
            return f.read(8).startswith(b"\x89HDF")
    except OSError:
        return False


def matches(path: Path) -> bool:
    """A PulseDB ``.mat`` file, or a folder with ``.mat`` files (not WFDB data) that are HDF5."""
    if path.is_file():
        return path.suffix.lower() == ".mat" and not path.with_suffix(".hea").exists() and is_hdf5(path)
    mats = [f for f in path.rglob("*.mat") if not f.with_suffix(".hea").exists()]
    return bool(mats) and any(is_hdf5(f) for f in mats[:5])


def _mat_value(h5: Any, obj: Any) -> Any:
    """One MATLAB v7.3 value: char -> str, numeric -> squeezed array/scalar, empty -> None."""
    import h5py

    if isinstance(obj, h5py.Reference):
        obj = h5[obj]
    cls = obj.attrs.get("MATLAB_class", b"")
    cls = cls.decode() if isinstance(cls, bytes) else str(cls)
    if obj.attrs.get("MATLAB_empty", 0):
        return None
    data = obj[()]
    if cls == "char":
        return "".join(chr(int(c)) for c in np.asarray(data).ravel())
    if cls == "cell" or (isinstance(data, np.ndarray) and data.dtype == h5py.ref_dtype):
        return [_mat_value(h5, r) for r in np.asarray(data).ravel()]
    arr = np.asarray(data)
    return arr.item() if arr.size == 1 else arr.squeeze()


def _pulsedb_labels(fields: dict[str, Any]) -> dict[str, Any]:
    labels: dict[str, Any] = {}
    age = fields.get("Age")
    if age is not None and np.isfinite(np.asarray(age, dtype=float)).all():
        labels["age"] = float(age)
    sex = fields.get("Gender")
    if isinstance(sex, str) and sex[:1].upper() in ("M", "F"):
        labels["sex"] = sex[:1].upper()
    elif isinstance(sex, (int, float)) and np.isfinite(sex):
        labels["sex_code"] = float(sex)
    sbp, dbp = fields.get("SegSBP", fields.get("SBP")), fields.get("SegDBP", fields.get("DBP"))
    if sbp is not None and dbp is not None and np.isfinite(float(sbp)) and np.isfinite(float(dbp)):
        labels["sbp_mmhg"], labels["dbp_mmhg"] = float(sbp), float(dbp)
        labels["hypertension"] = int(float(sbp) >= HTN_SBP_MMHG or float(dbp) >= HTN_DBP_MMHG)
    for key in ("Height", "Weight", "BMI"):
        v = fields.get(key)
        if v is not None and np.isfinite(float(v)):
            labels[key.lower()] = float(v)
    return labels


def _iter_pulsedb_file(f: Path) -> Iterator[Record | InputError]:
    import h5py

    origin = f.parent.name if f.parent.name.lower().startswith("pulsedb") else "PulseDB"
    try:
        h5 = h5py.File(f, "r")
    except OSError as e:
        yield InputError(f"{f}: not a readable MATLAB v7.3 (HDF5) file ({e})")
        return
    with h5:
        if "Subj_Wins" in h5:
            g = h5["Subj_Wins"]
            fields = list(g.keys())
            ecg_key = next((k for k in ("ECG_F", "ECG_Raw", "ECG") if k in fields), None)
            ppg_key = next((k for k in ("PPG_F", "PPG_Raw", "PPG") if k in fields), None)
            if ecg_key is None and ppg_key is None:
                yield InputError(f"{f}: Subj_Wins has no ECG_F/PPG_F fields (fields: {', '.join(fields)})")
                return
            refs = {k: np.asarray(g[k][()]).ravel() for k in fields if g[k].dtype == h5py.ref_dtype}
            n = len(refs.get(ecg_key if ecg_key else ppg_key, []))
            want = {k for k in fields if k in ("Age", "Gender", "SegSBP", "SegDBP", "Height", "Weight", "BMI",
                                              "CaseID", "SubjectID", "Subj_Name")}
            for j in range(n):
                vals = {k: _mat_value(h5, refs[k][j]) for k in want if k in refs}
                sig = {m: np.asarray(_mat_value(h5, refs[k][j]), dtype=np.float64).ravel() if k else None
                       for m, k in (("ecg", ecg_key), ("ppg", ppg_key))}
                meta: dict[str, Any] = {
                    "source": f"{f.name}#{j + 1}", "format": "pulsedb", "subject_id": f.stem,
                    "record_id": f"{f.stem}/{j + 1}", "origin": origin, "labels": _pulsedb_labels(vals),
                    "lead": "II", "ecg_column": ecg_key, "ppg_column": ppg_key, "notes": []}
                if vals.get("CaseID") is not None:
                    meta["case_id"] = vals["CaseID"]
                yield guard(f, make_record, f"{f.name}#{j + 1}", PULSEDB_FS_HZ, sig["ecg"], sig["ppg"], meta)
        elif "Subset" in h5:
            yield from _iter_pulsedb_subset(h5, f)
        else:
            yield InputError(f"{f}: neither a PulseDB segment file (Subj_Wins) nor a Subset file")


def _iter_pulsedb_subset(h5: Any, f: Path) -> Iterator[Record | InputError]:
    g = h5["Subset"]
    sig = np.asarray(g["Signals"][()])  # MATLAB N x 3 x 1250 is stored transposed: 1250 x 3 x N
    if sig.ndim != 3 or sig.shape[1] != 3:
        yield InputError(f"{f}: Subset/Signals has shape {sig.shape}, expected 1250 x 3 x N")
        return
    n = sig.shape[2]
    cols = {k: _mat_value(h5, g[k]) for k in ("Subject", "Age", "Gender", "SBP", "DBP", "Height", "Weight", "BMI")
            if k in g}

    def at(k, j):
        v = cols.get(k)
        if v is None:
            return None
        return v[j] if isinstance(v, list) else np.asarray(v).ravel()[j]

    for j in range(n):
        subj = at("Subject", j)
        vals = {"Age": at("Age", j), "Gender": at("Gender", j), "SegSBP": at("SBP", j), "SegDBP": at("DBP", j),
                "Height": at("Height", j), "Weight": at("Weight", j), "BMI": at("BMI", j)}
        vals = {k: v for k, v in vals.items() if v is not None}
        meta: dict[str, Any] = {"source": f"{f.name}#{j + 1}", "format": "pulsedb-subset",
                                "record_id": f"{f.stem}/{j + 1}",
                "subject_id": str(subj) if subj is not None else None, "labels": _pulsedb_labels(vals),
                "lead": "II", "ecg_column": "ECG_F", "ppg_column": "PPG_F", "notes": []}
        yield guard(f, make_record, f"{f.name}#{j + 1}", PULSEDB_FS_HZ, sig[:, 0, j], sig[:, 1, j], meta)


def iterate(folder: Path) -> Iterator[Record | InputError]:
    """Records (or the InputError of each one not read) of the corpus at ``folder``."""
    if folder.is_file():
        files = [folder]
    else:
        files = sorted(f for f in folder.rglob("*.mat") if not f.with_suffix(".hea").exists())
    for f in files:
        yield from _iter_pulsedb_file(f)

