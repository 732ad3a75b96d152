"""Cohorts: a set of indexed windows (a ``--where`` predicate or a list of ids) and what it holds.

- ``select_cohort(index, where=..., ids=...)``: window ids (FAISS ids = metadata rows);
- ``label_makeup(metadata, ids)``: each label's share in the cohort against the whole index;
- ``median_beats(index, ids)``: the cohort's median ECG beat (aligned on R-peaks) and PPG pulse
  (aligned on the systolic peak), from the index's 62.5 Hz display waveforms, in normalised units;
- ``cohort_attributions(model, index, ids, head, explain_fn=m2ae.explain)``: Captum attributions
  averaged over a sample of the cohort's windows (bounded: ``max_windows``, seeded), from the display waveforms;
- ``cohort_frame`` / ``cohort_csv`` / ``cohort_parquet`` / ``cohort_wfdb_zip``: exports as bytes
  (metadata + fingerprints; WFDB records of the display waveforms, one per source record, at 62.5 Hz);
  ``export_cohort`` writes them all to a folder (``m2ae index cohort --where … --out DIR``).

Pure functions over a ``FingerprintIndex`` (or its metadata): no streamlit, data frames / dicts / bytes out.
"""
from __future__ import annotations

import io
import json
import tempfile
import zipfile
from pathlib import Path
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from .neighbours import cohort_table, index_fingerprints, is_numeric_label, vote_columns
from .search import where_mask
from .waveforms import WAVEFORM_FS_HZ

BEAT_WINDOW_S = {"ecg": (-0.25, 0.45), "ppg": (-0.35, 0.45)}  # around the R-peak / systolic peak
MAX_BEAT_WINDOWS = 200  # median beats: windows sampled at most (sets the time: see display_peaks)
MAX_ATTRIBUTION_WINDOWS = 32  # Captum IG runs n_steps forward/backward passes per window


def select_cohort(index: Any, where: str | None = None, ids: Any = None) -> np.ndarray:
    """Sorted unique window ids of a cohort: rows where ``where`` holds (see ``search.where_mask``),
    and/or the given ``ids`` (both given: their intersection). Raises InputError for an empty choice."""
    meta = _metadata(index)
    mask = np.ones(len(meta), bool)
    if where is None and ids is None:
        raise InputError("cohort: give a --where predicate or window ids")
    if where is not None:
        mask &= where_mask(meta, where)
    if ids is not None:
        arr = np.atleast_1d(np.asarray(ids)).astype(np.int64)
        if len(arr) and (arr.min() < 0 or arr.max() >= len(meta)):
            raise InputError(f"cohort: window ids must lie in 0..{len(meta) - 1}")
        chosen = np.zeros(len(meta), bool)
        chosen[arr] = True
        mask &= chosen
    return np.flatnonzero(mask).astype(np.int64)


def label_makeup(metadata: pd.DataFrame, ids: Any, max_values: int = 12) -> pd.DataFrame:
    """Each categorical label value's count and share in the cohort beside its share in the whole index.

    Returns rows (column, value, cohort_count, cohort_share, index_count, index_share, enrichment =
    cohort_share / index_share); shares are among windows where the label is present. Numeric labels
    (age, blood pressure) get one row each with value "mean ± sd" for cohort and index.
    """
    ids = np.asarray(ids, dtype=np.int64)
    rows = []
    labels = vote_columns([c for c in metadata.columns if c.startswith("label_")])
    for col in labels:
        whole = metadata[col]
        if not whole.notna().any():
            continue
        part = whole.iloc[ids]
        if not part.notna().any():
            continue  # a label the cohort's windows do not carry (e.g. age for real ICU records)
        if is_numeric_label(whole.dropna().tolist()):
            w, p = pd.to_numeric(whole, errors="coerce"), pd.to_numeric(part, errors="coerce")
            rows.append({"column": col, "value": "mean ± sd", "cohort_count": int(p.notna().sum()),
                         "cohort_share": np.nan, "index_count": int(w.notna().sum()), "index_share": np.nan,
                         "enrichment": np.nan, "cohort_mean": p.mean(), "cohort_sd": p.std(),
                         "index_mean": w.mean(), "index_sd": w.std()})
            continue
        wc = whole.dropna().astype(str).value_counts()
        pc = part.dropna().astype(str).value_counts()
        for value in list(pc.index[:max_values]):
            cs, is_ = pc[value] / pc.sum(), wc[value] / wc.sum()
            rows.append({"column": col, "value": value, "cohort_count": int(pc[value]), "cohort_share": float(cs),
                         "index_count": int(wc[value]), "index_share": float(is_), "enrichment": float(cs / is_)})
    return pd.DataFrame(rows, columns=["column", "value", "cohort_count", "cohort_share", "index_count",
                                       "index_share", "enrichment", "cohort_mean", "cohort_sd", "index_mean",
                                       "index_sd"])


def _sample(ids: np.ndarray, n: int, seed: int) -> np.ndarray:
    ids = np.asarray(ids, dtype=np.int64)
    if len(ids) <= n:
        return ids
    return np.sort(np.random.default_rng(seed).choice(ids, n, replace=False))


def display_peaks(x: np.ndarray, modality: str) -> np.ndarray:
    """Peak samples of one 62.5 Hz display window: R-peaks (ECG, after turning the lead so its largest
    deflection is up) or systolic peaks (PPG). ``scipy.signal.find_peaks`` with a 0.3 s refractory
    distance and a prominence of half the window's 98th-percentile deflection: a few ms a window, where
    neurokit2 took ~300 ms at this rate; the display waveforms are normalised and band-limited."""
    from scipy.signal import find_peaks

    x = np.asarray(x, dtype=np.float64) - np.median(x)
    if modality == "ecg" and abs(np.percentile(x, 1)) > abs(np.percentile(x, 99)):
        x = -x  # an inverted lead: the R-peak is its largest negative deflection
    top = np.percentile(x, 98)
    if not np.isfinite(top) or top <= 0:
        return np.zeros(0, np.int64)
    peaks, _ = find_peaks(x, distance=max(1, int(0.3 * WAVEFORM_FS_HZ)), prominence=0.5 * top)
    return peaks.astype(np.int64)


def median_beats(index: Any, ids: Any, max_windows: int = MAX_BEAT_WINDOWS, seed: int = 0) -> dict[str, Any]:
    """The cohort's median ECG beat and PPG pulse from the display waveforms (62.5 Hz, normalised units).

    Beats are cut around R-peaks (ECG) and systolic peaks (PPG) found by ``display_peaks`` over
    ``BEAT_WINDOW_S``; each window gives its median beat, and the cohort's
    is the median over windows with the 25th/75th percentiles. At most ``max_windows`` windows
    (a seeded sample) are used; ``windows_used`` / ``windows_in_cohort`` say how many.
    Returns {"fs_hz", "windows_used", "windows_in_cohort", "ecg"/"ppg": {"t_s", "median", "q25", "q75",
    "n_windows", "n_beats"} or None where no beats were found}.
    """
    all_ids = np.asarray(ids, dtype=np.int64)
    use = _sample(all_ids, int(max_windows), seed)
    out: dict[str, Any] = {"fs_hz": WAVEFORM_FS_HZ, "windows_used": int(len(use)),
                           "windows_in_cohort": int(len(all_ids)), "units": "normalised (robust z per window)"}
    if not len(use):
        return {**out, "ecg": None, "ppg": None}
    waves = index.waveforms(use)
    for mod in ("ecg", "ppg"):
        lo, hi = (int(round(t * WAVEFORM_FS_HZ)) for t in BEAT_WINDOW_S[mod])
        per_window, n_beats = [], 0
        for x in np.asarray(waves[mod], dtype=np.float64):
            if not np.isfinite(x).all():
                continue
            peaks = display_peaks(x, mod)
            peaks = peaks[(peaks + lo >= 0) & (peaks + hi < len(x))]
            if len(peaks) < 2:
                continue
            beats = np.stack([x[p + lo:p + hi] for p in peaks])
            per_window.append(np.median(beats, axis=0))
            n_beats += len(peaks)
        if not per_window:
            out[mod] = None
            continue
        stack = np.stack(per_window)
        out[mod] = {"t_s": np.arange(lo, hi) / WAVEFORM_FS_HZ, "median": np.median(stack, axis=0),
                    "q25": np.percentile(stack, 25, axis=0), "q75": np.percentile(stack, 75, axis=0),
                    "n_windows": int(len(stack)), "n_beats": int(n_beats)}
    return out


def cohort_attributions(model: Any, index: Any, ids: Any, head: str, *, explain_fn: Callable[..., Any],
                        max_windows: int = MAX_ATTRIBUTION_WINDOWS, seed: int = 0,
                        method: str = "integrated_gradients", n_steps: int = 32) -> dict[str, Any]:
    """Attributions of head ``head`` averaged over (a seeded sample of at most ``max_windows``) cohort windows.

    The display waveforms (62.5 Hz) are upsampled to the contract's 125 Hz (1250 samples) and explained
    with ``explain_fn`` (pass ``m2ae.explain``: index and explain are sibling layers, so the caller, the
    app or the CLI, hands it in); windows are grouped by which modalities they recorded. Returns {"head",
    "method", "windows_used", "windows_in_cohort", "note", "t_s" [1250], "ecg_mean_abs"/"ppg_mean_abs"
    [1250] (mean |attribution| per sample, None where no window had that modality), "share": mean
    share of evidence per modality}.
    """
    from scipy.signal import resample_poly

    all_ids = np.asarray(ids, dtype=np.int64)
    use = _sample(all_ids, int(max_windows), seed)
    if not len(use):
        raise InputError("cohort attributions: the cohort is empty")
    waves = index.waveforms(use)
    full = {m: resample_poly(np.nan_to_num(np.asarray(waves[m], np.float64)), 2, 1, axis=1).astype(np.float32)
            for m in ("ecg", "ppg")}
    has = {m: np.isfinite(np.asarray(waves[m])).all(axis=1) for m in ("ecg", "ppg")}
    sums = {m: np.zeros(full[m].shape[1]) for m in ("ecg", "ppg")}
    counts = {"ecg": 0, "ppg": 0}
    shares: dict[str, list[float]] = {"ecg": [], "ppg": []}
    for e_on, p_on in ((True, True), (True, False), (False, True)):
        rows = np.flatnonzero((has["ecg"] == e_on) & (has["ppg"] == p_on))
        if not len(rows):
            continue
        att = explain_fn(model, head, ecg=full["ecg"][rows] if e_on else None, ppg=full["ppg"][rows] if p_on else None,
                      method=method, n_steps=n_steps)
        for m in ("ecg", "ppg"):
            a = getattr(att, m)
            if a is not None:
                sums[m] += np.abs(a).sum(axis=0)
                counts[m] += len(rows)
            shares[m].extend(np.asarray(att.share.get(m, np.zeros(len(rows))), float).tolist())
    n_fs = 2 * WAVEFORM_FS_HZ
    return {"head": head, "method": method, "windows_used": int(len(use)), "windows_in_cohort": int(len(all_ids)),
            "note": f"{len(use)} of {len(all_ids)} windows (seeded sample, seed {seed}), explained from the index's "
                    f"{WAVEFORM_FS_HZ:g} Hz display waveforms upsampled to {n_fs:g} Hz",
            "t_s": np.arange(full["ecg"].shape[1]) / n_fs,
            **{f"{m}_mean_abs": (sums[m] / counts[m]) if counts[m] else None for m in ("ecg", "ppg")},
            "share": {m: float(np.mean(v)) if v else float("nan") for m, v in shares.items()}}


# --- exports -----------------------------------------------------------------------------------------

def cohort_frame(index: Any, ids: Any) -> pd.DataFrame:
    """One row per cohort window: ``id``, the metadata, then the fingerprint ``fp_0..fp_{D-1}``."""
    ids = np.asarray(ids, dtype=np.int64)
    meta = _metadata(index).iloc[ids].reset_index(drop=True)
    if "id" not in meta.columns:
        meta.insert(0, "id", ids)
    return cohort_table(meta, index_fingerprints(index, ids))


def cohort_csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def cohort_parquet(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


def _safe_name(name: str) -> str:
    keep = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(name))
    return keep[:60] or "record"


def cohort_wfdb_zip(index: Any, ids: Any) -> bytes:
    """A zip of WFDB records (.hea + .dat, format 16) of the cohort's display waveforms, one per source record.

    Each record's cohort windows are laid on its own time line at 62.5 Hz from its first window's
    ``start_s`` (gaps and absent channels are written as WFDB's missing value), in the record's input
    units (normalised value · scale + center; "au" since the index does not keep unit names).
    ``cohort.json`` in the zip lists, per WFDB record, the source record and its windows.
    """
    import wfdb

    ids = np.asarray(ids, dtype=np.int64)
    meta = _metadata(index)
    sub = meta.iloc[ids].assign(_id=ids)
    fs = WAVEFORM_FS_HZ
    listing = []
    buf = io.BytesIO()
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for n, (rec, part) in enumerate(sub.groupby("record", sort=True)):
            part = part.sort_values("start_s")
            waves = index.waveforms(part["_id"].to_numpy())
            length = waves["ecg"].shape[1]
            offs = np.rint((part["start_s"].to_numpy(float) - float(part["start_s"].min())) * fs).astype(int)
            total = int(offs.max()) + length
            sig = np.full((total, 2), np.nan)
            for j, off in enumerate(offs):
                for c, m in enumerate(("ecg", "ppg")):
                    x = np.asarray(waves[m][j], np.float64)
                    scale, center = waves.get(f"{m}_scale"), waves.get(f"{m}_center")
                    if scale is not None and np.isfinite(scale[j]) and np.isfinite(center[j]):
                        x = x * float(scale[j]) + float(center[j])
                    if np.isfinite(x).all():
                        sig[off:off + length, c] = x
            chans = [c for c in range(2) if np.isfinite(sig[:, c]).any()]
            if not chans:
                continue
            name = f"c{n:05d}_{_safe_name(str(rec))}"
            wfdb.wrsamp(name, fs=fs, units=["au"] * len(chans), sig_name=[("ECG", "PPG")[c] for c in chans],
                        p_signal=sig[:, chans], fmt=["16"] * len(chans), write_dir=tmp,
                        comments=[f"m2ae cohort: record {_safe_name(str(rec))}, display waveforms "
                                  f"{fs:g} Hz, from start_s {float(part['start_s'].min()):g}"])
            for ext in (".hea", ".dat"):
                zf.write(Path(tmp) / f"{name}{ext}", f"{name}{ext}")
            listing.append({"wfdb_record": name, "record": str(rec), "ids": part["_id"].astype(int).tolist(),
                            "start_s": float(part["start_s"].min())})
        zf.writestr("cohort.json", json.dumps({"fs_hz": fs, "records": listing}, indent=1))
    return buf.getvalue()


def export_cohort(index: Any, ids: Any, out: str | Path, wfdb: bool = True) -> dict[str, Any]:
    """Write ``cohort.csv``, ``cohort.parquet``, ``label_makeup.csv`` and (``wfdb``) ``cohort_wfdb.zip``
    to folder ``out``; returns {"windows", "records", "files": {kind: path}}."""
    ids = np.asarray(ids, dtype=np.int64)
    if not len(ids):
        raise InputError("cohort: no window matches; nothing to export")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    frame = cohort_frame(index, ids)
    files = {"csv": out / "cohort.csv", "parquet": out / "cohort.parquet", "label_makeup": out / "label_makeup.csv"}
    files["csv"].write_bytes(cohort_csv(frame))
    files["parquet"].write_bytes(cohort_parquet(frame))
    makeup = label_makeup(_metadata(index), ids)
    makeup.to_csv(files["label_makeup"], index=False)
    if wfdb:
        files["wfdb_zip"] = out / "cohort_wfdb.zip"
        files["wfdb_zip"].write_bytes(cohort_wfdb_zip(index, ids))
    meta = _metadata(index).iloc[ids]
    return {"windows": int(len(ids)), "records": int(meta["record"].nunique()) if "record" in meta else None,
            "files": {k: str(v) for k, v in files.items()}, "label_makeup": makeup}


def _metadata(index: Any) -> pd.DataFrame:
    meta = getattr(index, "metadata", index)
    if not isinstance(meta, pd.DataFrame):
        raise InputError("cohort: need a FingerprintIndex or its metadata table")
    return meta
