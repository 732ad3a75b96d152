"""Querying an index with one record: neighbours, map position and familiarity, composed once.

``query_windows`` is the one place where a record's windows become fingerprints, neighbours, map
positions and a familiarity verdict; ``m2ae index query`` (through ``query_record``, which adds
reading the file and a JSON-able summary) and the app's pages both call it. ``place_record`` is
its cold-start path: map positions only, from the contract's numpy/scipy windows.

>>> res = query_record("sample_data/af_csv/af.csv", k=10)                # doctest: +SKIP
>>> [(n["record"], round(n["score"], 3)) for n in res["neighbours"][:3]] # doctest: +SKIP
>>> q = query_windows(idx, model, m2ae.preprocess(rec), k=5, window=0)   # doctest: +SKIP
>>> q.neighbours[["record", "score"]], q.familiarity["record_unfamiliar"], q.record_xy  # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..errors import InputError
from ..record import Record, Windows
from .familiarity import familiarity as score_familiarity
from .familiarity import mode_of, unfamiliar_note
from .fingerprints import fingerprint_windows, record_fingerprint, resolve_model, select_inputs
from .store import FingerprintIndex, open_index

QUERY_MODES = ("windows", "mean")
# Label columns compared between a query and its neighbours (categorical labels only).
CATEGORICAL_LABELS = ("label_rhythm", "label_hypertension", "label_sex")
# Columns of a neighbour that ``query_record`` reports (plus the index's label columns).
NEIGHBOUR_COLUMNS = ("id", "score", "rank", "record", "subject_id", "start_s", "query_start_s", "source", "modalities",
                     "ecg_quality", "ppg_quality", "low_quality", "map_x", "map_y")
FAMILIARITY_SUMMARY = ("calibrated", "note", "mode", "n_windows", "median_top1", "share_unfamiliar", "threshold",
                       "record_threshold", "median_shape_distance", "record_shape_threshold", "flag_quantile_pct",
                       "record_unfamiliar", "record_reasons", "reference")


@dataclass
class RecordQuery:
    """What ``query_windows`` found for a record's windows.

    mode : input mode of the fingerprints ("both", "ecg", "ppg").
    fingerprints : [n, D] one per window; record_fingerprint : [D] (mean over good-quality windows).
    neighbours : hit table (``FingerprintIndex.search``'s columns), None when no search was asked.
    familiarity : ``m2ae.index.familiarity.familiarity``'s dict, None when not asked.
    windows_xy : [n, 2] map positions of the windows; record_xy : [2] of the record fingerprint
        (None when not asked or the index has no map).
    notes : one-line cautions (all windows low quality, k clamped, unfamiliar record).
    """

    mode: str
    fingerprints: np.ndarray
    record_fingerprint: np.ndarray
    neighbours: pd.DataFrame | None = None
    familiarity: dict[str, Any] | None = None
    windows_xy: np.ndarray | None = None
    record_xy: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)


def query_windows(index: FingerprintIndex, model: Any, win: Windows, *, use: str = "both",
                  fingerprints: np.ndarray | None = None, k: int | None = 10, search: str = "windows",
                  window: int | None = None, subject: str | None = None, exclude_subject: str | None = None,
                  exclude_record: str | None = None, filters: Mapping[str, Any] | None = None,
                  familiarity: bool = True, place: bool = True) -> RecordQuery:
    """Neighbours, map positions and familiarity of a record's contract windows in ``index``.

    model : a loaded model (checked against the index); use : input mode ("both" = every modality
        the windows have, "ecg", "ppg"). fingerprints : the windows' fingerprints [n, D] when the
        caller already has them (made with ``use``); otherwise computed here.
    k : neighbours to return; None = no neighbour search. search : "windows" searches with every
        window and keeps the k best distinct hits (``FingerprintIndex.search_windows``; adds
        ``query_window`` and ``query_start_s`` in s); "mean" searches once with the record
        fingerprint. window : search with this one window only (overrides ``search``).
    subject : the record's subject, left out of the familiarity search (the reference's subjects
        are not in the index either). exclude_subject / exclude_record / filters : restrict the
        neighbour search (``FingerprintIndex.search``).
    familiarity / place : compute the familiarity verdict / the map positions (skipped when the
        index has no map).
    """
    if search not in QUERY_MODES:
        raise InputError(f"query mode must be one of {', '.join(QUERY_MODES)}, got {search!r}")
    index.check_model(model)
    ecg, ppg = select_inputs(win.ecg, win.ppg, use)
    fps = fingerprint_windows(model, ecg, ppg) if fingerprints is None else np.asarray(fingerprints, np.float32)
    out = RecordQuery(mode_of(ecg, ppg), fps, record_fingerprint(fps, win.low_quality))
    if win.low_quality is not None and np.all(win.low_quality):
        out.notes.append(f"all {len(win)} windows are below the quality threshold; results may be unreliable")
    if k is not None:
        restrict = {"exclude_subject": exclude_subject, "exclude_record": exclude_record, "filters": filters}
        out.neighbours = _neighbours(index, out, win, k, search, window, restrict)
        if "note" in out.neighbours.attrs:
            out.notes.append(out.neighbours.attrs["note"])
    if familiarity:
        out.familiarity = score_familiarity(index, fps, out.mode, model=model, exclude_subject=subject,
                                            ecg=ecg, ppg=ppg)
        note = unfamiliar_note(out.familiarity)
        if note:
            out.notes.append(note)
    if place and index.has_map:
        out.windows_xy = index.place(fps)
        out.record_xy = index.place(out.record_fingerprint)[0]
    return out


def _neighbours(index: FingerprintIndex, q: RecordQuery, win: Windows, k: int, search: str, window: int | None,
                restrict: dict[str, Any]) -> pd.DataFrame:
    if window is not None:
        return index.search(q.fingerprints[window], k=k, **restrict)[0]
    if search == "mean":
        return index.search(q.record_fingerprint, k=k, **restrict)[0]
    hits = index.search_windows(q.fingerprints, k=k, **restrict)
    hits["query_start_s"] = np.asarray(win.starts_s, dtype=float)[hits["query_window"].to_numpy()]
    return hits


def _open_query(path_or_record: Any, index: Any, model: Any,
                read_kwargs: dict | None) -> tuple[Any, FingerprintIndex, Record, str]:
    """(model, index, Record, display name) for a query record or path."""
    from .sources import load_path

    model = resolve_model(model)
    idx = index if isinstance(index, FingerprintIndex) else open_index(index, model=model)
    if isinstance(path_or_record, Record):
        return model, idx, path_or_record, str(path_or_record.meta.get("source") or "record")
    return model, idx, load_path(path_or_record, read_kwargs), str(path_or_record)


def place_record(path_or_record: Any, index: FingerprintIndex | str | Path | None = None, model: Any = None,
                 read_kwargs: dict | None = None) -> dict[str, Any]:
    """Map positions of a record's 10-s windows and of the whole record, fast from a cold start.

    Uses the contract's numpy/scipy path (``m2ae.signal.filters.contract_windows_fast``: the same
    windows as ``m2ae.preprocess``, checked by a test) and skips peaks and quality, so neither
    neurokit2 nor umap is imported: a fresh process pays only for torch and faiss. The record
    position is the mean fingerprint over all windows (no quality gating here; ``query_record``
    gates by quality). Returns {"windows_xy": [N, 2], "record_xy": [2], "starts_s": [N] in s}.

    >>> place_record("sample_data/nsr_wfdb/nsr.hea")["record_xy"]   # doctest: +SKIP
    """
    from ..signal.filters import contract_windows_fast
    from ..signal.usable import dead_channel_reasons

    model, idx, rec, name = _open_query(path_or_record, index, model, read_kwargs)
    # A flat or empty channel is left out, as ``m2ae.preprocess`` leaves it out for ``query_record``
    # (a PPG without a pulse needs peak detection to tell and is fingerprinted here).
    dead = dead_channel_reasons(rec)
    if len(dead) == len(rec.modalities):
        raise InputError(f"{name}: no usable channel — " + "; ".join(f"{m.upper()}: {r}" for m, r in dead.items()))
    win = contract_windows_fast(None if "ecg" in dead else rec.ecg, None if "ppg" in dead else rec.ppg, rec.fs)
    if len(win) == 0:
        raise InputError(f"{name}: no usable 10-s window to place (record lasts {rec.duration_s:.1f} s)")
    q = query_windows(idx, model, win, k=None, familiarity=False)
    if q.windows_xy is None:
        raise InputError(f"{idx.path or 'index'}: has no map coordinates (map_x, map_y)")
    return {"windows_xy": q.windows_xy, "record_xy": q.record_xy, "starts_s": np.asarray(win.starts_s)}


def query_record(path_or_record: Any, index: FingerprintIndex | str | Path | None = None, model: Any = None,
                 k: int = 10, exclude_subject: bool = False, read_kwargs: dict | None = None,
                 mode: str = "windows") -> dict[str, Any]:
    """Neighbours of one record in an index (default: the shipped one), as a JSON-able dict.

    The record is preprocessed and fingerprinted window by window (``query_windows``). mode
    "windows" (default) searches with every window and keeps the k best distinct hits; "mean"
    searches once with the record's mean fingerprint over its good-quality windows. The map
    position is always the mean fingerprint's. ``exclude_subject`` drops the record's own subject.
    The result has ``query`` (record, subject, labels, windows, map position), ``neighbours``
    (id, score, record, subject, window start, labels, quality), ``label_agreement`` (for each
    categorical label the query has: share of neighbours with the same value next to its share in
    the whole index, i.e. chance), ``familiarity`` and ``notes``.
    """
    from ..signal import preprocess
    from .prepare import window_metadata

    model, idx, rec, name = _open_query(path_or_record, index, model, read_kwargs)
    win = preprocess(rec)
    if len(win) == 0:
        raise InputError(f"{name}: no usable 10-s window to fingerprint (record lasts {rec.duration_s:.1f} s)")
    qmeta = window_metadata(rec, win, name)
    subject = str(qmeta["subject_id"].iloc[0])
    q = query_windows(idx, model, win, k=k, search=mode, subject=subject,
                      exclude_subject=subject if exclude_subject else None)
    hits = q.neighbours
    assert hits is not None and q.familiarity is not None
    labels = {c[len("label_"):]: qmeta[c].iloc[0] for c in qmeta.columns if c.startswith("label_")}
    show = [*NEIGHBOUR_COLUMNS, *idx.label_columns()]
    neighbours = [{c: _plain(row[c]) for c in show if c in hits.columns} for _, row in hits.iterrows()]
    return {
        "query": {"path": name, "record": qmeta["record"].iloc[0], "subject_id": subject, "labels": labels,
                  "n_windows": len(win), "n_low_quality": int(qmeta["low_quality"].sum()),
                  "map_xy": None if q.record_xy is None else [float(q.record_xy[0]), float(q.record_xy[1])]},
        "index": {"path": str(idx.path) if idx.path else None, "count": idx.count,
                  "model_version": idx.model_version},
        "k": k,
        "mode": mode,
        "exclude_subject": bool(exclude_subject),
        "neighbours": neighbours,
        "own_subject_neighbours": int(sum(n["subject_id"] == subject for n in neighbours)),
        "label_agreement": label_agreement(labels, hits, idx.metadata),
        "familiarity": {key: q.familiarity.get(key) for key in FAMILIARITY_SUMMARY if key in q.familiarity},
        "notes": q.notes,
    }


def label_agreement(labels: Mapping[str, Any], hits: pd.DataFrame, metadata: pd.DataFrame) -> dict[str, dict]:
    """For each categorical label the query has: its value, the share of neighbours with the same
    value and that value's share in the whole index (chance)."""
    agreement = {}
    for col in CATEGORICAL_LABELS:
        key = col[len("label_"):]
        if key in labels and col in metadata.columns and len(hits):
            value = labels[key]
            same = (hits[col].astype(str) == str(value)).mean()
            chance = (metadata[col].astype(str) == str(value)).mean()
            agreement[key] = {"query": _plain(value), "neighbours_same": round(float(same), 3),
                              "index_base_rate": round(float(chance), 3)}
    return agreement


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not np.isfinite(v):
        return None
    if v is pd.NA:
        return None
    return v
