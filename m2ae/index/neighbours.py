"""What a set of indexed neighbours says: label votes and estimates, search filters, cohort tables.

Computations on the rows ``FingerprintIndex.search`` returns and on the index's metadata, for the
app's Similar-patients and Fingerprint-map pages (and anyone exporting a cohort). Similarities are
the cosine scores of the search (``score``); no streamlit, no model.

- ``knn_vote`` / ``knn_estimate``: label make-up (categorical) or weighted mean (numeric) of the
  neighbours; ``is_numeric_label`` says which of the two a label column gets;
- ``vote_columns`` / ``label_head_pairs``: which label columns to summarise and which model head
  predicts each;
- ``neighbour_filters``: quality / modality filters in the form ``FingerprintIndex.search`` takes;
- ``index_fingerprints`` and ``cohort_table``: fingerprints read back from the FAISS index and the
  one-row-per-window export table.

>>> knn_vote(["AF", "NSR", "AF"], [0.9, 0.8, 0.7]).iloc[0]["label"]
'AF'
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError

# A search filter: metadata column → bool mask of the windows allowed (FingerprintIndex.search).
ColumnFilter = Callable[[pd.Series], Any]


def knn_vote(labels: Sequence[Any], similarities: Sequence[float] | None = None) -> pd.DataFrame:
    """Label make-up of a neighbourhood: count, share and similarity-weighted share per label.

    Missing labels (None/NaN/"") are left out. Sorted by weighted share, so row 0 is the kNN vote.
    """
    labels = list(labels)
    sims = np.ones(len(labels)) if similarities is None else np.asarray(similarities, dtype=float)
    if len(sims) != len(labels):
        raise InputError(f"knn_vote: {len(labels)} labels but {len(sims)} similarities")
    keep = [i for i, v in enumerate(labels) if not (v is None or (np.ndim(v) == 0 and pd.isna(v)) or str(v) == "")]
    if not keep:
        return pd.DataFrame(columns=["label", "count", "share", "weighted_share"])
    lab = [str(labels[i]) for i in keep]
    w = np.clip(sims[keep], 0.0, None)
    if w.sum() <= 0:
        w = np.ones(len(keep))
    frame = pd.DataFrame({"label": lab, "w": w})
    g = frame.groupby("label")
    out = pd.DataFrame({"count": g.size(), "weighted": g["w"].sum()})
    out["share"] = out["count"] / out["count"].sum()
    out["weighted_share"] = out["weighted"] / out["weighted"].sum()
    out = out.sort_values(["weighted_share", "count"], ascending=False).reset_index()
    return out[["label", "count", "share", "weighted_share"]]


def knn_estimate(values: Sequence[float], similarities: Sequence[float] | None = None) -> dict[str, float]:
    """Similarity-weighted mean and standard deviation of a numeric label (e.g. age) over neighbours."""
    v = pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce").to_numpy(dtype=float)
    w = np.ones(len(v)) if similarities is None else np.clip(np.asarray(similarities, dtype=float), 0, None)
    ok = np.isfinite(v) & np.isfinite(w)
    v, w = v[ok], w[ok]
    if not len(v):
        return {"mean": float("nan"), "sd": float("nan"), "n": 0}
    if w.sum() <= 0:
        w = np.ones(len(v))
    mean = float(np.average(v, weights=w))
    sd = float(np.sqrt(np.average((v - mean) ** 2, weights=w)))
    return {"mean": mean, "sd": sd, "n": int(len(v))}


def is_numeric_label(values: Sequence[Any], max_categories: int = 6) -> bool:
    """A label column to average (age) rather than vote on (rhythm, 0/1 hypertension)."""
    s = pd.Series(list(values))
    return bool(pd.api.types.is_numeric_dtype(s) and s.nunique(dropna=True) > max_categories)


def vote_columns(label_columns: Sequence[str]) -> list[str]:
    """Label columns to summarise, preferring readable names: ``label_rhythm_name`` over ``label_rhythm``."""
    cols = list(label_columns)
    return [c for c in cols if f"{c}_name" not in cols]


def label_head_pairs(label_columns: Iterable[str], head_names: Iterable[str]) -> dict[str, str]:
    """Which index label column a model head predicts: ``label_rhythm`` (or ``label_rhythm_name``) ↔ ``rhythm``."""
    heads = set(head_names)
    out = {}
    for c in label_columns:
        if not c.startswith("label_"):
            continue
        name = c[len("label_"):]
        name = name[: -len("_name")] if name.endswith("_name") and name[: -len("_name")] in heads else name
        if name in heads:
            out[c] = name
    return out


def neighbour_filters(columns: Iterable[str], min_quality: float = 0.0, require: str | None = None
                      ) -> dict[str, ColumnFilter]:
    """``FingerprintIndex.search`` filters: every present channel's quality ≥ ``min_quality`` and,
    with ``require`` ("ecg"/"ppg"/"both"), only windows that recorded that modality.

    Quality columns ``ecg_quality``/``ppg_quality`` are NaN where a channel is absent (not a failure).
    """
    cols = set(columns)
    filters: dict[str, ColumnFilter] = {}
    if min_quality > 0:
        for mod in ("ecg", "ppg"):
            col = f"{mod}_quality"
            if col in cols:
                filters[col] = _quality_at_least(float(min_quality))
    if require in ("ecg", "ppg", "both"):
        need = ("ecg", "ppg") if require == "both" else (str(require),)
        if "modalities" in cols:
            filters["modalities"] = _lists_modalities(need)
        else:
            for mod in need:
                col = f"{mod}_quality"
                if col in cols:
                    filters[col] = _recorded(filters.get(col))
    return filters


def _quality_at_least(q: float) -> ColumnFilter:
    def allowed(s: pd.Series) -> np.ndarray:
        return s.isna().to_numpy() | (s.fillna(0) >= q).to_numpy()
    return allowed


def _lists_modalities(need: tuple[str, ...]) -> ColumnFilter:
    def allowed(s: pd.Series) -> np.ndarray:
        return np.array([all(m in str(v).lower() for m in need) for v in s], dtype=bool)
    return allowed


def _recorded(also: ColumnFilter | None) -> ColumnFilter:
    # Without a modalities column, a channel was recorded where its quality is not NaN.
    def allowed(s: pd.Series) -> Any:
        return s.notna().to_numpy() & (also(s) if also else True)
    return allowed


def index_fingerprints(index: Any, ids: Sequence[int] | np.ndarray) -> np.ndarray:
    """Stored fingerprints [n, D] of indexed windows (from the FAISS index itself), for cohort export.

    index : a ``FingerprintIndex`` or a bare FAISS index; ids : metadata row numbers (= FAISS ids).
    """
    ids = np.asarray(ids, dtype=np.int64)
    faiss_index = getattr(index, "index", index)
    if len(ids) == 0:
        return np.zeros((0, int(faiss_index.d)), np.float32)
    try:
        return np.asarray(faiss_index.reconstruct_batch(ids), dtype=np.float32)
    except RuntimeError:
        # IVF indexes need their id → list map before vectors can be read back.
        import faiss

        ivf = faiss.extract_index_ivf(faiss_index)
        ivf.make_direct_map()
        return np.asarray(faiss_index.reconstruct_batch(ids), dtype=np.float32)


def cohort_table(metadata: pd.DataFrame, fingerprints: np.ndarray,
                 waveforms: Mapping[str, np.ndarray | None] | None = None) -> pd.DataFrame:
    """One row per window: metadata, then ``fp_0..fp_{D-1}``, then (only when given) raw waveforms.

    waveforms : {"ecg": [N, L], "ppg": [N, L]} written as one ';'-joined column per modality
    (``ecg_125hz``) so the CSV stays one row per window.
    """
    fingerprints = np.asarray(fingerprints, dtype=np.float32)
    if fingerprints.ndim != 2 or len(fingerprints) != len(metadata):
        raise InputError(f"cohort: {len(metadata)} metadata rows but fingerprints of shape {fingerprints.shape}")
    meta = metadata.reset_index(drop=True)
    fp = pd.DataFrame(fingerprints, columns=[f"fp_{j}" for j in range(fingerprints.shape[1])])
    parts = [meta, fp]
    for mod, arr in (waveforms or {}).items():
        if arr is None:
            continue
        arr = np.asarray(arr)
        if len(arr) != len(meta):
            raise InputError(f"cohort: {len(meta)} rows but {len(arr)} {mod} waveforms")
        parts.append(pd.DataFrame({f"{mod}_125hz": [";".join(f"{v:.4g}" for v in row) if np.size(row) else ""
                                                    for row in arr]}))
    return pd.concat(parts, axis=1)
