"""Corpus embedding on Ray Data: the ``--engine ray`` path of ``m2ae embed`` and ``m2ae index build``.

One concept: the same embedding as ``embed.embed`` (same windows, metadata, fingerprints within float
tolerance, same output folder), run as a Ray Data pipeline so a cluster does the work:

    plan         (driver)      inputs -> items (``sources.expand_sources``) -> batches of
                               ``records_per_shard`` records, each named deterministically
                               ``<prefix>-<position>-<hash of its record keys>``; batches whose shard
                               file exists are left out (a restarted run redoes nothing finished)
    prepare      (CPU tasks)   each batch's records read and preprocessed with ``prepare.prepare``
                               (a record that fails becomes a skipped entry with its reason, never an abort)
    fingerprint  (actor pool)  one model per actor: one actor per GPU (``num_gpus=1``) when the cluster
                               has GPUs, else ``num_workers`` CPU actors; each batch's windows are
                               fingerprinted and written as one Parquet shard (``parquet_shards.py``)
    assemble     (driver)      shards read back in plan order -> ``files.write_embeddings``

Fault tolerance is Ray's: prepare tasks are retried (``max_retries``); a fingerprint actor that dies
is restarted and its batch retried (``max_restarts`` / ``max_task_retries``). Shards are written to
a temporary name and renamed, so a run started again after a crash skips every complete shard.

Where the work goes: ``<out>.ray-partial/shards/`` (on a multi-node cluster ``out`` must be on a file
system every node sees). Corpus layouts read by ``m2ae.io.iter_corpus`` (cinc2015, MIMIC, VitalDB, ...)
know their labels only as a stream, so the driver iterates them (reading the next wave in a thread
while the cluster embeds the current one) and ships their records in waves of batches; files, folders
and simulated subjects are read inside the tasks. A restarted run reads a corpus stream again to
name its batches, and skips embedding the finished ones.

Ray is imported only here and only when this path runs (``pip install -e ".[scale]"``). The driver
joins the cluster named by ``RAY_ADDRESS``, or an already initialised one, or starts a local one.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import pickle
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError, ModelMismatchError
from ..io.corpus.report import must_stop, unexpected
from ..record import Record
from .embed import EmbedResult, embedding_manifest, no_window_message
from .files import tidy_metadata, utc_now, write_embeddings
from .fingerprints import fingerprint_windows, resolve_model
from .parquet_shards import SHARD_SUFFIX, read_shard, read_shard_metadata, shard_dims, shard_info, write_shard
from .prepare import StreamError, guarded_stream, prepare, stream_name
from .shards import concat_parts
from .sources import EmbedItem, expand_sources, record_item, run_skip_report
from .waveforms import CompactWaveforms

ENGINES = ("local", "ray")
RAY_MISSING = '--engine ray needs the scale extra: pip install -e ".[scale]"'
# Test hook: a path; the first fingerprint actor to see no file there creates it and exits (a killed worker).
FAULT_ENV = "M2AE_RAY_FAULT_ONCE"
STATE_FILE = "state.json"
RETRIES = 3  # per task / per actor: a worker lost mid-batch is retried this many times


def engine_of(engine: str | None) -> str:
    """"local" or "ray": ``engine`` as given, or "ray" when it is None and ``RAY_ADDRESS`` names a cluster."""
    if engine is None:
        return "ray" if os.environ.get("RAY_ADDRESS") else "local"
    if engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}")
    return engine


def require_ray() -> Any:
    """The ray module with Ray Data, or InputError naming the extra to install."""
    try:
        import ray
        import ray.data  # noqa: F401  (Ray Data ships as the ray[data] extra)
    except ImportError:
        raise InputError(RAY_MISSING) from None
    return ray


def connect_ray() -> Any:
    """Join the running Ray session, the cluster at ``RAY_ADDRESS``, or start a local one; returns ray."""
    ray = require_ray()
    if not ray.is_initialized():
        ray.init(include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the driver shows one bar over shards instead
    ctx.print_on_execution_start = False
    # Ray Data logs every execution plan at INFO on the console; its full logs stay in the session folder.
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    return ray


@dataclass
class ShardPlan:
    """One batch of records and the name of the shard file it becomes."""

    name: str
    items: list[EmbedItem]


def plan_shards(items: list[EmbedItem], records_per_shard: int, prefix: str = "shard",
                start: int = 0) -> list[ShardPlan]:
    """Fixed batches of ``records_per_shard`` items, named by position and a hash of their keys (the
    same inputs give the same names, so a restarted run finds its finished shards)."""
    plans = []
    for i in range(0, len(items), records_per_shard):
        batch = items[i:i + records_per_shard]
        h = hashlib.sha1("\n".join(it.key for it in batch).encode()).hexdigest()[:12]
        plans.append(ShardPlan(f"{prefix}-{start + i:07d}-{h}", batch))
    return plans


def prepare_guarded(item: EmbedItem, stride_s: float, read_kwargs: dict | None) -> dict[str, Any]:
    """``prepare`` with any unexpected failure of one record turned into its skipped reason (one line)."""
    try:
        return prepare(item, stride_s, read_kwargs)
    except Exception as e:  # one broken record must never end a corpus run
        if must_stop(e):
            raise
        return {"key": item.key, "label": item.label, "error": f"{item.label}: {unexpected(e)}"}


def prepare_batch(row: dict[str, Any], stride_s: float, read_kwargs: dict | None, cwd: str | None = None) -> dict[
        str, Any]:
    """Ray Data task: read and preprocess one batch's records (pickles are the engine's own, never user data).

    cwd : the driver's working folder; relative input paths are read from there (items keep the path
    as given, because the metadata's ``source`` shows it), when this node has that folder."""
    if cwd and os.getcwd() != cwd and os.path.isdir(cwd):
        os.chdir(cwd)
    items = pickle.loads(row["items"])
    prepared = [prepare_guarded(it, stride_s, read_kwargs) for it in items]
    return {"shard": row["shard"], "prepared": pickle.dumps(prepared, protocol=pickle.HIGHEST_PROTOCOL)}


def fingerprint_prepared(model: Any, prepared: list[dict], batch_size: int) -> tuple[
        np.ndarray, pd.DataFrame, CompactWaveforms, list[str], list[dict[str, str]]]:
    """Fingerprint a batch of prepared records in one model call per modality set; rows stay in record order.

    Returns (fingerprints [n, D], metadata, waveforms, record key per row, skipped records)."""
    ok = [p for p in prepared if "error" not in p]
    skipped = [{"input": p["label"], "error": p["error"]} for p in prepared if "error" in p]
    if not ok:
        return np.zeros((0, 0), np.float32), pd.DataFrame(), CompactWaveforms.empty(), [], skipped
    fps: list[np.ndarray | None] = [None] * len(ok)
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(ok):
        groups.setdefault(str(p["meta"]["modalities"].iloc[0]), []).append(i)
    for idx in groups.values():
        first = ok[idx[0]]
        ecg = None if first["ecg"] is None else np.concatenate([ok[i]["ecg"] for i in idx])
        ppg = None if first["ppg"] is None else np.concatenate([ok[i]["ppg"] for i in idx])
        fp = fingerprint_windows(model, ecg, ppg, batch_size)
        start = 0
        for i in idx:
            n = len(ok[i]["meta"])
            fps[i] = fp[start:start + n]
            start += n
    keys = [p["key"] for p in ok for _ in range(len(p["meta"]))]
    meta = pd.concat([p["meta"] for p in ok], ignore_index=True)
    return (np.concatenate([f for f in fps if f is not None]), meta,
            CompactWaveforms.concat([p["waves"] for p in ok]), keys, skipped)


class FingerprintShards:
    """Ray Data actor: holds one model; fingerprints a prepared batch and writes its Parquet shard."""

    def __init__(self, model: Any, checkpoint: str | None, device: str | None, shard_dir: str,
                 batch_size: int, version: str, fault_marker: str | None = None):
        import torch

        if device in (None, "cpu"):
            torch.set_num_threads(1)  # CPU actors share the cores with each other and with the prepare tasks
        self.model = resolve_model(checkpoint, device) if checkpoint else model
        if str(getattr(self.model, "version", "unknown")) != version:
            raise ModelMismatchError(f"{checkpoint}: the worker loaded model version {self.model.version}, "
                                     f"the driver has {version}")
        self.shard_dir, self.batch_size, self.version = Path(shard_dir), batch_size, version
        self.fault_marker = fault_marker

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        if self.fault_marker and not os.path.exists(self.fault_marker):
            Path(self.fault_marker).write_text(str(os.getpid()))
            os._exit(1)  # test hook (M2AE_RAY_FAULT_ONCE): die once, mid-run, like a lost node
        prepared = pickle.loads(row["prepared"])
        fps, meta, waves, keys, skipped = fingerprint_prepared(self.model, prepared, self.batch_size)
        write_shard(self.shard_dir / f"{row['shard']}{SHARD_SUFFIX}", fps, meta, waves, keys, skipped, self.version)
        return {"shard": row["shard"], "windows": len(keys), "skipped": len(skipped)}


class _Run:
    """One embedding run's settings and counters: which shards exist, what was written this time."""

    def __init__(self, ray: Any, model: Any, shard_dir: Path, batch_size: int, num_workers: int | None,
                 stride_s: float, read_kwargs: dict | None, bar: Any):
        self.ray, self.shard_dir, self.bar = ray, shard_dir.resolve(), bar
        self.stride_s, self.read_kwargs = stride_s, read_kwargs
        self.version = str(getattr(model, "version", "unknown"))
        res = ray.cluster_resources()
        self.gpus = int(res.get("GPU", 0))
        cpus = max(1.0, float(res.get("CPU", 1)))
        self.workers = self.gpus if self.gpus else max(1, int(num_workers or max(1, int(cpus) // 2)))
        # Logical CPUs: actors hold theirs for the whole run, so they must leave room for prepare tasks
        # (2 actors on a 2-CPU cluster would otherwise starve the tasks that feed them).
        self.task_cpus = 1.0 if cpus >= 2 else 0.5
        self.actor_cpus = 0.0 if self.gpus else max(0.1, min(1.0, (cpus - self.task_cpus) / self.workers))
        checkpoint = getattr(model, "path", None)
        checkpoint = str(Path(checkpoint).resolve()) if checkpoint else None  # workers may run elsewhere
        shard_dir = shard_dir.resolve()
        self.actor_kwargs = {
            "model": None if checkpoint else model, "checkpoint": checkpoint,
            "device": "cuda" if self.gpus else "cpu", "shard_dir": str(shard_dir), "batch_size": batch_size,
            "version": self.version, "fault_marker": os.environ.get(FAULT_ENV) or None}
        self.written: list[str] = []
        self.reused = 0
        self.windows = 0

    def done(self, plan: ShardPlan) -> bool:
        return (self.shard_dir / f"{plan.name}{SHARD_SUFFIX}").exists()

    def run(self, plans: list[ShardPlan]) -> None:
        """Embed the batches that have no shard yet, in one Ray Data execution."""
        todo = [p for p in plans if not self.done(p)]
        self.reused += len(plans) - len(todo)
        if self.bar is not None:
            self.bar.update(len(plans) - len(todo))
        if not todo:
            return
        ray = self.ray
        ds = ray.data.from_items([{"shard": p.name, "items": pickle.dumps(p.items, protocol=pickle.HIGHEST_PROTOCOL)}
                                  for p in todo], override_num_blocks=len(todo))
        with warnings.catch_warnings():
            # Ray Data's defaults retry forever; bounded retries need the (deprecated in 2.60) remote args.
            warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated")
            ds = ds.map(prepare_batch, fn_kwargs={"stride_s": self.stride_s, "read_kwargs": self.read_kwargs,
                                                   "cwd": os.getcwd()},
                        num_cpus=self.task_cpus, max_retries=RETRIES)
            ds = ds.map(FingerprintShards, fn_constructor_kwargs=self.actor_kwargs,
                        compute=ray.data.ActorPoolStrategy(size=self.workers),
                        num_gpus=1 if self.gpus else 0, num_cpus=self.actor_cpus,
                        max_restarts=RETRIES, max_task_retries=RETRIES)
        for row in ds.iter_rows():
            self.written.append(row["shard"])
            self.windows += int(row["windows"])
            if self.bar is not None:
                self.bar.update(1)
                self.bar.set_postfix(windows=self.windows, refresh=False)


def _work_folder(out: Path | None, version: str) -> Path:
    """``<out>.ray-partial`` (a temporary folder when ``out`` is None), checked to belong to this model."""
    work = out.with_name(out.name + ".ray-partial") if out is not None else Path(tempfile.mkdtemp(prefix="m2ae-ray-"))
    (work / "shards").mkdir(parents=True, exist_ok=True)
    state = work / STATE_FILE
    if state.exists():
        old = json.loads(state.read_text()).get("model_version")
        if old != version:
            raise ModelMismatchError(f"{work}: an interrupted embedding by model version {old} is here, but the "
                                     f"model is version {version}; delete the folder or use the same model")
    else:
        state.write_text(json.dumps({"model_version": version, "started": utc_now(), "engine": "ray"}))
    return work


def assemble_shards(paths: list[Path]) -> tuple[np.ndarray, pd.DataFrame, CompactWaveforms, list[dict[str, str]]]:
    """All shards concatenated in the given order: (fingerprints [N, D], metadata, waveforms, skipped)."""
    fps, metas, waves, skipped = [], [], [], []
    for p in paths:
        f, m, w, s = read_shard(p)
        skipped += s
        if len(m):
            fps.append(f)
            metas.append(m)
            waves.append(w)
    return concat_parts(fps, metas, waves, skipped)


def assemble_shard_metadata(paths: list[Path]) -> tuple[pd.DataFrame, list[dict[str, str]], int]:
    """The shards' metadata concatenated in the given order, their skipped records and the fingerprint
    dims (from the Parquet schema), without reading fingerprints or waveforms."""
    metas, skipped, dims = [], [], 0
    for p in paths:
        info = shard_info(p)
        skipped += info["skipped"]
        if info["rows"]:
            metas.append(read_shard_metadata(p))
            dims = dims or shard_dims(p)
    if not metas:
        return pd.DataFrame(), skipped, 0
    return tidy_metadata(pd.concat(metas, ignore_index=True)), skipped, dims


def _take(it: Iterator[EmbedItem], n: int) -> list[EmbedItem]:
    return list(itertools.islice(it, n))


def _guarded(stream: Any, skipped: list[dict[str, str]]) -> Iterator[Record]:
    """The Records of a corpus stream; what is not a Record, and an exception that ends the stream,
    becomes a skipped entry (the plain path's ``prepare.prepared_stream`` does the same)."""
    name = stream_name(stream)
    for rec in guarded_stream(stream):
        if isinstance(rec, StreamError):
            skipped.append({"input": rec.name, "error": rec.message})
        elif isinstance(rec, Record):
            yield rec
        else:
            why = f"{name}: the corpus reader gave a {type(rec).__name__}, not a Record"
            skipped.append({"input": name, "error": why})


def embed_on_ray(sources: Any, model: Any = None, out_dir: str | Path | None = None, batch_size: int = 256,
                 num_workers: int | None = None, stride_s: float = 10.0, read_kwargs: dict | None = None,
                 progress: bool = True, device: Any = None, extra_items: list[EmbedItem] | None = None,
                 splits: Collection[str] | None = None, records_per_shard: int = 8,
                 shards_per_wave: int = 16, keep_shards: bool = False, assemble: bool = True) -> EmbedResult:
    """``embed.embed`` on Ray Data (see the module docstring); same arguments and result, plus:

    num_workers : fingerprint actors on a CPU cluster (default: half the cluster's CPUs); on a GPU
        cluster one actor per GPU. records_per_shard : records per batch = per Parquet shard.
    shards_per_wave : batches gathered from a corpus stream before they are sent to the cluster.
    keep_shards : keep ``<out>.ray-partial/shards/`` after success (for ``streaming.py`` index builds);
        by default it is removed once the output folder is written.
    assemble : False = gather only the metadata; the result's fingerprints are a [N, 0] placeholder, its
        waveforms empty, nothing is written to ``out_dir``, the shards are kept and the manifest's
        ``shard_paths`` lists them in row order (``build_index --engine ray`` streams them into the index).
    The result's manifest adds ``engine`` ("ray"), ``workers``, ``gpus``, ``shards`` and
    ``shards_reused`` (finished by an earlier, interrupted run).
    """
    t0 = time.perf_counter()
    items, streams = expand_sources(sources, splits) if sources else ([], [])
    items += list(extra_items or [])
    if not items and not streams:
        raise InputError("nothing to embed: no input records given")
    if records_per_shard < 1:
        raise InputError(f"records_per_shard must be at least 1, got {records_per_shard}")
    ray = connect_ray()
    model = resolve_model(model, device)
    version = str(getattr(model, "version", "unknown"))
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
    work = _work_folder(out, version)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=-(-len(items) // records_per_shard) or None, unit="shard", desc="embedding (ray)",
                   file=sys.stderr, dynamic_ncols=True)
    run = _Run(ray, model, work / "shards", batch_size, num_workers, stride_s, read_kwargs, bar)
    plans = plan_shards(items, records_per_shard)
    run.run(plans)
    wave_size = records_per_shard * max(1, shards_per_wave)
    stream_skipped: list[dict[str, str]] = []
    with ThreadPoolExecutor(1) as reader:  # the driver reads the next wave while the cluster embeds this one
        for si, stream in enumerate(streams):
            records = (record_item(rec) for rec in _guarded(stream, stream_skipped))
            pos = 0
            next_wave = reader.submit(_take, records, wave_size)
            while pending := next_wave.result():
                next_wave = reader.submit(_take, records, wave_size)
                wave = plan_shards(pending, records_per_shard, f"stream{si}", pos)
                run.run(wave)
                plans += wave
                pos += len(pending)
    if bar is not None:
        bar.close()

    shard_paths = [work / "shards" / f"{p.name}{SHARD_SUFFIX}" for p in plans]
    if assemble:
        fps, meta, waves, skipped = assemble_shards(shard_paths)
        dims = int(fps.shape[1]) if len(fps) else 0
    else:  # fingerprints and waveforms stay in the shards: the index build streams them (streaming.py)
        meta, skipped, dims = assemble_shard_metadata(shard_paths)
        fps, waves = np.zeros((len(meta), 0), np.float32), CompactWaveforms.empty()
    skipped += stream_skipped
    skip_report = run_skip_report(streams, skipped)  # the same per-reason counts as the plain path
    if len(fps) == 0:
        shutil.rmtree(work, ignore_errors=True)
        raise InputError(no_window_message(skip_report))
    seconds = time.perf_counter() - t0
    manifest = {
        **embedding_manifest(version, model, dims, len(fps), meta, skipped, skip_report, stride_s, seconds),
        "engine": "ray",
        "workers": run.workers,
        "gpus": run.gpus,
        "shards": len(plans),
        "shards_reused": run.reused,
        "shards_written": len(run.written),
    }
    result = EmbedResult(fps, meta, waves, version, out, skipped, seconds, manifest)
    if out is not None and assemble:
        write_embeddings(out, fps, meta, waves, manifest)
    if not assemble:
        result.manifest["shard_paths"] = [str(p) for p in shard_paths]
    if (keep_shards and out is not None) or not assemble:
        result.manifest["shard_dir"] = str(work / "shards")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return result
