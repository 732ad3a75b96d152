"""Simulator throughput: contract windows per second, records per second, and speed vs real time.

Measured side by side in one run, single process, ``OMP_NUM_THREADS=1`` (one core):

- ``simulate_windows``: paired 10-s windows at 125 Hz rendered 12 s long, band-passed, polarity
  fixed, cropped and robust-normalised, with labels: windows/s, and the same for the synthesis
  step alone (so the share the signal contract costs is visible) and for ``window_stream`` batches;
- ``simulate_record``: 60-s paired records at 125 Hz and 500 Hz: records/s and seconds of signal
  per second of compute (the ratio vs real time).

Each figure is the best of ``--repeats`` runs, in wall-clock and in process CPU time (on a shared
machine CPU time is the steadier of the two). The goal printed beside windows/s is the project's
pretraining target: >= 2,000 windows/s per core.

    OMP_NUM_THREADS=1 python bench/bench_simulator.py              # ~30 s
    OMP_NUM_THREADS=1 python bench/bench_simulator.py --windows 8192 --json out.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

from m2ae.simulate import sample_subject_table, simulate_record, simulate_windows, window_stream  # noqa: E402
from m2ae.simulate.core import synthesize  # noqa: E402
from m2ae.simulate.windows import CHUNK_WINDOWS, MARGIN_S  # noqa: E402

GOAL_WINDOWS_PER_S = 2000.0


def best_of(fn, repeats: int) -> tuple[float, float]:
    """(best wall s, best CPU s) over ``repeats`` calls of ``fn``."""
    wall, cpu = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return min(wall), min(cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--windows", type=int, default=4096, help="windows per simulate_windows call")
    ap.add_argument("--records", type=int, default=20, help="60-s records per simulate_record timing")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", help="also write the results to this JSON file")
    args = ap.parse_args()

    simulate_windows(64, seed=0)  # warm caches (filter design, imports)
    n = args.windows
    res: dict = {"machine": platform.processor() or platform.machine(), "omp_threads": os.environ["OMP_NUM_THREADS"],
                 "data": "m2ae.simulate, fresh random subjects, noise and artefacts on"}

    wall, cpu = best_of(lambda: simulate_windows(n, seed=1), args.repeats)
    res["windows"] = {"n": n, "windows_per_s_wall": n / wall, "windows_per_s_cpu": n / cpu}

    rng = np.random.default_rng(2)
    table = sample_subject_table(rng, CHUNK_WINDOWS)
    chunks = max(1, n // CHUNK_WINDOWS)
    wall_s, cpu_s = best_of(lambda: [synthesize(table, 10 + 2 * MARGIN_S, 125.0, rng, label_span_s=(1, 11))
                                     for _ in range(chunks)], args.repeats)
    m = chunks * CHUNK_WINDOWS
    res["synthesis_only"] = {"n": m, "windows_per_s_wall": m / wall_s, "windows_per_s_cpu": m / cpu_s}

    stream = window_stream(seed=3, batch_size=256)
    n_batches = max(1, n // 256)
    wall_b, cpu_b = best_of(lambda: [next(stream) for _ in range(n_batches)], args.repeats)
    res["window_stream_256"] = {"n": n_batches * 256, "windows_per_s_wall": n_batches * 256 / wall_b,
                                "windows_per_s_cpu": n_batches * 256 / cpu_b}

    for fs in (125.0, 500.0):
        k = args.records
        wall_r, cpu_r = best_of(lambda fs=fs, k=k: [simulate_record(None, 60.0, fs, seed=i) for i in range(k)],
                                args.repeats)
        res[f"records_60s_{fs:g}hz"] = {"n": k, "records_per_s_wall": k / wall_r, "records_per_s_cpu": k / cpu_r,
                                        "x_real_time_wall": 60.0 * k / wall_r, "x_real_time_cpu": 60.0 * k / cpu_r}

    w = res["windows"]
    print(f"simulator benchmark ({res['data']}; OMP_NUM_THREADS={res['omp_threads']}, one process)")
    print(f"  simulate_windows({n}):       {w['windows_per_s_wall']:8.0f} windows/s wall, "
          f"{w['windows_per_s_cpu']:8.0f} windows/s CPU  -> {w['windows_per_s_cpu'] / GOAL_WINDOWS_PER_S:.2f}x "
          f"the {GOAL_WINDOWS_PER_S:.0f}/s goal (CPU)")
    s = res["synthesis_only"]
    print(f"  synthesis only ({m}):        {s['windows_per_s_wall']:8.0f} windows/s wall, "
          f"{s['windows_per_s_cpu']:8.0f} windows/s CPU  -> signal contract = "
          f"{1 - w['windows_per_s_cpu'] / s['windows_per_s_cpu']:.0%} of simulate_windows CPU time")
    b = res["window_stream_256"]
    print(f"  window_stream(batch 256):    {b['windows_per_s_wall']:8.0f} windows/s wall, "
          f"{b['windows_per_s_cpu']:8.0f} windows/s CPU")
    for fs in (125.0, 500.0):
        r = res[f"records_60s_{fs:g}hz"]
        print(f"  simulate_record 60 s {fs:3.0f} Hz: {r['records_per_s_wall']:8.1f} records/s wall, "
              f"{r['records_per_s_cpu']:8.1f} records/s CPU  -> {r['x_real_time_cpu']:.0f}x real time (CPU)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
