"""A FAISS index filled from fingerprint shards in one streaming pass, under a memory budget.

One concept: building the index of a corpus whose fingerprints do not fit in memory at once (the
Parquet shards of ``ray_engine``, ``parquet_shards.py``). Only one shard is held at a time:

1. **size** — the rows of every shard from its Parquet footer (no data read);
2. **choose** (``streaming_config``) — exact ``Flat`` below ``exact_below``; IVF-Flat while
   N·D·4 bytes (+ 8 B id) fit ``memory_budget_bytes``; otherwise IVF-PQ with the most bytes per
   vector (64, 32, 16 or 8 sub-quantisers) whose codes fit, its full vectors written to disk as
   float16 for exact re-ranking (``rerank``);
3. **train** on a seeded sample of rows (the same rows ``faiss_index.new_faiss_index`` would draw
   from the whole array, so a streamed IVF-Flat equals the in-memory one); k-means runs on the GPU
   when faiss has GPUs;
4. **fill** — each shard's fingerprints added in turn (ids = row order over the shards).

``write_index_from_shards`` does this for ``build_index(engine="ray")`` and writes the same index folder
``FingerprintIndex.save`` writes (``files.py``): the map is fitted on the same seeded sample of at most
``MapConfig.fit_sample`` fingerprints that ``mapping.fit_map`` draws, and every other window is placed
through its neighbours among that sample (as ``fit_map`` does); waveforms go shard by shard into
memory-mapped ``.npy`` files. Only the metadata table is held whole (``open_index`` holds it too).
Below ``exact_below`` and within the budget the index is the plain path's exact ``Flat`` index; an IVF
index is trained on the same rows ``new_faiss_index`` would draw, so the folder equals the plain build's.
Under a budget too small for raw float32 vectors the index is IVF-PQ that re-ranks its candidates
(``REFINE_K_FACTOR``·k at least) against an in-index float16 (``SQfp16``) or 8-bit (``SQ8``) copy — a
plain faiss ``IndexRefine`` that ``open_index`` searches like any other (measured on 3,000 clustered
256-d vectors, nlist 16, nprobe 4: recall@10 0.998 with float16, 0.90 with 8-bit, 0.3-0.44 from PQ codes
alone). A budget that fits only PQ codes is refused there; ``index_from_shards`` + ``rerank`` (codes
in memory, float16 vectors on disk) remain for library use.

>>> built = index_from_shards(sorted(Path("emb.ray-partial/shards").glob("*.parquet")),  # doctest: +SKIP
...                           memory_budget_bytes=8 << 30, vectors_out=Path("vectors.f16.npy"))
>>> scores, ids = rerank(built.index, built.vectors(), queries, k=10)                   # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from . import files
from .faiss_index import IndexConfig, _faiss, _kmeans_on_gpu, new_faiss_index, set_search_params
from .mapping import MapConfig, fit_map, map_diameter, place_from_neighbours
from .parquet_shards import read_shard, read_shard_fingerprints, shard_info
from .waveforms import WAVEFORM_FS_HZ

ID_BYTES = 8  # FAISS keeps one int64 id per vector in every inverted list
DEFAULT_BUDGET_BYTES = 8 << 30  # IndexConfig.memory_budget_mb = None
# In-index re-ranking copies, best first, with their bytes per dimension (float16, then 8-bit).
REFINE_KINDS = (("SQfp16", 2), ("SQ8", 1))
REFINE_K_FACTOR = 16  # candidates re-ranked per result, at least (PQ codes alone order neighbours poorly)
PQ_TRAIN_MIN = 256    # 8-bit PQ learns 256 centroids per sub-quantiser


@dataclass
class StreamedIndex:
    """A filled CPU FAISS index, its factory string and search parameters, its row count, and where
    the float16 copy of its vectors went (IVF-PQ re-ranking; None when not written)."""

    index: Any
    spec: str
    params: str
    count: int
    vectors_path: Path | None = None

    def vectors(self) -> np.ndarray:
        """The stored vectors, memory-mapped (float16 [N, D])."""
        if self.vectors_path is None:
            raise InputError("this index was built without a stored copy of its vectors (vectors_out)")
        return np.load(self.vectors_path, mmap_mode="r", allow_pickle=False)


def budget_bytes(config: IndexConfig | None) -> int:
    """The index's RAM budget in bytes: ``config.memory_budget_mb`` MiB, or ``DEFAULT_BUDGET_BYTES``."""
    mb = getattr(config, "memory_budget_mb", None)
    if mb is None:
        return DEFAULT_BUDGET_BYTES
    if not mb > 0:
        raise InputError(f"memory budget must be a positive number of MiB, got {mb!r}")
    return int(float(mb) * 2**20)


def streaming_config(n: int, dim: int, memory_budget_bytes: int, config: IndexConfig | None = None) -> IndexConfig:
    """The index kind for N vectors of ``dim`` under a RAM budget (bytes) for the index itself."""
    return streaming_plan(n, dim, memory_budget_bytes, config)[0]


def streaming_plan(n: int, dim: int, memory_budget_bytes: int, config: IndexConfig | None = None) -> tuple[
        IndexConfig, str | None]:
    """(index config, in-index re-ranking copy or None) for N vectors of ``dim`` under a RAM budget (bytes).

    In order, the first that fits: exact Flat (below ``exact_below``), IVF-Flat (N·(4·D + 8) bytes),
    IVF-PQ with a float16 / 8-bit re-ranking copy (N·(m + 8 + 2·D or D)), IVF-PQ codes alone (N·(m + 8))."""
    cfg = replace(config or IndexConfig())
    if cfg.kind != "auto":
        return cfg, None
    if n < cfg.exact_below and n * (dim * 4 + ID_BYTES) <= memory_budget_bytes:
        return replace(cfg, kind="flat"), None
    if n * (dim * 4 + ID_BYTES) <= memory_budget_bytes:
        return replace(cfg, kind="ivf"), None
    for refine, per_dim in REFINE_KINDS:
        for m in (32, 16, 8):
            if dim % m == 0 and n * (m + ID_BYTES + dim * per_dim) <= memory_budget_bytes:
                return replace(cfg, kind="ivfpq", pq_m=m, refine_in_memory=True), refine
    for m in (64, 32, 16, 8):
        if dim % m == 0 and n * (m + ID_BYTES) <= memory_budget_bytes:
            return replace(cfg, kind="ivfpq", pq_m=m, refine_in_memory=False), None
    need = n * (8 + ID_BYTES) / 2**30
    raise InputError(f"{n} fingerprints of {dim} dims do not fit {memory_budget_bytes / 2**30:.1f} GiB even as "
                     f"8-byte PQ codes (needs {need:.1f} GiB): raise the budget or shard the index")


def training_rows(n: int, nlist: int, config: IndexConfig) -> np.ndarray:
    """Sorted row numbers to train on: all rows up to ``train_per_list · nlist``, else the same seeded
    sample ``new_faiss_index`` draws."""
    cap = config.train_per_list * nlist
    if n <= cap:
        return np.arange(n)
    return np.sort(np.random.default_rng(config.seed).choice(n, cap, replace=False))


def _gather_rows(shards: list[Path], sizes: list[int], rows: np.ndarray) -> np.ndarray:
    """The fingerprints at global ``rows`` (sorted), reading only the shards that hold some."""
    out, start = [], 0
    for path, size in zip(shards, sizes):
        lo, hi = np.searchsorted(rows, [start, start + size])
        if hi > lo:
            out.append(read_shard_fingerprints(path)[rows[lo:hi] - start])
        start += size
    return np.concatenate(out)


def index_from_shards(shards: list[Path], config: IndexConfig | None = None, memory_budget_bytes: int = 8 << 30,
                      vectors_out: Path | None = None) -> StreamedIndex:
    """Train on a sample and fill a FAISS inner-product index from Parquet shards, one shard in memory at a time.

    shards : shard files in row order (``parquet_shards``); empty shards are passed over.
    memory_budget_bytes : RAM for the index itself (see ``streaming_config``).
    vectors_out : where to write the float16 vectors [N, D] (``.npy``) for exact re-ranking; written
        whatever the kind, needed for IVF-PQ.
    """
    shards = [Path(p) for p in shards]
    sizes = [shard_info(p)["rows"] for p in shards]
    n = int(sum(sizes))
    if n == 0:
        raise InputError("no fingerprints in the shards")
    first = next(p for p, s in zip(shards, sizes) if s)
    dim = int(read_shard_fingerprints(first).shape[1])
    cfg, refine = streaming_plan(n, dim, memory_budget_bytes, config)
    nlist = cfg.nlist_for(n)
    trains = cfg.resolve(n) in ("ivf", "ivfpq")
    sample = _gather_rows(shards, sizes, training_rows(n, nlist, cfg)) if trains else np.zeros((0, dim), np.float32)
    index, spec, params = trained_index(sample, n, dim, cfg, refine)  # k-means on the GPU when faiss has one
    vectors = None
    if vectors_out is not None:
        vectors = np.lib.format.open_memmap(vectors_out, mode="w+", dtype=np.float16, shape=(n, dim))
    start = 0
    for path, size in zip(shards, sizes):
        if not size:
            continue
        x = read_shard_fingerprints(path)
        x = np.ascontiguousarray(x / np.linalg.norm(x, axis=1, keepdims=True), dtype=np.float32)
        index.add(x)
        if vectors is not None:
            vectors[start:start + size] = x
        start += size
    if vectors is not None:
        vectors.flush()
        del vectors
    return StreamedIndex(index, spec, params, n, vectors_out)


def rerank(index: Any, vectors: np.ndarray, queries: np.ndarray, k: int, k_factor: int = 16) -> tuple[
        np.ndarray, np.ndarray]:
    """Search ``k_factor · k`` candidates in ``index`` (e.g. IVF-PQ codes) and re-score them exactly
    against the stored vectors [N, D] (memory-mapped float16 is fine). Returns (scores [n, k]
    descending, ids [n, k]; -1 where fewer were found)."""
    q = np.ascontiguousarray(queries, dtype=np.float32)
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    _, cand = index.search(q, max(k, k * k_factor))
    scores = np.full((len(q), k), -np.inf, np.float32)
    ids = np.full((len(q), k), -1, np.int64)
    for i in range(len(q)):
        c = cand[i][cand[i] >= 0]
        if not len(c):
            continue
        order = np.argsort(c)  # memory-mapped rows read in file order
        exact = np.asarray(vectors[c[order]], dtype=np.float32) @ q[i]
        best = np.argsort(-exact)[:k]
        scores[i, :len(best)], ids[i, :len(best)] = exact[best], c[order][best]
    return scores, ids


def trained_index(sample: np.ndarray, n: int, dim: int, config: IndexConfig, refine: str | None = None) -> tuple[
        Any, str, str]:
    """An empty FAISS index trained on ``sample`` [M, D] (normalised; the rows ``training_rows`` chose):
    ``new_faiss_index`` for every kind, except IVF-PQ with an in-index re-ranking copy (``refine``:
    "SQfp16" or "SQ8"), built here as ``IVF…,PQ…np,Refine(…)``. Returns (index, factory string, params)."""
    faiss = _faiss()
    kind = config.resolve(n)
    nlist = config.nlist_for(n)
    if kind in ("ivf", "ivfpq") and len(sample) < nlist:
        raise InputError(f"IVF index with {nlist} lists needs at least {nlist} training fingerprints, got "
                         f"{len(sample)}: raise the memory budget (exact index) or set fewer lists (nlist)")
    if kind == "ivfpq" and len(sample) < PQ_TRAIN_MIN:
        raise InputError(f"an IVF-PQ index needs at least {PQ_TRAIN_MIN} training fingerprints, got {len(sample)}: "
                         "raise the memory budget")
    if refine is None:
        return new_faiss_index(sample, n, dim, config)
    spec = f"IVF{nlist},PQ{config.pq_m}np,Refine({refine})"
    params = f"nprobe={config.nprobe},k_factor_rf={max(config.refine_k_factor, REFINE_K_FACTOR)}"
    index = faiss.index_factory(dim, spec, faiss.METRIC_INNER_PRODUCT)
    _kmeans_on_gpu(index, config)
    index.train(np.ascontiguousarray(sample, dtype=np.float32))
    set_search_params(index, params)
    return index, spec, params


def map_sample_rows(n: int, config: MapConfig) -> np.ndarray:
    """The rows ``mapping.fit_map`` fits UMAP on for N fingerprints (all, or its seeded sample of ``fit_sample``)."""
    if n <= config.fit_sample:
        return np.arange(n)
    return np.sort(np.random.default_rng(config.seed).choice(n, config.fit_sample, replace=False))


def write_index_from_shards(shards: list[Path], out: Path, metadata: Any, model_version: str, *,
                            config: IndexConfig | None = None, map_config: MapConfig | None = None,
                            manifest_extra: dict[str, Any] | None = None, progress: bool = False) -> Path:
    """Write the index folder ``out`` (``FingerprintIndex.save``'s format, atomically) from Parquet shards,
    one shard in memory at a time (see the module docstring); returns ``out``.

    shards : shard files in row order; metadata : their windows' metadata rows in the same order
    (``ray_engine.embed_on_ray(assemble=False)``). config.memory_budget_mb : RAM for the FAISS index
    (None = 8 GiB). map_config : as for ``FingerprintIndex.build``.
    """
    from dataclasses import asdict
    from time import perf_counter

    from .fingerprints import normalise_fingerprints

    faiss = _faiss()
    shards = [Path(p) for p in shards]
    sizes = [shard_info(p)["rows"] for p in shards]
    n = int(sum(sizes))
    if n == 0:
        raise InputError("no fingerprints in the shards")
    if len(metadata) != n:
        raise InputError(f"metadata has {len(metadata)} rows for {n} fingerprints in the shards")
    base = config or IndexConfig()
    budget = budget_bytes(base)
    first = next(p for p, s in zip(shards, sizes) if s)
    dim = int(read_shard_fingerprints(first).shape[1])
    cfg, refine = streaming_plan(n, dim, budget, base)
    if cfg.kind == "ivfpq" and refine is None and not cfg.refine_in_memory:
        # open_index searches what faiss holds; PQ codes alone found 0.3-0.44 of the true top 10 (3,000
        # clustered 256-d vectors), so an index folder always re-ranks inside faiss
        need = n * (8 + ID_BYTES + dim) / 2**20
        raise InputError(f"{n} fingerprints of {dim} dims need a memory budget of at least {need:.3g} MiB "
                         f"for an index that re-ranks its IVF-PQ candidates (8-bit copy); got {budget / 2**20:.3g} MiB")
    mcfg = map_config or MapConfig()

    # one pass over the fingerprint column: the FAISS training rows and the map's rows
    kind = cfg.resolve(n)
    train = training_rows(n, cfg.nlist_for(n), cfg) if kind in ("ivf", "ivfpq") else np.zeros(0, np.int64)
    map_rows = map_sample_rows(n, mcfg)
    rows = np.union1d(train, map_rows)
    sample = normalise_fingerprints(_gather_rows(shards, sizes, rows))
    t0 = perf_counter()
    index, spec, params = trained_index(sample[np.searchsorted(rows, train)], n, dim, cfg, refine)
    t_index = perf_counter() - t0
    t0 = perf_counter()
    x_map = sample[np.searchsorted(rows, map_rows)]
    del sample
    fit_xy, map_info, _ = fit_map(x_map, mcfg, progress=progress)
    map_info.update(fitted_on=int(len(map_rows)), placed_by_neighbours=int(n - len(map_rows)))
    placer = None
    if n > len(map_rows):  # the rest are placed through their neighbours in the fitted sample, as fit_map does
        placer = faiss.IndexFlatIP(dim)
        placer.add(x_map)
    del x_map
    place_k = min(mcfg.place_k, len(map_rows))
    map_xy = np.zeros((n, 2), np.float32)
    map_xy[map_rows] = fit_xy
    t_map = perf_counter() - t0

    out = Path(out)
    with files.staged_folder(out) as tmp:
        ecg_file, ppg_file, step_file = files.WAVEFORM_FILES
        waves: list[np.ndarray] = []
        steps = np.zeros((n, 2), np.float32)
        start = 0
        for path, size in zip(shards, sizes):
            if not size:
                continue
            stop = start + size
            fps, _, w, _ = read_shard(path)
            x = normalise_fingerprints(fps, dim)
            t0 = perf_counter()
            index.add(x)
            t_index += perf_counter() - t0
            if not waves:
                waves = [np.lib.format.open_memmap(tmp / name, mode="w+", dtype=np.int8, shape=(n, w.ecg.shape[1]))
                         for name in (ecg_file, ppg_file)]
            waves[0][start:stop], waves[1][start:stop] = w.ecg, w.ppg
            steps[start:stop, 0], steps[start:stop, 1] = w.ecg_step, w.ppg_step
            if placer is not None:
                t0 = perf_counter()
                rest = np.setdiff1d(np.arange(start, stop), map_rows, assume_unique=True)
                if len(rest):
                    scores, nn = placer.search(x[rest - start], place_k)
                    map_xy[rest] = place_from_neighbours(scores, nn, fit_xy)
                t_map += perf_counter() - t0
            start = stop
        samples = int(waves[0].shape[1])
        for arr in waves:
            arr.flush()  # type: ignore[attr-defined]  # np.memmap (open_memmap)
        del waves
        np.save(tmp / step_file, steps)
        meta = files.tidy_metadata(metadata)
        meta["map_x"], meta["map_y"] = map_xy[:, 0], map_xy[:, 1]
        meta["id"] = np.arange(n, dtype=np.int64)
        map_info["diameter"] = map_diameter(map_xy)
        files.write_faiss(tmp, index)
        files.write_metadata(meta, tmp)
        manifest = {
            "format": files.INDEX_FORMAT,
            "model_version": model_version,
            "dims": dim,
            "count": n,
            "index_type": spec,
            "search_params": params,
            "index_config": asdict(cfg),
            "map": map_info,
            "waveforms": {"fs_hz": WAVEFORM_FS_HZ, "dtype": "int8", "samples": samples},
            "timings_s": {"index_build": round(t_index, 3), "map_fit": round(t_map, 3)},
            **dict(manifest_extra or {}),
            "streaming": {"shards": len(shards), "memory_budget_mb": round(budget / 2**20, 3),
                          "refine": refine},
        }
        manifest.setdefault("created", files.utc_now())
        files.write_manifest(tmp, manifest)
    return out
