"""Benchmark ``m2ae eval`` (every section, the CinC 2015 test split included) against its goal:
under 5 minutes on 2 CPU cores with the CinC window cache warm (issue 11). Prints each run's wall
time beside the goal as a ratio; with ``--against REV`` it also runs the eval of an older commit
(a temporary git worktree) in the same session, alternating, so the two are measured side by side
on the same noisy machine, and checks that both produce the same figures.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/bench_eval.py [--repeats 1] [--against REV]

Needs ``../shared/data`` (or $M2AE_CINC2015_DATA / $M2AE_REAL_DATA). The first run of a commit whose
signal code differs fills its own window cache (minutes): run once with ``--repeats 1`` to warm it,
then measure; the cache lives in ~/.cache/m2ae (or $M2AE_CACHE_DIR).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL_S = 300.0
VOLATILE = {"wall_time_s", "timing", "date", "seconds", "cache", "path"}


def run_eval(checkout: Path) -> tuple[float, dict]:
    """(wall s, eval JSON) of ``m2ae eval --json`` run from ``checkout`` with this interpreter."""
    env = {**os.environ, "PYTHONPATH": str(checkout), "OMP_WAIT_POLICY": "PASSIVE"}
    env.setdefault("M2AE_CINC2015_DATA", str(ROOT.parent / "shared" / "data" / "cinc2015"))
    env.setdefault("M2AE_REAL_DATA", str(ROOT.parent / "shared" / "data" / "real"))
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "m2ae.cli", "eval", "--json"], cwd=checkout, env=env,
                         capture_output=True, text=True, check=True)
    return time.perf_counter() - t0, json.loads(out.stdout)


def differences(a, b, path: str = "") -> list[str]:
    """Paths where two eval results differ by more than 1e-6 (relative), ignoring timings and paths."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) if k not in VOLATILE
                for d in (differences(a[k], b[k], f"{path}/{k}") if k in a and k in b else [f"{path}/{k}"])]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
    if isinstance(a, float) and isinstance(b, float):
        same = (a != a and b != b) or abs(a - b) <= 1e-6 * max(1.0, abs(b))
        return [] if same else [path]
    return [] if a == b else [path]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--against", metavar="REV", help="also time this older commit, alternating with this tree")
    args = ap.parse_args()
    print(f"cores {os.cpu_count()}, goal ≤ {GOAL_S:.0f} s with a warm window cache")
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"this tree": ROOT}
        if args.against:
            old = Path(tmp) / "old"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old), args.against],
                           check=True, capture_output=True)
            trees[args.against] = old
        try:
            results: dict[str, list[tuple[float, dict]]] = {name: [] for name in trees}
            for _ in range(args.repeats):
                for name, tree in trees.items():
                    results[name].append(run_eval(tree))
                    wall = results[name][-1][0]
                    print(f"{name:<12s} m2ae eval {wall:7.1f} s  ratio to goal {wall / GOAL_S:5.2f}", flush=True)
        finally:
            if args.against:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(trees[args.against])],
                               check=False, capture_output=True)
    best = {name: min(w for w, _ in runs) for name, runs in results.items()}
    for name, wall in best.items():
        print(f"{'ok ' if wall <= GOAL_S else 'MISS'} {name:<12s} best {wall:7.1f} s  ratio {wall / GOAL_S:5.2f}")
    if args.against:
        print(f"this tree / {args.against}: {best['this tree'] / best[args.against]:.2f}")
        diff = differences(results["this tree"][0][1], results[args.against][0][1])
        print(f"figures that differ: {len(diff)}" + (f" (first: {', '.join(diff[:5])})" if diff else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
