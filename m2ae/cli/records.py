"""`m2ae read` and `m2ae simulate`: one record summarised under the signal contract; simulated cohorts."""
from __future__ import annotations

import argparse

from .output import emit


def cmd_read(args: argparse.Namespace) -> int:
    """`m2ae read`: load a file, cut it to the contract (stride ``--stride`` s) and print the summary."""
    from ..io import load_record
    from ..signal import format_summary, preprocess, summarize

    rec = load_record(args.path, fs=args.fs, ecg=args.ecg, ppg=args.ppg)
    win = preprocess(rec, stride_s=args.stride)
    emit(summarize(rec, win), args.json, format_summary)
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    """`m2ae simulate`: write ``--subjects`` records of ``--duration`` s at ``--fs`` Hz with labels."""
    from ..simulate import write_cohort

    manifest = write_cohort(args.subjects, args.out, seed=args.seed, duration_s=args.duration,
                            fmt=args.format, fs_hz=args.fs)
    emit(manifest, args.json, lambda m: f"wrote {len(m['records'])} records to {args.out}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register `read` and `simulate` on the top-level subparsers."""
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
