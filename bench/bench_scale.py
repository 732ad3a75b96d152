"""Scaling out: embedding throughput on Ray Data with 1 and 2 workers vs the single-process path, one run.

Data: the first ``--limit`` records of the CinC 2015 corpus (``--data``, default
``../shared/data/cinc2015``; its labels.csv + records/), read through the corpus reader exactly as
``m2ae embed ../shared/data/cinc2015 [--engine ray]`` reads it, fingerprinted by ``--model`` (default:
the shipped checkpoint). Measured, in this order, each into a fresh output folder:

1. the single-process path (``m2ae.index.embed``, no DataLoader workers);
2. a local Ray cluster of ``--cpus`` logical CPUs is started (timed), then one warm-up run on 2
   records starts the worker processes (imports, model load; timed, not counted);
3. ``embed_on_ray`` with each worker count in ``--workers`` (fingerprint actors; the prepare tasks
   take the other CPUs).

Printed: windows, seconds, windows/s and the ratio to the single-process path; the fingerprints of
every Ray run are checked against the single-process ones (max abs difference). On the project's
2-core machines shared with other jobs the ratios are noisy: the load average is printed beside them.

    OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE python bench/bench_scale.py            # 16 records, ~3 min
    python bench/bench_scale.py --limit 40 --workers 1 2 4 --cpus 4 --json scale.json
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "cinc2015"


def corpus_stream(data: Path, limit: int):
    """The first ``limit`` records of the corpus, as the corpus reader yields them (labels included)."""
    from m2ae.io import iter_corpus

    return itertools.islice(iter_corpus(data, min_duration_s=10.0), limit)


def by_window(res) -> dict:
    keys = zip(res.metadata["record"].astype(str), res.metadata["window"].astype(int))
    return dict(zip(keys, res.fingerprints))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="CinC 2015 corpus folder")
    ap.add_argument("--limit", type=int, default=16, help="records to embed (default 16)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="fingerprint actors per Ray run")
    ap.add_argument("--cpus", type=int, default=2, help="logical CPUs of the local Ray cluster (default 2)")
    ap.add_argument("--records-per-shard", type=int, default=2)
    ap.add_argument("--model", help="checkpoint (default: shipped)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    if not (args.data / "labels.csv").is_file():
        print(f"error: {args.data} is not the CinC 2015 corpus (no labels.csv); give --data", file=sys.stderr)
        return 2

    import ray

    from m2ae.index import embed
    from m2ae.index.fingerprints import resolve_model
    from m2ae.index.ray_engine import embed_on_ray

    model = resolve_model(args.model)
    rows = []
    with tempfile.TemporaryDirectory(prefix="m2ae-bench-scale-") as tmp:
        t = time.perf_counter()
        plain = embed([corpus_stream(args.data, args.limit)], model, Path(tmp) / "plain", progress=False,
                      num_workers=0)
        s = time.perf_counter() - t
        n = len(plain.fingerprints)
        rows.append({"engine": "single process", "workers": 1, "windows": n, "seconds": s, "load": os.getloadavg()[0]})
        ref = by_window(plain)

        t = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        t_init = time.perf_counter() - t
        t = time.perf_counter()
        embed_on_ray([corpus_stream(args.data, 2)], model, Path(tmp) / "warm", progress=False, num_workers=1,
                     records_per_shard=1)
        t_warm = time.perf_counter() - t
        for w in args.workers:
            t = time.perf_counter()
            res = embed_on_ray([corpus_stream(args.data, args.limit)], model, Path(tmp) / f"ray{w}", progress=False,
                               num_workers=w, records_per_shard=args.records_per_shard)
            s = time.perf_counter() - t
            got = by_window(res)
            diff = max(float(np.abs(ref[k] - got[k]).max()) for k in ref) if set(got) == set(ref) else float("nan")
            rows.append({"engine": "ray", "workers": w, "windows": len(res.fingerprints), "seconds": s,
                         "load": os.getloadavg()[0], "max_abs_diff": diff, "shards": res.manifest["shards"]})
        ray.shutdown()

    base = rows[0]["windows"] / rows[0]["seconds"]
    print(f"CinC 2015, first {args.limit} records ({rows[0]['windows']} windows), model {model.version}, "
          f"{platform.node()} ({os.cpu_count()} cores), Ray cluster of {args.cpus} logical CPUs")
    print(f"ray.init {t_init:.1f} s; warm-up run (worker processes start, 2 records) {t_warm:.1f} s, not counted")
    print(f"{'engine':<16}{'workers':>8}{'windows':>9}{'seconds':>9}{'win/s':>8}{'ratio':>7}{'load1':>7}"
          f"{'max|dfp|':>10}")
    for r in rows:
        r["windows_per_s"] = r["windows"] / r["seconds"]
        r["ratio"] = r["windows_per_s"] / base
        print(f"{r['engine']:<16}{r['workers']:>8}{r['windows']:>9}{r['seconds']:>9.1f}{r['windows_per_s']:>8.1f}"
              f"{r['ratio']:>7.2f}{r['load']:>7.2f}" + (f"{r['max_abs_diff']:>10.1e}" if "max_abs_diff" in r else ""))
    if args.json:
        args.json.write_text(json.dumps({"limit": args.limit, "cpus": args.cpus, "ray_init_s": t_init,
                                         "warmup_s": t_warm, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
