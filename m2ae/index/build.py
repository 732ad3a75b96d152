"""Build an index folder from records (and simulated subjects), and query it with one record.

>>> idx = build_index(["sample_data"], "indexes/mine", simulate=200)     # doctest: +SKIP
>>> res = query_record("sample_data/af_csv/af.csv", k=10)                # doctest: +SKIP
>>> [(n["record"], round(n["score"], 3)) for n in res["neighbours"][:3]] # doctest: +SKIP
"""
from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..errors import InputError
from .embed import embed, expand_sources, fingerprint_windows, model_checkpoint_of, resolve_model, simulated_items
from .mapping import MapConfig
from .store import FingerprintIndex, IndexConfig, _utc_now, open_index

# Label columns compared between a query and its neighbours (categorical labels only).
CATEGORICAL_LABELS = ("label_rhythm", "label_hypertension", "label_sex")


def build_index(paths: Sequence, out, model=None, simulate: int = 0, seed: int = 0, duration_s: float = 60.0,
                batch_size: int = 256, num_workers: int | None = None, config: IndexConfig | None = None,
                map_config: MapConfig | None = None, build_command: str | None = None,
                progress: bool = True, read_kwargs: dict | None = None) -> FingerprintIndex:
    """Embed records (files, folders, Records, corpus readers) plus ``simulate`` simulated subjects,
    build the FAISS index and the map, and save the folder ``out`` atomically.

    The embedding runs in ``.<out>.embed/`` beside ``out`` and resumes from there when a build is
    interrupted and started again with the same command; it is removed once the index is saved.
    """
    out = Path(out)
    paths = list(paths or [])
    if not paths and not simulate:
        raise InputError("index build: give record files/folders, --simulate N, or both")
    items, streams = expand_sources(paths) if paths else ([], [])
    sim = simulated_items(simulate, seed=seed, duration_s=duration_s) if simulate else []
    model = resolve_model(model)
    work = out.with_name(f".{out.name}.embed")
    res = embed(items + sim + list(streams), model, work, batch_size=batch_size, num_workers=num_workers,
                progress=progress, read_kwargs=read_kwargs)
    data = [_display_path(p) for p in paths if isinstance(p, (str, Path))]
    if simulate:
        data.append(f"m2ae.simulate: {simulate} subjects, seed {seed}, {duration_s:g} s each "
                    f"(same subjects as `m2ae simulate --subjects {simulate} --seed {seed} --duration {duration_s:g}`)")
    meta = res.metadata.copy()
    meta["source"] = meta["source"].map(_display_path)
    extra = {
        "model_checkpoint": model_checkpoint_of(model),
        "data": data,
        "records": int(meta["record"].nunique()),
        "subjects": int(meta["subject_id"].nunique()),
        "low_quality_windows": int(meta["low_quality"].sum()),
        "skipped_inputs": res.skipped,
        "created": _utc_now(),
        "build_command": build_command,
        "embedding": {"windows_per_s": round(res.windows_per_s, 1), "seconds": round(res.seconds, 1),
                      "batch_size": batch_size},
    }
    idx = FingerprintIndex.build(res.fingerprints, meta, res.model_version, waveforms=res.waveforms,
                                 config=config, map_config=map_config, manifest_extra=extra, progress=progress)
    idx.save(out)
    shutil.rmtree(work, ignore_errors=True)
    # Rebuilt indexes carry their out-of-distribution reference (familiarity.json) from the start.
    from .familiarity import calibrate_familiarity

    calibrate_familiarity(idx, model)
    return idx


def _display_path(p) -> str:
    """Paths inside the working directory are stored relative to it (the shipped index is portable)."""
    s = str(p)
    try:
        q = Path(s)
        if q.is_absolute():
            return str(q.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        pass
    return s


def record_fingerprint(windows_fp: np.ndarray, low_quality: np.ndarray | None) -> np.ndarray:
    """One fingerprint [D] for a whole record: the normalised mean of its windows' fingerprints,
    over the windows that pass the quality threshold when there are any."""
    fp = np.asarray(windows_fp, dtype=np.float32)
    use = np.ones(len(fp), bool) if low_quality is None else ~np.asarray(low_quality, bool)
    if not use.any():
        use[:] = True
    mean = fp[use].mean(axis=0)
    norm = float(np.linalg.norm(mean))
    return mean / norm if norm > 0 else fp[0]


def _open_query(path_or_record, index, model, read_kwargs):
    """(model, index checked against it, Record, display name) for a query record or path."""
    from ..record import Record
    from .embed import load_path

    model = resolve_model(model)
    idx = index if isinstance(index, FingerprintIndex) else open_index(index, model=model)
    idx.check_model(model)
    if isinstance(path_or_record, Record):
        return model, idx, path_or_record, str(path_or_record.meta.get("source") or "record")
    return model, idx, load_path(path_or_record, read_kwargs), str(path_or_record)


def place_record(path_or_record, index: FingerprintIndex | str | Path | None = None, model=None,
                 read_kwargs: dict | None = None) -> dict[str, Any]:
    """Map positions of a record's 10-s windows and of the whole record, fast from a cold start.

    Uses the contract's numpy/scipy path (``m2ae.signal.filters.contract_windows_fast``: the same
    windows as ``m2ae.preprocess``, checked by a test) and skips peaks and quality, so neither
    neurokit2 nor umap is imported: a fresh process pays only for torch and faiss. The record
    position is the mean fingerprint over all windows (no quality gating here; ``query_record``
    gates by quality). Returns {"windows_xy": [N, 2], "record_xy": [2], "starts_s": [N]}.

    >>> place_record("sample_data/nsr_wfdb/nsr.hea")["record_xy"]   # doctest: +SKIP
    """
    from ..signal.filters import contract_windows_fast

    model, idx, rec, name = _open_query(path_or_record, index, model, read_kwargs)
    win = contract_windows_fast(rec.ecg, rec.ppg, rec.fs)
    if len(win) == 0:
        raise InputError(f"{name}: no usable 10-s window to place (record lasts {rec.duration_s:.1f} s)")
    fps = fingerprint_windows(model, win.ecg, win.ppg)
    return {"windows_xy": idx.place(fps), "record_xy": idx.place(record_fingerprint(fps, None))[0],
            "starts_s": np.asarray(win.starts_s)}


QUERY_MODES = ("windows", "mean")


def query_record(path_or_record, index: FingerprintIndex | str | Path | None = None, model=None, k: int = 10,
                 exclude_subject: bool = False, read_kwargs: dict | None = None, mode: str = "windows") -> dict[str, Any]:
    """Neighbours of one record in an index (default: the shipped one), as a JSON-able dict.

    The record is preprocessed and fingerprinted window by window. mode "windows" (default)
    searches with every window and keeps the k best distinct hits (``FingerprintIndex.
    search_windows``); "mean" searches once with the record's mean fingerprint over its
    good-quality windows. The map position is always the mean fingerprint's.
    ``exclude_subject`` drops the record's own subject.
    The result has ``query`` (record, subject, labels, windows, map position), ``neighbours``
    (id, score, record, subject, window start, labels, quality), ``label_agreement`` (for each
    categorical label the query has: share of neighbours with the same value next to its share in
    the whole index, i.e. chance) and ``notes``.
    """
    from ..signal import preprocess
    from .embed import window_metadata

    model, idx, rec, name = _open_query(path_or_record, index, model, read_kwargs)
    win = preprocess(rec)
    if len(win) == 0:
        raise InputError(f"{name}: no usable 10-s window to fingerprint (record lasts {rec.duration_s:.1f} s)")
    qmeta = window_metadata(rec, win, name)
    fps = fingerprint_windows(model, win.ecg, win.ppg)
    q = record_fingerprint(fps, win.low_quality)
    subject = str(qmeta["subject_id"].iloc[0])
    notes = []
    if win.low_quality is not None and np.all(win.low_quality):
        notes.append(f"all {len(win)} windows are below the quality threshold; results may be unreliable")
    if mode not in QUERY_MODES:
        raise InputError(f"query mode must be one of {', '.join(QUERY_MODES)}, got {mode!r}")
    excl = subject if exclude_subject else None
    if mode == "windows":
        hits = idx.search_windows(fps, k=k, exclude_subject=excl)
        hits["query_start_s"] = np.asarray(win.starts_s, dtype=float)[hits["query_window"].to_numpy()]
    else:
        hits = idx.search(q, k=k, exclude_subject=excl)[0]
    if "note" in hits.attrs:
        notes.append(hits.attrs["note"])
    from .familiarity import familiarity, mode_of

    fam = familiarity(idx, fps, mode_of(win.ecg, win.ppg), model=model, exclude_subject=subject)
    fam_summary = {k: fam.get(k) for k in ("calibrated", "note", "mode", "n_windows", "median_top1", "share_unfamiliar",
                                           "threshold", "record_threshold", "record_unfamiliar", "reference")
                   if k in fam}
    if fam.get("record_unfamiliar"):
        notes.append(f"unfamiliar record: median top-1 similarity {fam['median_top1']:.3f} is below "
                     f"{fam['record_threshold']:.3f} (1 % of unseen simulated subjects); predictions are unreliable")
    xy = idx.place(q)[0] if idx.has_map else None
    labels = {c[len("label_"):]: qmeta[c].iloc[0] for c in qmeta.columns if c.startswith("label_")}
    show = ["id", "score", "rank", "record", "subject_id", "start_s", "query_start_s", "source", "modalities",
            "ecg_quality", "ppg_quality", "low_quality", "map_x", "map_y"] + idx.label_columns()
    neighbours = [{c: _plain(row[c]) for c in show if c in hits.columns} for _, row in hits.iterrows()]
    agreement = {}
    for col in CATEGORICAL_LABELS:
        key = col[len("label_"):]
        if key in labels and col in idx.metadata.columns and len(hits):
            value = labels[key]
            same = (hits[col].astype(str) == str(value)).mean()
            chance = (idx.metadata[col].astype(str) == str(value)).mean()
            agreement[key] = {"query": _plain(value), "neighbours_same": round(float(same), 3),
                              "index_base_rate": round(float(chance), 3)}
    return {
        "query": {"path": name, "record": qmeta["record"].iloc[0], "subject_id": subject, "labels": labels,
                  "n_windows": len(win), "n_low_quality": int(qmeta["low_quality"].sum()),
                  "map_xy": None if xy is None else [float(xy[0]), float(xy[1])]},
        "index": {"path": str(idx.path) if idx.path else None, "count": idx.count,
                  "model_version": idx.model_version},
        "k": k,
        "mode": mode,
        "exclude_subject": bool(exclude_subject),
        "neighbours": neighbours,
        "own_subject_neighbours": int(sum(n["subject_id"] == subject for n in neighbours)),
        "label_agreement": agreement,
        "familiarity": fam_summary,
        "notes": notes,
    }


def _plain(v):
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not np.isfinite(v):
        return None
    if v is pd.NA:
        return None
    return v
