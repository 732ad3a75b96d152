"""Read + preprocess speed, in seconds per hour of 2-channel signal, measured side by side in one run.

Goal (issue 3): reading a file and cutting it to the signal contract (``m2ae.load_record`` +
``m2ae.preprocess``: resample, band-pass, polarity, windows, quality, peaks, heart rate, pulse
arrival) takes a few seconds at most per hour of paired ECG+PPG on 2 CPU cores: goal ≤ 5 s/h.
Printed per case: seconds per hour of signal, times faster than real time, and goal ratio
(measured / goal; ≤ 1 meets the goal). Cases: the real BIDMC 01 CSV and a103l WFDB record (when
``../shared/data/real`` is present), and one simulated hour at 250 Hz written as NPZ, CSV and WFDB;
plus the training fast path (``contract_windows_fast``, no quality/peaks) on the same hour in memory.

    OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE python bench/bench_preprocess.py [--reps 3] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import m2ae  # noqa: E402
from m2ae.io import load_record, write_record  # noqa: E402
from m2ae.signal import contract_windows_fast, preprocess  # noqa: E402

GOAL_S_PER_HOUR = 5.0
REAL_DIR = Path(os.environ.get("M2AE_REAL_DATA", ROOT.parent / "shared" / "data" / "real"))


def _median_time(fn, reps: int) -> tuple[float, object]:
    out = fn()  # warm-up: imports, filter design caches
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def _row(case: str, signal_s: float, seconds: float, n_windows: int) -> dict:
    per_hour = seconds * 3600.0 / signal_s
    return {"case": case, "signal_s": round(signal_s, 1), "seconds": round(seconds, 4), "n_windows": n_windows,
            "s_per_hour": round(per_hour, 3), "x_realtime": round(3600.0 / per_hour, 1),
            "goal_ratio": round(per_hour / GOAL_S_PER_HOUR, 3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3, help="timed repetitions per case (median reported)")
    ap.add_argument("--hours", type=float, default=1.0, help="length of the simulated record in hours")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    t0 = time.perf_counter()
    import neurokit2  # noqa: F401  (cold import, paid once per process: reported, not in the rates)
    nk_import_s = time.perf_counter() - t0

    rows = []
    real = [("real BIDMC 01 CSV (125 Hz)", REAL_DIR / "bidmc_01_Signals.csv"),
            ("real a103l WFDB (250 Hz)", REAL_DIR / "wfdb" / "a103l.hea")]
    for case, path in real:
        if path.exists():
            secs, win = _median_time(lambda p=path: preprocess(load_record(p)), args.reps)
            rows.append(_row(case, win.meta["duration_s"], secs, len(win)))

    fs_hz = 250.0
    t0 = time.perf_counter()
    rec = m2ae.simulate_record("NSR", duration_s=3600.0 * args.hours, fs_hz=fs_hz, seed=0)
    sim_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in ("npz", "csv", "wfdb"):
            path = write_record(rec, Path(tmp) / f"sim_hour.{ 'hea' if fmt == 'wfdb' else fmt}", fmt=fmt)
            secs, win = _median_time(lambda p=path: preprocess(load_record(p)), args.reps)
            rows.append(_row(f"simulated {args.hours:g} h {fmt.upper()} (250 Hz)", rec.duration_s, secs, len(win)))
    secs, win = _median_time(lambda: preprocess(rec), args.reps)
    rows.append(_row("simulated, in memory: preprocess only", rec.duration_s, secs, len(win)))
    secs, win = _median_time(lambda: contract_windows_fast(rec.ecg, rec.ppg, fs_hz), args.reps)
    rows.append(_row("simulated, in memory: contract_windows_fast", rec.duration_s, secs, len(win)))

    result = {"goal_s_per_hour": GOAL_S_PER_HOUR, "threads": os.environ.get("OMP_NUM_THREADS"),
              "cpu_count": os.cpu_count(), "neurokit2_import_s": round(nk_import_s, 2),
              "simulate_s": round(sim_s, 2), "rows": rows}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"read + preprocess, seconds per hour of paired ECG+PPG (goal ≤ {GOAL_S_PER_HOUR:g} s/h; "
          f"median of {args.reps}; {os.cpu_count()} CPUs)")
    print(f"{'case':48s} {'signal s':>9s} {'s/hour':>8s} {'x realtime':>11s} {'goal ratio':>11s} {'windows':>8s}")
    for r in rows:
        print(f"{r['case']:48s} {r['signal_s']:9.0f} {r['s_per_hour']:8.2f} {r['x_realtime']:11.0f} "
              f"{r['goal_ratio']:11.2f} {r['n_windows']:8d}")
    print(f"(once per process: neurokit2 import {nk_import_s:.2f} s; simulating the hour took {sim_s:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
