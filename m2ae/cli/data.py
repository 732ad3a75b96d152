"""`m2ae data fetch cinc2015 --out DIR`: download a public corpus into the layout ``iter_corpus`` reads."""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from .output import emit

DATASETS = ("cinc2015",)


def _describe(summary: dict[str, Any]) -> str:
    """Text form of a ``FetchSummary`` (as a dict): where it went, what was fetched, what was left out."""
    lines = [f"{summary['out']}: {summary['records']} records in {Path(summary['labels_csv']).name}; "
             f"{summary['downloaded_files']} files downloaded ({summary['downloaded_bytes'] / 1e6:.1f} MB), "
             f"{summary['skipped_files']} already complete"]
    lines += [f"left out: {p}" for p in summary["problems"]]
    return "\n".join(lines)


def cmd_fetch(args: argparse.Namespace) -> int:
    """`m2ae data fetch`: download ``args.dataset`` into ``--out`` (resumable) and print what it did."""
    from ..io.fetch import PHYSIONET_FILES_URL, fetch_cinc2015

    summary = fetch_cinc2015(args.out, base_url=args.base_url or PHYSIONET_FILES_URL, limit=args.limit,
                             workers=args.workers, timeout_s=args.timeout, progress=not args.quiet)
    emit(dataclasses.asdict(summary), args.json, _describe)
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register `data fetch` on the top-level subparsers."""
    data = sub.add_parser("data", help="download public ECG/PPG corpora")
    data_sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    s = data_sub.add_parser(
        "fetch", help="download a corpus (cinc2015: the PhysioNet/CinC Challenge 2015 training set, 750 "
                      "ICU alarm records, ODC-By 1.0) into the layout `iter_corpus` reads; resumable")
    s.add_argument("dataset", choices=DATASETS,
                   help="corpus to download (cinc2015 keeps the Challenge names, which are not on the project's "
                        "fixed split: never train or tune on it for anything evaluated on that split's test side)")
    s.add_argument("--out", required=True, help="folder to write (labels.csv + records/)")
    # default None, so listing the commands does not import m2ae.io; the library holds the URL
    s.add_argument("--base-url", help="where PhysioNet's files/ tree is served "
                                      "(default https://physionet.org/files/)")
    s.add_argument("--limit", type=int, help="fetch only the first N records (default: all)")
    s.add_argument("--workers", type=int, default=4, help="parallel downloads (default 4)")
    s.add_argument("--timeout", type=float, default=60.0, help="per-request timeout in s (default 60)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.add_argument("--json", action="store_true", help="print the summary as JSON")
    s.set_defaults(func=cmd_fetch)
