"""Heads on a researcher's own labelled records (``m2ae heads fit``): a labels CSV -> record-level
train/calibration/test splits -> ``fit_heads`` -> a checkpoint with the new heads beside the old.

Labels CSV: a ``path`` column (any file ``m2ae.load_record`` reads; relative to the CSV's folder) and
one column per label. Known labels: ``rhythm`` (NSR/AF/SB/ST/PVC), ``hypertension`` / ``sex`` /
``risk`` (binary), ``age`` (years); any other column becomes a classifier (<= 10 distinct values)
or a regressor.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..model.heads import default_head_specs
from .heads import fit_heads

TEST_SHARE = 0.2         # of the records, at least one each: test split, then calibration split
CALIBRATION_SHARE = 0.2
MIN_RECORDS = 5


def _infer_spec(name: str, values: np.ndarray, input_dim: int) -> dict[str, Any]:
    defaults = default_head_specs(input_dim)
    if name in defaults:
        return defaults[name]
    base = {"name": name, "input_dim": input_dim, "hidden": 64, "dropout": 0.1, "temperature": 1.0}
    vals = [v for v in values if not (v is None or (isinstance(v, float) and np.isnan(v)) or str(v).strip() == "")]
    try:
        nums = np.array([float(v) for v in vals])
        numeric = True
    except (TypeError, ValueError):
        numeric = False
    distinct = sorted({str(v).strip() for v in vals})
    if numeric and (len(np.unique(nums)) > 10 or not np.allclose(nums, np.round(nums))):
        return {**base, "kind": "regression", "unit": "", "y_mean": 0.0, "y_std": 1.0, "interval_level": 0.9,
                "interval_scale": 1.0}
    if len(distinct) < 2:
        raise InputError(f"label {name}: needs at least two distinct values, found {distinct}")
    return {**base, "kind": "classification", "classes": distinct, "class_names": distinct}


def _read_labels(labels_path: Path) -> tuple[Any, list[str]]:
    """The labels table (pandas) and its label columns, checked for a usable shape."""
    import pandas as pd

    if not labels_path.exists():
        raise InputError(f"{labels_path}: labels CSV not found")
    try:
        table = pd.read_csv(labels_path)
    except Exception as e:
        raise InputError(f"{labels_path}: not a readable CSV ({str(e).splitlines()[0]})") from e
    if "path" not in table.columns:
        raise InputError(f"{labels_path}: needs a 'path' column (columns: {', '.join(map(str, table.columns))})")
    label_cols = [c for c in table.columns if c != "path"]
    if not label_cols:
        raise InputError(f"{labels_path}: no label columns besides 'path'")
    if len(table) < MIN_RECORDS:
        raise InputError(f"{labels_path}: needs at least {MIN_RECORDS} labelled records (train/calibration/test), "
                         f"got {len(table)}")
    return table, label_cols


def fit_heads_from_labels(labels_csv: str | Path, model: str | Path | None, out: str | Path) -> dict[str, Any]:
    """Fit one head per label column of ``labels_csv`` on checkpoint ``model`` (default: the shipped
    one) and write ``out``: the same weights, its old heads plus the new ones, and the card (JSON +
    Markdown beside it). Records are split by record (seed 0): 20 % test, 20 % calibration, the rest
    train. Returns {"checkpoint": str(out), "heads": the new heads' card entries}."""
    from ..io import load_record
    from ..model import load_model
    from ..model.card import save_checkpoint_and_card
    from ..model.checkpoint import load_checkpoint
    from ..model.inference import model_from_checkpoint
    from ..signal.filters import contract_windows_fast

    labels_path = Path(labels_csv)
    table, label_cols = _read_labels(labels_path)
    fitted_on = load_model(model)
    per_record = []
    for _, row in table.iterrows():
        p = Path(str(row["path"]))
        if not p.is_absolute():
            p = labels_path.parent / p
        rec = load_record(p)
        win = contract_windows_fast(rec.ecg, rec.ppg, rec.fs)
        if len(win) == 0:
            raise InputError(f"{p}: shorter than one 10-s window")
        per_record.append((win, {c: row[c] for c in label_cols}))
    has_e = all(w.ecg is not None for w, _ in per_record)
    has_p = all(w.ppg is not None for w, _ in per_record)
    if not (has_e or has_p):
        raise InputError(f"{labels_path}: records mix ECG-only and PPG-only files; give one common modality")
    order = np.random.default_rng(0).permutation(len(per_record))
    n_test = max(1, round(TEST_SHARE * len(order)))
    n_cal = max(1, round(CALIBRATION_SHARE * len(order)))
    parts = {"test": order[:n_test], "cal": order[n_test:n_test + n_cal], "train": order[n_test + n_cal:]}
    splits = {}
    for k, idx in parts.items():
        wins = [per_record[i] for i in idx]
        splits[k] = {
            "ecg": np.concatenate([w.ecg for w, _ in wins]) if has_e else None,
            "ppg": np.concatenate([w.ppg for w, _ in wins]) if has_p else None,
            "labels": {c: np.concatenate([np.array([lab[c]] * len(w), dtype=object) for w, lab in wins])
                       for c in label_cols},
        }
    specs = {c: {**_infer_spec(c, table[c].to_numpy(dtype=object), fitted_on.fingerprint_dim), "name": c}
             for c in label_cols}
    desc = (f"{labels_path.name}: {len(table)} records ({len(parts['train'])} train, {len(parts['cal'])} "
            f"calibration, {len(parts['test'])} test)")
    heads, card_heads = fit_heads(fitted_on, specs, splits, training_data=desc)
    for entry in card_heads.values():
        entry["labels_source"] = "real"  # labels of recorded signals, not the simulator's ground truth
    ckpt = load_checkpoint(fitted_on.path)
    base = model_from_checkpoint(ckpt, device="cpu")
    card = dict(ckpt.get("card", {}))
    card["heads"] = {**card.get("heads", {}), **card_heads}
    save_checkpoint_and_card(out, base.net, {**base.heads, **heads}, card)
    return {"checkpoint": str(out), "heads": card_heads}
