"""Embedding at scale: records → contract windows → fingerprints + metadata + compact waveforms.

``embed`` streams records from files, folders, ``Record`` objects or corpus readers (any iterable of
``Record``), reads and preprocesses them in torch DataLoader workers, batches windows of many
records through the model (on the GPU when there is one) and writes per-record shards as it goes,
so an interrupted run resumes where it stopped. The finished output folder is assembled in a
temporary sibling and renamed into place:

    fingerprints.npy          float32 [N, D], L2-normalised
    metadata.parquet          one row per window (see ``window_metadata``)
    waveforms_*.npy           int8 display thumbnails (see ``waveforms.py``)
    embed_manifest.json       model version, dims, count, sources, skipped inputs, timings

Low-quality windows are kept and flagged (``low_quality``); inputs that cannot be read, or that
hold no 10-s window, are skipped and listed in the manifest (``skipped``).

>>> res = embed(["sample_data/"], load_model(), "out/embeddings")   # doctest: +SKIP
>>> res.fingerprints.shape, res.metadata.columns[:4].tolist()        # doctest: +SKIP
((212, 256), ['record', 'subject_id', 'start_s', 'window'])
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import pandas as pd

from ..errors import InputError, ModelMismatchError
from ..record import Record, Windows
from .store import _replace_dir, _utc_now, read_metadata, tidy_metadata, write_metadata
from .waveforms import CompactWaveforms

# Files a folder may hold that are records (WFDB records are opened through their .hea).
RECORD_SUFFIXES = (".hea", ".csv", ".tsv", ".npz", ".npy", ".edf", ".vital")
# Files that sit beside records in corpora and are not records themselves.
NOT_RECORDS = frozenset({"manifest", "labels", "subjects", "readme", "license", "records", "metadata", "index",
                         "clinical_data", "ptbxl_database", "scp_statements"})

EMBED_MANIFEST = "embed_manifest.json"
DONE_FILE = "done.jsonl"


@dataclass
class EmbedItem:
    """One record to embed. kind: "path" (a file), "record" (a ``Record``) or "simulated"
    (``payload`` = (SubjectParams, record seed, duration_s) for ``m2ae.simulate.simulate_record``)."""

    key: str
    kind: str
    payload: Any
    label: str


@dataclass
class EmbedResult:
    """What ``embed`` produced: fingerprints [N, D], metadata rows, compact waveforms, and the list
    of inputs that were skipped with the reason (one line each)."""

    fingerprints: np.ndarray
    metadata: pd.DataFrame
    waveforms: CompactWaveforms
    model_version: str
    out_dir: Path | None
    skipped: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def windows_per_s(self) -> float:
        return len(self.fingerprints) / self.seconds if self.seconds > 0 else float("nan")


# --- sources ---------------------------------------------------------------------------------

def find_record_files(folder: Path) -> list[Path]:
    """Record files under ``folder`` (recursively, sorted), one per record (WFDB via its .hea)."""
    from ..io.corpus import wfdb_segment_headers

    files = []
    segments = wfdb_segment_headers(folder.rglob("*.hea"))
    for p in sorted(folder.rglob("*")):
        if p in segments:
            continue
        if not p.is_file() or p.suffix.lower() not in RECORD_SUFFIXES or p.name.startswith("."):
            continue
        if p.stem.lower() in NOT_RECORDS:
            continue
        if any(part.startswith(".") for part in p.relative_to(folder).parts):
            continue
        files.append(p)
    return files


def _path_key(p: Path) -> str:
    st = p.stat()
    h = hashlib.sha1(f"{p.resolve()}|{st.st_size}".encode()).hexdigest()[:16]
    return f"{_safe(p.stem)[:40]}-{h}"


def _record_key(rec: Record) -> str:
    h = hashlib.sha1()
    h.update(json.dumps({k: str(rec.meta.get(k)) for k in ("source", "record_id", "subject_id")}).encode())
    h.update(str(rec.fs).encode())
    for x in (rec.ecg, rec.ppg):
        if x is not None:
            h.update(np.ascontiguousarray(x[:5000], dtype=np.float64).tobytes())
            h.update(str(len(x)).encode())
    name = str(rec.meta.get("record_id") or rec.meta.get("subject_id") or "record")
    return f"{_safe(name)[:40]}-{h.hexdigest()[:16]}"


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def expand_sources(sources) -> tuple[list[EmbedItem], list[Iterable]]:
    """Split inputs into a list of items (files, folders expanded, Records) and record streams.

    A str/Path is a file or a folder (searched recursively, see ``find_record_files``); a
    ``Record`` is embedded as is; any other iterable is a stream of Records (a corpus reader).
    Missing paths and empty folders raise InputError (one line).
    """
    if isinstance(sources, (str, Path, Record)):
        sources = [sources]
    items: list[EmbedItem] = []
    streams: list[Iterable] = []
    for src in sources:
        if isinstance(src, EmbedItem):
            items.append(src)
        elif isinstance(src, Record):
            items.append(EmbedItem(_record_key(src), "record", src, str(src.meta.get("record_id") or src.meta.get("source") or "record")))
        elif isinstance(src, (str, Path)):
            p = Path(src)
            if not p.exists():
                raise InputError(f"{p}: no such file or folder")
            if p.is_dir():
                from ..io import detect_layout, iter_corpus

                layout = detect_layout(p)
                if layout not in (None, "folder"):  # a known corpus: its reader knows subjects and labels
                    streams.append(iter_corpus(p, layout, min_duration_s=10.0))
                    continue
                files = find_record_files(p)
                if not files:
                    raise InputError(f"{p}: folder holds no record files ({', '.join(RECORD_SUFFIXES)})")
                items += [EmbedItem(_path_key(f), "path", str(f), str(f)) for f in files]
            else:
                items.append(EmbedItem(_path_key(p), "path", str(p), str(p)))
        elif hasattr(src, "__iter__"):
            streams.append(src)
        else:
            raise InputError(f"cannot embed {type(src).__name__!r}: give paths, Records or an iterable of Records")
    seen, unique = set(), []
    for it in items:  # the same file named twice (e.g. a folder and a file in it) is embedded once
        if it.key not in seen:
            seen.add(it.key)
            unique.append(it)
    return unique, streams


def simulated_items(n_subjects: int, seed: int = 0, duration_s: float = 60.0) -> list[EmbedItem]:
    """Items for ``n_subjects`` simulated subjects: the same subjects and record seeds as
    ``m2ae simulate --subjects N --seed S`` writes (rhythms cycle NSR, AF, SB, ST, PVC), rendered
    inside the workers, never on disk. Subject ids are ``sim000000``... for seed 0 (as the simulator
    names them) and ``sim-s<seed>-000000``... otherwise (``m2ae.simulate.record.cohort_subjects``)."""
    from ..simulate.record import cohort_subjects

    n_subjects = int(n_subjects)
    if n_subjects < 1:
        raise InputError(f"--simulate must be a positive number of subjects, got {n_subjects}")
    items = []
    for i, (subject, record_seed) in enumerate(cohort_subjects(n_subjects, seed)):
        items.append(EmbedItem(f"sim-{seed}-{i:06d}-{duration_s:g}", "simulated",
                               (subject, record_seed, float(duration_s)), f"simulated {subject.subject_id}"))
    return items


# --- per-record preparation (runs in DataLoader workers) -------------------------------------

def manifest_meta_for(path, levels: int = 3) -> dict[str, Any]:
    """Subject id, record id and labels a ``manifest.json`` near ``path`` lists for it.

    Sample folders and simulated cohorts describe their files in a ``manifest.json`` (``records``:
    entries with ``path`` relative to the manifest, ``subject_id``, ``record_id``/``name`` and
    ``labels`` as a dict or as flat columns). Formats such as CSV cannot carry labels themselves, so
    this is where they come from. Returns {} when no manifest within ``levels`` folders lists it.
    """
    p = Path(path).resolve()
    folder = p.parent
    for _ in range(levels):
        mf = folder / "manifest.json"
        if mf.is_file():
            try:
                doc = json.loads(mf.read_text())
            except (OSError, ValueError):
                doc = None
            entries = doc.get("records") if isinstance(doc, dict) else doc
            for e in entries if isinstance(entries, list) else []:
                if not isinstance(e, dict) or not e.get("path"):
                    continue
                try:
                    same = (folder / e["path"]).resolve() == p
                except OSError:
                    same = False
                if not same:
                    continue
                out: dict[str, Any] = {}
                if e.get("subject_id"):
                    out["subject_id"] = str(e["subject_id"])
                rid = e.get("record_id") or e.get("name")
                if rid:
                    out["record_id"] = str(rid)
                labels = e.get("labels")
                if not isinstance(labels, dict):
                    skip = {"path", "subject_id", "record_id", "name", "seed", "description", "kind", "format",
                            "fs_hz", "duration_s", "modalities", "file_notes", "source", "licence", "command"}
                    labels = {k: v for k, v in e.items() if k not in skip and not isinstance(v, (dict, list))}
                if labels:
                    out["labels"] = labels
                return out
        if folder.parent == folder:
            break
        folder = folder.parent
    return {}


def load_path(path, read_kwargs: dict | None = None) -> Record:
    """``load_record`` plus what a nearby ``manifest.json`` knows about the file (subject, labels);
    what the file itself says wins."""
    from ..io import load_record

    rec = load_record(path, **(read_kwargs or {}))
    extra = manifest_meta_for(path)
    for key in ("subject_id", "record_id"):
        if key in extra and not rec.meta.get(key):
            rec.meta[key] = extra[key]
    if extra.get("labels"):
        rec.meta["labels"] = {**extra["labels"], **(rec.meta.get("labels") or {})}
    return rec


def load_item(item: EmbedItem, read_kwargs: dict | None = None) -> Record:
    if item.kind == "record":
        return item.payload
    if item.kind == "path":
        return load_path(item.payload, read_kwargs)
    if item.kind == "simulated":
        from ..simulate import simulate_record

        subject, record_seed, duration_s = item.payload
        return simulate_record(subject, duration_s=duration_s, seed=record_seed)
    raise ValueError(f"unknown item kind {item.kind!r}")


def window_metadata(rec: Record, win: Windows, source_label: str | None = None) -> pd.DataFrame:
    """One metadata row per window of a record.

    Columns: record, subject_id, start_s (s from the record start), window (index in the record),
    source, modalities ("ecg+ppg" / "ecg" / "ppg"), lead, ecg_quality / ppg_quality ([0, 1], NaN when
    absent), low_quality (a present channel below the threshold; kept, flagged), hr_ecg_bpm,
    hr_ppg_bpm, pat_ms, ecg_center / ecg_scale / ppg_center / ppg_scale (window normalisation, to
    show waveforms in the record's units), then ``label_<name>`` for each of the record's labels.
    """
    n = len(win)
    meta = rec.meta or {}
    source = str(meta.get("source") or source_label or "record")
    record = str(meta.get("record_id") or Path(source).stem or source)
    subject = meta.get("subject_id")
    subject = str(subject) if subject not in (None, "") else record

    def col(name):
        v = getattr(win, name, None)
        return np.full(n, np.nan, np.float32) if v is None else np.asarray(v, dtype=np.float32)

    low = win.low_quality if win.low_quality is not None else np.zeros(n, bool)
    df = pd.DataFrame({
        "record": record,
        "subject_id": subject,
        "start_s": np.asarray(win.starts_s, dtype=np.float64),
        "window": np.arange(n, dtype=np.int32),
        "source": source,
        "modalities": "+".join(win.modalities),
        "lead": str(meta.get("lead")) if rec.ecg is not None and meta.get("lead") else None,
        "ecg_quality": col("ecg_quality"),
        "ppg_quality": col("ppg_quality"),
        "low_quality": np.asarray(low, dtype=bool),
        "hr_ecg_bpm": col("hr_ecg_bpm"),
        "hr_ppg_bpm": col("hr_ppg_bpm"),
        "pat_ms": col("pat_ms"),
        "ecg_center": col("ecg_center"),
        "ecg_scale": col("ecg_scale"),
        "ppg_center": col("ppg_center"),
        "ppg_scale": col("ppg_scale"),
    })
    labels = meta.get("labels") or {}
    if isinstance(labels, dict):
        for k, v in labels.items():
            df[f"label_{_safe(str(k))}"] = [v] * n if not isinstance(v, (list, dict)) else [json.dumps(v)] * n
    return df


def prepare(item: EmbedItem, stride_s: float = 10.0, read_kwargs: dict | None = None) -> dict[str, Any]:
    """Load and preprocess one item: its windows, metadata rows and compact waveforms, or the
    one-line reason it cannot be used (``error``)."""
    from ..signal import preprocess

    try:
        rec = load_item(item, read_kwargs)
        win = preprocess(rec, stride_s=stride_s)
        if len(win) == 0:
            raise InputError(f"{item.label}: no usable 10-s window (record lasts {rec.duration_s:.1f} s)")
        meta = window_metadata(rec, win, item.label)
        waves = CompactWaveforms.from_windows(win.ecg, win.ppg, n=len(win))
        return {"key": item.key, "label": item.label, "ecg": win.ecg, "ppg": win.ppg, "meta": meta, "waves": waves}
    except InputError as e:
        return {"key": item.key, "label": item.label, "error": str(e).splitlines()[0]}


class _ItemDataset:
    """Map-style dataset over embed items; each element is one prepared record."""

    def __init__(self, items: list[EmbedItem], stride_s: float, read_kwargs: dict | None):
        self.items, self.stride_s, self.read_kwargs = items, stride_s, read_kwargs

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return prepare(self.items[i], self.stride_s, self.read_kwargs)


def _identity(x):
    return x


def _worker_init(_):
    import torch

    torch.set_num_threads(1)  # workers do numpy/scipy work; model threads stay in the main process


def default_workers() -> int:
    """DataLoader workers: none on a 2-core box (workers would fight the model for the cores)."""
    n = os.cpu_count() or 1
    return 0 if n <= 2 else min(8, n - 2)


def _prepared_stream(items: list[EmbedItem], streams: list[Iterable], num_workers: int, stride_s: float,
                     read_kwargs: dict | None, done: set[str]) -> Iterator[dict[str, Any]]:
    todo = [it for it in items if it.key not in done]
    if todo:
        if num_workers > 0:
            from torch.utils.data import DataLoader

            loader = DataLoader(_ItemDataset(todo, stride_s, read_kwargs), batch_size=None, shuffle=False,
                                num_workers=num_workers, collate_fn=_identity, worker_init_fn=_worker_init,
                                prefetch_factor=4, persistent_workers=False)
            yield from loader
        else:
            for it in todo:
                yield prepare(it, stride_s, read_kwargs)
    for stream in streams:  # corpus readers: iterate in this process, one record at a time
        for rec in stream:
            if not isinstance(rec, Record):
                raise InputError(f"corpus reader yielded {type(rec).__name__}, expected Record")
            it = EmbedItem(_record_key(rec), "record", rec, str(rec.meta.get("record_id") or rec.meta.get("source") or "record"))
            if it.key not in done:
                yield prepare(it, stride_s, read_kwargs)


# --- the model -------------------------------------------------------------------------------

def resolve_model(model=None, device=None):
    """A loaded model from None (shipped checkpoint), a checkpoint path, or a loaded model."""
    if model is None or isinstance(model, (str, Path)):
        from ..model import load_model

        return load_model(model, device=device)
    if not hasattr(model, "fingerprint"):
        raise InputError(f"model: expected a checkpoint path or a loaded model, got {type(model).__name__}")
    return model


def model_checkpoint_of(model) -> str | None:
    p = getattr(model, "path", None)
    if p is None:
        return None
    p = Path(p)
    try:
        return str(p.resolve().relative_to(Path(__file__).resolve().parents[2]))
    except ValueError:
        return str(p)


def fingerprint_windows(model, ecg: np.ndarray | None, ppg: np.ndarray | None, batch_size: int = 256) -> np.ndarray:
    """Fingerprints [N, D] float32 for contract windows (either modality may be None)."""
    try:
        fp = model.fingerprint(ecg=ecg, ppg=ppg, batch_size=batch_size)
    except TypeError:  # a model wrapper without batch_size
        fp = model.fingerprint(ecg=ecg, ppg=ppg)
    if hasattr(fp, "detach"):
        fp = fp.detach().cpu().numpy()
    return np.asarray(fp, dtype=np.float32)


# --- the embedding loop ----------------------------------------------------------------------

class _ShardWriter:
    """Per-record shards in a work folder plus an append-only done list (the resume state)."""

    def __init__(self, work: Path | None, model_version: str):
        self.work = work
        self.done: dict[str, dict] = {}
        self.order: list[str] = []
        self.memory: dict[str, tuple[np.ndarray, pd.DataFrame, CompactWaveforms]] = {}
        if work is None:
            return
        (work / "shards").mkdir(parents=True, exist_ok=True)
        state = work / "state.json"
        if state.exists():
            old = json.loads(state.read_text()).get("model_version")
            if old != model_version:
                raise ModelMismatchError(
                    f"{work}: an interrupted embedding by model version {old} is here, but the model is version "
                    f"{model_version}; delete the folder or use the same model")
        else:
            state.write_text(json.dumps({"model_version": model_version, "started": _utc_now()}))
        done_path = work / DONE_FILE
        if done_path.exists():
            for line in done_path.read_text().splitlines():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by the interruption: that record is simply redone
                if entry.get("error") or (work / "shards" / f"{entry['key']}.npz").exists():
                    if entry["key"] not in self.done:
                        self.order.append(entry["key"])
                    self.done[entry["key"]] = entry

    def write(self, key: str, label: str, fp: np.ndarray, meta: pd.DataFrame, waves: CompactWaveforms) -> None:
        if self.work is None:
            self.memory[key] = (fp, meta, waves)
        else:
            shards = self.work / "shards"
            meta = tidy_metadata(meta)
            if _meta_suffix() == ".parquet":
                meta.to_parquet(shards / f"{key}.meta.parquet", index=False)
            else:
                meta.to_csv(shards / f"{key}.meta.csv", index=False)
            # The .npz appears only when complete; the done line is written after it.
            np.savez(shards / f"{key}.tmp.npz", fingerprints=fp, ecg=waves.ecg, ppg=waves.ppg,
                     ecg_step=waves.ecg_step, ppg_step=waves.ppg_step)
            os.replace(shards / f"{key}.tmp.npz", shards / f"{key}.npz")
        self._mark({"key": key, "label": label, "n": int(len(fp))})

    def skip(self, key: str, label: str, error: str) -> None:
        self._mark({"key": key, "label": label, "error": error})

    def _mark(self, entry: dict) -> None:
        if entry["key"] not in self.done:
            self.order.append(entry["key"])
        self.done[entry["key"]] = entry
        if self.work is not None:
            with open(self.work / DONE_FILE, "a") as f:
                f.write(json.dumps(entry) + "\n")
                f.flush()

    def read(self, key: str):
        if self.work is None:
            return self.memory[key]
        shards = self.work / "shards"
        with np.load(shards / f"{key}.npz", allow_pickle=False) as z:
            fp = z["fingerprints"]
            waves = CompactWaveforms(z["ecg"], z["ppg"], z["ecg_step"], z["ppg_step"])
        pq = shards / f"{key}.meta.parquet"
        meta = pd.read_parquet(pq) if pq.exists() else pd.read_csv(shards / f"{key}.meta.csv")
        return fp, meta, waves

    def assemble(self) -> tuple[np.ndarray, pd.DataFrame, CompactWaveforms, list[dict]]:
        fps, metas, waves, skipped = [], [], [], []
        for key in self.order:
            entry = self.done[key]
            if entry.get("error"):
                skipped.append({"input": entry["label"], "error": entry["error"]})
                continue
            fp, meta, w = self.read(key)
            fps.append(fp)
            metas.append(meta)
            waves.append(w)
        if not fps:
            return np.zeros((0, 0), np.float32), pd.DataFrame(), CompactWaveforms.empty(), skipped
        return (np.concatenate(fps), tidy_metadata(pd.concat(metas, ignore_index=True)),
                CompactWaveforms.concat(waves), skipped)


def _meta_suffix() -> str:
    try:
        import pyarrow  # noqa: F401

        return ".parquet"
    except ImportError:
        return ".csv"


def embed(sources, model=None, out_dir=None, batch_size: int = 256, num_workers: int | None = None,
          stride_s: float = 10.0, read_kwargs: dict | None = None, progress: bool = True,
          device=None, extra_items: list[EmbedItem] | None = None) -> EmbedResult:
    """Fingerprint every 10-s window of files, folders, Records or corpus readers.

    sources : a path, a Record, an iterable of Records (a corpus reader), or a list of these.
    model : a loaded model, a checkpoint path, or None for the shipped checkpoint.
    out_dir : output folder (see module docstring); None keeps everything in memory (no resume).
        An interrupted run leaves ``<out_dir>.partial/`` behind; running the same command again
        resumes from it and removes it when the output is complete.
    batch_size : windows per model call, gathered across records. num_workers : DataLoader
        workers that read and preprocess records (default: none on ≤ 2 cores).
    stride_s : window stride in s (10 = back to back). read_kwargs : passed to ``load_record``
        (fs, ecg, ppg column names). extra_items : more items, e.g. ``simulated_items(2000)``.

    Raises InputError when no input yields a single window.
    """
    t0 = time.perf_counter()
    items, streams = expand_sources(sources) if sources else ([], [])
    items += list(extra_items or [])
    if not items and not streams:
        raise InputError("nothing to embed: no input records given")
    model = resolve_model(model, device)
    version = str(getattr(model, "version", "unknown"))
    out = Path(out_dir) if out_dir is not None else None
    work = out.with_name(out.name + ".partial") if out is not None else None
    if work is not None:
        work.parent.mkdir(parents=True, exist_ok=True)
    shards = _ShardWriter(work, version)
    nw = default_workers() if num_workers is None else int(num_workers)

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(items) or None, initial=sum(1 for it in items if it.key in shards.done),
                   unit="rec", desc="embedding", file=sys.stderr, dynamic_ncols=True)
    pending: list[dict] = []
    n_pending = 0
    n_windows = 0

    def flush() -> None:
        nonlocal pending, n_pending, n_windows
        groups: dict[str, list[dict]] = {}
        for p in pending:
            groups.setdefault(p["meta"]["modalities"].iloc[0], []).append(p)
        for group in groups.values():
            ecg = None if group[0]["ecg"] is None else np.concatenate([p["ecg"] for p in group])
            ppg = None if group[0]["ppg"] is None else np.concatenate([p["ppg"] for p in group])
            fp = fingerprint_windows(model, ecg, ppg, batch_size)
            start = 0
            for p in group:
                n = len(p["meta"])
                shards.write(p["key"], p["label"], fp[start:start + n], p["meta"], p["waves"])
                start += n
        n_windows += n_pending
        pending, n_pending = [], 0

    for prep in _prepared_stream(items, streams, nw, stride_s, read_kwargs, set(shards.done)):
        if "error" in prep:
            shards.skip(prep["key"], prep["label"], prep["error"])
        else:
            pending.append(prep)
            n_pending += len(prep["meta"])
            if n_pending >= batch_size:
                flush()
        if bar is not None:
            bar.update(1)
            bar.set_postfix(windows=n_windows + n_pending, refresh=False)
    if pending:
        flush()
    if bar is not None:
        bar.close()

    fps, meta, waves, skipped = shards.assemble()
    if len(fps) == 0:
        reasons = "; ".join(f"{s['error']}" for s in skipped[:3])
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
        raise InputError(f"no usable window in the {len(skipped)} input(s)" + (f": {reasons}" if reasons else ""))
    seconds = time.perf_counter() - t0
    manifest = {
        "model_version": version,
        "model_checkpoint": model_checkpoint_of(model),
        "dims": int(fps.shape[1]),
        "count": int(len(fps)),
        "records": int(meta["record"].nunique()),
        "subjects": int(meta["subject_id"].nunique()),
        "low_quality_windows": int(meta["low_quality"].sum()),
        "skipped": skipped,
        "stride_s": stride_s,
        "created": _utc_now(),
        "seconds_this_run": round(seconds, 2),
    }
    result = EmbedResult(fps, meta, waves, version, out, skipped, seconds, manifest)
    if out is not None:
        _write_embed_output(result, out)
        shutil.rmtree(work, ignore_errors=True)
    return result


def _write_embed_output(res: EmbedResult, out: Path) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        np.save(tmp / "fingerprints.npy", res.fingerprints)
        write_metadata(res.metadata, tmp)
        res.waveforms.save(tmp)
        (tmp / EMBED_MANIFEST).write_text(json.dumps(res.manifest, indent=2) + "\n")
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load_embeddings(folder) -> EmbedResult:
    """Read an ``embed`` output folder back (fingerprints, metadata, waveforms, manifest)."""
    folder = Path(folder)
    mf = folder / EMBED_MANIFEST
    if not mf.exists():
        raise InputError(f"{folder}: not an embedding folder ({EMBED_MANIFEST} missing)")
    try:
        manifest = json.loads(mf.read_text())
        fps = np.load(folder / "fingerprints.npy", allow_pickle=False)
        waves = CompactWaveforms.load(folder, mmap=False)
    except (json.JSONDecodeError, ValueError, OSError) as e:
        raise InputError(f"{folder}: corrupt embedding folder ({type(e).__name__}: {str(e).splitlines()[0][:160]})") from None
    meta = read_metadata(folder)
    if not (len(fps) == len(meta) == len(waves)):
        raise InputError(f"{folder}: fingerprints ({len(fps)}), metadata ({len(meta)}) and waveforms ({len(waves)}) disagree")
    return EmbedResult(fps, meta, waves, manifest.get("model_version", "unknown"), folder,
                       manifest.get("skipped", []), 0.0, manifest)
