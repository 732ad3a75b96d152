"""Hit tables: which indexed windows a query may return, and FAISS results as metadata tables.

``FingerprintIndex.search`` turns exclusions (a query's own subject or record) and metadata filters
into a bool mask of allowed rows (``allowed_rows``), searches FAISS within it, and returns one table
per query (``hit_table``): ``id``, ``score`` (cosine similarity, descending), ``rank`` and the
window's metadata. ``merge_window_hits`` merges the tables of a record's windows into one.
"""
from __future__ import annotations

from typing import Any
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import InputError


def per_query(value: Any, n: int, name: str) -> list[Any]:
    """One exclusion value per query: a single value (or None) repeated, or a sequence of n values."""
    if value is None or isinstance(value, (str, int, np.integer)):
        return [value] * n
    values = list(value)
    if len(values) != n:
        raise InputError(f"{name}: {len(values)} values for {n} query fingerprints")
    return values


def filter_mask(metadata: pd.DataFrame, filters: Mapping[str, Any] | None) -> np.ndarray | None:
    """Bool mask [N] of the rows that pass ``filters`` ({column: value, list of values, or
    callable(Series) -> bool mask}); None when there are no filters."""
    if not filters:
        return None
    mask = np.ones(len(metadata), bool)
    for col, want in filters.items():
        if col not in metadata.columns:
            raise InputError(f"filter column {col!r} not in the index metadata "
                             f"(columns: {', '.join(metadata.columns)})")
        values = metadata[col]
        if callable(want):
            m = np.asarray(want(values), dtype=bool)
        elif isinstance(want, (list, tuple, set, frozenset, np.ndarray)):
            m = values.isin(list(want)).to_numpy()
        else:
            m = (values == want).to_numpy()
        mask &= m
    return mask


def allowed_rows(base: np.ndarray | None, column: Callable[[str], np.ndarray], subject: Any,
                 record: Any) -> np.ndarray | None:
    """The filter mask ``base`` without the rows of ``subject`` and ``record`` (None = all rows).
    ``column(name)`` gives a metadata column as a str array."""
    allowed = None if base is None else base.copy()
    for name, value in (("subject_id", subject), ("record", record)):
        if value is not None:
            other = column(name) != str(value)
            allowed = other if allowed is None else allowed & other
    return allowed


def hit_table(metadata: pd.DataFrame, scores: np.ndarray, ids: np.ndarray, k: int, n_allowed: int) -> pd.DataFrame:
    """One query's hits (ids -1 dropped) as ``id``, ``score``, ``rank`` + metadata columns; when
    fewer than k came back, ``attrs["note"]`` says why."""
    ok = ids >= 0
    ids, scores = ids[ok], scores[ok]
    table = metadata.iloc[ids].copy()
    table.insert(0, "rank", np.arange(1, len(ids) + 1))
    table.insert(0, "score", scores.astype(np.float32))
    table = table.reset_index(drop=True)
    cols = ["id", "score", "rank"] + [c for c in table.columns if c not in ("id", "score", "rank")]
    table = table[cols]
    if k > n_allowed:
        table.attrs["note"] = (f"k={k} is more than the {n_allowed} windows that may be returned "
                               f"(index holds {len(metadata)}): returned {len(table)}")
    elif len(table) < k:
        table.attrs["note"] = f"only {len(table)} of k={k} neighbours found within the probed lists"
    return table


def merge_window_hits(per_window: Sequence[pd.DataFrame], k: int) -> pd.DataFrame:
    """The k best distinct hits over a record's windows: each indexed window once, with its best
    score and the query window that matched it best (``query_window``); the first note is kept."""
    tables = []
    for w, t in enumerate(per_window):
        t = t.copy()
        t["query_window"] = w
        tables.append(t)
    merged = pd.concat(tables, ignore_index=True).sort_values(["score", "query_window"], ascending=[False, True],
                                                               kind="stable")
    merged = merged.drop_duplicates("id", keep="first").head(k).reset_index(drop=True)
    merged["rank"] = np.arange(1, len(merged) + 1)
    notes = [t.attrs["note"] for t in per_window if "note" in t.attrs]
    if notes:
        merged.attrs["note"] = notes[0]
    return merged
