"""Model speed goals, measured side by side in one run and printed as ratios (goal met when ratio ≤ 1
for latencies, ≥ 1 for throughput).

Goals (issue 4, "Performance"):
- one 10-s pair end to end (fingerprint + PPG→ECG and ECG→PPG reconstructions + every head) ≤ 150 ms
  on 2 CPU cores;
- batched fingerprinting reaches ≥ 50 % of this machine's fp32 matmul FLOP/s (measured here with a
  torch matmul; the model's FLOPs counted with ``torch.utils.flop_counter.FlopCounterMode``);
- Captum Integrated Gradients for one head of one pair ≤ 1 s;
- CUDA and CPU give the same outputs within tolerance (only when a GPU is present).

    OMP_WAIT_POLICY=PASSIVE python bench/bench_model.py [--model CKPT] [--threads 2] [--sweep] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import m2ae  # noqa: E402
from m2ae.explain import explain  # noqa: E402

PAIR_GOAL_MS = 150.0
FLOP_FRACTION_GOAL = 0.5
IG_GOAL_S = 1.0
CUDA_TOLERANCE = 1e-3


def _timed(fn, reps: int, warmup: int = 2, sync=None) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(reps):
        if sync:
            sync()
        t = time.perf_counter()
        fn()
        if sync:
            sync()
        out.append(time.perf_counter() - t)
    return out


def sample_windows(n: int) -> tuple[np.ndarray, np.ndarray, str]:
    """``n`` paired contract windows: simulated (deterministic), so the bench runs anywhere."""
    from m2ae.simulate import simulate_windows

    sim = simulate_windows(n, seed=12345)
    return sim["ecg"], sim["ppg"], f"{n} simulated windows (seed 12345)"


def end_to_end(model, ecg, ppg) -> dict:
    model.fingerprint(ecg=ecg, ppg=ppg)
    model.reconstruct(ppg=ppg, mode="ecg_from_ppg")
    model.reconstruct(ecg=ecg, mode="ppg_from_ecg")
    return model.predict(ecg=ecg, ppg=ppg)


def flop_share(model, ecg, ppg, device: torch.device, n: int = 1024, rounds: int = 5) -> dict:
    """Batched fingerprinting's achieved FLOP/s against this machine's fp32 matmul FLOP/s.

    The two are timed alternately, ``rounds`` times each, and the best of each is kept, so both see
    the same load from other processes on a shared machine. Matmul: n×n @ n×n (2 n³ FLOPs), best of
    3 products per round. Model FLOPs are counted by ``FlopCounterMode`` over the same batch.
    """
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    flops = fingerprint_flops(model, len(ecg))
    mm, fp = [], []
    _timed(lambda: model.fingerprint(ecg=ecg, ppg=ppg, batch_size=len(ecg)), 1, warmup=1, sync=sync)
    for _ in range(rounds):
        mm.append(min(_timed(lambda: a @ b, 3, warmup=1, sync=sync)))
        fp.append(_timed(lambda: model.fingerprint(ecg=ecg, ppg=ppg, batch_size=len(ecg)), 1, warmup=0, sync=sync)[0])
    peak, achieved = 2 * n ** 3 / min(mm), flops / min(fp)
    return {"flops_per_pair": flops / len(ecg), "pairs_per_s": len(ecg) / min(fp), "achieved_flops_per_s": achieved,
            "matmul_flops_per_s": peak, "fraction_of_matmul": achieved / peak, "batch": len(ecg), "matmul_n": n}


def batch_sweep(model, ecg, ppg, sizes=(16, 32, 64, 128, 256), rounds: int = 3) -> dict[int, float]:
    """Pairs/s of the network's fingerprint pass (``net.embed``) when ``len(ecg)`` pairs go through it
    ``size`` at a time; sizes timed alternately, best of ``rounds`` each (how CPU_BATCH_WINDOWS was chosen)."""
    e, p = torch.from_numpy(ecg).to(model.device), torch.from_numpy(ppg).to(model.device)
    best = {s: float("inf") for s in sizes}
    with torch.inference_mode():
        for _ in range(rounds + 1):                      # the first round warms up
            for s in sizes:
                t = time.perf_counter()
                for i in range(0, len(e), s):
                    model.net.embed(e[i:i + s], p[i:i + s])
                best[s] = min(best[s], time.perf_counter() - t)
    return {s: len(e) / t for s, t in best.items()}


def fingerprint_flops(model, batch: int) -> int:
    """FLOPs of one fingerprint pass (both modalities) over ``batch`` windows, counted by torch.

    ``FlopCounterMode`` has formulas for the CUDA attention kernels but none for the CPU one
    (``_scaled_dot_product_flash_attention_for_cpu``), so on CPU it silently counted the attention
    products (QK^T and AV, ~8 % of the model's FLOPs) as zero; the same formula is registered for it here.
    """
    from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

    def cpu_attention_flops(q_shape, k_shape, v_shape, *args, out_shape=None, **kwargs) -> int:
        return sdpa_flop_count(q_shape, k_shape, v_shape)

    mapping = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: cpu_attention_flops}
    x = torch.zeros(batch, 1250, device=model.device)
    with FlopCounterMode(display=False, custom_mapping=mapping) as counter, torch.inference_mode():
        model.net.embed(x, x)
    return int(counter.get_total_flops())


def run(args) -> dict:
    torch.set_num_threads(args.threads)
    cpu = torch.device("cpu")
    model = m2ae.load_model(args.model, device="cpu")
    ecg, ppg, data = sample_windows(args.batch)
    pair_e, pair_p = ecg[:1], ppg[:1]
    res: dict = {"model": {"version": model.version, "name": model.card.get("name"),
                           "params": sum(p.numel() for p in model.net.parameters())},
                 "machine": {"cpu": platform.processor() or platform.machine(), "torch_threads": args.threads,
                             "cpu_count": os.cpu_count(), "torch": torch.__version__,
                             "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
                 "data": data, "rows": []}

    def row(goal: str, measured: float, target: float, unit: str, higher_is_better: bool, device: str, note: str = ""):
        ratio = (target / measured if higher_is_better else measured / target) if measured else float("nan")
        # ratio ≤ 1 always means the goal is met (latency / goal, or goal / throughput share)
        res["rows"].append({"goal": goal, "device": device, "measured": measured, "target": target, "unit": unit,
                            "ratio_to_goal": ratio, "met": bool(ratio <= 1.0), "note": note})

    # 1. one pair end to end
    t = _timed(lambda: end_to_end(model, pair_e, pair_p), args.reps)
    row("one 10-s pair end to end (fingerprint + 2 reconstructions + all heads)", 1000 * statistics.median(t),
        PAIR_GOAL_MS, "ms", False, "cpu", f"median of {args.reps}, {len(model.heads)} heads")

    # 2. batched fingerprinting vs this machine's matmul FLOP/s
    share = flop_share(model, ecg, ppg, cpu)
    res["fingerprint_cpu"] = share
    row("batched fingerprinting, share of fp32 matmul FLOP/s", share["fraction_of_matmul"], FLOP_FRACTION_GOAL,
        "fraction", True, "cpu", f"batch {args.batch}: {share['achieved_flops_per_s'] / 1e9:.1f} of "
                                 f"{share['matmul_flops_per_s'] / 1e9:.1f} GFLOP/s, {share['pairs_per_s']:.0f} pairs/s, "
                                 f"{share['flops_per_pair'] / 1e9:.2f} GFLOP/pair")

    if args.sweep:
        res["batch_sweep_pairs_per_s"] = batch_sweep(model, ecg, ppg)

    # 3. Captum IG for one head, one pair
    head = "rhythm" if "rhythm" in model.heads else next(iter(model.heads), None)
    if head is not None:
        t = _timed(lambda: explain(model, head, ecg=pair_e, ppg=pair_p, n_steps=args.ig_steps), max(3, args.reps // 4), warmup=1)
        row(f"Captum IG, head '{head}', one pair, {args.ig_steps} steps", statistics.median(t), IG_GOAL_S, "s",
            False, "cpu")

    # 4. CUDA: same outputs as CPU, and the same timings on the GPU
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 on both sides (and for the matmul yardstick)
        torch.backends.cudnn.allow_tf32 = False
        gpu_model = m2ae.load_model(args.model, device="cuda")
        diffs = {
            "fingerprint": np.abs(gpu_model.fingerprint(ecg=ecg, ppg=ppg) - model.fingerprint(ecg=ecg, ppg=ppg)).max(),
            "ecg_from_ppg": np.abs(gpu_model.reconstruct(ppg=ppg, mode="ecg_from_ppg")["ecg"]["prediction"]
                                   - model.reconstruct(ppg=ppg, mode="ecg_from_ppg")["ecg"]["prediction"]).max(),
        }
        pg, pc = gpu_model.predict(ecg=ecg, ppg=ppg), model.predict(ecg=ecg, ppg=ppg)
        for name in pc:
            key = "probabilities" if "probabilities" in pc[name] else "value"
            diffs[f"head_{name}"] = np.abs(np.asarray(pg[name][key]) - np.asarray(pc[name][key])).max()
        worst = float(max(diffs.values()))
        res["cuda_vs_cpu_max_abs_diff"] = {k: float(v) for k, v in diffs.items()}
        row("CUDA vs CPU outputs, max abs difference", worst, CUDA_TOLERANCE, "abs", False, "cuda",
            "fingerprints, PPG→ECG reconstruction, head probabilities/values")
        sync = torch.cuda.synchronize
        t = _timed(lambda: end_to_end(gpu_model, pair_e, pair_p), args.reps, sync=sync)
        row("one 10-s pair end to end (fingerprint + 2 reconstructions + all heads)", 1000 * statistics.median(t),
            PAIR_GOAL_MS, "ms", False, "cuda")
        big = np.concatenate([ecg] * 8), np.concatenate([ppg] * 8)
        share = flop_share(gpu_model, big[0], big[1], torch.device("cuda"), n=4096)
        res["fingerprint_cuda"] = share
        row("batched fingerprinting, share of fp32 matmul FLOP/s", share["fraction_of_matmul"], FLOP_FRACTION_GOAL,
            "fraction", True, "cuda", f"batch {share['batch']}: {share['achieved_flops_per_s'] / 1e12:.2f} of "
                                      f"{share['matmul_flops_per_s'] / 1e12:.1f} TFLOP/s (TF32 off), "
                                      f"{share['pairs_per_s']:.0f} pairs/s, includes host↔device copies")
        if head is not None:
            t = _timed(lambda: explain(gpu_model, head, ecg=pair_e, ppg=pair_p, n_steps=args.ig_steps), 5,
                       warmup=1, sync=sync)
            row(f"Captum IG, head '{head}', one pair, {args.ig_steps} steps", statistics.median(t), IG_GOAL_S, "s",
                False, "cuda")
    return res


def format_rows(res: dict) -> str:
    m = res["machine"]
    lines = [f"model {res['model']['name']} ({res['model']['version']}, {res['model']['params']:,} params); "
             f"torch {m['torch']}, {m['torch_threads']} CPU threads of {m['cpu_count']}; GPU: {m['cuda'] or 'none'}",
             f"data: {res['data']}", "",
             f"{'goal':64s} {'dev':4s} {'measured':>10s} {'goal':>8s} {'ratio':>6s}  met  note"]
    for r in res["rows"]:
        lines.append(f"{r['goal']:64s} {r['device']:4s} {r['measured']:10.4g} {r['target']:8.4g} "
                     f"{r['ratio_to_goal']:6.2f}  {'yes' if r['met'] else 'NO ':3s}  {r['unit']}; {r['note']}")
    if "batch_sweep_pairs_per_s" in res:
        lines.append("\nCPU fingerprinting, pairs/s by windows per forward pass: " + ", ".join(
            f"{b}: {v:.0f}" for b, v in res["batch_sweep_pairs_per_s"].items()))
    lines.append("\nratio = measured/goal for latencies and differences, goal/measured for the FLOP share: ≤ 1 meets the goal")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="checkpoint (default: shipped)")
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1), help="torch CPU threads (default 2)")
    p.add_argument("--batch", type=int, default=256, help="windows per batched fingerprint call")
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--ig-steps", type=int, default=32)
    p.add_argument("--sweep", action="store_true", help="also time CPU fingerprinting at several sub-batch sizes")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    res = run(args)
    if args.json:
        from m2ae.jsonable import to_jsonable

        print(json.dumps(to_jsonable(res), indent=2))
    else:
        print(format_rows(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
