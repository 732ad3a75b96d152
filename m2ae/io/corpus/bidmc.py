"""BIDMC PPG and Respiration Dataset layout: ``bidmc_NN_Signals.csv`` (+ ``_Numerics.csv``, ``_Fix.txt``)
and/or WFDB ``bidmcNN.hea``; one record per subject, labels age/sex (and monitor HR, pulse, SpO2) when given.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import InputError
from ...record import Record
from ..load import load_record
from ..wfdb import read_wfdb_path
from .common import guard, log, read_opened

_BIDMC_CSV = re.compile(r"^bidmc_(\d+)_Signals\.csv$", re.I)
_BIDMC_WFDB = re.compile(r"^bidmc(\d+)\.hea$", re.I)


def matches(names: list[str]) -> bool:
    """A folder whose file ``names`` include a BIDMC signals CSV or WFDB header."""
    return any(_BIDMC_CSV.match(n) or _BIDMC_WFDB.match(n) for n in names)


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


def iterate(folder: Path) -> Iterator[Record | InputError]:
    """Records (or the InputError of each one not read) of the corpus at ``folder``."""
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
            rec = guard(src, read_opened, read_wfdb_path, src.with_suffix(""), src, extra_meta=extra)
        else:
            rec = guard(files["csv"], load_record, files["csv"])
            if isinstance(rec, Record):
                rec.meta.update({k: v for k, v in extra.items() if k != "labels"})
                rec.meta["labels"] = {**rec.meta.get("labels", {}), **extra["labels"]}
        yield rec

