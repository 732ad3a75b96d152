"""`m2ae` command line. Each subcommand's work lives in the library; this file parses and reports.

Bad input prints one line ``error: …`` on stderr and exits 2, never a traceback
(set ``M2AE_DEBUG=1`` to see one for unexpected failures).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

from .errors import InputError
from .jsonable import to_jsonable

EXIT_BAD_INPUT = 2


def emit(result: Any, as_json: bool, human: Callable[[Any], str] | None = None) -> None:
    """Print a command's result as JSON (``--json``) or as readable text."""
    if as_json:
        print(json.dumps(to_jsonable(result), indent=2))
    elif human is not None:
        print(human(result))
    else:
        print(json.dumps(to_jsonable(result), indent=2))


# --- handlers: thin, each imports its module only when used -------------------------------------

def cmd_read(args) -> int:
    from .io import load_record
    from .signal import format_summary, preprocess, summarize

    rec = load_record(args.path, fs=args.fs, ecg=args.ecg, ppg=args.ppg)
    win = preprocess(rec, stride_s=args.stride)
    emit(summarize(rec, win), args.json, format_summary)
    return 0


def cmd_simulate(args) -> int:
    from .simulate import write_cohort

    manifest = write_cohort(args.subjects, args.out, seed=args.seed, duration_s=args.duration,
                            fmt=args.format, fs_hz=args.fs)
    emit(manifest, args.json, lambda m: f"wrote {len(m['records'])} records to {args.out}")
    return 0


def cmd_train(args) -> int:
    from .train import train_from_cli

    return train_from_cli(args)


def cmd_heads_fit(args) -> int:
    from .train.heads import fit_heads_from_cli

    return fit_heads_from_cli(args)


def cmd_embed(args) -> int:
    from .index import embed_from_cli

    return embed_from_cli(args)


def cmd_index_build(args) -> int:
    from .index import build_from_cli

    return build_from_cli(args)


def cmd_index_query(args) -> int:
    from .index import query_from_cli

    return query_from_cli(args)


def cmd_index_calibrate(args) -> int:
    from .index.familiarity import calibrate_from_cli

    return calibrate_from_cli(args)


def cmd_eval(args) -> int:
    from .eval import eval_from_cli

    return eval_from_cli(args)


def cmd_app(args) -> int:
    import subprocess

    app_dir = Path(__file__).resolve().parents[1] / "app"
    if not (app_dir / "streamlit_app.py").exists():
        raise InputError(f"app not found in {app_dir}: install m2ae from a source checkout (pip install -e .)")
    extra = [a for a in args.streamlit_args if a != "--"]
    # app/serve.py = `streamlit run app/streamlit_app.py` with the heavy imports warmed in the background.
    # Run from the checkout so its .streamlit/config.toml (theme, upload limit, XSRF, no watcher) applies.
    return subprocess.call([sys.executable, str(app_dir / "serve.py"), *extra], cwd=app_dir.parent)


# --- parser ----------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="m2ae", description="Cross-modal ECG/PPG foundation model tools.")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("read", help="read an ECG/PPG file and summarise it under the signal contract")
    s.add_argument("path", help="WFDB .hea, CSV/TSV, NPZ/NPY, EDF, or .vital file")
    s.add_argument("--fs", type=float, help="sampling rate in Hz when the file does not say")
    s.add_argument("--ecg", help="ECG column/channel name or 0-based index ('none' ignores ECG)")
    s.add_argument("--ppg", help="PPG column/channel name or 0-based index ('none' ignores PPG)")
    s.add_argument("--stride", type=float, default=10.0, help="window stride in s (default 10; 5 overlaps by half)")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=cmd_read)

    s = sub.add_parser("simulate", help="write simulated paired ECG+PPG subjects with labels")
    s.add_argument("--subjects", type=int, required=True, help="number of subjects")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--duration", type=float, default=60.0, help="seconds per subject (default 60)")
    s.add_argument("--fs", type=float, default=125.0, help="sampling rate in Hz (default 125)")
    s.add_argument("--format", choices=["npz", "csv", "wfdb", "edf"], default="npz")
    s.add_argument("--json", action="store_true", help="print the manifest as JSON")
    s.set_defaults(func=cmd_simulate)

    s = sub.add_parser("train", help="pretrain M2AE (CPU, one GPU with AMP, or torchrun DDP)")
    s.add_argument("--config", help="JSON/TOML file with TrainConfig fields")
    s.add_argument("--data", nargs="*", default=[], help="folders/files/corpora; none = simulator only")
    s.add_argument("--out", required=True, help="checkpoint path (.pt)")
    s.add_argument("--resume", action="store_true", help="resume from --out if it exists")
    s.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override config fields")
    s.add_argument("--json", action="store_true", help="print the final metrics as JSON")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("heads", help="task heads on frozen fingerprints")
    hs = s.add_subparsers(dest="heads_command", metavar="ACTION")
    f = hs.add_parser("fit", help="fit heads from a labels CSV (columns: path, and one per label)")
    f.add_argument("--labels", required=True, help="CSV with a 'path' column and label columns")
    f.add_argument("--model", help="checkpoint (default: shipped)")
    f.add_argument("--out", required=True, help="output checkpoint with the new heads")
    f.add_argument("--json", action="store_true")
    f.set_defaults(func=cmd_heads_fit)

    s = sub.add_parser("embed", help="fingerprint every window of files/folders/corpora")
    s.add_argument("paths", nargs="+")
    s.add_argument("--out", required=True, help="output folder (fingerprints.npy + metadata.parquet/csv)")
    s.add_argument("--model", help="checkpoint (default: shipped)")
    s.add_argument("--batch-size", type=int, default=256, help="windows per model call (default 256)")
    s.add_argument("--workers", type=int, help="DataLoader workers reading records (default: 0 on <= 2 cores)")
    s.add_argument("--json", action="store_true")
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
    b.add_argument("--batch-size", type=int, default=256, help="windows per model call (default 256)")
    b.add_argument("--workers", type=int, help="DataLoader workers reading records (default: 0 on <= 2 cores)")
    b.add_argument("--json", action="store_true")
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
    c = xs.add_parser("calibrate", help="write familiarity.json: top-1 similarity of unseen simulated windows (OOD reference)")
    c.add_argument("--index", help="index folder (default: shipped)")
    c.add_argument("--model", help="checkpoint (default: shipped); must be the index's model version")
    c.add_argument("--windows", type=int, default=600, help="reference windows (default 600)")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_index_calibrate)

    s = sub.add_parser("eval", help="evaluate a checkpoint against baselines (the metrics table)")
    s.add_argument("--model", help="checkpoint (default: shipped)")
    s.add_argument("--data", nargs="*", default=None, help="real paired records (default: ../shared/data/real)")
    s.add_argument("--sim-subjects", type=int, default=60, help="held-out simulated subjects")
    s.add_argument("--candidates", type=int, default=1000, help="candidates for PPG->ECG pair retrieval")
    s.add_argument("--heads-subjects", type=int, default=600,
                   help="held-out simulated subjects the heads are scored on (default 600, 2 windows each)")
    s.add_argument("--seed", type=int, default=None, help="held-out simulator seed (default: m2ae.train.splits.EVAL_SEED)")
    s.add_argument("--write-card", action="store_true", help="write the results into the model card")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_eval)

    s = sub.add_parser("app", help="start the web app (further arguments go to `streamlit run`, e.g. --server.port 8502)")
    s.add_argument("streamlit_args", nargs=argparse.REMAINDER)
    s.set_defaults(func=cmd_app)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) > 1 and argv[0] == "app" and argv[1] not in ("-h", "--help"):
        # `m2ae app --server.port 8502`: everything after `app` is streamlit's (argparse would
        # refuse an unknown leading option even with REMAINDER)
        args = parser.parse_args(["app"])
        args.streamlit_args = argv[1:]
    else:
        args = parser.parse_args(argv)
    if args.version:
        from . import __version__

        print(__version__)
        return 0
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        return int(args.func(args) or 0)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except FileNotFoundError as e:
        print(f"error: {e.filename or e}: no such file", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `m2ae read … | head`: the reader went away; that is not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as e:  # never a traceback for users; M2AE_DEBUG shows it
        if os.environ.get("M2AE_DEBUG"):
            raise
        print(f"error: unexpected {type(e).__name__}: {e} (set M2AE_DEBUG=1 for details)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
