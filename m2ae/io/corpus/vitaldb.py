"""VitalDB layout: ``NNNN.vital`` files (tracks SNUADC/ECG_II, SNUADC/PLETH) and an optional
``clinical_data.csv`` (caseid, subjectid, age, sex, preop_htn, death_inhosp, ...).
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ...errors import InputError
from ...record import Record
from ..vital import read_vital_path
from .common import guard, read_opened


def matches(names: list[str]) -> bool:
    """A folder whose file ``names`` include a ``.vital`` file."""
    return any(n.lower().endswith(".vital") for n in names)


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


def iterate(folder: Path) -> Iterator[Record | InputError]:
    """Records (or the InputError of each one not read) of the corpus at ``folder``."""
    files = [folder] if folder.is_file() else sorted(folder.rglob("*.vital"))
    clinical = _vitaldb_clinical(folder if folder.is_dir() else folder.parent)
    for f in files:
        digits = re.sub(r"\D", "", f.stem)
        caseid = int(digits) if digits else None
        extra = {"case_id": caseid, "subject_id": f"vitaldb-case{caseid}" if caseid is not None else f.stem}
        if caseid in clinical:
            extra.update(clinical[caseid])
        yield guard(f, read_opened, read_vital_path, f, f, extra_meta=extra)

