"""Which batch sources a run draws from, as its ``TrainConfig`` says: the simulator, a corpus's
training-split segments, the registry recordings, or a mix with set shares."""
from __future__ import annotations

from pathlib import Path

from ..contract import FS_HZ, WINDOW_SAMPLES
from .config import TrainConfig
from .corpus_data import cache_dir, corpus_store
from .data import BatchSource, MixedSource, SegmentSource, SegmentStore, SimulatorSource


def source_parts(source: BatchSource) -> list[BatchSource]:
    """The sources a batch's ``"source"`` column indexes: a mix's parts, else the source itself."""
    return list(source.sources) if isinstance(source, MixedSource) else [source]


def build_source(cfg: TrainConfig, out: Path, rank: int = 0) -> BatchSource:
    """Simulator, corpora (``cfg.data_split`` records, dead channels dropped, cached as filtered
    segments beside ``out``: ``corpus_data.corpus_store``), registry recordings, or a mix, as ``cfg``
    says. Rank 0 builds a missing corpus cache; the other ranks wait for it."""
    min_len = WINDOW_SAMPLES + 2 * int(round(cfg.max_shift_s * FS_HZ))
    sources: list[BatchSource] = []
    weights: list[float] = []
    if not cfg.data or cfg.sim_fraction > 0:
        sources.append(SimulatorSource(max_shift_s=cfg.max_shift_s, noise=cfg.sim_noise,
                                       windows_per_subject=cfg.windows_per_subject,
                                       faint_p_share=cfg.sim_faint_p_share))
        weights.append(cfg.sim_fraction if cfg.data else 1.0)
    if cfg.data:
        store, info = corpus_store(cfg, cache_dir(cfg, out), min_len, rank)
        sources.append(SegmentSource(store, max_shift_s=cfg.max_shift_s, info=info))
        weights.append(max(0.0, 1.0 - cfg.sim_fraction))
    if cfg.registry_fraction > 0:
        from ..simulate.registry import registry_records

        store = SegmentStore.from_records(registry_records(), min_len=min_len)
        sources.append(SegmentSource(store, max_shift_s=cfg.max_shift_s, kind="registry"))
        weights.append(cfg.registry_fraction * sum(weights) / max(1e-9, 1.0 - cfg.registry_fraction))
    if len(sources) == 1:
        return sources[0]
    return MixedSource(sources, weights)
