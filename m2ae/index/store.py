"""FingerprintIndex: FAISS inner-product search over L2-normalised fingerprints, with metadata,
compact waveforms and 2-D map coordinates, saved as one folder.

The folder's files are ``files.py``'s; the FAISS index type and restricted search are
``faiss_index.py``'s; hit tables are ``hits.py``'s; the map is ``mapping.py``'s. This class holds
them together: build, add, search, place, waveforms, save, load.

>>> idx = open_index()                                     # doctest: +SKIP
>>> hits = idx.search(fp, k=10, exclude_subject="sim-0007")  # doctest: +SKIP
>>> hits[0][["record", "score", "label_rhythm"]]            # doctest: +SKIP
"""
from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any
from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..errors import InputError, ModelMismatchError
from . import files
from .faiss_index import IndexConfig, Searcher, new_faiss_index, set_search_params
from .fingerprints import model_version_of, normalise_fingerprints
from .hits import allowed_rows, filter_mask, hit_table, merge_window_hits, per_query
from .mapping import MapConfig, fit_map, map_diameter, place_from_neighbours
from .waveforms import WAVEFORM_FS_HZ, CompactWaveforms


class FingerprintIndex:
    """Similar-window search over fingerprints, with metadata, waveforms and a 2-D map.

    Build with ``FingerprintIndex.build`` (trains the FAISS index and fits the map) or open a saved
    folder with ``FingerprintIndex.load`` / ``m2ae.open_index``. FAISS ids are row numbers of
    ``metadata`` (0..N-1, in the order windows were added).
    """

    def __init__(self, index: Any, metadata: pd.DataFrame, waveforms: CompactWaveforms | None,
                 manifest: dict[str, Any], path: Path | None = None, config: IndexConfig | None = None):
        self.index = index  # CPU faiss index, the one that is saved
        self.metadata = metadata.reset_index(drop=True)
        self.metadata["id"] = np.arange(len(self.metadata), dtype=np.int64)
        self._waveforms = waveforms
        self.manifest = manifest
        self.path = path
        self.config = config or IndexConfig.from_manifest(manifest.get("index_config"))
        self._searcher = Searcher(index, self.config)
        self.reducer: Any = None
        # familiarity.json (m2ae.index.familiarity): reference top-1 similarities, None when absent
        self.familiarity_reference: dict | None = None
        self.familiarity_note: str | None = None
        if index.ntotal != len(self.metadata):
            raise InputError(f"{path or 'index'}: FAISS holds {index.ntotal} fingerprints but metadata has "
                             f"{len(self.metadata)} rows")

    # --- building ------------------------------------------------------------------------------

    @classmethod
    def build(cls, fingerprints: Any, metadata: pd.DataFrame, model_version: str, *,
              waveforms: CompactWaveforms | None = None, config: IndexConfig | None = None,
              map_config: MapConfig | None = None, manifest_extra: Mapping[str, Any] | None = None,
              progress: bool = False, keep_reducer: bool = False) -> FingerprintIndex:
        """Train a FAISS index on fingerprints [N, D], add them, and fit the 2-D map.

        metadata : one row per fingerprint (``m2ae.index.prepare.window_metadata`` has the usual columns).
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
        meta = files.tidy_metadata(metadata)
        meta["map_x"], meta["map_y"] = map_xy[:, 0], map_xy[:, 1]
        map_info["diameter"] = map_diameter(map_xy)
        manifest = {
            "format": files.INDEX_FORMAT,
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

    def add(self, fingerprints: Any, metadata: pd.DataFrame, waveforms: CompactWaveforms | None = None) -> np.ndarray:
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
        meta = files.tidy_metadata(metadata)
        if self.has_map:
            xy = self.place(x)
            meta["map_x"], meta["map_y"] = xy[:, 0], xy[:, 1]
        start = self.index.ntotal
        self.index.add(x)
        self._searcher.invalidate()
        ids = np.arange(start, start + len(x), dtype=np.int64)
        self.metadata = files.tidy_metadata(pd.concat([self.metadata, meta], ignore_index=True))
        self.__dict__.pop("_str_columns", None)
        self.metadata["id"] = np.arange(len(self.metadata), dtype=np.int64)
        self.manifest["count"] = int(self.index.ntotal)
        self.manifest.setdefault("added", []).append({"count": int(len(x)), "at": files.utc_now()})
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
                f"but the loaded model is version {version}; rebuild the index with this model "
                "or load the matching checkpoint"
            )

    def search(self, fp: Any, k: int = 10, exclude_subject: Any = None, exclude_record: Any = None,
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
        subj = per_query(exclude_subject, n, "exclude_subject")
        recs = per_query(exclude_record, n, "exclude_record")
        base = filter_mask(self.metadata, filters)
        # Queries that share the same exclusions share one allowed-mask and one FAISS call.
        groups: dict[tuple, list[int]] = {}
        for i in range(n):
            groups.setdefault((subj[i], recs[i]), []).append(i)
        out: list[pd.DataFrame] = [pd.DataFrame()] * n
        for (s, r), rows in groups.items():
            allowed = allowed_rows(base, self._column_as_str, s, r)
            scores, ids = self._searcher.search_allowed(x[rows], k, allowed)
            n_allowed = self.count if allowed is None else int(allowed.sum())
            for j, i in enumerate(rows):
                out[i] = hit_table(self.metadata, scores[j], ids[j], k, n_allowed)
        return out

    def search_windows(self, fp: Any, k: int = 10, exclude_subject: Any = None, exclude_record: Any = None,
                       filters: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Top-k indexed windows for a whole record given its windows' fingerprints [n, D].

        Each query window is searched (same exclusions and filters for all), and the hits are
        merged: an indexed window appears once, with its best score and the query window that
        matched it best (``query_window``), the k best overall. Unlike searching with the mean
        fingerprint, a window that is itself in the index finds itself (score 1), and a record
        whose windows differ (an ectopic beat in one window) finds neighbours for each.
        """
        x = normalise_fingerprints(fp, self.dims, "query fingerprints")
        return merge_window_hits(self.search(x, k=k, exclude_subject=exclude_subject, exclude_record=exclude_record,
                                             filters=filters), k)

    def place(self, fp: Any, k: int | None = None) -> np.ndarray:
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
        scores, ids = self._searcher.search(x, k)
        xy = self.metadata[["map_x", "map_y"]].to_numpy(np.float32)
        return place_from_neighbours(scores, ids, xy)

    def waveforms(self, ids: Any) -> dict[str, Any]:
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
        out: dict[str, Any] = dict(self._waveforms.decode(ids))
        out["ids"] = ids
        for col in ("ecg_center", "ecg_scale", "ppg_center", "ppg_scale"):
            if col in self.metadata.columns:
                out[col] = self.metadata[col].to_numpy(np.float32)[ids]
        return out

    def label_columns(self) -> list[str]:
        return [c for c in self.metadata.columns if c.startswith("label_")]

    # --- persistence ---------------------------------------------------------------------------

    def save(self, path: str | Path, build_command: str | None = None) -> Path:
        """Write the index folder atomically: everything goes to a temporary sibling first, which
        then replaces ``path`` (an interrupted save leaves the previous index untouched)."""
        path = Path(path)
        manifest = dict(self.manifest)
        manifest["count"] = self.count
        manifest.setdefault("created", files.utc_now())
        if build_command is not None:
            manifest["build_command"] = build_command
        with files.staged_folder(path) as tmp:
            files.write_faiss(tmp, self.index)
            files.write_metadata(self.metadata, tmp)
            if self._waveforms is not None:
                files.write_waveforms(tmp, self._load_waveforms())
            files.write_manifest(tmp, manifest)
            if self.familiarity_reference is not None:
                files.write_familiarity(tmp, self.familiarity_reference)
        self.path = path
        self.manifest = manifest
        return path

    @classmethod
    def load(cls, path: str | Path, model: Any = None, use_gpu: bool | None = None) -> FingerprintIndex:
        """Open a saved index folder; with ``model`` (or a version string) check it made the index."""
        path = Path(path)
        manifest = files.read_manifest(path)
        index = files.read_faiss(path)
        metadata = files.read_metadata(path)
        waveforms = None
        if files.has_waveforms(path):
            try:
                waveforms = files.read_waveforms(path)
            except (ValueError, OSError) as e:
                raise InputError(f"{path}: corrupt waveform arrays ({e})") from None
            if len(waveforms) != len(metadata):
                raise InputError(f"{path}: waveforms hold {len(waveforms)} windows but metadata has "
                                 f"{len(metadata)} rows")
        config = IndexConfig.from_manifest(manifest.get("index_config"))
        if use_gpu is not None:
            config.use_gpu = use_gpu
        if index.d != manifest.get("dims", index.d):
            raise InputError(f"{path}: manifest says {manifest.get('dims')}-d but the FAISS index is {index.d}-d")
        set_search_params(index, manifest.get("search_params"))
        self = cls(index, metadata, waveforms, manifest, path=path, config=config)
        self.familiarity_reference, self.familiarity_note = files.read_familiarity(path)
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
        """The waveforms in memory (a memory-mapped file is read in full before it is replaced or grown)."""
        w = self._waveforms
        assert w is not None
        if isinstance(w.ecg, np.memmap):
            w = CompactWaveforms(np.asarray(w.ecg), np.asarray(w.ppg), w.ecg_step, w.ppg_step)
            self._waveforms = w
        return w


def open_index(path: str | Path | None = None, model: Any = None, use_gpu: bool | None = None) -> FingerprintIndex:
    """Open an index folder (default: ``$M2AE_INDEX`` or the shipped ``m2ae/index/default``).

    model : a loaded model (or its version string); opening an index built by another model
    version raises ``ModelMismatchError`` naming both versions.

    >>> idx = open_index()                      # doctest: +SKIP
    >>> idx.count, idx.manifest["model_version"]  # doctest: +SKIP
    """
    return FingerprintIndex.load(files.default_index_dir() if path is None else path, model=model, use_gpu=use_gpu)
