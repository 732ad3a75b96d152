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
from .report import must_stop, unexpected

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


# A PulseDB segment holds 1250 samples per signal; a value declaring more than this is refused before
# it is read (a hostile file can declare a dataset of any size), as is a cell nested deeper than
# MAX_CELL_DEPTH (a cell whose reference points back at itself would recurse forever).
MAX_VALUE_ELEMENTS = 10_000_000
MAX_CELL_DEPTH = 4


def _mat_value(h5: Any, obj: Any, depth: int = 0) -> Any:
    """One MATLAB v7.3 value: char -> str, numeric -> squeezed array/scalar, empty -> None.

    Raises InputError for a cell nested deeper than MAX_CELL_DEPTH (e.g. one that refers to itself) or a
    value declaring more than MAX_VALUE_ELEMENTS elements."""
    import h5py

    if depth > MAX_CELL_DEPTH:
        raise InputError(f"cell references nested deeper than {MAX_CELL_DEPTH} levels (a cell that refers to itself?)")
    if isinstance(obj, h5py.Reference):
        if not obj:
            return None
        obj = h5[obj]
    if not isinstance(obj, h5py.Dataset):
        raise InputError(f"expected a MATLAB value, found a {type(obj).__name__}")
    size = int(np.prod(obj.shape, dtype=np.float64)) if obj.shape else 1
    if size > MAX_VALUE_ELEMENTS:
        raise InputError(f"a value declares {size} elements, more than {MAX_VALUE_ELEMENTS} (MAX_VALUE_ELEMENTS)")
    cls = obj.attrs.get("MATLAB_class", b"")
    cls = cls.decode(errors="replace") if isinstance(cls, bytes) else str(cls)
    if obj.attrs.get("MATLAB_empty", 0):
        return None
    data = obj[()]
    if cls == "char":
        return "".join(chr(int(c)) for c in np.asarray(data).ravel() if 0 < int(c) < 0x110000)
    if cls == "cell" or (isinstance(data, np.ndarray) and data.dtype == h5py.ref_dtype):
        return [_mat_value(h5, r, depth + 1) for r in np.asarray(data).ravel()]
    arr = np.asarray(data)
    return arr.item() if arr.size == 1 else arr.squeeze()


def _number(v: Any) -> float | None:
    """``v`` as one finite float, else None (a string, an array of several values, NaN)."""
    try:
        a = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if a.size != 1 or not np.isfinite(a).all():
        return None
    return float(a.ravel()[0])


def _pulsedb_labels(fields: dict[str, Any]) -> dict[str, Any]:
    labels: dict[str, Any] = {}
    age = _number(fields.get("Age"))
    if age is not None:
        labels["age"] = age
    sex = fields.get("Gender")
    if isinstance(sex, str) and sex[:1].upper() in ("M", "F"):
        labels["sex"] = sex[:1].upper()
    elif not isinstance(sex, str) and _number(sex) is not None:
        labels["sex_code"] = _number(sex)
    sbp, dbp = _number(fields.get("SegSBP", fields.get("SBP"))), _number(fields.get("SegDBP", fields.get("DBP")))
    if sbp is not None and dbp is not None:
        labels["sbp_mmhg"], labels["dbp_mmhg"] = sbp, dbp
        labels["hypertension"] = int(sbp >= HTN_SBP_MMHG or dbp >= HTN_DBP_MMHG)
    for key in ("Height", "Weight", "BMI"):
        v = _number(fields.get(key))
        if v is not None:
            labels[key.lower()] = v
    return labels


def _cell(h5: Any, refs: dict[str, np.ndarray], key: str, j: int, n: int) -> Any:
    """Segment ``j``'s value of field ``key``; InputError naming the field when it cannot be read."""
    col = refs.get(key)
    if col is None:
        raise InputError(f"field {key} is not a MATLAB cell of values (or declares too many)")
    if j >= len(col):
        raise InputError(f"field {key} holds {len(col)} entries for {n} segments")
    try:
        return _mat_value(h5, col[j])
    except InputError as e:
        raise InputError(f"field {key}: {e}") from None
    except RecursionError:
        raise InputError(f"field {key}: cell references nested too deep") from None


def _segment(h5: Any, f: Path, origin: str, refs: dict[str, np.ndarray], keys: tuple[str | None, str | None],
             want: list[str], j: int, n: int) -> Record | InputError:
    """Segment ``j`` of a Subj_Wins file as a Record; a metadata field that cannot be read is left out
    with a note, a signal that cannot be read makes the segment an InputError item."""
    name = f"{f.name}#{j + 1}"
    notes: list[str] = []
    vals: dict[str, Any] = {}
    for field_name in want:
        try:
            vals[field_name] = _cell(h5, refs, field_name, j, n)
        except InputError as e:
            notes.append(f"{field_name} left out: {e}")
    sig: dict[str, np.ndarray | None] = {}
    for m, k in zip(("ecg", "ppg"), keys):
        if k is None:
            sig[m] = None
            continue
        try:
            v = _cell(h5, refs, k, j, n)
            sig[m] = None if v is None else np.asarray(v, dtype=np.float64).ravel()
        except (InputError, TypeError, ValueError) as e:
            return InputError(f"{name}: {m.upper()} not readable: {' '.join(str(e).split())[:200]}")
    meta: dict[str, Any] = {
        "source": name, "format": "pulsedb", "subject_id": f.stem, "record_id": f"{f.stem}/{j + 1}",
        "origin": origin, "labels": _pulsedb_labels(vals), "lead": "II", "ecg_column": keys[0],
        "ppg_column": keys[1], "notes": notes}
    if _number(vals.get("CaseID")) is not None or isinstance(vals.get("CaseID"), str):
        meta["case_id"] = vals["CaseID"]
    return guard(name, make_record, name, PULSEDB_FS_HZ, sig["ecg"], sig["ppg"], meta)


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
            fields = [k for k in g.keys() if isinstance(g[k], h5py.Dataset)]
            ecg_key = next((k for k in ("ECG_F", "ECG_Raw", "ECG") if k in fields), None)
            ppg_key = next((k for k in ("PPG_F", "PPG_Raw", "PPG") if k in fields), None)
            if ecg_key is None and ppg_key is None:
                yield InputError(f"{f}: Subj_Wins has no ECG_F/PPG_F fields (fields: {', '.join(fields)})")
                return
            refs = {k: np.asarray(g[k][()]).ravel() for k in fields
                    if g[k].dtype == h5py.ref_dtype and g[k].size <= MAX_VALUE_ELEMENTS}
            n = max(len(refs.get(k, [])) for k in (ecg_key, ppg_key) if k)
            want = [k for k in fields if k in refs and k in ("Age", "Gender", "SegSBP", "SegDBP", "Height", "Weight",
                                                             "BMI", "CaseID", "SubjectID", "Subj_Name")]
            for j in range(n):
                yield _segment(h5, f, origin, refs, (ecg_key, ppg_key), want, j, n)
        elif "Subset" in h5:
            yield from _iter_pulsedb_subset(h5, f)
        else:
            yield InputError(f"{f}: neither a PulseDB segment file (Subj_Wins) nor a Subset file")


def _iter_pulsedb_subset(h5: Any, f: Path) -> Iterator[Record | InputError]:
    g = h5["Subset"]
    ds = g["Signals"]
    if ds.size > 50 * MAX_VALUE_ELEMENTS:
        yield InputError(f"{f}: Subset/Signals declares shape {ds.shape}, more than {50 * MAX_VALUE_ELEMENTS} values")
        return
    sig = np.asarray(ds[()])  # MATLAB N x 3 x 1250 is stored transposed: 1250 x 3 x N
    if sig.ndim != 3 or sig.shape[1] != 3:
        yield InputError(f"{f}: Subset/Signals has shape {sig.shape}, expected 1250 x 3 x N")
        return
    n = sig.shape[2]
    cols: dict[str, Any] = {}
    file_notes: list[str] = []
    for k in ("Subject", "Age", "Gender", "SBP", "DBP", "Height", "Weight", "BMI"):
        if k not in g:
            continue
        try:
            v = _mat_value(h5, g[k])
        except (InputError, RecursionError) as e:
            file_notes.append(f"{k} left out: {e}")
            continue
        length = len(v) if isinstance(v, list) else np.asarray(v).size
        if v is not None and length != n:  # a short column cannot say which segment each value belongs to
            file_notes.append(f"{k} left out: the column holds {length} values for {n} segments")
            continue
        cols[k] = v

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
                                "subject_id": str(subj) if subj is not None else None,
                                "labels": _pulsedb_labels(vals), "lead": "II", "ecg_column": "ECG_F",
                                "ppg_column": "PPG_F", "notes": list(file_notes)}
        yield guard(f"{f.name}#{j + 1}", make_record, f"{f.name}#{j + 1}", PULSEDB_FS_HZ, sig[:, 0, j],
                    sig[:, 1, j], meta)


def iterate(folder: Path) -> Iterator[Record | InputError]:
    """Records (or the InputError of each one not read) of the corpus at ``folder``."""
    if folder.is_file():
        files = [folder]
    else:
        files = sorted(f for f in folder.rglob("*.mat") if not f.with_suffix(".hea").exists())
    for f in files:
        try:
            yield from _iter_pulsedb_file(f)
        except Exception as e:  # one corrupt file must not end the pass over the others
            if must_stop(e):
                raise
            yield InputError(f"{f}: {unexpected(e)} (later segments of this file were not read)")

