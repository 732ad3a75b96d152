"""Pretraining M2AE: CPU, one GPU with bf16 AMP, or many under ``torchrun`` (DDP).

    m2ae train --out runs/m2ae.pt                                    # simulator only, CPU or GPU
    m2ae train --config configs/demo.toml --out runs/m2ae.pt --set max_steps=20000 batch_size=512
    m2ae train --data /data/mimic3 /data/vitaldb --out runs/m2ae.pt  # corpora + simulator mix
    torchrun --nproc_per_node 8 -m m2ae.cli train --config configs/demo.toml --out runs/m2ae.pt

Config: ``TrainConfig`` below (nanoGPT style), overridden by a JSON/TOML file, then by ``--set``.
Checkpoints hold the model, optimizer, step and config (``weights_only=True`` loadable) and a run
resumes from them with ``--resume``; rank 0 writes a JSONL metrics log beside the checkpoint.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError


@dataclass
class TrainConfig:
    # model (see m2ae.model.M2AEConfig)
    dim: int = 128
    encoder_depth: int = 3
    bottleneck_depth: int = 2
    n_heads: int = 4
    decoder_dim: int = 96
    decoder_depth: int = 2
    decoder_heads: int = 4
    fingerprint_dim: int = 256
    # data
    data: list = field(default_factory=list)   # corpus folders/files (m2ae.io.iter_corpus); empty = simulator only
    sim_fraction: float = 1.0                  # share of each batch from the simulator when corpora are given
    registry_fraction: float = 0.0             # share from real single-modality recordings shipped on PyPI
                                               # (m2ae.simulate.registry): masked reconstruction of that modality
    max_shift_s: float = 0.3                   # random ECG/PPG lag augmentation (device delays differ)
    sim_noise: bool = True
    sim_faint_p_share: float = 0.0             # share of simulated subjects with faint/no P waves (0.25
                                               # breaks the simulator's "no P wave = AF" shortcut)
    cache_dir: str = ""                        # where corpus segments are cached (default: <out>.cache)
    # optimisation
    batch_size: int = 64                       # per process
    max_steps: int = 2000
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int = 100
    weight_decay: float = 0.05
    beta2: float = 0.95
    grad_clip: float = 1.0
    w_envelope: float = 0.5                    # timing-tolerant envelope loss weight
    w_contrastive: float = 0.1                 # symmetric InfoNCE weight (ECG-only vs PPG-only of one window)
    w_subject: float = 0.0                     # subject-level supervised contrastive weight (needs
    windows_per_subject: int = 1               # > 1 windows per simulated subject in a batch)
    subject_views: str = "all"                 # fingerprints the subject term acts on: all | both
    init_from: str = ""                        # checkpoint whose weights start the run (fine-tuning)
    scenario_probs: list = field(default_factory=lambda: [0.4, 0.15, 0.1, 0.175, 0.175])
    # complementary, random, block, ECG only, PPG only
    # system
    device: str = "auto"                       # auto | cpu | cuda
    amp: bool = True                           # bf16 autocast on CUDA
    compile: bool = False                      # torch.compile the model
    num_workers: int = 0                       # DataLoader worker processes generating batches
    seed: int = 0
    log_every: int = 50
    ckpt_every: int = 1000
    val_windows: int = 512                     # fixed validation batch (splits.VAL_SEED)
    time_budget_s: float = 0.0                 # > 0: stop (and checkpoint) once training ran this long
    stop_at_step: int = 0                      # > 0: stop (and checkpoint) after this step, keeping the
                                               # max_steps schedule (split a run across time-limited jobs)
    progress: bool = True

    def model_config(self):
        from ..model import M2AEConfig

        return M2AEConfig.from_dict(asdict(self))


def load_config(path: str | None = None, overrides: list[str] | None = None, base: dict | None = None) -> TrainConfig:
    """TrainConfig from defaults <- ``base`` <- JSON/TOML file <- ``key=value`` overrides."""
    values: dict = dict(base or {})
    if path:
        p = Path(path)
        if not p.exists():
            raise InputError(f"{p}: config file not found")
        try:
            if p.suffix == ".toml":
                import tomllib

                values.update(tomllib.loads(p.read_text()))
            else:
                values.update(json.loads(p.read_text()))
        except Exception as e:
            raise InputError(f"{p}: not a valid {p.suffix.lstrip('.') or 'JSON'} config ({str(e).splitlines()[0]})")
    types = {f.name: f for f in dataclasses.fields(TrainConfig)}
    for item in overrides or []:
        if "=" not in item:
            raise InputError(f"--set {item!r}: expected KEY=VALUE")
        k, v = item.split("=", 1)
        if k not in types:
            raise InputError(f"--set {k}: unknown config field (known: {', '.join(types)})")
        try:
            values[k] = json.loads(v)
        except json.JSONDecodeError:
            values[k] = v  # a bare string
    unknown = set(values) - set(types)
    if unknown:
        raise InputError(f"config: unknown field(s) {', '.join(sorted(unknown))}")
    cfg = TrainConfig(**values)
    for f in dataclasses.fields(cfg):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        v = getattr(cfg, f.name)
        if isinstance(default, bool) and not isinstance(v, bool):
            raise InputError(f"config {f.name}: expected true/false, got {v!r}")
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                raise InputError(f"config {f.name}: expected a number, got {v!r}")
            setattr(cfg, f.name, type(default)(v) if isinstance(default, float) else v)
    if cfg.subject_views not in ("all", "both"):
        raise InputError(f"config subject_views: expected 'all' or 'both', got {cfg.subject_views!r}")
    if not 0.0 <= cfg.sim_faint_p_share <= 1.0:
        raise InputError(f"config sim_faint_p_share: expected a share within 0-1, got {cfg.sim_faint_p_share}")
    if cfg.batch_size < 2 or cfg.max_steps < 1:
        raise InputError("config: batch_size must be >= 2 and max_steps >= 1")
    return cfg


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up then cosine decay to ``min_lr`` at ``max_steps`` (the whole 'scheduler')."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    frac = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    return cfg.min_lr + 0.5 * (1 + math.cos(math.pi * frac)) * (cfg.lr - cfg.min_lr)


def build_source(cfg: TrainConfig, out: Path, rank: int = 0):
    """Simulator, corpora (cached as filtered segments), registry recordings, or a mix, as ``cfg`` says."""
    from .data import MixedSource, SegmentSource, SegmentStore, SimulatorSource

    min_len = 1250 + 2 * int(round(cfg.max_shift_s * 125))
    sources, weights = [], []
    if not cfg.data or cfg.sim_fraction > 0:
        sources.append(SimulatorSource(max_shift_s=cfg.max_shift_s, noise=cfg.sim_noise,
                                       windows_per_subject=cfg.windows_per_subject,
                                       faint_p_share=cfg.sim_faint_p_share))
        weights.append(cfg.sim_fraction if cfg.data else 1.0)
    if cfg.data:
        cache = Path(cfg.cache_dir) if cfg.cache_dir else Path(str(out) + ".cache")
        if not (cache / "segments.npy").exists():
            if rank == 0:
                from ..io import iter_corpus

                store = SegmentStore.from_records(iter_corpus(cfg.data, min_duration_s=min_len / 125),
                                                  min_len=min_len, progress=cfg.progress)
                store.save(cache)
            if torch.distributed.is_initialized():
                torch.distributed.barrier()
        sources.append(SegmentSource(SegmentStore.load(cache), max_shift_s=cfg.max_shift_s))
        weights.append(max(0.0, 1.0 - cfg.sim_fraction))
    if cfg.registry_fraction > 0:
        from ..simulate.registry import registry_records

        store = SegmentStore.from_records(registry_records(), min_len=min_len)
        sources.append(SegmentSource(store, max_shift_s=cfg.max_shift_s))
        weights.append(cfg.registry_fraction * sum(weights) / max(1e-9, 1.0 - cfg.registry_fraction))
    if len(sources) == 1:
        return sources[0]
    return MixedSource(sources, weights)


@torch.no_grad()
def validate(net, batch: dict, device, seed: int = 0) -> dict:
    """Fixed-batch validation: complementary-50 % masked MSE, cross-modal MSE both ways,
    ECG->PPG fingerprint retrieval top-1 (chance = 1/N). Units: normalised signal, MSE."""
    net.eval()
    ecg, ppg = batch["ecg"].to(device), batch["ppg"].to(device)
    n, L = ecg.shape[0], net.config.n_patches
    g = torch.Generator(device="cpu").manual_seed(seed)
    he, hp = net.complementary_masking(n, 0.5, g, torch.device("cpu"))
    res = {}
    P = net.config.patch_samples
    for name, hidden in (("masked50", {"ecg": he, "ppg": hp}),
                         ("ecg_from_ppg", {"ecg": torch.ones(n, L, dtype=torch.bool), "ppg": torch.zeros(n, L, dtype=torch.bool)}),
                         ("ppg_from_ecg", {"ecg": torch.zeros(n, L, dtype=torch.bool), "ppg": torch.ones(n, L, dtype=torch.bool)})):
        hidden = {k: v.to(device) for k, v in hidden.items()}
        pred = net.reconstruct({"ecg": ecg, "ppg": ppg}, hidden)
        for m, x in (("ecg", ecg), ("ppg", ppg)):
            h = hidden[m].repeat_interleave(P, dim=1)
            if h.any():
                res[f"val_{name}_mse_{m}"] = float(((pred[m].float() - x) ** 2)[h].mean())
            if hidden[m].all():
                res[f"val_{name}_lagmse_{m}"] = float(net.lag_tolerant_mse(pred[m], x).mean())
    fe, fp = net.embed(ecg=ecg), net.embed(ppg=ppg)
    res["val_retrieval_top1"] = float((fe @ fp.t()).argmax(1).eq(torch.arange(n, device=device)).float().mean())
    if "subject" in batch:  # nearest other window (ECG+PPG fingerprint) from the same subject?
        fb = net.embed(ecg=ecg, ppg=ppg)
        sim = (fb @ fb.t()).fill_diagonal_(-2.0)
        subj = batch["subject"].to(device)
        res["val_same_subject_top1"] = float(subj[sim.argmax(1)].eq(subj).float().mean())
    net.train()
    return res


def validation_windows(n_windows: int, noise: bool = True) -> dict:
    """The fixed validation batch (``splits.VAL_SEED``, 2 windows per subject, no device shift)."""
    from ..simulate.labelled import subject_windows
    from ..simulate.splits import VAL_SEED

    return subject_windows(max(1, n_windows // 2), 2, VAL_SEED, max_shift_s=0.0, noise=noise)


def pulse_arrival_card(val: dict) -> dict:
    """The model card's ``timing`` entry: the typical R → pulse-peak delay of the validation windows
    (``validation_windows``), which ``reconstruct`` uses to place a modality rebuilt from the other."""
    from ..signal.timing import typical_pulse_arrival_s
    from ..simulate.splits import VAL_SEED

    return {"pulse_arrival_s": round(typical_pulse_arrival_s(val["ecg"], val["ppg"]), 4),
            "measured_on": f"{len(val['ecg'])} simulated validation windows (seed {VAL_SEED}, no device shift), "
                           "median R-peak -> next pulse-peak delay"}


def _single_thread_worker(_worker_id: int) -> None:
    torch.set_num_threads(1)  # workers generate data in parallel; more threads each only contend


def train(cfg: TrainConfig, out: str | Path, resume: bool = False, card_extra: dict | None = None) -> dict:
    """Pretrain and write the checkpoint ``out``. Under torchrun (RANK set) runs DDP.

    Returns the final metrics on rank 0; every rank adds ``weights_version`` (hash of its final
    weights) and ``rank``.
    """
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    from ..model import M2AE
    from ..model.checkpoint import load_checkpoint, save_checkpoint
    from .data import StepBatches

    out = Path(out)
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
    master = rank == 0
    torch.manual_seed(cfg.seed)  # identical initial weights on every rank

    net = M2AE(cfg.model_config()).to(device)
    decay = [p for n, p in net.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in net.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, cfg.beta2),
                            fused=use_cuda)
    start_step, elapsed_before = 0, 0.0
    if cfg.init_from and not (resume and out.exists()):
        init = load_checkpoint(cfg.init_from, map_location=device)
        try:
            net.load_state_dict(init["model"])
        except RuntimeError as e:
            raise InputError(f"{cfg.init_from}: weights do not fit this config ({str(e).splitlines()[0][:120]})")
        if master:
            print(f"initialised from {cfg.init_from}")
    if resume and out.exists():
        ckpt = load_checkpoint(out, map_location=device)
        net.load_state_dict(ckpt["model"])
        ts = ckpt.get("train_state")
        if ts is None:
            raise InputError(f"{out}: has no training state (an exported checkpoint); cannot resume")
        opt.load_state_dict(ts["optimizer"])
        start_step, elapsed_before = int(ts["step"]), float(ts.get("wall_time_s", 0.0))
        if master:
            print(f"resuming from {out} at step {start_step}")
    model = DDP(net, device_ids=[local_rank] if use_cuda else None) if ddp else net
    fwd = torch.compile(model) if cfg.compile else model

    source = build_source(cfg, out, rank)
    ds = StepBatches(source, cfg.batch_size, seed=cfg.seed, rank=rank, n_steps=cfg.max_steps)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, sampler=range(start_step, cfg.max_steps),
                                         num_workers=cfg.num_workers, pin_memory=use_cuda,
                                         worker_init_fn=_single_thread_worker,
                                         persistent_workers=False, prefetch_factor=4 if cfg.num_workers else None)
    val = None
    if master and cfg.val_windows:
        v = validation_windows(cfg.val_windows, noise=cfg.sim_noise)
        val = {k: torch.from_numpy(v[k]) for k in ("ecg", "ppg")}
        val["subject"] = torch.from_numpy(np.unique(v["subject_id"], return_inverse=True)[1])
        card_extra = {**(card_extra or {}), "timing": pulse_arrival_card(v)}

    log_path = Path(str(out.with_suffix("")) + ".metrics.jsonl")
    if master:
        out.parent.mkdir(parents=True, exist_ok=True)
        if not resume and log_path.exists():
            log_path.unlink()
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if (use_cuda and cfg.amp) else torch.autocast("cpu", enabled=False)
    bar = None
    if master and cfg.progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.max_steps, initial=start_step, desc="train", unit="step", dynamic_ncols=True)

    def checkpoint(step: int, metrics: dict) -> None:
        if not master:
            return
        train_state = {"step": step, "optimizer": opt.state_dict(),
                       "scheduler": {"kind": "warmup_cosine", "warmup_steps": cfg.warmup_steps,
                                     "max_steps": cfg.max_steps, "lr": cfg.lr, "min_lr": cfg.min_lr},
                       "train_config": asdict(cfg), "wall_time_s": elapsed_before + (time.time() - t0),
                       "world_size": world}
        save_checkpoint(out, net, card=training_card(cfg, step, train_state["wall_time_s"], world, device,
                                                     metrics, card_extra), train_state=train_state)

    net.train()
    t0 = time.time()
    t_log, windows_since = time.time(), 0
    metrics: dict = {}
    acc: dict[str, float] = {}
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
            if ddp:  # every rank must stop at the same step
                dist.all_reduce(stop, op=dist.ReduceOp.MAX)
        else:
            stop = torch.zeros(())
        if stop.item() > 0 or done == cfg.stop_at_step:
            if master:
                print(f"stopping at step {done} (time budget {cfg.time_budget_s:.0f} s / stop_at_step {cfg.stop_at_step})")
            break
    if bar is not None:
        bar.close()
    final_step = done if cfg.max_steps > start_step else start_step
    checkpoint(final_step, metrics)
    from ..model.checkpoint import weights_version

    # every rank reports the hash of its weights: under DDP they must all agree
    metrics = {**(metrics if master else {}), "weights_version": weights_version(net.state_dict()), "rank": rank}
    if ddp:
        dist.barrier()
        dist.destroy_process_group()
    return metrics


def training_card(cfg: TrainConfig, step: int, wall_s: float, world: int, device, metrics: dict,
                  extra: dict | None = None) -> dict:
    """The training half of the model card (data, steps, wall time, hardware, config)."""
    from ..model import M2AE

    n_params = sum(p.numel() for p in M2AE(cfg.model_config()).parameters())
    hw = {"device": str(device), "processes": world, "platform": platform.platform(), "torch": str(torch.__version__)}
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
            "augmentation": f"PPG shifted against ECG by U(-{cfg.max_shift_s}, {cfg.max_shift_s}) s"}
    card = {"name": "m2ae", "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "model": {"architecture": "M2AE (modality encoders, shared bottleneck, fingerprint, dual decoders)",
                      "params": n_params, "config": cfg.model_config().to_dict()},
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


def parent_lineage(path: str) -> dict:
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


__all__ = ["TrainConfig", "load_config", "train", "lr_at", "validate"]
