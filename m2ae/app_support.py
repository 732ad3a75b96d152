"""Computations the web app needs that are not the model's or the index's job.

The Streamlit pages only present; everything they show that takes arithmetic comes from here or from
the rest of m2ae, so it is unit-tested without a browser. Nothing here imports streamlit.

- uploads: ``read_upload`` turns in-memory uploaded files into a ``Record`` (never written to disk),
  ``list_channels`` names the columns/channels a file offers for the mapping form;
- samples: ``load_manifest`` lists ``sample_data/``;
- windows: ``window_view`` cuts one 10-s window of the cleaned record with its peaks (seconds);
- reconstruction: ``masked_spans`` (patch mask → shaded time spans), ``reconstruction_errors`` (NMSE,
  Pearson r);
- neighbours and cohorts: ``knn_vote`` (label make-up of a neighbourhood), ``selected_rows`` (plotly
  box/lasso event → row numbers), ``cohort_table`` (fingerprints + metadata [+ waveforms] for CSV).

>>> spans = masked_spans([True, True, False, True])   # patches of 0.2 s
>>> [(round(a, 2), round(b, 2)) for a, b in spans]
[(0.0, 0.4), (0.6, 0.8)]
"""
from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from .contract import FS_HZ, MAX_FILE_BYTES, PATCH_SAMPLES, QUALITY_THRESHOLD, WINDOW_SAMPLES
from .errors import InputError
from .record import Record, Windows

PATCH_S: float = PATCH_SAMPLES / FS_HZ  # 0.2 s
UPLOAD_TYPES: tuple[str, ...] = ("hea", "dat", "mat", "csv", "tsv", "txt", "npz", "npy", "edf", "vital")


# --- uploads ---------------------------------------------------------------------------------

def content_key(*parts: Any) -> str:
    """A stable hex digest of bytes, strings, numbers and {name: bytes} maps (the per-record cache key).

    >>> content_key({"a.csv": b"1,2"}, 125.0) == content_key({"a.csv": b"1,2"}, 125.0)
    True
    """
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, Mapping):
            for name in sorted(part):
                h.update(str(name).encode())
                h.update(b"\0")
                value = part[name]
                h.update(value if isinstance(value, (bytes, bytearray)) else repr(value).encode())
                h.update(b"\1")
        elif isinstance(part, (bytes, bytearray)):
            h.update(part)
        else:
            h.update(repr(part).encode())
        h.update(b"\2")
    return h.hexdigest()[:32]


class _NamedBytes(io.BytesIO):
    """An in-memory file with a ``name`` (readers pick the format from the file name)."""

    def __init__(self, data: bytes, name: str) -> None:
        super().__init__(data)
        self.name = name


def _check_upload(files: Mapping[str, bytes]) -> dict[str, bytes]:
    if not files:
        raise InputError("upload: no file received")
    out: dict[str, bytes] = {}
    for name, data in files.items():
        base = Path(str(name)).name
        if len(data) == 0:
            raise InputError(f"{base}: the file is empty")
        if len(data) > MAX_FILE_BYTES:
            raise InputError(f"{base}: {len(data) / 2**20:.0f} MiB is over the {MAX_FILE_BYTES // 2**20} MiB limit")
        out[base] = bytes(data)
    return out


def read_upload(files: Mapping[str, bytes], fs: float | None = None, ecg: str | None = None,
                ppg: str | None = None) -> Record:
    """Read uploaded files (``{file name: bytes}``) into a ``Record`` without touching the disk.

    One file is passed to ``m2ae.load_record`` as a named in-memory file; several files (a WFDB
    ``.hea`` with its ``.dat``/``.mat``) as the ``{name: bytes}`` map the WFDB reader accepts.
    ``fs`` (Hz), ``ecg`` and ``ppg`` (column/channel names) override what cannot be inferred.
    Raises ``InputError`` with the reader's one-line message.
    """
    from .io import load_record

    files = _check_upload(files)
    fs = float(fs) if fs else None
    ecg = ecg or None
    ppg = ppg or None
    try:
        if len(files) == 1:
            (name, data), = files.items()
            return load_record(_NamedBytes(data, name), fs=fs, ecg=ecg, ppg=ppg)
        return load_record(dict(files), fs=fs, ecg=ecg, ppg=ppg)
    except InputError:
        raise
    except (ValueError, OSError, KeyError, IndexError, TypeError, EOFError, UnicodeDecodeError) as e:
        # A reader tripping over a malformed file is still the file's fault: say so in one line.
        first = sorted(files)[0]
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(f"{first}: could not be read ({msg})") from e


def _edf_labels(data: bytes) -> list[str]:
    # EDF header: 256 fixed bytes, then ns labels of 16 ASCII characters each (EDF spec, section 2).
    try:
        ns = int(data[252:256].decode("ascii").strip())
    except (ValueError, UnicodeDecodeError):
        return []
    raw = data[256:256 + 16 * ns].decode("ascii", errors="replace")
    return [raw[i * 16:(i + 1) * 16].strip() for i in range(ns)]


def _hea_labels(text: str) -> list[str]:
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        return []
    try:
        n_signals = int(lines[0].split()[1])
    except (IndexError, ValueError):
        return []
    labels = []
    for ln in lines[1:1 + n_signals]:
        tokens = ln.split()
        labels.append(" ".join(tokens[8:]) if len(tokens) > 8 else f"signal {len(labels)}")
    return labels


def list_channels(files: Mapping[str, bytes]) -> list[str]:
    """Names of the columns/channels the uploaded files offer (for the ECG/PPG mapping form).

    Reads headers only (CSV/TSV header row, NPZ keys, EDF labels, WFDB signal names); returns ``[]``
    when the format has no names (a bare ``.npy`` array is channel-less: give ``fs`` only).
    """
    names: list[str] = []
    for name, data in files.items():
        suffix = Path(name).suffix.lower()
        try:
            if suffix in (".csv", ".tsv", ".txt"):
                head = data[:65536].decode("utf-8", errors="replace")
                frame = pd.read_csv(io.StringIO(head), sep=None, engine="python", nrows=3)
                names += [str(c).strip() for c in frame.columns]
            elif suffix == ".npz":
                with np.load(io.BytesIO(data), allow_pickle=False) as z:
                    names += [k for k in z.files if k != "fs"]
            elif suffix == ".edf":
                names += _edf_labels(data)
            elif suffix == ".hea":
                names += _hea_labels(data.decode("utf-8", errors="replace"))
        except Exception:  # a header we cannot parse just offers no names; the reader reports why
            continue
    seen: dict[str, None] = {}
    for n in names:
        seen.setdefault(n, None)
    return list(seen)


# --- sample records --------------------------------------------------------------------------

@dataclass(frozen=True)
class SampleEntry:
    """One record of ``sample_data/``: a display name, the file to open and what it is."""

    name: str
    path: Path
    description: str = ""
    info: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def label(self) -> str:
        return f"{self.name} — {self.description}" if self.description else self.name


def load_manifest(root: str | Path) -> list[SampleEntry]:
    """The sample records listed in ``root/manifest.json`` (``[]`` when there is none yet).

    Accepts a list of entries or ``{"records": [...]}``; each entry needs a path (``path``/``file``)
    relative to ``root``; ``name``/``id`` and ``description``/``title`` are shown to the user.
    """
    root = Path(root)
    manifest = root / "manifest.json"
    if not manifest.exists():
        return []
    try:
        doc = json.loads(manifest.read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"{manifest}: not valid JSON ({e})") from e
    entries = doc.get("records", doc.get("samples", [])) if isinstance(doc, dict) else doc
    if isinstance(entries, dict):  # {name: entry}
        entries = [{"name": k, **v} for k, v in entries.items()]
    out = []
    for e in entries or []:
        if not isinstance(e, dict):
            continue
        rel = e.get("path") or e.get("file") or e.get("filename")
        if not rel:
            continue
        path = root / rel
        if not path.exists():
            continue
        name = str(e.get("name") or e.get("id") or Path(rel).stem)
        desc = str(e.get("description") or e.get("title") or "")
        out.append(SampleEntry(name=name, path=path, description=desc, info=e))
    return out


# --- one window of a record ------------------------------------------------------------------

@dataclass
class WindowView:
    """One 10-s window in the record's units, ready to draw.

    t_s : [n] seconds from the record's start; ecg, ppg : [n] cleaned signal (None when absent);
    r_peaks_s, pulse_peaks_s : peak times (s) inside the window; units : {"ecg": ..., "ppg": ...}.
    """

    index: int
    t_s: np.ndarray
    ecg: np.ndarray | None
    ppg: np.ndarray | None
    r_peaks_s: np.ndarray
    pulse_peaks_s: np.ndarray
    units: dict[str, str]
    ecg_quality: float = float("nan")
    ppg_quality: float = float("nan")
    low_quality: bool = False
    hr_bpm: float = float("nan")
    pat_ms: float = float("nan")


def _at(arr, i, default=float("nan")):
    if arr is None:
        return default
    try:
        return arr[i]
    except (IndexError, TypeError):
        return default


def window_view(win: Windows, i: int) -> WindowView:
    """Cut window ``i`` of ``win`` out of the cleaned whole-record signals, with its peaks.

    Uses ``ecg_clean``/``ppg_clean`` (original units, 125 Hz) when present, else the window's
    normalised samples mapped back with ``Windows.to_original_units``.
    """
    n = len(win)
    if n == 0:
        raise InputError("record: no 10-s window to show")
    i = int(np.clip(i, 0, n - 1))
    fs = float(win.fs)
    start = int(round(float(win.starts_s[i]) * fs))
    stop = start + WINDOW_SAMPLES
    t = (start + np.arange(WINDOW_SAMPLES)) / fs
    signals: dict[str, np.ndarray | None] = {}
    for mod in ("ecg", "ppg"):
        clean = getattr(win, f"{mod}_clean", None)
        norm = getattr(win, mod)
        if clean is not None and len(clean) >= stop:
            signals[mod] = np.asarray(clean[start:stop], dtype=np.float64)
        elif norm is not None:
            signals[mod] = win.to_original_units(mod, norm[i:i + 1], slice(i, i + 1))[0].astype(np.float64)
        else:
            signals[mod] = None

    def peaks_in(p):
        if p is None:
            return np.zeros(0)
        p = np.asarray(p)
        return p[(p >= start) & (p < stop)] / fs

    units = dict((win.meta or {}).get("units") or {})
    hr = _at(win.hr_ecg_bpm, i)
    if not np.isfinite(hr):
        hr = _at(win.hr_ppg_bpm, i)
    return WindowView(
        index=i, t_s=t, ecg=signals["ecg"], ppg=signals["ppg"],
        r_peaks_s=peaks_in(win.r_peaks if signals["ecg"] is not None else None),
        pulse_peaks_s=peaks_in(win.pulse_peaks if signals["ppg"] is not None else None),
        units={"ecg": units.get("ecg", "a.u."), "ppg": units.get("ppg", "a.u.")},
        ecg_quality=float(_at(win.ecg_quality, i)), ppg_quality=float(_at(win.ppg_quality, i)),
        low_quality=bool(_at(win.low_quality, i, False)), hr_bpm=float(hr), pat_ms=float(_at(win.pat_ms, i)),
    )


def quality_table(win: Windows) -> pd.DataFrame:
    """Per-window table: start (s), quality per channel, heart rate (bpm), PAT (ms), low-quality flag."""
    n = len(win)
    nan = np.full(n, np.nan)

    def col(a):
        return nan if a is None else np.asarray(a, dtype=float)

    return pd.DataFrame({
        "window": np.arange(n),
        "start_s": np.asarray(win.starts_s, dtype=float),
        "ecg_quality": col(win.ecg_quality),
        "ppg_quality": col(win.ppg_quality),
        "hr_ecg_bpm": col(win.hr_ecg_bpm),
        "hr_ppg_bpm": col(win.hr_ppg_bpm),
        "pat_ms": col(win.pat_ms),
        "low_quality": np.zeros(n, bool) if win.low_quality is None else np.asarray(win.low_quality, bool),
    })


def record_figures(win: Windows) -> dict[str, float]:
    """Whole-record headline numbers: median HR (bpm) from ECG and PPG, median PAT (ms), windows, flagged."""
    def med(a):
        if a is None:
            return float("nan")
        a = np.asarray(a, dtype=float)
        a = a[np.isfinite(a)]
        return float(np.median(a)) if a.size else float("nan")

    low = 0 if win.low_quality is None else int(np.sum(win.low_quality))
    return {"hr_ecg_bpm": med(win.hr_ecg_bpm), "hr_ppg_bpm": med(win.hr_ppg_bpm), "pat_ms": med(win.pat_ms),
            "n_windows": len(win), "n_low_quality": low, "quality_threshold": QUALITY_THRESHOLD}


# --- reconstruction --------------------------------------------------------------------------

def masked_spans(mask: Sequence[bool] | np.ndarray, patch_s: float = PATCH_S, offset_s: float = 0.0
                 ) -> list[tuple[float, float]]:
    """Merge a per-patch mask (True = hidden from the model) into (start_s, stop_s) spans to shade."""
    m = np.asarray(mask, dtype=bool).ravel()
    if m.size == WINDOW_SAMPLES:  # a per-sample mask: one flag per patch is enough
        m = m.reshape(-1, PATCH_SAMPLES).any(axis=1)
    spans = []
    edges = np.diff(np.concatenate([[0], m.astype(np.int8), [0]]))
    for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
        spans.append((offset_s + a * patch_s, offset_s + b * patch_s))
    return spans


def reconstruction_errors(original: np.ndarray, reconstructed: np.ndarray, mask: np.ndarray | None = None,
                          max_lag_samples: int = 0) -> dict[str, float]:
    """Error figures of one reconstructed window, with ``m2ae.eval``'s metric functions.

    original, reconstructed : [T] the same window in the same units (normalised is best).
    mask : optional per-sample (or per-patch) bool, True = hidden from the model; NMSE and r are then
        scored on the hidden samples only (NMSE's denominator stays the whole window's variance).
    max_lag_samples : when > 0 also report r after the one best lag within ±max_lag (a constant
        ECG→PPG device delay is not the model's error), and that lag in ms.
    Returns {"nmse", "pearson_r", "n_samples"} (+ {"pearson_r_lagged", "lag_ms"}).
    """
    from .eval.metrics import best_lag, nmse, pearson_r, shift_pair

    x = np.asarray(original, dtype=np.float64).ravel()
    y = np.asarray(reconstructed, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise InputError(f"reconstruction: shapes differ ({x.shape} vs {y.shape})")
    m = np.ones(x.size, bool)
    if mask is not None:
        mm = np.asarray(mask, dtype=bool).ravel()
        if mm.size * PATCH_SAMPLES == x.size:
            mm = np.repeat(mm, PATCH_SAMPLES)
        if mm.size == x.size and mm.any():
            m = mm
    out = {"nmse": float(nmse(y, x, m)[0]), "pearson_r": float(pearson_r(y[m], x[m])[0]), "n_samples": int(m.sum())}
    if max_lag_samples > 0:
        lag = best_lag(y, x, int(max_lag_samples))
        ps, ts = shift_pair(y, x, lag)
        out["pearson_r_lagged"] = float(pearson_r(ps, ts)[0])
        out["lag_ms"] = 1000.0 * lag / FS_HZ
    return out


# --- neighbours, map selection and cohorts ---------------------------------------------------

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


def selected_rows(event: Any) -> list[int]:
    """Row numbers picked by a plotly box/lasso selection (``st.plotly_chart(on_select=...)``).

    Points must carry their row number as ``customdata`` (first element when it is a list); the
    event is the dict-like object Streamlit returns (``event["selection"]["points"]``).
    """
    if not event:
        return []
    selection = event.get("selection") if hasattr(event, "get") else getattr(event, "selection", None)
    if not selection:
        return []
    points = selection.get("points") if hasattr(selection, "get") else getattr(selection, "points", None)
    rows: list[int] = []
    for p in points or []:
        cd = p.get("customdata") if hasattr(p, "get") else None
        if isinstance(cd, (list, tuple)):
            cd = cd[0] if cd else None
        if cd is None:
            continue
        try:
            rows.append(int(cd))
        except (TypeError, ValueError):
            continue
    return sorted(set(rows))


def cohort_table(metadata: pd.DataFrame, fingerprints: np.ndarray,
                 waveforms: Mapping[str, np.ndarray] | None = None) -> pd.DataFrame:
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


def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    """CSV bytes for ``st.download_button`` (in memory; nothing is written on the server)."""
    return frame.to_csv(index=False).encode("utf-8")


def neighbour_filters(columns: Iterable[str], min_quality: float = 0.0, require: str | None = None
                      ) -> dict[str, Any]:
    """``FingerprintIndex.search`` filters: every present channel's quality ≥ ``min_quality`` and,
    with ``require`` ("ecg"/"ppg"/"both"), only windows that recorded that modality.

    Quality columns ``ecg_quality``/``ppg_quality`` are NaN where a channel is absent (not a failure).
    """
    cols = set(columns)
    filters: dict[str, Any] = {}
    if min_quality > 0:
        for mod in ("ecg", "ppg"):
            col = f"{mod}_quality"
            if col in cols:
                filters[col] = lambda s, q=float(min_quality): s.isna().to_numpy() | (s.fillna(0) >= q).to_numpy()
    if require in ("ecg", "ppg", "both"):
        need = ("ecg", "ppg") if require == "both" else (require,)
        if "modalities" in cols:
            filters["modalities"] = lambda s, need=need: np.array(
                [all(m in str(v).lower() for m in need) for v in s], dtype=bool)
        else:
            for mod in need:
                col = f"{mod}_quality"
                if col in cols:
                    prev = filters.get(col)
                    filters[col] = (lambda s, prev=prev: s.notna().to_numpy() & (prev(s) if prev else True))
    return filters


def index_fingerprints(index: Any, ids: Sequence[int]) -> np.ndarray:
    """Stored fingerprints [n, D] of indexed windows (from the FAISS index itself), for cohort export."""
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


def vote_columns(label_columns: Sequence[str]) -> list[str]:
    """Label columns to summarise, preferring readable names: ``label_rhythm_name`` over ``label_rhythm``."""
    cols = list(label_columns)
    return [c for c in cols if f"{c}_name" not in cols]


def head_summary(prediction: Mapping[str, Any], window: int) -> dict[str, Any]:
    """One head's output for one window, as the app shows it.

    Classifier → {"kind": "class", "label", "probability", "table" (class, name, probability)};
    regressor → {"kind": "value", "value", "low", "high", "level", "unit"}.
    """
    if "probabilities" in prediction:
        p = np.asarray(prediction["probabilities"], dtype=float)[window]
        classes = list(prediction.get("classes") or range(len(p)))
        names = list(prediction.get("class_names") or classes)
        j = int(np.argmax(p))
        table = pd.DataFrame({"class": [str(c) for c in classes], "name": [str(n) for n in names], "probability": p})
        return {"kind": "class", "label": str(names[j]), "code": str(classes[j]), "probability": float(p[j]),
                "table": table.sort_values("probability", ascending=False).reset_index(drop=True)}
    value = float(np.asarray(prediction["value"], dtype=float)[window])
    lo, hi = (float(v) for v in np.asarray(prediction["interval"], dtype=float)[window])
    return {"kind": "value", "value": value, "low": lo, "high": hi,
            "level": float(prediction.get("interval_level", float("nan"))), "unit": str(prediction.get("unit", ""))}


def flatten(tree: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Nested dict → [("a.b.c", leaf)] rows (model card tables); lists of numbers stay one value."""
    rows: list[tuple[str, Any]] = []
    if isinstance(tree, Mapping):
        for k, v in tree.items():
            rows += flatten(v, f"{prefix}{k}.")
        return rows
    rows.append((prefix[:-1] if prefix.endswith(".") else prefix, tree))
    return rows


def find_entries(tree: Any, words: Sequence[str]) -> list[tuple[str, Any]]:
    """Flattened card rows whose key path contains any of ``words`` (e.g. privacy figures)."""
    return [(k, v) for k, v in flatten(tree) if any(w in k.lower() for w in words)]


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


def timing_caption(target: str, source: str, pulse_arrival_s: float | None, moved_ms: float) -> str:
    """One line on where a rebuilt modality was placed in time (see ``M2AEModel.reconstruct``)."""
    if pulse_arrival_s is None:
        return ("Timing: the decoder's own phase (this checkpoint records no typical pulse arrival); compare "
                "shapes, or read r after the best lag.")
    delay_ms = 1000.0 * pulse_arrival_s
    if not np.isfinite(moved_ms):
        return (f"Timing: the decoder's own phase — beats could not be found in this window to place the "
                f"{target.upper()} {delay_ms:.0f} ms from the {source.upper()}'s beats.")
    placed = (f"its pulse peaks come {delay_ms:.0f} ms after the ECG's R peaks" if target == "ppg"
              else f"its R peaks come {delay_ms:.0f} ms before the PPG's pulse peaks")
    return (f"Timing: placed so {placed} (the training data's typical R → pulse delay; moved {moved_ms:+.0f} ms). "
            f"This record's own delay may differ: see r after best lag.")


def rhythm_interval_warning(prediction: Mapping[str, Any] | None, view: WindowView) -> str | None:
    """The rhythm head's call for ``view``'s window checked against its measured beat intervals
    (R peaks when the window has ECG, else pulse peaks): a warning line, or None when they agree
    or cannot be compared (``m2ae.signal.rhythm``)."""
    from .signal.rhythm import MIN_BEATS, rhythm_interval_check, rr_irregularity

    if not prediction or "probabilities" not in prediction:
        return None
    use_r = len(view.r_peaks_s) >= MIN_BEATS
    beats = view.r_peaks_s if use_r else view.pulse_peaks_s
    return rhythm_interval_check(head_summary(prediction, view.index)["code"], rr_irregularity(beats),
                                 "R peaks" if use_r else "pulse peaks")
