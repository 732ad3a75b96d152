"""Build an index folder from records (and simulated subjects): embed, index, map, calibrate, save.

>>> idx = build_index(["sample_data"], "indexes/mine", simulate=200)     # doctest: +SKIP
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any
from collections.abc import Collection, Sequence

from ..errors import InputError
from .calibration import calibrate_familiarity
from .embed import embed
from .faiss_index import IndexConfig
from .files import display_path, portable_source, utc_now
from .fingerprints import model_checkpoint_of, resolve_model
from .mapping import MapConfig
from .sources import expand_sources, run_skip_report, simulated_items
from .store import FingerprintIndex


def build_index(paths: Sequence[Any], out: str | Path, model: Any = None, simulate: int = 0, seed: int = 0,
                duration_s: float = 60.0, batch_size: int = 256, num_workers: int | None = None,
                config: IndexConfig | None = None, map_config: MapConfig | None = None,
                build_command: str | None = None, progress: bool = True,
                read_kwargs: dict | None = None, splits: Collection[str] | None = None,
                engine: str = "local") -> FingerprintIndex:
    """Embed records (files, folders, Records, corpus readers) plus ``simulate`` simulated subjects,
    build the FAISS index and the map, and save the folder ``out`` atomically.

    duration_s : seconds per simulated subject. splits : sides of a corpus's record split to index
    (cinc2015), e.g. ``("train", "validation")`` so the test side stays out. The embedding runs in
    ``.<out>.embed/`` beside ``out`` and resumes from there when a build is interrupted and started again with the same
    command; it is removed once the index is saved. The saved index carries its familiarity
    reference (``familiarity.json``) from the start. engine : "local" (this process) or "ray"
    (``ray_engine.embed_on_ray``: the same embedding on a Ray cluster, into Parquet shards from which
    ``streaming.write_index_from_shards`` fills the index one shard at a time, never holding all
    fingerprints or waveforms; ``config.memory_budget_mb`` bounds the FAISS index's RAM there, and the
    same folder results as on the local path: the same exact index below ``exact_below``).
    """
    out = Path(out)
    paths = list(paths or [])
    if not paths and not simulate:
        raise InputError("index build: give record files/folders, --simulate N, or both")
    items, streams = expand_sources(paths, splits) if paths else ([], [])
    sim = simulated_items(simulate, seed=seed, duration_s=duration_s) if simulate else []
    model = resolve_model(model)
    work = out.with_name(f".{out.name}.embed")
    if engine == "ray":  # Ray Data embeds into Parquet shards; the index is filled from them (streaming.py)
        from .ray_engine import embed_on_ray

        res = embed_on_ray(items + sim + list(streams), model, work, batch_size=batch_size, num_workers=num_workers,
                           progress=progress, read_kwargs=read_kwargs, assemble=False)
    else:
        res = embed(items + sim + list(streams), model, work, batch_size=batch_size, num_workers=num_workers,
                    progress=progress, read_kwargs=read_kwargs)
    data = [display_path(p) for p in paths if isinstance(p, (str, Path))]
    if simulate:
        data.append(f"m2ae.simulate: {simulate} subjects, seed {seed}, {duration_s:g} s each "
                    f"(same subjects as `m2ae simulate --subjects {simulate} --seed {seed} --duration {duration_s:g}`)")
    meta = res.metadata.copy()
    roots = [p for p in paths if isinstance(p, (str, Path))]
    meta["source"] = meta["source"].map({s: portable_source(s, roots) for s in meta["source"].unique()})  # per file
    extra: dict[str, Any] = {
        "model_checkpoint": model_checkpoint_of(model),
        "data": data,
        "records": int(meta["record"].nunique()),
        "subjects": int(meta["subject_id"].nunique()),
        "low_quality_windows": int(meta["low_quality"].sum()),
        "skipped_inputs": res.skipped,
        # every record left out, per reason (corpus readers' skips too): the same count either engine
        "skip_report": run_skip_report(streams, res.skipped),
        "created": utc_now(),
        "build_command": build_command,
        "embedding": {"windows_per_s": round(res.windows_per_s, 1), "seconds": round(res.seconds, 1),
                      "batch_size": batch_size},
    }
    if engine == "ray":
        from .streaming import write_index_from_shards

        extra["embedding"].update({k: res.manifest[k] for k in ("engine", "workers", "gpus", "shards",
                                                                "shards_reused", "shards_written")})
        write_index_from_shards(res.manifest["shard_paths"], out, meta, res.model_version, config=config,
                                map_config=map_config, manifest_extra=extra, progress=progress)
        shutil.rmtree(Path(res.manifest["shard_dir"]).parent, ignore_errors=True)  # <work>.ray-partial
        idx = FingerprintIndex.load(out)
    else:
        idx = FingerprintIndex.build(res.fingerprints, meta, res.model_version, waveforms=res.waveforms,
                                     config=config, map_config=map_config, manifest_extra=extra, progress=progress)
        idx.save(out)
    shutil.rmtree(work, ignore_errors=True)
    calibrate_familiarity(idx, model)
    return idx
