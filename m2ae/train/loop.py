"""The pretraining loop (nanoGPT style): CPU, one GPU with bf16 AMP, or many under ``torchrun`` (DDP).

``train(cfg, out)`` sets up the processes, model and optimizer, starts from ``cfg.init_from`` or resumes
from ``out``, streams step-seeded batches (``m2ae.train.data``), logs a JSONL metrics file beside the
checkpoint, validates on rank 0 (simulated windows, and with corpora their validation-split records),
counts the windows seen per source (simulator, corpus, registry), and checkpoints (model, optimizer,
step, config; loadable with ``weights_only=True``) every ``ckpt_every`` steps and at the end.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError
from ..model.m2ae import M2AE
from .card import training_card
from .config import TrainConfig
from .validation import pulse_arrival_card, real_validation_batch, validate, validation_batch, validation_windows


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up then cosine decay to ``min_lr`` at ``max_steps`` (the whole 'scheduler')."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    frac = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    return cfg.min_lr + 0.5 * (1 + math.cos(math.pi * frac)) * (cfg.lr - cfg.min_lr)


@dataclass
class _Processes:
    """Where this process trains: DDP or not, its rank among ``world``, and its device."""

    ddp: bool
    rank: int
    world: int
    local_rank: int
    use_cuda: bool
    device: torch.device

    @property
    def master(self) -> bool:
        return self.rank == 0


def _start_processes(cfg: TrainConfig) -> _Processes:
    """Join the torchrun process group when ``RANK`` is set (NCCL on GPU, gloo on CPU)."""
    import torch.distributed as dist

    ddp = int(os.environ.get("RANK", -1)) != -1
    use_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise InputError("config device=cuda but no CUDA device is available")
    if ddp:
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        rank, world, local_rank = dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0))
    else:
        rank, world, local_rank = 0, 1, 0
    device = torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True
    return _Processes(ddp, rank, world, local_rank, use_cuda, device)


def _optimizer(net: M2AE, cfg: TrainConfig, fused: bool) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (not on biases, norms or embeddings' 1-d parameters)."""
    decay = [p for p in net.parameters() if p.ndim >= 2]
    no_decay = [p for p in net.parameters() if p.ndim < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, cfg.beta2),
                             fused=fused)


def _restore(net: M2AE, opt: torch.optim.Optimizer, cfg: TrainConfig, out: Path, resume: bool,
             procs: _Processes) -> tuple[int, float, dict[str, int]]:
    """Start from ``cfg.init_from``'s weights, or resume ``out`` (weights, optimizer, step).
    Returns (start step, wall time in s already spent, windows already seen per source)."""
    from ..model.checkpoint import load_checkpoint

    resuming = resume and out.exists()
    if cfg.init_from and not resuming:
        init = load_checkpoint(cfg.init_from, map_location=procs.device)
        try:
            net.load_state_dict(init["model"])
        except RuntimeError as e:
            raise InputError(f"{cfg.init_from}: weights do not fit this config ({str(e).splitlines()[0][:120]})") from e
        if procs.master:
            print(f"initialised from {cfg.init_from}")
    if not resuming:
        return 0, 0.0, {}
    ckpt = load_checkpoint(out, map_location=procs.device)
    net.load_state_dict(ckpt["model"])
    ts = ckpt.get("train_state")
    if ts is None:
        raise InputError(f"{out}: has no training state (an exported checkpoint); cannot resume")
    opt.load_state_dict(ts["optimizer"])
    if procs.master:
        print(f"resuming from {out} at step {int(ts['step'])}")
    return int(ts["step"]), float(ts.get("wall_time_s", 0.0)), dict(ts.get("windows_by_source") or {})


def _single_thread_worker(_worker_id: int) -> None:
    torch.set_num_threads(1)  # workers generate data in parallel; more threads each only contend


def train(cfg: TrainConfig, out: str | Path, resume: bool = False,
          card_extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Pretrain and write the checkpoint ``out``. Under torchrun (RANK set) runs DDP.

    Returns the final metrics on rank 0; every rank adds ``weights_version`` (hash of its final
    weights) and ``rank``.
    """
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    from ..model.checkpoint import save_checkpoint, weights_version
    from .data import StepBatches
    from .sources import build_source, source_parts

    out = Path(out)
    procs = _start_processes(cfg)
    rank, world, device, master = procs.rank, procs.world, procs.device, procs.master
    torch.manual_seed(cfg.seed)  # identical initial weights on every rank

    net = M2AE(cfg.model).to(device)
    opt = _optimizer(net, cfg, fused=procs.use_cuda)
    start_step, elapsed_before, seen_before = _restore(net, opt, cfg, out, resume, procs)
    model = DDP(net, device_ids=[procs.local_rank] if procs.use_cuda else None) if procs.ddp else net
    fwd = torch.compile(model) if cfg.compile else model

    source = build_source(cfg, out, rank)
    parts = source_parts(source)
    kinds = [str(getattr(s, "kind", "simulator")) for s in parts]
    seen = torch.zeros(len(parts), dtype=torch.int64)  # windows this process drew from each part
    data_extra: dict[str, Any] = {"data_split": cfg.data_split} if cfg.data else {}
    real = [getattr(s, "info", None) for s in parts if getattr(s, "kind", "") == "corpus"]
    if real and real[0]:
        data_extra["real_data"] = real[0]
    ds = StepBatches(source, cfg.batch_size, seed=cfg.seed, rank=rank, n_steps=cfg.max_steps)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, sampler=range(start_step, cfg.max_steps),
                                         num_workers=cfg.num_workers, pin_memory=procs.use_cuda,
                                         worker_init_fn=_single_thread_worker,
                                         persistent_workers=False, prefetch_factor=4 if cfg.num_workers else None)
    val = None
    if master and cfg.val_windows:
        v = validation_windows(cfg.val_windows, noise=cfg.sim_noise)
        val = validation_batch(v)
        card_extra = {**(card_extra or {}), "timing": pulse_arrival_card(v)}
    val_real = None
    # real validation only when training leaves the validation records out (data_split "train")
    if master and cfg.data and cfg.data_split == "train" and cfg.val_real_records and cfg.val_real_windows:
        from .corpus_data import cache_dir, real_validation_windows

        vr = real_validation_windows(cfg, cache_dir(cfg, out))
        if vr is not None:
            val_real = real_validation_batch(vr)
            data_extra["real_validation"] = vr["card"]

    log_path = Path(str(out.with_suffix("")) + ".metrics.jsonl")
    if master:
        out.parent.mkdir(parents=True, exist_ok=True)
        if not resume and log_path.exists():
            log_path.unlink()
    amp = (torch.autocast("cuda", dtype=torch.bfloat16) if (procs.use_cuda and cfg.amp)
           else torch.autocast("cpu", enabled=False))
    bar = None
    if master and cfg.progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.max_steps, initial=start_step, desc="train", unit="step", dynamic_ncols=True)

    def checkpoint(step: int, metrics: dict[str, Any]) -> None:
        drawn = seen.clone().to(device)  # a copy: all_reduce works in place
        if procs.ddp:  # every rank calls checkpoint at the same steps
            dist.all_reduce(drawn)
        by_source = dict(seen_before)
        for kind, n in zip(kinds, drawn.tolist()):
            by_source[kind] = by_source.get(kind, 0) + int(n)
        if not master:
            return
        wall_s = elapsed_before + (time.time() - t0)
        train_state = {"step": step, "optimizer": opt.state_dict(), "windows_by_source": by_source,
                       "scheduler": {"kind": "warmup_cosine", "warmup_steps": cfg.warmup_steps,
                                     "max_steps": cfg.max_steps, "lr": cfg.lr, "min_lr": cfg.min_lr},
                       "train_config": asdict(cfg), "wall_time_s": wall_s, "world_size": world}
        card = training_card(cfg, step, wall_s, world, device, metrics, card_extra,
                             data_extra={**data_extra, "windows_by_source": by_source})
        save_checkpoint(out, net, card=card, train_state=train_state)

    if master and start_step == 0 and cfg.init_from and (val is not None or val_real is not None):
        # the starting weights' validation scores (step 0): what a fine-tune must beat to be chosen
        before: dict[str, Any] = {"step": 0, "init_from": cfg.init_from}
        for batch_val, prefix in ((val, "val"), (val_real, "val_real")):
            if batch_val is not None:
                before.update(validate(net, batch_val, device, prefix=prefix))
        with open(log_path, "a") as f:
            f.write(json.dumps(before) + "\n")
    net.train()
    t0 = time.time()
    t_log, windows_since = time.time(), 0
    metrics: dict[str, Any] = {}
    acc: dict[str, Any] = {}
    step = done = start_step
    for step, batch in zip(range(start_step, cfg.max_steps), loader):
        lr = lr_at(step, cfg)
        for g in opt.param_groups:
            g["lr"] = lr
        ecg = batch["ecg"].to(device, non_blocking=True)
        ppg = batch["ppg"].to(device, non_blocking=True)
        present = {"ecg": batch["present_ecg"].to(device), "ppg": batch["present_ppg"].to(device)}
        gen = torch.Generator(device=device).manual_seed(hash((cfg.seed, rank, step)) % (2**63))
        with amp:
            losses = fwd(ecg, ppg, present=present, generator=gen, scenario_probs=cfg.scenario_probs,
                         w_envelope=cfg.w_envelope, w_contrastive=cfg.w_contrastive,
                         group=batch["group"].to(device), w_subject=cfg.w_subject,
                         subject_views=cfg.subject_views)
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
        opt.step()
        windows_since += ecg.shape[0] * world
        seen += torch.bincount(batch["source"], minlength=len(parts))
        for k, v in losses.items():  # stays on the device: no host sync per step
            acc[k] = acc.get(k, 0.0) + v.detach().float()
        done = step + 1
        if done % cfg.log_every == 0 or done == cfg.max_steps:
            n_acc = (done - 1) % cfg.log_every + 1
            dt = time.time() - t_log
            metrics = {"step": done, "lr": lr, **{k: float(v) / n_acc for k, v in acc.items()},
                       "windows_per_s": windows_since / max(dt, 1e-9),
                       "elapsed_s": elapsed_before + time.time() - t0}
            if master and val is not None and (done % (cfg.log_every * 10) == 0 or done == cfg.max_steps):
                metrics.update(validate(net, val, device))
                if val_real is not None:
                    metrics.update(validate(net, val_real, device, prefix="val_real"))
            acc, windows_since, t_log = {}, 0, time.time()
            if master:
                with open(log_path, "a") as f:
                    f.write(json.dumps(metrics) + "\n")
                if bar is not None:
                    bar.set_postfix(loss=f"{metrics['loss']:.3f}", nce=f"{metrics['infonce']:.2f}",
                                    wps=f"{metrics['windows_per_s']:.0f}")
        if bar is not None:
            bar.update(1)
        if done % cfg.ckpt_every == 0 and done != cfg.max_steps:
            checkpoint(done, metrics)
        if cfg.time_budget_s > 0 and done % 10 == 0:
            stop = torch.tensor(float(time.time() - t0 > cfg.time_budget_s), device=device)
            if procs.ddp:  # every rank must stop at the same step
                dist.all_reduce(stop, op=dist.ReduceOp.MAX)
        else:
            stop = torch.zeros(())
        if stop.item() > 0 or done == cfg.stop_at_step:
            if master:
                print(f"stopping at step {done} (time budget {cfg.time_budget_s:.0f} s / "
                      f"stop_at_step {cfg.stop_at_step})")
            break
    if bar is not None:
        bar.close()
    final_step = done if cfg.max_steps > start_step else start_step
    checkpoint(final_step, metrics)
    # every rank reports the hash of its weights: under DDP they must all agree
    metrics = {**(metrics if master else {}), "weights_version": weights_version(net.state_dict()), "rank": rank}
    if procs.ddp:
        dist.barrier()
        dist.destroy_process_group()
    return metrics
