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
from .faiss_index import IndexConfig, new_faiss_index
from .parquet_shards import read_shard_fingerprints, shard_info

ID_BYTES = 8  # FAISS keeps one int64 id per vector in every inverted list


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


def streaming_config(n: int, dim: int, memory_budget_bytes: int, config: IndexConfig | None = None) -> IndexConfig:
    """The index kind for N vectors of ``dim`` under a RAM budget (bytes) for the index itself."""
    cfg = replace(config or IndexConfig())
    if cfg.kind != "auto":
        return cfg
    if n < cfg.exact_below and n * (dim * 4 + ID_BYTES) <= memory_budget_bytes:
        return replace(cfg, kind="flat")
    if n * (dim * 4 + ID_BYTES) <= memory_budget_bytes:
        return replace(cfg, kind="ivf")
    for m in (64, 32, 16, 8):
        if dim % m == 0 and n * (m + ID_BYTES) <= memory_budget_bytes:
            return replace(cfg, kind="ivfpq", pq_m=m, refine_in_memory=False)
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
    cfg = streaming_config(n, dim, memory_budget_bytes, config)
    nlist = cfg.nlist_for(n)
    flat = cfg.kind == "flat"
    sample = np.zeros((0, dim), np.float32) if flat else _gather_rows(shards, sizes, training_rows(n, nlist, cfg))
    index, spec, params = new_faiss_index(sample, n, dim, cfg)  # k-means on the GPU when faiss has one
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
