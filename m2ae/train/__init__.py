"""Pretraining M2AE and fitting task heads: CPU, one GPU with bf16 AMP, or many under ``torchrun`` (DDP).

    m2ae train --out runs/m2ae.pt                                    # simulator only, CPU or GPU
    m2ae train --config configs/demo.toml --out runs/m2ae.pt --set max_steps=20000 batch_size=512
    m2ae train --data /data/mimic3 /data/vitaldb --out runs/m2ae.pt  # corpora + simulator mix
    m2ae train --config configs/cinc2015.toml --out runs/cinc2015.pt # fine-tune on the CinC 2015 train split
    torchrun --nproc_per_node 8 -m m2ae.cli train --config configs/demo.toml --out runs/m2ae.pt
    m2ae recipe demo --config configs/demo.toml --out runs/demo      # the shipped checkpoint's recipe

Modules: ``config`` (``TrainConfig``, one ``M2AEConfig`` inside, and ``load_config``), ``data``
(step-seeded batch sources), ``corpus_data`` (which corpus records and channels train, the segment
cache, what the card says about them, the real validation windows), ``loop`` (``train``),
``validation``, ``card`` (the training half of a model card), ``heads`` (heads on frozen
fingerprints), ``labels`` (heads from a researcher's labels CSV), ``demo_heads`` and ``card_notes``
(the demo heads on simulated labels and what the card says about them), ``demo_recipe`` (pretrain +
heads + CUDA/CPU check + card).
"""
from __future__ import annotations

from .card import parent_lineage, training_card
from .config import TrainConfig, load_config
from .sources import build_source
from .loop import lr_at, train
from .validation import pulse_arrival_card, validate, validation_windows

__all__ = ["TrainConfig", "load_config", "train", "lr_at", "validate", "build_source", "validation_windows",
           "pulse_arrival_card", "training_card", "parent_lineage"]
