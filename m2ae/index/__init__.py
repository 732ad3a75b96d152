"""Fingerprint index: embedding at scale, FAISS similar-window search, the 2-D map, the shipped index.

>>> import m2ae
>>> idx = m2ae.open_index()                            # the shipped indexes/default   # doctest: +SKIP
>>> hits = idx.search(fp, k=10, exclude_subject="sim000007")                          # doctest: +SKIP
>>> xy = idx.place(fp)                                 # [n, 2] map coordinates, no umap  # doctest: +SKIP
>>> from m2ae.index.familiarity import familiarity      # unlike the index's windows?  # doctest: +SKIP
>>> familiarity(idx, fp, "both")["unfamiliar"]                                           # doctest: +SKIP

Nothing here imports umap at import time: the map is fitted in ``build_index`` only.
"""
from .build import (build_index, place_record, query_record,
                    record_fingerprint)
from .familiarity import calibrate_familiarity
from .embed import EmbedResult, embed, load_embeddings, simulated_items, window_metadata
from .mapping import MapConfig, place_from_neighbours
from .store import FingerprintIndex, IndexConfig, open_index
from .waveforms import WAVEFORM_FS_HZ, CompactWaveforms

__all__ = [
    "FingerprintIndex", "IndexConfig", "MapConfig", "open_index", "embed", "EmbedResult", "load_embeddings",
    "simulated_items", "window_metadata", "build_index", "query_record", "place_record", "record_fingerprint",
    "place_from_neighbours", "CompactWaveforms", "WAVEFORM_FS_HZ",
    "calibrate_familiarity",
]
