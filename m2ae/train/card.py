"""The training half of a model card: data, steps, wall time, hardware and config of a run, and
for a fine-tune the lineage of the checkpoint it started from."""
from __future__ import annotations

import datetime as _dt
import os
import platform
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError
from .config import TrainConfig


def training_card(cfg: TrainConfig, step: int, wall_s: float, world: int, device: torch.device,
                  metrics: dict[str, Any], extra: dict[str, Any] | None = None,
                  data_extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The training half of the model card (data, steps, wall time in s, hardware, config).

    ``data_extra`` joins the ``data`` entry (the loop's windows per source, the real records used and
    the real validation records: ``corpus_data``); ``extra`` joins the card's top level (timing, recipe).

    ``training.config`` is ``asdict(cfg)``: the architecture nested under ``model`` (cards written
    before the config held one ``M2AEConfig`` list those keys flat beside the others)."""
    from ..model.m2ae import M2AE

    n_params = sum(p.numel() for p in M2AE(cfg.model).parameters())
    hw: dict[str, Any] = {"device": str(device), "processes": world, "platform": platform.platform(),
                          "torch": str(torch.__version__)}
    if device.type == "cuda":
        hw["gpu"] = torch.cuda.get_device_name(device)
    hw["cpu_count"] = os.cpu_count()
    faint_p = (f"; {cfg.sim_faint_p_share:.0%} of subjects with faint or no P waves"
               if cfg.sim_faint_p_share else "")
    data = {"simulator": f"m2ae.simulate (fresh subjects every batch, seed root splits.PRETRAIN_SEED{faint_p})"
                         if (not cfg.data or cfg.sim_fraction > 0) else "not used",
            "corpora": list(cfg.data), "sim_fraction": cfg.sim_fraction if cfg.data else 1.0,
            "registry_fraction": cfg.registry_fraction,
            "registry_recordings": ("m2ae.simulate.registry: pyhrv 0.5.0 BITalino ECG (22 s), heartpy 1.2.7 "
                                    "finger PPG (25 s + 60 s); single-modality masked reconstruction only")
                                   if cfg.registry_fraction > 0 else "not used",
            "windows_seen": step * cfg.batch_size * world,
            "augmentation": f"PPG shifted against ECG by U(-{cfg.max_shift_s}, {cfg.max_shift_s}) s",
            **(data_extra or {})}
    card: dict[str, Any] = {"name": "m2ae", "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "model": {"architecture": "M2AE (modality encoders, shared bottleneck, fingerprint, dual decoders)",
                      "params": n_params, "config": cfg.model.to_dict()},
            "data": data,
            "training": {"steps": step, "batch_size_per_process": cfg.batch_size, "wall_time_s": round(wall_s, 1),
                         "lr": cfg.lr, "amp_bf16": bool(cfg.amp and device.type == "cuda"),
                         "final_metrics": {k: (round(v, 5) if isinstance(v, float) else v) for k, v in metrics.items()},
                         "config": asdict(cfg)},
            "hardware": hw}
    if cfg.init_from:
        card["training"]["initialised_from"] = parent_lineage(cfg.init_from)
    card.update(extra or {})
    return card


def parent_lineage(path: str | Path) -> dict[str, Any]:
    """What a fine-tuning run started from: the checkpoint's weights version and how it was trained
    (steps, wall time, windows, hardware), so a card never hides the compute behind its weights."""
    from ..model.checkpoint import load_checkpoint, weights_version

    try:
        ck = load_checkpoint(path)
    except (InputError, OSError) as e:
        return {"path": str(path), "note": f"could not be read when the card was written: {str(e)[:160]}"}
    parent = ck.get("card") or {}
    training = parent.get("training") or {}
    out = {"path": str(path), "weights_version": weights_version(ck["model"]), "name": parent.get("name"),
           "steps": training.get("steps"), "wall_time_s": training.get("wall_time_s"),
           "windows_seen": (parent.get("data") or {}).get("windows_seen"),
           "hardware": {k: v for k, v in (parent.get("hardware") or {}).items() if k in ("device", "gpu", "processes")}}
    if training.get("initialised_from"):
        out["initialised_from"] = training["initialised_from"]
    return out
