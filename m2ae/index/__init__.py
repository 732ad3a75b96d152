"""Fingerprint index: embedding at scale, FAISS similar-window search, the 2-D map, the shipped index."""
from .store import FingerprintIndex, IndexConfig, open_index
from .mapping import MapConfig

__all__ = ["FingerprintIndex", "IndexConfig", "MapConfig", "open_index"]
