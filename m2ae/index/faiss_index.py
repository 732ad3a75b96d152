"""The FAISS side of the index: which index type for a given size, training it, a GPU copy, and
inner-product search restricted to the rows a query may return.

Index type by size (``IndexConfig``; tuned with ``bench/bench_index.py``): exact ``IndexFlatIP`` below
100 k windows; above, IVF with a flat (uncompressed) inverted list, ``nlist ≈ 4·sqrt(N)`` and
``nprobe = 16`` (1 M clustered 256-d fingerprints on 2 cores: see the bench for latency, recall@10
and the comparison with IVF-PQ and HNSW). ``IndexConfig(kind="ivfpq")`` gives IVF-PQ with exact
re-ranking for corpora whose raw vectors do not fit in memory. A GPU copy is searched, and IVF k-means
runs on the GPU(s), when faiss was built with GPU support and ``faiss.get_num_gpus() > 0``. Corpora too
large to hold at once are indexed from their shards by ``streaming.py``.

faiss is imported inside the functions that need it, so importing ``m2ae.index`` stays cheap.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError


def _faiss() -> Any:
    """The faiss module, imported on first use and typed as Any (its SWIG stubs miss most of the API)."""
    import faiss

    return faiss


@dataclass
class IndexConfig:
    """Which FAISS index to build for a given number of fingerprints.

    kind : "auto" (exact below ``exact_below``, IVF-Flat above), "flat", "ivf", "ivfpq" or "hnsw".
    nlist : IVF lists; None = 4·sqrt(N) rounded to a power of two (1 M -> 4096), at least 64.
    nprobe : lists visited per query (the recall/latency knob of IVF).
    pq_m : sub-quantisers for IVF-PQ (bytes per vector); ``refine_k_factor`` re-ranks that many
        times k candidates exactly.
    hnsw_m, ef_search, ef_construction : HNSW graph degree and search/construction beam widths.
    train_per_list : training vectors per IVF list (k-means on a seeded sample, not the whole set).
    use_gpu : None = use a GPU when faiss has GPU support and one is visible.
    refine_in_memory : IVF-PQ keeps the raw vectors in the index for exact re-ranking (``RFlat``);
        False leaves only the codes (``streaming.py`` re-ranks from vectors stored on disk).
    memory_budget_mb : RAM (MiB) the FAISS index may take when it is built from Parquet shards
        (``--engine ray``, ``streaming.py``); None = 8 GiB. Decides Flat / IVF-Flat / IVF-PQ there.
    """

    kind: str = "auto"
    exact_below: int = 100_000
    nlist: int | None = None
    nprobe: int = 16
    pq_m: int = 32
    refine_k_factor: int = 4
    hnsw_m: int = 32
    ef_search: int = 128
    ef_construction: int = 40
    train_per_list: int = 40
    seed: int = 0
    use_gpu: bool | None = None
    refine_in_memory: bool = True
    memory_budget_mb: float | None = None

    @classmethod
    def from_manifest(cls, fields: dict[str, Any] | None) -> IndexConfig:
        """The config a manifest recorded (fields this version does not know are ignored)."""
        return cls(**{k: v for k, v in (fields or {}).items() if k in cls.__dataclass_fields__})

    def resolve(self, n: int) -> str:
        if self.kind != "auto":
            return self.kind
        return "flat" if n < self.exact_below else "ivf"

    def nlist_for(self, n: int) -> int:
        if self.nlist:
            return int(self.nlist)
        return int(max(64, 2 ** round(math.log2(4 * math.sqrt(max(n, 1))))))

    def factory(self, n: int, dim: int) -> tuple[str, str]:
        """(faiss index_factory string, ParameterSpace search parameters) for N vectors of ``dim``."""
        kind = self.resolve(n)
        if kind == "flat":
            return "Flat", ""
        if kind == "ivf":
            return f"IVF{self.nlist_for(n)},Flat", f"nprobe={self.nprobe}"
        if kind == "ivfpq" and not self.refine_in_memory:
            return f"IVF{self.nlist_for(n)},PQ{self.pq_m}np", f"nprobe={self.nprobe}"
        if kind == "ivfpq":
            return (f"IVF{self.nlist_for(n)},PQ{self.pq_m}np,RFlat",
                    f"nprobe={self.nprobe},k_factor_rf={self.refine_k_factor}")
        if kind == "hnsw":
            return f"HNSW{self.hnsw_m},Flat", f"efSearch={self.ef_search}"
        raise ValueError(f"unknown index kind {kind!r} (auto, flat, ivf, ivfpq, hnsw)")


def new_faiss_index(train_vectors: np.ndarray, n_expected: int, dim: int,
                    config: IndexConfig | None = None) -> tuple[Any, str, str]:
    """An empty, trained FAISS inner-product index for about ``n_expected`` vectors.

    train_vectors : [M, dim] L2-normalised float32 (a sample is enough; IVF trains on at most
    ``train_per_list · nlist`` of them). Returns ``(index, factory_string, search_params)``.
    """
    faiss = _faiss()

    cfg = config or IndexConfig()
    spec, params = cfg.factory(n_expected, dim)
    index = faiss.index_factory(dim, spec, faiss.METRIC_INNER_PRODUCT)
    if spec.startswith("HNSW"):
        index.hnsw.efConstruction = cfg.ef_construction
    if not index.is_trained:
        x = np.ascontiguousarray(train_vectors, dtype=np.float32)
        nlist = cfg.nlist_for(n_expected)
        if len(x) < nlist:
            raise InputError(f"IVF index with {nlist} lists needs at least {nlist} training fingerprints, got {len(x)}")
        cap = cfg.train_per_list * nlist
        if len(x) > cap:
            rng = np.random.default_rng(cfg.seed)
            x = x[np.sort(rng.choice(len(x), cap, replace=False))]
        _kmeans_on_gpu(index, cfg)
        index.train(x)
    set_search_params(index, params)
    return index, spec, params


def gpus_for(config: IndexConfig) -> int:
    """GPUs faiss may use under ``config.use_gpu`` (0 without faiss GPU support or with use_gpu=False)."""
    faiss = _faiss()

    if config.use_gpu is False or not hasattr(faiss, "StandardGpuResources"):
        return 0
    return int(faiss.get_num_gpus())


def _kmeans_on_gpu(index: Any, config: IndexConfig) -> None:
    """Run an IVF index's coarse k-means on the GPU(s) when there are any (the trained index stays on
    the CPU, where it is saved and filled)."""
    faiss = _faiss()

    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None and gpus_for(config) > 0:
        ivf.clustering_index = faiss.index_cpu_to_all_gpus(faiss.IndexFlatL2(ivf.d))


def set_search_params(index: Any, params: str | None) -> None:
    """Apply ParameterSpace search parameters such as ``"nprobe=16"`` (nothing for "" or None)."""
    if params:
        faiss = _faiss()

        faiss.ParameterSpace().set_index_parameters(index, params)


class Searcher:
    """Search over a CPU FAISS index, through a GPU copy when one is used.

    ``config.use_gpu`` (read at the first search): None = a GPU when faiss has GPU support and one
    is visible. The GPU copy is made at the first search and again after ``invalidate`` (vectors
    were added to the CPU index).
    """

    def __init__(self, index: Any, config: IndexConfig):
        self.index = index
        self.config = config
        self._gpu_index: Any = None
        self._gpu_res: Any = None
        self._checked = False

    def invalidate(self) -> None:
        self._gpu_index = None

    def active(self) -> Any:
        """The index searches go to: the GPU copy when there is one, else the CPU index."""
        faiss = _faiss()

        if not self._checked:
            self._checked = True
            if self.config.use_gpu is not False and hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0:
                self._gpu_res = faiss.StandardGpuResources()
        if self._gpu_res is not None and self._gpu_index is None:
            self._gpu_index = faiss.index_cpu_to_gpu(self._gpu_res, 0, self.index)
        return self._gpu_index if self._gpu_index is not None else self.index

    def search(self, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores [n, k] descending, ids [n, k]; -1 where fewer were found) for queries x [n, D]."""
        return self.active().search(x, k)

    def search_allowed(self, x: np.ndarray, k: int, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Search restricted to ``allowed`` rows (bool [N], None = all): an IDSelectorBitmap on CPU
        indexes, and over-fetching (k + number of excluded rows) where selectors are not supported (GPU)."""
        faiss = _faiss()

        count = int(self.index.ntotal)
        n_allowed = count if allowed is None else int(allowed.sum())
        k_eff = max(1, min(k, n_allowed))
        if allowed is None:
            return self.search(x, min(k_eff, count))
        if n_allowed == 0:
            return np.full((len(x), 1), -np.inf, np.float32), np.full((len(x), 1), -1, np.int64)
        searcher = self.active()
        if searcher is self.index:
            bitmap = np.packbits(allowed.astype(np.uint8), bitorder="little")
            sel = faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bitmap))
            params = _selector_parameters(self.index, sel)
            if params is not None:
                return self.index.search(x, k_eff, params=params)
        k_fetch = min(count, k_eff + count - n_allowed)
        scores, ids = searcher.search(x, k_fetch)
        keep_s = np.full((len(x), k_eff), -np.inf, np.float32)
        keep_i = np.full((len(x), k_eff), -1, np.int64)
        for j in range(len(x)):
            ok = (ids[j] >= 0) & allowed[np.clip(ids[j], 0, None)]
            sel_i, sel_s = ids[j][ok][:k_eff], scores[j][ok][:k_eff]
            keep_i[j, :len(sel_i)], keep_s[j, :len(sel_s)] = sel_i, sel_s
        return keep_s, keep_i


def _selector_parameters(index: Any, sel: Any) -> Any:
    faiss = _faiss()

    if isinstance(index, faiss.IndexHNSW):
        return faiss.SearchParametersHNSW(sel=sel, efSearch=index.hnsw.efSearch)
    if isinstance(index, faiss.IndexRefine):
        return None  # refine wrappers take nested parameters: use over-fetching instead
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        return faiss.SearchParametersIVF(sel=sel, nprobe=ivf.nprobe)
    return faiss.SearchParameters(sel=sel)
