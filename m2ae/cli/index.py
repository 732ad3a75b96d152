"""`m2ae embed` and `m2ae index build|query|calibrate`: fingerprints at scale and the FAISS index."""
from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .output import emit


def cmd_embed(args: argparse.Namespace) -> int:
    embed = _embedder(args)

    res = embed(args.paths, args.model, args.out, batch_size=args.batch_size,
                num_workers=getattr(args, "workers", None), progress=True, splits=args.splits)
    summary = {"out": str(args.out), **res.manifest, "windows_per_s": round(res.windows_per_s, 1)}
    emit(summary, args.json, lambda s: (
        f"embedded {s['count']} windows from {s['records']} records ({s['low_quality_windows']} low-quality, kept) "
        f"-> {s['out']}  [{s['windows_per_s']} windows/s, model {s['model_version']}]"
        + _skipped_line(s.get("skip_report"), s["skipped"])))
    return 0


def _skipped_line(report: dict | None, skipped: list[dict]) -> str:
    """The lines after the summary: records left out, counted per reason, with a few names each
    (``m2ae.io.corpus.report_lines``); "" when none were. ``skipped`` (the embedder's own list) stands in
    for an output written before reports were counted."""
    from ..io.corpus import SkipReport, report_lines

    if not report:
        fallback = SkipReport()
        for x in skipped or []:
            fallback.add(str(x.get("error", "")), str(x.get("input") or "?"))
        report = fallback.as_dict()
    lines = report_lines(report)
    return "\n" + "\n".join(lines) if lines else ""


def build_command_of(args: argparse.Namespace) -> str:
    """The `m2ae index build` command line that rebuilds this index (kept in its manifest)."""
    parts = ["m2ae", "index", "build", *map(str, args.paths), "--out", str(args.out)]
    if args.model:
        parts += ["--model", str(args.model)]
    if args.simulate:
        parts += ["--simulate", str(args.simulate), "--seed", str(args.seed)]
        if getattr(args, "duration", 60.0) != 60.0:
            parts += ["--duration", f"{args.duration:g}"]
    if getattr(args, "map", "umap") != "umap":
        parts += ["--map", args.map]
    if getattr(args, "splits", None):
        parts += ["--splits", *args.splits]
    return shlex.join(parts)


def cmd_index_build(args: argparse.Namespace) -> int:
    from ..index import MapConfig, build_index

    idx = build_index(args.paths, args.out, model=args.model, simulate=args.simulate, seed=args.seed,
                      duration_s=getattr(args, "duration", 60.0), batch_size=getattr(args, "batch_size", 256),
                      num_workers=getattr(args, "workers", None),
                      map_config=MapConfig(method=getattr(args, "map", "umap")), splits=args.splits,
                      build_command=build_command_of(args), engine=_engine(args))
    m = idx.manifest
    summary = {"out": str(args.out), "count": m["count"], "records": m["records"], "subjects": m["subjects"],
               "index_type": m["index_type"], "map": m["map"]["method"], "model_version": m["model_version"],
               "skipped_inputs": m["skipped_inputs"], "skip_report": m.get("skip_report"),
               "timings_s": m["timings_s"], "embedding": m["embedding"]}
    emit(summary, args.json, lambda s: (
        f"index {s['out']}: {s['count']} windows, {s['records']} records, {s['subjects']} subjects, "
        f"{s['index_type']} + {s['map']} map, model {s['model_version']}"
        + _skipped_line(s.get("skip_report"), s["skipped_inputs"])))
    return 0


def cmd_index_query(args: argparse.Namespace) -> int:
    from ..index import query_record

    read_kwargs = {k: getattr(args, k) for k in ("fs", "ecg", "ppg") if getattr(args, k, None) is not None}
    res = query_record(args.path, index=args.index, model=getattr(args, "model", None), k=args.k,
                       exclude_subject=args.exclude_subject, read_kwargs=read_kwargs,
                       mode=getattr(args, "mode", "windows"))
    for note in res["notes"]:
        print(f"note: {note}", file=sys.stderr)
    emit(res, args.json, _human_query)
    return 0


def _human_query(res: dict) -> str:
    q = res["query"]
    lines = [f"query {q['path']}: record {q['record']}, subject {q['subject_id']}, {q['n_windows']} windows"
             + (f", labels {q['labels'].get('rhythm')}" if q["labels"].get("rhythm") else "")]
    lines.append(f"{'rank':>4} {'score':>6}  {'record':<28} {'subject':<14} {'start_s':>7}  rhythm")
    for n in res["neighbours"]:
        lines.append(f"{n['rank']:>4} {n['score']:6.3f}  {str(n['record'])[:28]:<28} {str(n['subject_id'])[:14]:<14} "
                     f"{n['start_s']:7.1f}  {n.get('label_rhythm') or '-'}")
    for key, a in res["label_agreement"].items():
        lines.append(f"{key}={a['query']}: {a['neighbours_same']:.0%} of neighbours "
                     f"vs {a['index_base_rate']:.0%} of the index")
    fam = res.get("familiarity") or {}
    if fam.get("calibrated"):
        lines.append(f"familiarity ({fam['mode']}): median top-1 similarity {fam['median_top1']:.3f} "
                     f"(held-out records: {fam.get('flag_quantile_pct', 1):g} % below {fam['record_threshold']:.3f}); "
                     f"{fam['share_unfamiliar']:.0%} of windows flagged unfamiliar"
                     + (" -> UNFAMILIAR record, predictions unreliable" if fam["record_unfamiliar"] else ""))
    elif fam:
        lines.append(f"familiarity: not calibrated ({fam.get('note')})")
    return "\n".join(lines)


def cmd_index_calibrate(args: argparse.Namespace) -> int:
    from ..index import calibrate_familiarity, open_index
    from ..index.files import FAMILIARITY_FILE
    from ..index.fingerprints import resolve_model

    model = resolve_model(getattr(args, "model", None))
    idx = open_index(getattr(args, "index", None), model=model)
    real, real_data = _held_out_real(getattr(args, "cinc2015", None))
    ref = calibrate_familiarity(idx, model, n_windows=getattr(args, "windows", 600), real=real, real_data=real_data)
    summary = {"index": str(idx.path), "file": str(Path(str(idx.path)) / FAMILIARITY_FILE),
               "model_version": ref["model_version"], "n": ref["n"], "seed": ref["seed"],
               "window_quantiles": {m: v["window_quantiles"] for m, v in ref["modes"].items()},
               "subject_median_quantiles": {m: v["subject_median_quantiles"] for m, v in ref["modes"].items()},
               "real": f", {ref['real_records']} held-out real records per mode" if real else ""}
    emit(summary, getattr(args, "json", False), lambda s: "\n".join(
        [f"familiarity reference -> {s['file']} ({s['n']} unseen simulated windows, seed {s['seed']}"
         f"{s['real']}, model {s['model_version']})",
         "top-1 similarity quantiles (1/2.5/5/10/50 %), windows | subject medians:"]
        + [f"  {m:<4} " + " ".join(f"{v:.3f}" for v in s["window_quantiles"][m].values()) + "  |  "
           + " ".join(f"{v:.3f}" for v in s["subject_median_quantiles"][m].values()) for m in s["window_quantiles"]]))
    return 0


def cmd_index_cohort(args: argparse.Namespace) -> int:
    """`m2ae index cohort --where "…" --out DIR`: the matching windows' metadata + fingerprints (CSV,
    Parquet), their label make-up against the whole index, and WFDB records of their display waveforms."""
    from ..index import open_index
    from ..index.cohort import export_cohort, select_cohort

    idx = open_index(getattr(args, "index", None))
    ids = select_cohort(idx, where=args.where, ids=args.ids)
    res = export_cohort(idx, ids, args.out, wfdb=not args.no_wfdb)
    makeup = res.pop("label_makeup")
    top = makeup[makeup["cohort_share"].notna()].sort_values("cohort_count", ascending=False)
    res["label_makeup"] = top.head(12)[["column", "value", "cohort_count", "cohort_share", "index_share"]
                                      ].to_dict(orient="records")
    res["where"] = args.where
    emit(res, args.json, lambda r: "\n".join(
        [f"cohort: {r['windows']} windows from {r['records']} records -> {args.out}"]
        + [f"  {row['column']}={row['value']}: {row['cohort_share']:.0%} of the cohort "
           f"vs {row['index_share']:.0%} of the index" for row in r["label_makeup"]]
        + [f"  wrote {path}" for path in r["files"].values()]))
    return 0


def _held_out_real(data_dir: str | None) -> tuple[list[dict[str, Any]], str | None]:
    """The calibration half of a CinC 2015 corpus' validation split as familiarity reference records
    (cached alarm windows, ``m2ae.train.alarm_data``); none without ``--cinc2015``."""
    if not data_dir:
        return [], None
    from ..index.calibration import calibration_half
    from ..train.alarm_data import load_alarm_records

    recs = load_alarm_records(data_dir, splits=("validation",))
    keep = set(calibration_half([r.name for r in recs]))
    real = [{"record": r.name, "subject": r.name, "ecg": r.ecg, "ppg": r.ppg} for r in recs
            if r.name in keep and (r.ecg is not None or r.ppg is not None)]
    return real, (f"{len(real)} CinC 2015 validation records (every other one; the rest stay out to check it), "
                  "the minute before each alarm")


def _engine(args: argparse.Namespace) -> str:
    """The engine `--engine` names ("ray" when not given and RAY_ADDRESS is set); ray must be importable."""
    from ..index.ray_engine import engine_of, require_ray

    engine = engine_of(getattr(args, "engine", None))
    if engine == "ray":
        require_ray()  # the missing extra is one clear error line before any work starts
    return engine


def _embedder(args: argparse.Namespace) -> Callable[..., Any]:
    """`m2ae embed`'s function for the chosen engine (``embed`` or ``embed_on_ray``: same arguments)."""
    if _engine(args) == "ray":
        from ..index.ray_engine import embed_on_ray

        return embed_on_ray
    from ..index import embed

    return embed


def _add_embedding_options(p: argparse.ArgumentParser) -> None:
    """Options shared by `m2ae embed` and `m2ae index build`: batching, workers, engine, output, split sides."""
    p.add_argument("--batch-size", type=int, default=256, help="windows per model call (default 256)")
    p.add_argument("--workers", type=int, help="DataLoader workers reading records (default: 0 on <= 2 cores); "
                   "with --engine ray: fingerprint actors on a CPU cluster (default: half its CPUs)")
    p.add_argument("--engine", choices=["local", "ray"],
                   help="local: this process (default); ray: Ray Data on the cluster at RAY_ADDRESS or a local one "
                   "(default when RAY_ADDRESS is set; needs the scale extra)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--splits", nargs="+", choices=["train", "validation", "test"], metavar="SIDE",
                   help="corpora with a record split (cinc2015): only these sides, e.g. train validation")


def add_commands(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("embed", help="fingerprint every window of files/folders/corpora")
    s.add_argument("paths", nargs="+")
    s.add_argument("--out", required=True, help="output folder (fingerprints.npy + metadata.parquet/csv)")
    s.add_argument("--model", help="checkpoint (default: shipped)")
    _add_embedding_options(s)
    s.set_defaults(func=cmd_embed)

    s = sub.add_parser("index", help="build and query fingerprint indexes")
    xs = s.add_subparsers(dest="index_command", metavar="ACTION")
    b = xs.add_parser("build", help="embed records and build a FAISS index with a 2-D map")
    b.add_argument("paths", nargs="*", help="record files/folders (optional with --simulate)")
    b.add_argument("--out", required=True, help="index folder to write (replaced atomically)")
    b.add_argument("--model", help="checkpoint (default: shipped)")
    b.add_argument("--simulate", type=int, default=0, metavar="N", help="also add N simulated subjects")
    b.add_argument("--seed", type=int, default=0, help="simulator seed (default 0)")
    b.add_argument("--duration", type=float, default=60.0, help="seconds per simulated subject (default 60)")
    b.add_argument("--map", choices=["umap", "pca"], default="umap", help="2-D map method (default umap)")
    _add_embedding_options(b)
    b.set_defaults(func=cmd_index_build)
    q = xs.add_parser("query", help="find the records most similar to one record")
    q.add_argument("path")
    q.add_argument("--k", type=int, default=10)
    q.add_argument("--index", help="index folder (default: shipped)")
    q.add_argument("--model", help="checkpoint (default: shipped); must be the index's model version")
    q.add_argument("--exclude-subject", action="store_true", help="drop neighbours of the same subject")
    q.add_argument("--mode", choices=["windows", "mean"], default="windows",
                   help="search with every window, best hits merged (default), or the record's mean fingerprint")
    q.add_argument("--fs", type=float)
    q.add_argument("--ecg")
    q.add_argument("--ppg")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_index_query)
    c = xs.add_parser("calibrate",
                      help="write familiarity.json: top-1 similarity and signal shape of held-out windows")
    c.add_argument("--index", help="index folder (default: shipped)")
    c.add_argument("--model", help="checkpoint (default: shipped); must be the index's model version")
    c.add_argument("--windows", type=int, default=600, help="reference windows (default 600)")
    c.add_argument("--cinc2015", metavar="DIR", help="also calibrate on held-out real records: half of this CinC 2015 "
                   "corpus' validation split, each searched without its own windows")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_index_calibrate)
    h = xs.add_parser("cohort", help="export the windows matching a predicate: CSV/Parquet (metadata + "
                      "fingerprints), label make-up, WFDB zip of their display waveforms")
    h.add_argument("--where", help='predicate over the metadata, e.g. \'source == "cinc2015" and alarm_type == "VT" '
                   'and true_alarm == true\' or \'label.rhythm in ["AF", "PVC"]\'')
    h.add_argument("--ids", type=int, nargs="+", metavar="ID", help="window ids (with --where: both must hold)")
    h.add_argument("--out", required=True, help="folder to write cohort.csv, cohort.parquet, label_makeup.csv, "
                   "cohort_wfdb.zip")
    h.add_argument("--index", help="index folder (default: shipped)")
    h.add_argument("--no-wfdb", action="store_true", help="skip the WFDB zip")
    h.add_argument("--json", action="store_true")
    h.set_defaults(func=cmd_index_cohort)
