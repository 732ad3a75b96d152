"""Corpus layouts -> streams of ``Record`` with the labels each corpus carries.

One concept (how a corpus folder maps to records, subjects and labels), one short section per
layout, hence its length; the files themselves are read by the format modules. Layouts
(``detect_layout`` tells them apart from the folder's contents):

- ``bidmc``: BIDMC PPG and Respiration Dataset, ``bidmc_NN_Signals.csv`` (+ ``_Numerics.csv``,
  ``_Fix.txt``) and/or WFDB ``bidmcNN.hea``; one record per subject, labels age/sex when given.
- ``mimic3wdb``: MIMIC-III matched waveform database folders ``pXX/pXXXXXX/`` with multi-segment
  master headers ``pXXXXXX-YYYY-MM-DD-hh-mm.hea``; one record per segment holding II and/or PLETH
  (segments are contiguous stretches; a master record can last days), subject id from the folder.
- ``vitaldb``: ``NNNN.vital`` files (tracks SNUADC/ECG_II, SNUADC/PLETH) and an optional
  ``clinical_data.csv`` (caseid, subjectid, age, sex, preop_htn, death_inhosp, ...).
- ``pulsedb``: PulseDB segment files (MATLAB v7.3 = HDF5, struct array ``Subj_Wins`` with ECG_F,
  PPG_F, SegSBP, SegDBP, Age, Gender, ...) or generated ``Subset`` files; one 10-s record per segment.
- ``ptbxl``: PTB-XL ``ptbxl_database.csv`` + ``scp_statements.csv`` + ``records500``/``records100``;
  ECG only (lead II), labels age, sex, diagnostic superclasses (NORM, MI, STTC, CD, HYP).
- ``folder``: any folder of files ``load_record`` reads.

>>> for rec in iter_corpus("/data/mimic3wdb-matched/p00"):   # doctest: +SKIP
...     print(rec.meta["subject_id"], rec.duration_s)
"""
from __future__ import annotations

import ast
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..record import Record
from .assemble import make_record
from .channels import ecg_rank, ppg_rank
from .load import EXTENSIONS, load_record
from .sources import open_source, wfdb_segments
from .vital import read_vital_path
from .wfdb import read_wfdb_path

log = logging.getLogger("m2ae.io")

LAYOUTS = ("bidmc", "mimic3wdb", "vitaldb", "pulsedb", "ptbxl", "folder")
PULSEDB_FS_HZ = 125.0  # PulseDB segments: 10 s at 125 Hz
# Hypertension label from a segment's reference blood pressure: SBP >= 140 or DBP >= 90 mmHg
# (stage-2 / JNC 7 threshold, the usual cut in cuff-less BP papers built on PulseDB).
HTN_SBP_MMHG, HTN_DBP_MMHG = 140.0, 90.0

# Tables that describe a corpus rather than hold a record; a folder walk leaves them out.
_CORPUS_TABLES = ("clinical_data.csv", "ptbxl_database.csv", "scp_statements.csv", "manifest.csv")
_MIMIC_MASTER = re.compile(r"^p\d{6}-\d{4}-\d{2}-\d{2}-\d{2}-\d{2}\.hea$")
_BIDMC_CSV = re.compile(r"^bidmc_(\d+)_Signals\.csv$", re.I)
_BIDMC_WFDB = re.compile(r"^bidmc(\d+)\.hea$", re.I)


def wfdb_segment_headers(headers: Iterable[str | Path]) -> set[Path]:
    """Headers that are segments of a multi-segment WFDB record among ``headers`` (.hea paths).

    Segments are read through their master header, so folder walkers skip them."""
    segments: set[Path] = set()
    for h in headers:
        try:
            names = wfdb_segments(Path(h).read_text(errors="replace"))
        except OSError:
            continue
        if names is not None:
            segments.update(Path(h).parent / f"{n}.hea" for n in names if n != "~")
    return segments


def _is_hdf5(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if head.startswith(b"\x89HDF"):
                return True
            f.seek(512)  # MATLAB v7.3 files carry a 512-byte text header before the HDF5 superblock
            return f.read(8).startswith(b"\x89HDF")
    except OSError:
        return False


def detect_layout(path: str | Path) -> str | None:
    """Name the corpus layout of a folder (or a single corpus file), or None when nothing is readable."""
    p = Path(path)
    if p.is_file():
        if p.suffix.lower() == ".vital":
            return "vitaldb"
        if p.suffix.lower() == ".mat" and not p.with_suffix(".hea").exists() and _is_hdf5(p):
            return "pulsedb"
        return "folder" if p.suffix.lower() in EXTENSIONS else None
    if not p.is_dir():
        return None
    if (p / "ptbxl_database.csv").exists():
        return "ptbxl"
    names = [f.name for f in p.iterdir()]
    if any(_BIDMC_CSV.match(n) or _BIDMC_WFDB.match(n) for n in names):
        return "bidmc"
    if next(_mimic_masters(p), None) is not None:
        return "mimic3wdb"
    if any(n.lower().endswith(".vital") for n in names):
        return "vitaldb"
    mats = [f for f in p.rglob("*.mat") if not f.with_suffix(".hea").exists()]
    if mats and any(_is_hdf5(f) for f in mats[:5]):
        return "pulsedb"
    if any(f.is_file() and f.suffix.lower() in EXTENSIONS for f in p.rglob("*")):
        return "folder"
    return None


def iter_corpus(path: str | Path | list, layout: str | None = None, *, on_error: str = "skip",
                min_duration_s: float = 0.0) -> Iterator[Record]:
    """Yield the records of a corpus folder, with ``meta['subject_id']`` and ``meta['labels']``.

    path : a corpus folder or file, or a list of them (each laid out on its own).
    layout : one of LAYOUTS; None detects it (``detect_layout``).
    on_error : "skip" logs unreadable files on the ``m2ae.io`` logger and goes on; "raise" stops
        with the InputError.
    min_duration_s : records shorter than this (s) are skipped quietly, e.g. ``m2ae.WINDOW_S`` to
        drop MIMIC segments too short for one window.
    """
    if isinstance(path, (list, tuple)):
        for one in path:
            yield from iter_corpus(one, layout, on_error=on_error, min_duration_s=min_duration_s)
        return
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: corpus folder not found")
    layout = layout or detect_layout(p)
    if layout is None:
        raise InputError(f"{p}: no corpus layout recognised and no readable files; layouts: {', '.join(LAYOUTS)}")
    if layout not in LAYOUTS:
        raise InputError(f"{p}: unknown layout {layout!r}; use one of {', '.join(LAYOUTS)}")
    if on_error not in ("skip", "raise"):
        raise ValueError("on_error must be 'skip' or 'raise'")
    gen = {"bidmc": _iter_bidmc, "mimic3wdb": _iter_mimic, "vitaldb": _iter_vitaldb, "pulsedb": _iter_pulsedb,
           "ptbxl": _iter_ptbxl, "folder": _iter_folder}[layout]
    for item in gen(p):
        if isinstance(item, InputError):
            if on_error == "raise":
                raise item
            log.warning("skipped: %s", item)
            continue
        if item.duration_s < min_duration_s:
            log.info("skipped %s: %.1f s is shorter than %.1f s", item.meta.get("source"), item.duration_s,
                     min_duration_s)
            continue
        item.meta.setdefault("corpus", layout)
        yield item


def _read_opened(reader: Callable[..., Record], path: Path, file: Path, **kwargs: Any) -> Record:
    """``reader(path, open_source(file), **kwargs)``: opened inside ``_guard``, so a file that cannot be
    opened (too large, empty) is skipped like one that cannot be read."""
    return reader(path, open_source(file), **kwargs)


def _guard(where: Any, fn, *args, **kwargs):
    """Run one reader; turn its failure into an InputError item for iter_corpus to skip or raise."""
    try:
        return fn(*args, **kwargs)
    except InputError as e:
        return e
    except Exception as e:  # a corrupt file deep in a corpus must not end a long pass
        return InputError(f"{where}: {type(e).__name__}: {' '.join(str(e).split())[:200]}")


# --- BIDMC ----------------------------------------------------------------------------------------

def _bidmc_labels(folder: Path, nn: str) -> dict[str, Any]:
    labels: dict[str, Any] = {}
    # PhysioNet's download keeps WFDB files at the top and the CSV/TXT files in bidmc_csv/.
    if not (folder / f"bidmc_{nn}_Fix.txt").exists() and (folder / "bidmc_csv").is_dir():
        folder = folder / "bidmc_csv"
    fix = folder / f"bidmc_{nn}_Fix.txt"
    if fix.exists():
        text = fix.read_text(errors="replace")
        if m := re.search(r"age\s*:\s*(\d+(?:\.\d+)?)", text, re.I):
            labels["age"] = float(m.group(1))
        if m := re.search(r"(?:gender|sex)\s*:\s*([MF])", text, re.I):
            labels["sex"] = m.group(1).upper()
    num = folder / f"bidmc_{nn}_Numerics.csv"
    if num.exists():
        import pandas as pd

        try:
            df = pd.read_csv(num, skipinitialspace=True)
            df.columns = [c.strip() for c in df.columns]
            for col, key in (("HR", "hr_monitor_bpm"), ("PULSE", "pulse_monitor_bpm"), ("SpO2", "spo2_pct")):
                if col in df.columns:
                    v = pd.to_numeric(df[col], errors="coerce").median()
                    if np.isfinite(v):
                        labels[key] = float(v)
        except Exception as e:  # numerics are a bonus, the signals are the record
            log.warning("%s: numerics not read (%s)", num, e)
    return labels


def _iter_bidmc(folder: Path):
    by_nn: dict[str, dict[str, Path]] = {}
    for f in sorted(folder.iterdir()):
        if m := _BIDMC_CSV.match(f.name):
            by_nn.setdefault(f"{int(m.group(1)):02d}", {})["csv"] = f
        elif m := _BIDMC_WFDB.match(f.name):
            by_nn.setdefault(f"{int(m.group(1)):02d}", {})["wfdb"] = f
    for nn, files in sorted(by_nn.items()):
        extra: dict[str, Any] = {"subject_id": f"bidmc_{nn}", "record_id": f"bidmc_{nn}",
                                 "labels": _bidmc_labels(folder, nn)}
        if "wfdb" in files:  # exact rate and units in the header; the CSV rounds its time stamps
            src = files["wfdb"]
            rec = _guard(src, _read_opened, read_wfdb_path, src.with_suffix(""), src, extra_meta=extra)
        else:
            rec = _guard(files["csv"], load_record, files["csv"])
            if isinstance(rec, Record):
                rec.meta.update({k: v for k, v in extra.items() if k != "labels"})
                rec.meta["labels"] = {**rec.meta.get("labels", {}), **extra["labels"]}
        yield rec


# --- MIMIC-III matched waveform database ------------------------------------------------------------

def _mimic_masters(folder: Path) -> Iterator[Path]:
    for f in sorted(folder.rglob("p*.hea")):
        if _MIMIC_MASTER.match(f.name):
            yield f


def _iter_mimic(folder: Path):
    import wfdb

    for master in _mimic_masters(folder):
        subject = master.parent.name if re.fullmatch(r"p\d{6}", master.parent.name) else master.name[:7]
        src = open_source(master)
        try:
            h = wfdb.rdheader(str(master.with_suffix("")))
        except Exception as e:
            yield InputError(f"{master}: not a valid WFDB header ({e})")
            continue
        if not isinstance(h, wfdb.MultiRecord):
            yield _guard(master, read_wfdb_path, master.with_suffix(""), src, extra_meta={"subject_id": subject})
            continue
        offset = 0
        for seg, seg_len in zip(h.seg_name, h.seg_len):
            start_s = offset / h.fs
            offset += int(seg_len)
            if seg == "~" or seg.endswith("_layout") or int(seg_len) == 0:
                continue
            seg_path = master.parent / seg
            if not seg_path.with_suffix(".hea").exists():
                yield InputError(f"{master}: segment header {seg}.hea is missing")
                continue
            try:
                names = wfdb.rdheader(str(seg_path)).sig_name or []
            except Exception as e:
                yield InputError(f"{seg_path}.hea: not a valid WFDB header ({e})")
                continue
            if not any(ecg_rank(n) is not None or ppg_rank(n) is not None for n in names):
                continue  # e.g. an ABP-only stretch: nothing for this model, not an error
            extra = {"subject_id": subject, "record_id": f"{master.stem}/{seg}", "master_record": master.stem,
                     "offset_s": start_s}
            if h.base_datetime is not None:
                import datetime as dt

                extra["start_time"] = (h.base_datetime + dt.timedelta(seconds=start_s)).isoformat()
            yield _guard(seg_path, _read_opened, read_wfdb_path, seg_path, seg_path.with_suffix(".hea"),
                         extra_meta=extra)


# --- VitalDB --------------------------------------------------------------------------------------

def _vitaldb_clinical(folder: Path) -> dict[int, dict[str, Any]]:
    f = folder / "clinical_data.csv"
    if not f.exists():
        return {}
    import pandas as pd

    df = pd.read_csv(f)
    out = {}
    for _, row in df.iterrows():
        try:
            caseid = int(row["caseid"])
        except (KeyError, ValueError, TypeError):
            continue
        labels: dict[str, Any] = {}
        if "age" in row and pd.notna(row["age"]):
            try:
                labels["age"] = float(row["age"])
            except ValueError:
                pass  # VitalDB writes some ages as text ranges; leave those out
        if "sex" in row and str(row["sex"])[:1].upper() in ("M", "F"):
            labels["sex"] = str(row["sex"])[:1].upper()
        for col, key in (("preop_htn", "hypertension"), ("death_inhosp", "mortality"), ("preop_dm", "diabetes")):
            if col in row and pd.notna(row[col]):
                labels[key] = int(row[col])
        for col in ("bmi", "asa", "department", "optype"):
            if col in row and pd.notna(row[col]):
                labels[col] = row[col].item() if hasattr(row[col], "item") else row[col]
        has_subject = "subjectid" in row and pd.notna(row["subjectid"])
        subject = f"vitaldb-{int(row['subjectid'])}" if has_subject else f"vitaldb-case{caseid}"
        out[caseid] = {"subject_id": subject, "labels": labels}
    return out


def _iter_vitaldb(folder: Path):
    files = [folder] if folder.is_file() else sorted(folder.rglob("*.vital"))
    clinical = _vitaldb_clinical(folder if folder.is_dir() else folder.parent)
    for f in files:
        digits = re.sub(r"\D", "", f.stem)
        caseid = int(digits) if digits else None
        extra = {"case_id": caseid, "subject_id": f"vitaldb-case{caseid}" if caseid is not None else f.stem}
        if caseid in clinical:
            extra.update(clinical[caseid])
        yield _guard(f, _read_opened, read_vital_path, f, f, extra_meta=extra)


# --- PulseDB (MATLAB v7.3 / HDF5) ---------------------------------------------------------------------

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


def _iter_pulsedb_file(f: Path):
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
                yield _guard(f, make_record, f"{f.name}#{j + 1}", PULSEDB_FS_HZ, sig["ecg"], sig["ppg"], meta)
        elif "Subset" in h5:
            yield from _iter_pulsedb_subset(h5, f)
        else:
            yield InputError(f"{f}: neither a PulseDB segment file (Subj_Wins) nor a Subset file")


def _iter_pulsedb_subset(h5, f: Path):
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
        yield _guard(f, make_record, f"{f.name}#{j + 1}", PULSEDB_FS_HZ, sig[:, 0, j], sig[:, 1, j], meta)


def _iter_pulsedb(folder: Path):
    if folder.is_file():
        files = [folder]
    else:
        files = sorted(f for f in folder.rglob("*.mat") if not f.with_suffix(".hea").exists())
    for f in files:
        yield from _iter_pulsedb_file(f)


# --- PTB-XL ---------------------------------------------------------------------------------------

def ptbxl_superclasses(scp_codes: dict[str, float], statements: dict[str, str]) -> list[str]:
    """Diagnostic superclasses (NORM, MI, STTC, CD, HYP) of one record's SCP codes, sorted."""
    return sorted({statements[c] for c in scp_codes if c in statements})


def _iter_ptbxl(folder: Path):
    import pandas as pd

    db = pd.read_csv(folder / "ptbxl_database.csv")
    statements: dict[str, str] = {}
    scp = folder / "scp_statements.csv"
    if scp.exists():
        st = pd.read_csv(scp, index_col=0)
        if "diagnostic" in st.columns and "diagnostic_class" in st.columns:
            st = st[st["diagnostic"] == 1]
            statements = {str(k): str(v) for k, v in st["diagnostic_class"].items() if pd.notna(v)}
    else:
        log.warning("%s: scp_statements.csv missing, superclass labels left out", folder)
    high = (folder / "records500").is_dir()
    for _, row in db.iterrows():
        rel = row.get("filename_hr") if high else row.get("filename_lr")
        if not isinstance(rel, str):
            rel = row.get("filename_lr") if isinstance(row.get("filename_lr"), str) else None
        if rel is None:
            yield InputError(f"{folder}: ecg_id {row.get('ecg_id')} has no file name")
            continue
        try:
            codes = ast.literal_eval(row["scp_codes"]) if isinstance(row.get("scp_codes"), str) else {}
        except (ValueError, SyntaxError):
            codes = {}
        labels: dict[str, Any] = {"scp_codes": {str(k): float(v) for k, v in codes.items()},
                                  "superclasses": ptbxl_superclasses(codes, statements)}
        if pd.notna(row.get("age")):
            labels["age"] = float(row["age"])
        if pd.notna(row.get("sex")):
            labels["sex"] = "M" if int(row["sex"]) == 0 else "F"  # PTB-XL: 0 male, 1 female
        if pd.notna(row.get("strat_fold")):
            labels["strat_fold"] = int(row["strat_fold"])
        pid = row.get("patient_id")
        extra = {"subject_id": f"ptbxl-{int(pid)}" if pd.notna(pid) else None,
                 "record_id": f"ptbxl-{int(row['ecg_id'])}", "labels": labels}
        rec_path = folder / rel
        yield _guard(rec_path, _read_opened, read_wfdb_path, rec_path, rec_path.with_suffix(".hea"), ppg="none",
                     extra_meta=extra)


# --- any folder -----------------------------------------------------------------------------------

def _iter_folder(folder: Path):
    if folder.is_file():
        yield _guard(folder, load_record, folder)
        return
    files = sorted(f for f in folder.rglob("*") if f.is_file())
    heads = [f for f in files if f.suffix.lower() == ".hea"]
    segments = wfdb_segment_headers(heads)
    for f in files:
        ext = f.suffix.lower()
        if ext not in EXTENSIONS or ext == ".dat" or f in segments or f.name.startswith("."):
            continue
        if ext == ".csv" and f.name in _CORPUS_TABLES:
            continue
        yield _guard(f, load_record, f)


__all__ = ["iter_corpus", "detect_layout", "LAYOUTS", "ptbxl_superclasses"]
