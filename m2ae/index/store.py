"""FingerprintIndex: FAISS inner-product search over L2-normalised fingerprints, with metadata,
compact waveforms and 2-D map coordinates, saved as one folder.

Folder layout (``FingerprintIndex.save``), written to a temporary sibling and renamed into place:

    manifest.json          format, model version/checkpoint, dims, count, index type, map, data, build command
    fingerprints.faiss     faiss.write_index of the CPU index
    metadata.parquet       one row per window (id = FAISS id = row): record, subject_id, start_s, source,
                           label_* columns, per-channel quality, low_quality, modalities, map_x, map_y, ...
    waveforms_{ecg,ppg}.npy, waveforms_step.npy   int8 neighbour thumbnails (see ``waveforms.py``)

Index type by size (``IndexConfig``; tuned with ``bench/bench_index.py``): exact ``IndexFlatIP`` below
100 k windows; above, IVF with a flat (uncompressed) inverted list, ``nlist ≈ 4·sqrt(N)`` and
``nprobe = 16`` (1 M clustered 256-d fingerprints on 2 cores: see the bench for latency, recall@10
and the comparison with IVF-PQ and HNSW). ``IndexConfig(kind="ivfpq")`` gives IVF-PQ with exact
re-ranking for corpora whose raw vectors do not fit in memory. A GPU copy is searched when faiss
was built with GPU support and ``faiss.get_num_gpus() > 0``.

>>> idx = open_index()                                     # doctest: +SKIP
>>> hits = idx.search(fp, k=10, exclude_subject="sim-0007")  # doctest: +SKIP
>>> hits[0][["record", "score", "label_rhythm"]]            # doctest: +SKIP
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..errors import InputError, ModelMismatchError
from .mapping import MapConfig, fit_map, map_diameter, place_from_neighbours
from .waveforms import WAVEFORM_FS_HZ, CompactWaveforms

FORMAT = "m2ae-index/1"
INDEX_FILE = "fingerprints.faiss"
MANIFEST_FILE = "manifest.json"
METADATA_FILE = "metadata.parquet"
METADATA_CSV = "metadata.csv"
DEFAULT_INDEX_DIR = Path(__file__).resolve().parents[2] / "indexes" / "default"


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
        if kind == "ivfpq":
            return (f"IVF{self.nlist_for(n)},PQ{self.pq_m}np,RFlat",
                    f"nprobe={self.nprobe},k_factor_rf={self.refine_k_factor}")
        if kind == "hnsw":
            return f"HNSW{self.hnsw_m},Flat", f"efSearch={self.ef_search}"
        raise ValueError(f"unknown index kind {kind!r} (auto, flat, ivf, ivfpq, hnsw)")


def new_faiss_index(train_vectors: np.ndarray, n_expected: int, dim: int, config: IndexConfig | None = None):
    """An empty, trained FAISS inner-product index for about ``n_expected`` vectors.

    train_vectors : [M, dim] L2-normalised float32 (a sample is enough; IVF trains on at most
    ``train_per_list · nlist`` of them). Returns ``(index, factory_string, search_params)``.
    """
    import faiss

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
        index.train(x)
    if params:
        faiss.ParameterSpace().set_index_parameters(index, params)
    return index, spec, params


def normalise_fingerprints(fp, dim: int | None = None, name: str = "fingerprints") -> np.ndarray:
    """Validate fingerprints as float32 [N, D] (a single [D] vector becomes [1, D]) and L2-normalise."""
    if hasattr(fp, "detach"):
        fp = fp.detach().cpu().numpy()
    x = np.asarray(fp)
    if not np.issubdtype(x.dtype, np.number):
        raise InputError(f"{name}: expected numbers, got dtype {x.dtype}")
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[0] == 0:
        raise InputError(f"{name}: expected shape [N, D] with N >= 1, got {tuple(x.shape)}")
    if dim is not None and x.shape[1] != dim:
        raise InputError(f"{name}: {x.shape[1]}-d fingerprints but the index holds {dim}-d ones")
    if not np.isfinite(x).all():
        raise InputError(f"{name}: contains NaN or inf")
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if (norms == 0).any():
        raise InputError(f"{name}: contains an all-zero fingerprint")
    return x / norms


def model_version_of(model: Any) -> str | None:
    """The ``version`` string of a loaded model (or a plain string), None when unknown."""
    if model is None:
        return None
    if isinstance(model, str):
        return model
    v = getattr(model, "version", None)
    return None if v is None else str(v)


class FingerprintIndex:
    """Similar-window search over fingerprints, with metadata, waveforms and a 2-D map.

    Build with ``FingerprintIndex.build`` (trains the FAISS index and fits the map) or open a saved
    folder with ``FingerprintIndex.load`` / ``m2ae.open_index``. FAISS ids are row numbers of
    ``metadata`` (0..N-1, in the order windows were added).
    """

    def __init__(self, index, metadata: pd.DataFrame, waveforms: CompactWaveforms | None,
                 manifest: dict[str, Any], path: Path | None = None, config: IndexConfig | None = None):
        self.index = index  # CPU faiss index, the one that is saved
        self.metadata = metadata.reset_index(drop=True)
        self.metadata["id"] = np.arange(len(self.metadata), dtype=np.int64)
        self._waveforms = waveforms
        self.manifest = manifest
        self.path = path
        self.config = config or IndexConfig(**manifest.get("index_config", {}))
        self._gpu_index = None
        self._gpu_checked = False
        # familiarity.json (m2ae.index.familiarity): reference top-1 similarities, None when absent
        self.familiarity_reference: dict | None = None
        self.familiarity_note: str | None = None
        if index.ntotal != len(self.metadata):
            raise InputError(f"{path or 'index'}: FAISS holds {index.ntotal} fingerprints but metadata has {len(self.metadata)} rows")

    # --- building ------------------------------------------------------------------------------

    @classmethod
    def build(cls, fingerprints, metadata: pd.DataFrame, model_version: str, *,
              waveforms: CompactWaveforms | None = None, config: IndexConfig | None = None,
              map_config: MapConfig | None = None, manifest_extra: Mapping[str, Any] | None = None,
              progress: bool = False, keep_reducer: bool = False) -> "FingerprintIndex":
        """Train a FAISS index on fingerprints [N, D], add them, and fit the 2-D map.

        metadata : one row per fingerprint (see module docstring for the usual columns).
        model_version : the ``version`` of the model that made the fingerprints (checked on open).
        keep_reducer : keep the fitted UMAP reducer on ``self.reducer`` (to measure placement).
        """
        x = normalise_fingerprints(fingerprints)
        if len(metadata) != len(x):
            raise InputError(f"metadata has {len(metadata)} rows for {len(x)} fingerprints")
        if waveforms is not None and len(waveforms) != len(x):
            raise InputError(f"waveforms have {len(waveforms)} windows for {len(x)} fingerprints")
        cfg = config or IndexConfig()
        t0 = time.perf_counter()
        index, spec, params = new_faiss_index(x, len(x), x.shape[1], cfg)
        index.add(x)
        t_index = time.perf_counter() - t0
        t0 = time.perf_counter()
        map_xy, map_info, reducer = fit_map(x, map_config, progress=progress)
        t_map = time.perf_counter() - t0
        meta = tidy_metadata(metadata)
        meta["map_x"], meta["map_y"] = map_xy[:, 0], map_xy[:, 1]
        map_info["diameter"] = map_diameter(map_xy)
        manifest = {
            "format": FORMAT,
            "model_version": model_version,
            "dims": int(x.shape[1]),
            "count": int(len(x)),
            "index_type": spec,
            "search_params": params,
            "index_config": asdict(cfg),
            "map": map_info,
            "waveforms": None if waveforms is None else
            {"fs_hz": WAVEFORM_FS_HZ, "dtype": "int8", "samples": int(waveforms.ecg.shape[1])},
            "timings_s": {"index_build": round(t_index, 3), "map_fit": round(t_map, 3)},
            **dict(manifest_extra or {}),
        }
        self = cls(index, meta, waveforms, manifest, config=cfg)
        self.reducer = reducer if keep_reducer else None
        return self

    def add(self, fingerprints, metadata: pd.DataFrame, waveforms: CompactWaveforms | None = None) -> np.ndarray:
        """Append fingerprints [n, D] with their metadata rows; returns their new ids.

        The map is not refitted: new windows are placed with ``place`` (their neighbours' map
        coordinates). The FAISS index type stays what it was built as (an exact index that grows
        past ``exact_below`` keeps working, only slower: rebuild to switch to IVF).
        """
        x = normalise_fingerprints(fingerprints, self.dims)
        if len(metadata) != len(x):
            raise InputError(f"metadata has {len(metadata)} rows for {len(x)} fingerprints")
        if self._waveforms is not None:
            if waveforms is None:
                waveforms = CompactWaveforms.from_windows(None, None, n=len(x))
            self._waveforms = CompactWaveforms.concat([self._load_waveforms(), waveforms])
        meta = tidy_metadata(metadata)
        if self.has_map:
            xy = self.place(x)
            meta["map_x"], meta["map_y"] = xy[:, 0], xy[:, 1]
        start = self.index.ntotal
        self.index.add(x)
        self._gpu_index = None
        ids = np.arange(start, start + len(x), dtype=np.int64)
        self.metadata = tidy_metadata(pd.concat([self.metadata, meta], ignore_index=True))
        self.__dict__.pop("_str_columns", None)
        self.metadata["id"] = np.arange(len(self.metadata), dtype=np.int64)
        self.manifest["count"] = int(self.index.ntotal)
        self.manifest.setdefault("added", []).append({"count": int(len(x)), "at": _utc_now()})
        return ids

    # --- querying ------------------------------------------------------------------------------

    @property
    def dims(self) -> int:
        return int(self.index.d)

    @property
    def count(self) -> int:
        return int(self.index.ntotal)

    def __len__(self) -> int:
        return self.count

    @property
    def model_version(self) -> str | None:
        return self.manifest.get("model_version")

    @property
    def has_map(self) -> bool:
        return {"map_x", "map_y"} <= set(self.metadata.columns)

    def check_model(self, model: Any) -> None:
        """Raise ModelMismatchError when ``model`` (or a version string) is not the index's model."""
        version = model_version_of(model)
        if version is not None and self.model_version is not None and version != self.model_version:
            raise ModelMismatchError(
                f"{self.path or 'index'}: built with model version {self.model_version}, "
                f"but the loaded model is version {version}; rebuild the index with this model or load the matching checkpoint"
            )

    def search(self, fp, k: int = 10, exclude_subject=None, exclude_record=None,
               filters: Mapping[str, Any] | None = None) -> list[pd.DataFrame]:
        """Top-k most similar indexed windows for each query fingerprint.

        fp : [D] or [n, D] fingerprints (re-normalised here). k : neighbours per query; when k
        exceeds the windows that may be returned it is clamped, and the table's ``attrs["note"]``
        says so (the CLI prints that note). exclude_subject / exclude_record : one value for all
        queries or a sequence with one value per query; rows with that ``subject_id`` / ``record``
        are never returned. filters : {column: value, list of values, or callable(Series) -> bool
        mask} restricting which rows may be returned (e.g. ``{"label_rhythm": "AF"}``).

        Returns one DataFrame per query: ``id``, ``score`` (inner product = cosine similarity,
        descending), ``rank`` and the metadata columns.
        """
        x = normalise_fingerprints(fp, self.dims, "query fingerprint")
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise InputError(f"k must be a positive integer, got {k!r}")
        n = len(x)
        subj = _per_query(exclude_subject, n, "exclude_subject")
        recs = _per_query(exclude_record, n, "exclude_record")
        base = self._filter_mask(filters)
        # Queries that share the same exclusions share one allowed-mask and one FAISS call.
        groups: dict[tuple, list[int]] = {}
        for i in range(n):
            groups.setdefault((subj[i], recs[i]), []).append(i)
        out: list[pd.DataFrame | None] = [None] * n
        for (s, r), rows in groups.items():
            allowed = base.copy() if base is not None else None
            if s is not None:
                allowed = _and(allowed, self._column_as_str("subject_id") != str(s))
            if r is not None:
                allowed = _and(allowed, self._column_as_str("record") != str(r))
            scores, ids = self._search_allowed(x[rows], k, allowed)
            n_allowed = self.count if allowed is None else int(allowed.sum())
            for j, i in enumerate(rows):
                out[i] = self._hit_table(scores[j], ids[j], k, n_allowed)
        return out  # type: ignore[return-value]

    def search_windows(self, fp, k: int = 10, exclude_subject=None, exclude_record=None,
                       filters: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Top-k indexed windows for a whole record given its windows' fingerprints [n, D].

        Each query window is searched (same exclusions and filters for all), and the hits are
        merged: an indexed window appears once, with its best score and the query window that
        matched it best (``query_window``), the k best overall. Unlike searching with the mean
        fingerprint, a window that is itself in the index finds itself (score 1), and a record
        whose windows differ (an ectopic beat in one window) finds neighbours for each.
        """
        x = normalise_fingerprints(fp, self.dims, "query fingerprints")
        per_window = self.search(x, k=k, exclude_subject=exclude_subject, exclude_record=exclude_record,
                                 filters=filters)
        tables = []
        for w, t in enumerate(per_window):
            t = t.copy()
            t["query_window"] = w
            tables.append(t)
        merged = pd.concat(tables, ignore_index=True).sort_values(["score", "query_window"], ascending=[False, True],
                                                                   kind="stable")
        merged = merged.drop_duplicates("id", keep="first").head(k).reset_index(drop=True)
        merged["rank"] = np.arange(1, len(merged) + 1)
        notes = [t.attrs["note"] for t in per_window if "note" in t.attrs]
        if notes:
            merged.attrs["note"] = notes[0]
        return merged

    def place(self, fp, k: int | None = None) -> np.ndarray:
        """2-D map coordinates [n, 2] for fingerprints [n, D], from their FAISS neighbours.

        No umap, no numba: the point lands at the UMAP-membership-weighted mean of its k nearest
        indexed windows' coordinates (k = the map's ``place_k``, 15 by default). Measured against
        UMAP's own ``transform`` in ``bench/bench_embed.py`` and ``tests/test_index_map.py``.
        """
        if not self.has_map:
            raise InputError(f"{self.path or 'index'}: has no map coordinates (map_x, map_y)")
        x = normalise_fingerprints(fp, self.dims, "fingerprint to place")
        k = int(k or self.manifest.get("map", {}).get("place_k", 15))
        k = min(k, self.count)
        scores, ids = self._search(x, k)
        xy = self.metadata[["map_x", "map_y"]].to_numpy(np.float32)
        return place_from_neighbours(scores, ids, xy)

    def waveforms(self, ids) -> dict[str, Any]:
        """Compact waveforms of indexed windows, for display beside a query.

        Returns {"ecg": float32 [n, 625] normalised (NaN rows where the window had no ECG), "ppg":
        likewise, "fs_hz": 62.5, "ids": ids, and per-window ``ecg_center``/``ecg_scale``/
        ``ppg_center``/``ppg_scale`` when the metadata has them (original units = x·scale + center)}.
        """
        if self._waveforms is None:
            raise InputError(f"{self.path or 'index'}: was built without waveforms")
        ids = np.atleast_1d(np.asarray(ids, dtype=np.int64))
        if len(ids) and (ids.min() < 0 or ids.max() >= self.count):
            raise InputError(f"waveform ids must lie in 0..{self.count - 1}, got {ids.min()}..{ids.max()}")
        out = self._waveforms.decode(ids)
        out["ids"] = ids
        for col in ("ecg_center", "ecg_scale", "ppg_center", "ppg_scale"):
            if col in self.metadata.columns:
                out[col] = self.metadata[col].to_numpy(np.float32)[ids]
        return out

    def label_columns(self) -> list[str]:
        return [c for c in self.metadata.columns if c.startswith("label_")]

    # --- persistence ---------------------------------------------------------------------------

    def save(self, path, build_command: str | None = None) -> Path:
        """Write the index folder atomically: everything goes to a temporary sibling first, which
        then replaces ``path`` (an interrupted save leaves the previous index untouched)."""
        import faiss

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
        try:
            manifest = dict(self.manifest)
            manifest["count"] = self.count
            manifest.setdefault("created", _utc_now())
            if build_command is not None:
                manifest["build_command"] = build_command
            faiss.write_index(self.index, str(tmp / INDEX_FILE))
            write_metadata(self.metadata, tmp)
            if self._waveforms is not None:
                self._load_waveforms().save(tmp)
            (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, default=_json_default) + "\n")
            if self.familiarity_reference is not None:
                from .familiarity import write_reference

                write_reference(tmp, self.familiarity_reference)
            _replace_dir(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.path = path
        self.manifest = manifest
        return path

    @classmethod
    def load(cls, path, model: Any = None, use_gpu: bool | None = None) -> "FingerprintIndex":
        """Open a saved index folder; with ``model`` (or a version string) check it made the index."""
        import faiss

        path = Path(path)
        if not path.exists():
            raise InputError(f"{path}: no such index folder")
        if not path.is_dir():
            raise InputError(f"{path}: not an index folder (expected a folder with {MANIFEST_FILE})")
        mf = path / MANIFEST_FILE
        if not mf.exists():
            raise InputError(f"{path}: not an index folder ({MANIFEST_FILE} missing)")
        try:
            manifest = json.loads(mf.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise InputError(f"{mf}: corrupt manifest ({e.__class__.__name__}: {str(e).splitlines()[0]})") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise InputError(f"{mf}: not an m2ae index manifest (format {manifest.get('format') if isinstance(manifest, dict) else None!r}, expected {FORMAT!r})")
        if not (path / INDEX_FILE).exists():
            raise InputError(f"{path}: {INDEX_FILE} missing (index folder incomplete)")
        try:
            index = faiss.read_index(str(path / INDEX_FILE))
        except RuntimeError as e:
            raise InputError(f"{path / INDEX_FILE}: corrupt FAISS index ({str(e).strip().splitlines()[-1][:160]})") from None
        metadata = read_metadata(path)
        waveforms = None
        if (path / "waveforms_ecg.npy").exists():
            try:
                waveforms = CompactWaveforms.load(path)
            except (ValueError, OSError) as e:
                raise InputError(f"{path}: corrupt waveform arrays ({e})") from None
            if len(waveforms) != len(metadata):
                raise InputError(f"{path}: waveforms hold {len(waveforms)} windows but metadata has {len(metadata)} rows")
        cfg_fields = manifest.get("index_config") or {}
        config = IndexConfig(**{k: v for k, v in cfg_fields.items() if k in IndexConfig.__dataclass_fields__})
        if use_gpu is not None:
            config.use_gpu = use_gpu
        if index.d != manifest.get("dims", index.d):
            raise InputError(f"{path}: manifest says {manifest.get('dims')}-d but the FAISS index is {index.d}-d")
        if manifest.get("search_params"):
            faiss.ParameterSpace().set_index_parameters(index, manifest["search_params"])
        self = cls(index, metadata, waveforms, manifest, path=path, config=config)
        from .familiarity import read_reference

        self.familiarity_reference, self.familiarity_note = read_reference(path)
        self.check_model(model)
        return self

    # --- internals -----------------------------------------------------------------------------

    def _column_as_str(self, name: str) -> np.ndarray:
        """A metadata column as a numpy str array, cached (exclusions compare against it per query)."""
        cache = self.__dict__.setdefault("_str_columns", {})
        if name not in cache or len(cache[name]) != self.count:
            cache[name] = self.metadata[name].astype(str).to_numpy().astype(str)
        return cache[name]

    def _load_waveforms(self) -> CompactWaveforms:
        w = self._waveforms
        if w is not None and isinstance(w.ecg, np.memmap):
            w = CompactWaveforms(np.asarray(w.ecg), np.asarray(w.ppg), w.ecg_step, w.ppg_step)
            self._waveforms = w
        return w

    def _searcher(self):
        import faiss

        if not self._gpu_checked:
            self._gpu_checked = True
            want = self.config.use_gpu
            if want is not False and hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0:
                self._gpu_res = faiss.StandardGpuResources()
                self._gpu_index = faiss.index_cpu_to_gpu(self._gpu_res, 0, self.index)
        elif self._gpu_index is None and getattr(self, "_gpu_res", None) is not None:
            self._gpu_index = faiss.index_cpu_to_gpu(self._gpu_res, 0, self.index)
        return self._gpu_index if self._gpu_index is not None else self.index

    def _search(self, x: np.ndarray, k: int):
        return self._searcher().search(x, k)

    def _search_allowed(self, x: np.ndarray, k: int, allowed: np.ndarray | None):
        """FAISS search restricted to ``allowed`` rows: an IDSelectorBitmap on CPU indexes, and
        over-fetching (k + number of excluded rows) where selectors are not supported (GPU)."""
        import faiss

        n_allowed = self.count if allowed is None else int(allowed.sum())
        k_eff = max(1, min(k, n_allowed))
        if allowed is None:
            return self._search(x, min(k_eff, self.count))
        if n_allowed == 0:
            return np.full((len(x), 1), -np.inf, np.float32), np.full((len(x), 1), -1, np.int64)
        searcher = self._searcher()
        if searcher is self.index:
            bitmap = np.packbits(allowed.astype(np.uint8), bitorder="little")
            sel = faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bitmap))
            params = _search_parameters(self.index, sel)
            if params is not None:
                return self.index.search(x, k_eff, params=params)
        n_excluded = self.count - n_allowed
        k_fetch = min(self.count, k_eff + n_excluded)
        scores, ids = searcher.search(x, k_fetch)
        keep_s = np.full((len(x), k_eff), -np.inf, np.float32)
        keep_i = np.full((len(x), k_eff), -1, np.int64)
        for j in range(len(x)):
            ok = (ids[j] >= 0) & allowed[np.clip(ids[j], 0, None)]
            sel_i, sel_s = ids[j][ok][:k_eff], scores[j][ok][:k_eff]
            keep_i[j, :len(sel_i)], keep_s[j, :len(sel_s)] = sel_i, sel_s
        return keep_s, keep_i

    def _hit_table(self, scores: np.ndarray, ids: np.ndarray, k: int, n_allowed: int) -> pd.DataFrame:
        ok = ids >= 0
        ids, scores = ids[ok], scores[ok]
        table = self.metadata.iloc[ids].copy()
        table.insert(0, "rank", np.arange(1, len(ids) + 1))
        table.insert(0, "score", scores.astype(np.float32))
        table = table.reset_index(drop=True)
        cols = ["id", "score", "rank"] + [c for c in table.columns if c not in ("id", "score", "rank")]
        table = table[cols]
        if k > n_allowed:
            table.attrs["note"] = (f"k={k} is more than the {n_allowed} windows that may be returned "
                                   f"(index holds {self.count}): returned {len(table)}")
        elif len(table) < k:
            table.attrs["note"] = f"only {len(table)} of k={k} neighbours found within the probed lists"
        return table

    def _filter_mask(self, filters: Mapping[str, Any] | None) -> np.ndarray | None:
        if not filters:
            return None
        mask = np.ones(self.count, bool)
        for col, want in filters.items():
            if col not in self.metadata.columns:
                raise InputError(f"filter column {col!r} not in the index metadata (columns: {', '.join(self.metadata.columns)})")
            values = self.metadata[col]
            if callable(want):
                m = np.asarray(want(values), dtype=bool)
            elif isinstance(want, (list, tuple, set, frozenset, np.ndarray)):
                m = values.isin(list(want)).to_numpy()
            else:
                m = (values == want).to_numpy()
            mask &= m
        return mask


def open_index(path=None, model: Any = None, use_gpu: bool | None = None) -> FingerprintIndex:
    """Open an index folder (default: ``$M2AE_INDEX`` or the shipped ``indexes/default``).

    model : a loaded model (or its version string); opening an index built by another model
    version raises ``ModelMismatchError`` naming both versions.

    >>> idx = open_index()                      # doctest: +SKIP
    >>> idx.count, idx.manifest["model_version"]  # doctest: +SKIP
    """
    if path is None:
        path = os.environ.get("M2AE_INDEX") or DEFAULT_INDEX_DIR
    return FingerprintIndex.load(path, model=model, use_gpu=use_gpu)


# --- metadata helpers ------------------------------------------------------------------------

def tidy_metadata(meta: pd.DataFrame) -> pd.DataFrame:
    """Make metadata columns storable in parquet: label columns that are all numbers become float,
    other object columns become strings (missing stays missing)."""
    meta = meta.reset_index(drop=True).copy()
    for col in meta.columns:
        s = meta[col]
        if s.dtype != object:
            continue
        non_null = s.dropna()
        if len(non_null) and all(isinstance(v, (bool, np.bool_)) for v in non_null):
            meta[col] = s.astype("boolean")
        elif len(non_null) and all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_)) for v in non_null):
            meta[col] = pd.to_numeric(s, errors="coerce").astype(float)
        else:
            meta[col] = s.map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)).astype(object)
    return meta


def write_metadata(meta: pd.DataFrame, folder: Path) -> Path:
    try:
        import pyarrow  # noqa: F401  (streamlit depends on it; CSV is the fallback)
    except ImportError:
        p = folder / METADATA_CSV
        meta.to_csv(p, index=False)
        return p
    p = folder / METADATA_FILE
    meta.to_parquet(p, index=False)
    return p


def read_metadata(folder: Path) -> pd.DataFrame:
    p, c = folder / METADATA_FILE, folder / METADATA_CSV
    try:
        if p.exists():
            return pd.read_parquet(p)
        if c.exists():
            return pd.read_csv(c)
    except Exception as e:  # pyarrow raises several types for a damaged file
        raise InputError(f"{folder}: corrupt metadata table ({type(e).__name__}: {str(e).splitlines()[0][:160]})") from None
    raise InputError(f"{folder}: {METADATA_FILE} missing (index folder incomplete)")


# --- small helpers ---------------------------------------------------------------------------

def _search_parameters(index, sel):
    import faiss

    if isinstance(index, faiss.IndexHNSW):
        return faiss.SearchParametersHNSW(sel=sel, efSearch=index.hnsw.efSearch)
    if isinstance(index, faiss.IndexRefine):
        return None  # refine wrappers take nested parameters: use over-fetching instead
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        return faiss.SearchParametersIVF(sel=sel, nprobe=ivf.nprobe)
    return faiss.SearchParameters(sel=sel)


def _per_query(value, n: int, name: str) -> list:
    if value is None or isinstance(value, (str, int, np.integer)):
        return [value] * n
    values = list(value)
    if len(values) != n:
        raise InputError(f"{name}: {len(values)} values for {n} query fingerprints")
    return values


def _and(mask: np.ndarray | None, other: np.ndarray) -> np.ndarray:
    return other if mask is None else mask & other


def _replace_dir(tmp: Path, target: Path) -> None:
    """Move a finished folder into place; the old one is removed only after the rename succeeded."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp made it private; the finished folder follows the umask
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
