"""Embedding at scale: records → contract windows → fingerprints + metadata + compact waveforms.

``embed`` streams records from files, folders, ``Record`` objects or corpus readers (any iterable of
``Record``; see ``sources.py``), reads and preprocesses them in torch DataLoader workers
(``prepare.py``), batches windows of many records through the model (on the GPU when there is one)
and writes per-record shards as it goes (``shards.py``), so an interrupted run resumes where it
stopped. The finished output folder (``files.write_embeddings``) is assembled in a temporary
sibling and renamed into place:

    fingerprints.npy          float32 [N, D], L2-normalised
    metadata.parquet          one row per window (see ``prepare.window_metadata``)
    waveforms_*.npy           int8 display thumbnails (see ``waveforms.py``)
    embed_manifest.json       model version, dims, count, sources, skipped inputs, timings

Low-quality windows are kept and flagged (``low_quality``); inputs that cannot be read, or that
hold no 10-s window, are skipped and listed in the manifest (``skipped``, one entry per input the
embedder refused). ``skip_report`` counts every record the run left out per reason, those a corpus
reader skipped as well (``{"skipped": N, "reasons": {reason: {"count", "records"}}}``, names bounded):
one broken record, even one whose reader raises something unexpected, never ends a run.

>>> res = embed(["sample_data/"], load_model(), "out/embeddings")   # doctest: +SKIP
>>> res.fingerprints.shape, res.metadata.columns[:4].tolist()        # doctest: +SKIP
((212, 256), ['record', 'subject_id', 'start_s', 'window'])
"""
from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass, field
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from .files import read_embeddings, utc_now, write_embeddings
from .fingerprints import fingerprint_windows, model_checkpoint_of, resolve_model
from .prepare import default_workers, prepared_stream
from .shards import ShardStore
from .sources import EmbedItem, expand_sources, run_skip_report
from .waveforms import CompactWaveforms


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


class _Batcher:
    """Gathers prepared records until ``batch_size`` windows wait, then fingerprints them per
    modality set in one model call each and hands every record's rows to the shard store."""

    def __init__(self, model: Any, shards: ShardStore, batch_size: int):
        self.model, self.shards, self.batch_size = model, shards, batch_size
        self.pending: list[dict] = []
        self.n_pending = 0
        self.n_done = 0

    @property
    def n_windows(self) -> int:
        return self.n_done + self.n_pending

    def add(self, prep: dict) -> None:
        self.pending.append(prep)
        self.n_pending += len(prep["meta"])
        if self.n_pending >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        groups: dict[str, list[dict]] = {}
        for p in self.pending:
            groups.setdefault(p["meta"]["modalities"].iloc[0], []).append(p)
        for group in groups.values():
            ecg = None if group[0]["ecg"] is None else np.concatenate([p["ecg"] for p in group])
            ppg = None if group[0]["ppg"] is None else np.concatenate([p["ppg"] for p in group])
            fp = fingerprint_windows(self.model, ecg, ppg, self.batch_size)
            start = 0
            for p in group:
                n = len(p["meta"])
                self.shards.write(p["key"], p["label"], fp[start:start + n], p["meta"], p["waves"])
                start += n
        self.n_done += self.n_pending
        self.pending, self.n_pending = [], 0


def embed(sources: Any, model: Any = None, out_dir: str | Path | None = None, batch_size: int = 256,
          num_workers: int | None = None, stride_s: float = 10.0, read_kwargs: dict | None = None,
          progress: bool = True, device: Any = None, extra_items: list[EmbedItem] | None = None,
          splits: Collection[str] | None = None) -> EmbedResult:
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
    splits : sides of a corpus's record split to read (cinc2015), e.g. ``("train", "validation")``.

    Raises InputError when no input yields a single window.
    """
    t0 = time.perf_counter()
    items, streams = expand_sources(sources, splits) if sources else ([], [])
    items += list(extra_items or [])
    if not items and not streams:
        raise InputError("nothing to embed: no input records given")
    model = resolve_model(model, device)
    version = str(getattr(model, "version", "unknown"))
    out = Path(out_dir) if out_dir is not None else None
    work = out.with_name(out.name + ".partial") if out is not None else None
    if work is not None:
        work.parent.mkdir(parents=True, exist_ok=True)
    shards = ShardStore(work, version)
    nw = default_workers() if num_workers is None else int(num_workers)

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(items) or None, initial=sum(1 for it in items if it.key in shards.done),
                   unit="rec", desc="embedding", file=sys.stderr, dynamic_ncols=True)
    batcher = _Batcher(model, shards, batch_size)
    for prep in prepared_stream(items, streams, nw, stride_s, read_kwargs, set(shards.done)):
        if "error" in prep:
            shards.skip(prep["key"], prep["label"], prep["error"])
        else:
            batcher.add(prep)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(windows=batcher.n_windows, refresh=False)
    if batcher.pending:
        batcher.flush()
    if bar is not None:
        bar.close()

    fps, meta, waves, skipped = shards.assemble()
    skip_report = run_skip_report(streams, skipped)
    if len(fps) == 0:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
        raise InputError(no_window_message(skip_report))
    seconds = time.perf_counter() - t0
    manifest = embedding_manifest(version, model, int(fps.shape[1]), len(fps), meta, skipped, skip_report,
                                  stride_s, seconds)
    result = EmbedResult(fps, meta, waves, version, out, skipped, seconds, manifest)
    if out is not None:
        write_embeddings(out, fps, meta, waves, manifest)
    if work is not None:
        shutil.rmtree(work, ignore_errors=True)
    return result


def no_window_message(skip_report: dict[str, Any]) -> str:
    """The one-line error of a run that embedded nothing: how many records were left out, per reason."""
    reasons = list((skip_report.get("reasons") or {}).items())
    if len(reasons) == 1 and reasons[0][1]["count"] == 1 and reasons[0][1].get("example"):
        example = reasons[0][1]["example"]  # one input: its own message says it best
        return example if example.startswith("no records found in ") else f"no usable window: {example}"
    counts = "; ".join(f"{v['count']} x {r}" for r, v in reasons[:5])
    return f"no usable window in the {skip_report.get('skipped', 0)} input(s)" + (f": {counts}" if counts else "")


def load_embeddings(folder: str | Path) -> EmbedResult:
    """Read an ``embed`` output folder back (fingerprints, metadata, waveforms, manifest)."""
    folder = Path(folder)
    fps, meta, waves, manifest = read_embeddings(folder)
    return EmbedResult(fps, meta, waves, manifest.get("model_version", "unknown"), folder,
                       manifest.get("skipped", []), 0.0, manifest)


def embedding_manifest(version: str, model: Any, dims: int, count: int, meta: pd.DataFrame,
                       skipped: list[dict[str, str]], skip_report: dict[str, Any], stride_s: float,
                       seconds: float) -> dict[str, Any]:
    """The manifest every embedding run writes (either engine): model, counts, skips, timing (s)."""
    return {
        "model_version": version,
        "model_checkpoint": model_checkpoint_of(model),
        "dims": int(dims),
        "count": int(count),
        "records": int(meta["record"].nunique()),
        "subjects": int(meta["subject_id"].nunique()),
        "low_quality_windows": int(meta["low_quality"].sum()),
        "skipped": skipped,
        "skip_report": skip_report,
        "stride_s": stride_s,
        "created": utc_now(),
        "seconds_this_run": round(seconds, 2),
    }
