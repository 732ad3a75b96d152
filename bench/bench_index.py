"""Similar-window search at scale: exact vs approximate FAISS indexes over 1 M fingerprints.

Data: synthetic unit vectors standing in for fingerprints (no corpus of 1 M real windows exists on
this machine), built like a real fingerprint corpus: classes (phenotype groups) > subjects > windows
(``CorpusShape``: cosine ~0.92 between windows of one subject, ~0.65 between subjects of one class,
~0 across classes). Clustered rather than uniform, so "the 10 nearest" is a meaningful set. Query
windows are new windows of indexed subjects and, for ``--new-subjects`` of them, of unseen subjects.

Measured side by side in one run, one query at a time on ONE thread (the app's case):
exact ``IndexFlatIP`` vs IVF-Flat (nprobe sweep), IVF-PQ with exact re-ranking, and HNSW (built on a
subset by default: a 1 M HNSW build takes ~9 min on 2 cores; ``--hnsw-full`` builds it on all).
Printed per index: build time, memory per million vectors, latency p50/p95, recall@10 against exact
search, speed-up over exact search.

    OMP_WAIT_POLICY=PASSIVE python bench/bench_index.py              # 1 M x 256, a few minutes on 2 cores
    python bench/bench_index.py --n 200000 --json out.json            # smaller, results as JSON too
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import asdict, dataclass

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import faiss  # noqa: E402

from m2ae.index.faiss_index import IndexConfig, new_faiss_index  # noqa: E402


@dataclass
class CorpusShape:
    """Shape of the synthetic fingerprint corpus: classes (e.g. rhythm / phenotype groups) contain
    subjects, subjects contain windows. Spreads are L2 norms before the final normalisation."""

    dim: int = 256
    classes: int = 32
    windows_per_subject: int = 50
    class_rank: int = 16          # subjects of a class vary along 16 directions of that class
    subject_spread: float = 0.6   # cosine ~0.65 between subjects of one class
    window_rank: int = 4          # a subject's windows vary along 4 directions of that subject (state)
    window_spread: float = 0.25   # with the noise: cosine ~0.92 between windows of one subject
    window_noise: float = 0.15    # isotropic, all 256 dimensions


def synthetic_corpus(n: int, shape: CorpusShape, seed: int, new_subject_share: float = 0.0,
                     n_subjects: int | None = None):
    """[n, dim] float32 unit vectors: n/windows_per_subject subjects in ``classes`` classes.

    The first call fixes the corpus (seeded); queries drawn with another seed reuse the same subjects
    (a new window of a known subject) and, with ``new_subject_share``, subjects never indexed.
    """
    d = shape.dim
    crng = np.random.default_rng(12345)  # the corpus' structure does not depend on ``seed``
    centres = crng.normal(size=(shape.classes, d)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    class_basis = crng.normal(size=(shape.classes, shape.class_rank, d)).astype(np.float32) / np.sqrt(d)
    n_subj = n_subjects or max(1, n // shape.windows_per_subject)
    subj_class = crng.integers(0, shape.classes, n_subj)

    def subject_params(rng, classes):
        z = rng.normal(size=(len(classes), shape.class_rank)).astype(np.float32) / np.sqrt(shape.class_rank)
        centre = centres[classes] + shape.subject_spread * np.einsum("ni,nid->nd", z, class_basis[classes])
        basis = rng.normal(size=(len(classes), shape.window_rank, d)).astype(np.float32) / np.sqrt(d)
        return centre, basis

    subj_centre, subj_basis = subject_params(crng, subj_class)
    rng = np.random.default_rng(seed)
    out = np.empty((n, d), np.float32)
    chunk = 50_000
    for s in range(0, n, chunk):
        m = min(chunk, n - s)
        if new_subject_share > 0:
            fresh = rng.random(m) < new_subject_share
            cls = rng.integers(0, shape.classes, m)
            c_new, b_new = subject_params(rng, cls)
        subj = rng.integers(0, n_subj, m) if seed else (np.arange(s, s + m) // shape.windows_per_subject) % n_subj
        centre, basis = subj_centre[subj], subj_basis[subj]
        if new_subject_share > 0:
            centre = np.where(fresh[:, None], c_new, centre)
            basis = np.where(fresh[:, None, None], b_new, basis)
        z = rng.normal(size=(m, shape.window_rank)).astype(np.float32) / np.sqrt(shape.window_rank)
        x = (centre + shape.window_spread * np.einsum("ni,nid->nd", z, basis)
             + shape.window_noise * rng.normal(size=(m, d)).astype(np.float32) / np.sqrt(d))
        out[s:s + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def memory_bytes(index) -> int:
    return int(faiss.serialize_index(index).nbytes)


def time_queries(index, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Search one query at a time; returns (ids [n, k], per-query seconds [n])."""
    ids = np.empty((len(q), k), np.int64)
    secs = np.empty(len(q))
    index.search(q[:1], k)  # warm
    for i in range(len(q)):
        t = time.perf_counter()
        _, ids[i] = index.search(q[i:i + 1], k)
        secs[i] = time.perf_counter() - t
    return ids, secs


def recall_at_k(ids: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(ids, truth)]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="fingerprints in the index")
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--windows-per-subject", type=int, default=50)
    ap.add_argument("--classes", type=int, default=32)
    ap.add_argument("--new-subjects", type=float, default=0.5, help="share of queries from subjects not indexed")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--exact-queries", type=int, default=40, help="queries timed one by one on the exact index")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--nlist", type=int, nargs="*", default=[1024, 4096])
    ap.add_argument("--nprobe", type=int, nargs="*", default=[4, 8, 16, 32, 64])
    ap.add_argument("--pq-m", type=int, default=32)
    ap.add_argument("--hnsw-n", type=int, default=100_000, help="HNSW built on this many (0 = skip)")
    ap.add_argument("--hnsw-full", action="store_true", help="build HNSW on all n (~9 min at 1 M on 2 cores)")
    ap.add_argument("--build-threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)

    k = args.k
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, faiss {faiss.__version__}")
    shape = CorpusShape(dim=args.dim, classes=args.classes, windows_per_subject=args.windows_per_subject)
    print(f"data: {args.n:,} synthetic fingerprints (unit vectors), {args.dim}-d: {args.classes} classes > "
          f"{args.n // args.windows_per_subject:,} subjects > {args.windows_per_subject} windows each "
          f"(CorpusShape {asdict(shape)}); {args.queries} query windows, {args.new_subjects:.0%} from subjects not "
          f"in the index; top-{k}")
    t = time.perf_counter()
    x = synthetic_corpus(args.n, shape, seed=0)
    q = synthetic_corpus(args.queries, shape, seed=args.seed + 1, new_subject_share=args.new_subjects,
                         n_subjects=max(1, args.n // args.windows_per_subject))
    print(f"generated in {time.perf_counter() - t:.1f} s")

    rows = []
    faiss.omp_set_num_threads(args.build_threads)
    t = time.perf_counter()
    flat = faiss.IndexFlatIP(args.dim)
    flat.add(x)
    build_flat = time.perf_counter() - t
    _, truth = flat.search(q, k)  # batched ground truth (multi-threaded)
    faiss.omp_set_num_threads(1)
    exact_ids, exact_secs = time_queries(flat, q[:args.exact_queries], k)
    exact_ms = float(np.median(exact_secs) * 1e3)
    per_million = 1e6 / args.n
    rows.append({"index": "Flat (exact)", "params": "", "build_s": build_flat, "n": args.n,
                 "mb_per_million": memory_bytes(flat) / 2**20 * per_million,
                 "p50_ms": exact_ms, "p95_ms": float(np.quantile(exact_secs, 0.95) * 1e3),
                 "recall@10": recall_at_k(exact_ids, truth[:args.exact_queries])})
    print(f"exact: {exact_ms:.1f} ms/query (1 thread)", flush=True)
    gpu_res = None
    if hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0:
        gpu_res = faiss.StandardGpuResources()
        g = faiss.index_cpu_to_gpu(gpu_res, 0, flat)
        ids, secs = time_queries(g, q[:args.exact_queries], k)
        rows.append({"index": "Flat (exact, GPU)", "params": "", "build_s": build_flat, "n": args.n,
                     "mb_per_million": rows[0]["mb_per_million"], "p50_ms": float(np.median(secs) * 1e3),
                     "p95_ms": float(np.quantile(secs, 0.95) * 1e3),
                     "recall@10": recall_at_k(ids, truth[:args.exact_queries])})
        del g

    def run(name, index, build_s, settings, n_indexed=None):
        ps = faiss.ParameterSpace()
        n_indexed = n_indexed or args.n
        mb = memory_bytes(index) / 2**20 * 1e6 / n_indexed
        for setting in settings:
            ps.set_index_parameters(index, setting)
            ids, secs = time_queries(index, q, k)
            rows.append({"index": name, "params": setting, "build_s": build_s, "mb_per_million": mb, "n": n_indexed,
                         "p50_ms": float(np.median(secs) * 1e3), "p95_ms": float(np.quantile(secs, 0.95) * 1e3),
                         "recall@10": recall_at_k(ids, truth)})
            r = rows[-1]
            print(f"  {name:<22} {r['params']:<22} recall@10 {r['recall@10']:.3f}  p50 {r['p50_ms']:.3f} ms", flush=True)

    for nlist in args.nlist:
        faiss.omp_set_num_threads(args.build_threads)
        t = time.perf_counter()
        cfg = IndexConfig(kind="ivf", nlist=nlist, seed=args.seed)
        index, spec, _ = new_faiss_index(x, args.n, args.dim, cfg)
        index.add(x)
        build = time.perf_counter() - t
        print(f"{spec}: built in {build:.1f} s (k-means on {min(args.n, cfg.train_per_list * nlist):,} vectors)", flush=True)
        faiss.omp_set_num_threads(1)
        run(spec, index, build, [f"nprobe={p}" for p in args.nprobe if p <= nlist])
        if gpu_res is not None:  # the same index searched on the GPU (faiss-gpu builds only)
            g = faiss.index_cpu_to_gpu(gpu_res, 0, index)
            faiss.GpuParameterSpace().set_index_parameters(g, "nprobe=16")
            ids, secs = time_queries(g, q, k)
            rows.append({"index": spec + " (GPU)", "params": "nprobe=16", "build_s": build, "n": args.n,
                         "mb_per_million": rows[-1]["mb_per_million"], "p50_ms": float(np.median(secs) * 1e3),
                         "p95_ms": float(np.quantile(secs, 0.95) * 1e3), "recall@10": recall_at_k(ids, truth)})
            del g
        del index

    nlist = args.nlist[0]
    faiss.omp_set_num_threads(args.build_threads)
    t = time.perf_counter()
    cfg = IndexConfig(kind="ivfpq", nlist=nlist, pq_m=args.pq_m, seed=args.seed)
    index, spec, _ = new_faiss_index(x, args.n, args.dim, cfg)
    index.add(x)
    build = time.perf_counter() - t
    print(f"{spec}: built in {build:.1f} s")
    faiss.omp_set_num_threads(1)
    run(spec, index, build, [f"nprobe=16,k_factor_rf={kf}" for kf in (4, 16, 64)])
    # PQ codes alone (no re-ranking): the memory a 100 M corpus can afford on one GPU
    base = faiss.downcast_index(index.base_index)
    ids, secs = time_queries(base, q, k)
    rows.append({"index": f"IVF{nlist},PQ{args.pq_m} (no refine)", "params": f"nprobe={base.nprobe}", "build_s": build,
                 "n": args.n,
                 "mb_per_million": memory_bytes(base) / 2**20 * per_million,
                 "p50_ms": float(np.median(secs) * 1e3), "p95_ms": float(np.quantile(secs, 0.95) * 1e3),
                 "recall@10": recall_at_k(ids, truth)})
    del index, base

    if args.hnsw_n or args.hnsw_full:
        n_h = args.n if args.hnsw_full else min(args.hnsw_n, args.n)
        faiss.omp_set_num_threads(args.build_threads)
        sub = x[:n_h]
        flat_sub = faiss.IndexFlatIP(args.dim)
        flat_sub.add(sub)
        _, truth_sub = flat_sub.search(q, k)
        t = time.perf_counter()
        cfg = IndexConfig(kind="hnsw")
        index, spec, _ = new_faiss_index(sub, n_h, args.dim, cfg)
        index.add(sub)
        build = time.perf_counter() - t
        note = "" if n_h == args.n else f" on {n_h:,} (build time x{args.n / n_h:.0f}+ at {args.n:,}: not measured)"
        print(f"{spec}: built in {build:.1f} s{note}")
        faiss.omp_set_num_threads(1)
        truth_saved = truth
        truth = truth_sub
        run(spec + ("" if n_h == args.n else f" [{n_h // 1000}k]"), index, build,
            [f"efSearch={e}" for e in (32, 64, 128, 256)], n_indexed=n_h)
        truth = truth_saved  # noqa: F841

    print()
    print(f"{'index':<28} {'params':<22} {'build s':>8} {'MB/1M':>8} {'p50 ms':>8} {'p95 ms':>8} {'recall@10':>9} {'speed-up':>9}")
    for r in rows:
        full = r.get("n", args.n) == args.n
        # a subset index is not compared with exact search over all n (it searches fewer vectors)
        r["speedup_vs_exact"] = exact_ms / r["p50_ms"] if full and r["p50_ms"] > 0 else None
        speed = f"{r['speedup_vs_exact']:8.0f}x" if full else f"{'(subset)':>9}"
        print(f"{r['index']:<28} {r['params']:<22} {r['build_s']:8.1f} {r['mb_per_million']:8.0f} {r['p50_ms']:8.3f} "
              f"{r['p95_ms']:8.3f} {r['recall@10']:9.3f} {speed}")
    print("(latency: one query at a time on one thread; p95 includes other processes sharing the cores; "
          "HNSW recall is against exact search over the same subset)")
    ok = [r for r in rows[1:] if r["recall@10"] >= 0.95 and "HNSW" not in r["index"] and "GPU" not in r["index"]]
    if ok:
        best = min(ok, key=lambda r: r["p50_ms"])
        print(f"\nfastest full-size index with recall@10 >= 0.95: {best['index']} {best['params']}: "
              f"{best['p50_ms']:.3f} ms/query (goal <= 2 ms), {best['speedup_vs_exact']:.0f}x faster than exact, "
              f"recall@10 {best['recall@10']:.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"n": args.n, "shape": asdict(shape), "queries": args.queries,
                       "machine": f"{platform.machine()}, {os.cpu_count()} cores", "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
