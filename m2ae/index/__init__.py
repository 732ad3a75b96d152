"""Fingerprint index: embedding at scale, FAISS similar-window search, the 2-D map, the shipped index.

>>> import m2ae
>>> idx = m2ae.open_index()                            # the shipped m2ae/index/default  # doctest: +SKIP
>>> hits = idx.search(fp, k=10, exclude_subject="sim000007")                          # doctest: +SKIP
>>> xy = idx.place(fp)                                 # [n, 2] map coordinates, no umap  # doctest: +SKIP
>>> q = query_windows(idx, model, m2ae.preprocess(rec))  # neighbours + map + familiarity  # doctest: +SKIP
>>> q.familiarity["record_unfamiliar"], q.record_xy                                      # doctest: +SKIP

Modules, bottom to top (each imports only modules on its left): ``waveforms`` (int8 thumbnails),
``faiss_index`` (index type, GPU copy, restricted search), ``hits`` (hit tables), ``mapping`` (2-D
map), ``sources`` (what to embed) → ``files`` (the folder format) → ``fingerprints`` (model, inputs,
vectors) → ``familiarity`` (scoring), ``store`` (FingerprintIndex), ``prepare``, ``shards`` →
``calibration``, ``embed`` → ``build``, ``query`` (record → neighbours + map + familiarity).
Nothing here imports torch, faiss or umap at import time: the map is fitted in ``build_index`` only.
"""
from .build import build_index
from .calibration import calibrate_familiarity
from .embed import EmbedResult, embed, load_embeddings
from .faiss_index import IndexConfig
from .fingerprints import record_fingerprint
from .mapping import MapConfig, place_from_neighbours
from .prepare import window_metadata
from .query import RecordQuery, place_record, query_record, query_windows
from .sources import simulated_items
from .store import FingerprintIndex, open_index
from .waveforms import WAVEFORM_FS_HZ, CompactWaveforms

__all__ = [
    "FingerprintIndex", "IndexConfig", "MapConfig", "open_index", "embed", "EmbedResult", "load_embeddings",
    "simulated_items", "window_metadata", "build_index", "query_record", "place_record", "record_fingerprint",
    "place_from_neighbours", "CompactWaveforms", "WAVEFORM_FS_HZ",
    "calibrate_familiarity", "query_windows", "RecordQuery",
]
