"""PTB-XL layout: ``ptbxl_database.csv`` + ``scp_statements.csv`` + ``records500``/``records100``;
ECG only (lead II), labels age, sex, diagnostic superclasses (NORM, MI, STTC, CD, HYP), strat_fold.
"""
from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ...errors import InputError
from ...record import Record
from ..wfdb import read_wfdb_path
from .common import guard, log, read_opened


def matches(folder: Path) -> bool:
    """A folder holding PTB-XL's ``ptbxl_database.csv``."""
    return (folder / "ptbxl_database.csv").exists()


def ptbxl_superclasses(scp_codes: dict[str, float], statements: dict[str, str]) -> list[str]:
    """Diagnostic superclasses (NORM, MI, STTC, CD, HYP) of one record's SCP codes, sorted."""
    return sorted({statements[c] for c in scp_codes if c in statements})


def iterate(folder: Path) -> Iterator[Record | InputError]:
    """Records (or the InputError of each one not read) of the corpus at ``folder``."""
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
        yield guard(rec_path, read_opened, read_wfdb_path, rec_path, rec_path.with_suffix(".hea"), ppg="none",
                     extra_meta=extra)

