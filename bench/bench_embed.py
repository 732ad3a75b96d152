"""Embedding throughput, index build time, and map placement latency/fidelity, in one run.

Data: simulated paired ECG+PPG subjects (m2ae.simulate) fingerprinted by the model given with
``--model`` (default: the shipped checkpoint). Printed, each next to its goal where there is one:

1. embedding throughput in windows/s: end to end (simulate + preprocess with quality + model) and the
   model alone (batched forward), on this machine's device (CPU or CUDA);
2. index build time per 100 k windows: the FAISS index and the UMAP map are MEASURED on the
   windows embedded here and on ``--map-points`` fingerprints, embedding time is EXTRAPOLATED
   linearly from the measured throughput (said so in the output);
3. map placement of a new record: warm (index loaded; fingerprint -> place) vs goal <= 50 ms, and in a
   fresh Python process (interpreter start, import, open index, place) vs goal <= 3 s, both for a
   given fingerprint and for a whole new record file (read, preprocess, fingerprint, place);
4. placement fidelity: median distance between our placement (FAISS neighbours, no umap) and
   UMAP's own ``transform``, in % of the map's diameter, and how often both put the point among
   neighbours of the same rhythm.

    OMP_WAIT_POLICY=PASSIVE python bench/bench_embed.py                 # ~3-5 min on 2 cores
    python bench/bench_embed.py --subjects 60 --map-points 3000         # quicker
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def fresh_process_seconds(code: str, repeats: int = 3) -> list[float]:
    """Wall time of ``python -c code`` from launch to exit (interpreter start included)."""
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
        out.append(time.perf_counter() - t)
        if r.returncode != 0:
            raise RuntimeError(r.stderr[-2000:])
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="checkpoint (default: shipped)")
    ap.add_argument("--subjects", type=int, default=150, help="simulated subjects to embed (60 s = 6 windows each)")
    ap.add_argument("--map-points", type=int, default=10_000, help="fingerprints the UMAP map is fitted on")
    ap.add_argument("--held-out", type=int, default=300, help="new fingerprints placed for the fidelity check")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)

    import torch

    from m2ae.index import FingerprintIndex, MapConfig, embed, simulated_items
    from m2ae.index.mapping import map_diameter
    from m2ae.index.fingerprints import resolve_model
    from m2ae.io import write_record
    from m2ae.simulate import simulate_record, simulate_windows

    results: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"}
    model = resolve_model(args.model)
    results["device"] = str(model.device)
    results["model_version"] = model.version
    print(f"machine: {results['machine']}; model {model.version} on {model.device}")

    # 1. throughput ------------------------------------------------------------------------------
    t = time.perf_counter()
    res = embed(None, model, None, batch_size=args.batch_size, progress=False,
                extra_items=simulated_items(args.subjects, seed=101))
    e2e_s = time.perf_counter() - t
    n_win = len(res.fingerprints)
    batch = simulate_windows(2 * args.batch_size, seed=7)
    model.fingerprint(ecg=batch["ecg"][:8], ppg=batch["ppg"][:8])  # warm
    t = time.perf_counter()
    model.fingerprint(ecg=batch["ecg"], ppg=batch["ppg"], batch_size=args.batch_size)
    model_wps = len(batch["ecg"]) / (time.perf_counter() - t)
    results["embed_windows_per_s_end_to_end"] = n_win / e2e_s
    results["embed_windows_per_s_model_only"] = model_wps
    print(f"\n1. embedding: {n_win} windows of {args.subjects} simulated subjects in {e2e_s:.1f} s = "
          f"{n_win / e2e_s:.0f} windows/s end to end (simulate + preprocess with quality + model); "
          f"model alone {model_wps:.0f} windows/s (batch {args.batch_size}, {model.device})")

    # 2. index build per 100 k -------------------------------------------------------------------
    n_map = args.map_points
    sim = simulate_windows(n_map + args.held_out, seed=11)
    fps = model.fingerprint(ecg=sim["ecg"], ppg=sim["ppg"], batch_size=args.batch_size)
    from m2ae.contract import RHYTHM_CODES

    labels = np.asarray(RHYTHM_CODES)[np.asarray(sim["rhythm"])]
    import pandas as pd

    meta = pd.DataFrame({"record": [f"w{i}" for i in range(n_map)], "subject_id": [f"w{i}" for i in range(n_map)],
                         "label_rhythm": labels[:n_map].astype(str)})
    t = time.perf_counter()
    idx = FingerprintIndex.build(fps[:n_map], meta, model.version, map_config=MapConfig(fit_sample=20_000),
                                 keep_reducer=True)
    build_s = time.perf_counter() - t
    timings = idx.manifest["timings_s"]
    per_100k_embed = 100_000 / results["embed_windows_per_s_end_to_end"]
    # FAISS flat add is linear; UMAP is fitted on at most fit_sample (20 k) points and the rest are
    # placed by neighbours, so beyond 20 k the map cost grows only by the placement (measured below).
    results.update({"index_build_s_measured": build_s, "index_build_points": n_map,
                    "faiss_s": timings["index_build"], "umap_fit_s": timings["map_fit"],
                    "embed_s_per_100k_extrapolated": per_100k_embed})
    print(f"\n2. index build on {n_map:,} windows: {build_s:.1f} s measured (FAISS {timings['index_build']:.2f} s, "
          f"UMAP fit {timings['map_fit']:.1f} s); embedding 100 k windows EXTRAPOLATED from the throughput above: "
          f"{per_100k_embed / 60:.1f} min end to end ({100_000 / model_wps / 60:.1f} min of it in the model)")

    # 4. fidelity vs UMAP transform ---------------------------------------------------------------
    new = fps[n_map:]
    t = time.perf_counter()
    by_umap = idx.reducer.transform(new)
    umap_transform_s = time.perf_counter() - t
    t = time.perf_counter()
    placed = idx.place(new)
    place_batch_s = time.perf_counter() - t
    xy = idx.metadata[["map_x", "map_y"]].to_numpy()
    diam = map_diameter(xy)
    rel = np.linalg.norm(by_umap - placed, axis=1) / diam
    map_labels = meta["label_rhythm"].to_numpy()

    def majority_label(points):
        d = ((points[:, None, :] - xy[None, :, :]) ** 2).sum(-1)
        nn = np.argsort(d, axis=1)[:, :15]
        out = []
        for row in map_labels[nn]:
            vals, counts = np.unique(row, return_counts=True)
            out.append(vals[np.argmax(counts)])
        return np.asarray(out)

    same = float((majority_label(by_umap) == majority_label(placed)).mean())
    results.update({"placement_vs_umap_median_pct_diameter": float(np.median(rel) * 100),
                    "placement_vs_umap_p90_pct_diameter": float(np.quantile(rel, 0.9) * 100),
                    "placement_same_rhythm_neighbourhood": same,
                    "umap_transform_s": umap_transform_s, "place_batch_s": place_batch_s})
    print(f"\n4. placement fidelity on {len(new)} new fingerprints (map fitted on {n_map:,}): median "
          f"{np.median(rel) * 100:.2f} % of the map diameter from UMAP.transform (p90 {np.quantile(rel, 0.9) * 100:.2f} %); "
          f"same rhythm neighbourhood {same:.1%}; UMAP.transform took {umap_transform_s:.1f} s in this warm process, "
          f"our placement {place_batch_s * 1e3:.1f} ms for all {len(new)}")

    # 3. placement latency ------------------------------------------------------------------------
    with tempfile.TemporaryDirectory() as tmp:
        idx.save(Path(tmp) / "idx")
        loaded = FingerprintIndex.load(Path(tmp) / "idx")
        rec = simulate_record("AF", duration_s=60.0, seed=5)
        rec_path = write_record(rec, Path(tmp) / "new_record.npz")
        from m2ae.signal import preprocess

        warm_fp, warm_rec = [], []
        for i in range(50):
            t = time.perf_counter()
            loaded.place(new[i % len(new)])
            warm_fp.append(time.perf_counter() - t)
        from m2ae.index.fingerprints import record_fingerprint
        from m2ae.io import load_record

        for _ in range(5):
            t = time.perf_counter()
            win = preprocess(load_record(rec_path))
            fp = record_fingerprint(model.fingerprint(ecg=win.ecg, ppg=win.ppg), win.low_quality)
            loaded.place(fp)
            warm_rec.append(time.perf_counter() - t)
        np.save(Path(tmp) / "fp.npy", new[0])
        code_fp = textwrap.dedent(f"""
            import numpy as np, m2ae
            idx = m2ae.open_index({str(Path(tmp) / 'idx')!r})
            print(idx.place(np.load({str(Path(tmp) / 'fp.npy')!r})))
        """)
        ckpt = args.model
        code_rec = textwrap.dedent(f"""
            import m2ae
            from m2ae.index.fingerprints import record_fingerprint
            model = m2ae.load_model({ckpt!r})
            idx = m2ae.open_index({str(Path(tmp) / 'idx')!r}, model=model)
            win = m2ae.preprocess(m2ae.load_record({str(rec_path)!r}))
            print(idx.place(record_fingerprint(model.fingerprint(ecg=win.ecg, ppg=win.ppg), win.low_quality)))
        """)
        code_rec_fast = textwrap.dedent(f"""
            import m2ae
            from m2ae.index import place_record
            model = m2ae.load_model({ckpt!r})
            print(place_record({str(rec_path)!r}, index={str(Path(tmp) / 'idx')!r}, model=model)["record_xy"])
        """)
        fresh_fp = fresh_process_seconds(code_fp)
        fresh_rec = fresh_process_seconds(code_rec)
        fresh_rec_fast = fresh_process_seconds(code_rec_fast)
        fresh_umap = fresh_process_seconds("import umap", repeats=1)
    results.update({"place_warm_ms_p50": float(np.median(warm_fp) * 1e3),
                    "place_record_warm_ms_p50": float(np.median(warm_rec) * 1e3),
                    "place_fresh_process_s_median": float(np.median(fresh_fp)),
                    "place_record_fresh_process_s_median": float(np.median(fresh_rec)),
                    "place_record_fast_fresh_process_s_median": float(np.median(fresh_rec_fast)),
                    "import_umap_fresh_s": fresh_umap[0]})
    print(f"\n3. placement latency (index of {loaded.count:,} windows):")
    print(f"   warm, fingerprint -> map:              {np.median(warm_fp) * 1e3:8.2f} ms   goal <= 50 ms   "
          f"({50 / (np.median(warm_fp) * 1e3):.0f}x under)")
    print(f"   warm, new 60-s record file -> map:     {np.median(warm_rec) * 1e3:8.1f} ms   (read + preprocess + model + place)")
    print(f"   fresh process, fingerprint -> map:     {np.median(fresh_fp):8.2f} s    goal <= 3 s     "
          f"({3 / np.median(fresh_fp):.1f}x under)")
    print(f"   fresh process, record file -> map:     {np.median(fresh_rec):8.2f} s    goal <= 3 s     "
          f"({3 / np.median(fresh_rec):.1f}x under)" if np.median(fresh_rec) <= 3 else
          f"   fresh process, record file -> map:     {np.median(fresh_rec):8.2f} s    goal <= 3 s     "
          f"({np.median(fresh_rec) / 3:.1f}x over: imports of torch/neurokit2 dominate)")
    print(f"   fresh process, record file -> map via place_record (contract fast path, no neurokit2): "
          f"{np.median(fresh_rec_fast):.2f} s   goal <= 3 s   ratio {np.median(fresh_rec_fast) / 3:.2f}")
    print(f"   for comparison, a fresh `import umap` alone: {fresh_umap[0]:.1f} s (never on the query path)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
