"""`m2ae report`: one record's window as a PDF report (record, ECG grid, PPG, reconstructions, predictions,
interval measurements, neighbours, model version; "not for clinical use" on every page)."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InputError


def cmd_report(args: argparse.Namespace) -> int:
    """`m2ae report`: load ``record``, build the report (model and index optional) and write ``--out``."""
    from ..index.sources import load_path
    from ..report import record_report_pdf

    out = Path(args.out)
    if out.suffix.lower() != ".pdf":
        raise InputError(f"--out must name a .pdf file, got {out.name!r}")
    if not out.parent.is_dir():
        raise InputError(f"--out: folder {str(out.parent)!r} does not exist")
    if args.window is not None and args.window < 0:
        raise InputError(f"--window must be 0 or more, got {args.window}")
    # as the app and `m2ae index query` read it: a nearby manifest.json adds the subject and labels
    # (a CinC sample's alarm time, so the report opens on the alarm window as the app does)
    rec = load_path(args.record, {"fs": args.fs})
    model = index = None
    if not args.no_model:
        from ..model.inference import load_model

        model = load_model(args.model)
        if not args.no_index:
            from ..index.store import open_index

            index = open_index(args.index, model=model)
    data = record_report_pdf(rec, window=args.window, model=model, index=index)
    out.write_bytes(data)
    print(f"wrote {out} ({len(data) / 1024:.0f} KiB)")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register `report` on the top-level subparsers."""
    s = sub.add_parser("report", help="write a PDF report of one record window (not for clinical use)")
    s.add_argument("record", help="WFDB .hea, CSV/TSV, NPZ/NPY, EDF, or .vital file")
    s.add_argument("--out", required=True, help="the PDF to write")
    s.add_argument("--window", type=int, help="0-based 10-s window (default: the alarm/event window, else the "
                                              "best-quality one)")
    s.add_argument("--model", help="checkpoint (default: shipped)")
    s.add_argument("--index", help="index folder (default: $M2AE_INDEX or shipped)")
    s.add_argument("--fs", type=float, help="sampling rate in Hz when the file does not say")
    s.add_argument("--no-model", action="store_true", help="no predictions, reconstructions or neighbours")
    s.add_argument("--no-index", action="store_true", help="no neighbours or familiarity")
    s.set_defaults(func=cmd_report)
