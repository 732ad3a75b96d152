"""`m2ae card`: show a checkpoint's model card, or write its eval headline table into a README."""
from __future__ import annotations

import argparse

from .output import emit


def cmd_card(args: argparse.Namespace) -> int:
    """`m2ae card`: print the card (Markdown or ``--json``), or refresh ``--readme``'s eval table."""
    from ..model.card import read_card, render_markdown, update_readme_table

    card = read_card(args.model)
    if args.readme:
        changed = update_readme_table(args.readme, card)
        print(f"{args.readme}: eval table {'updated' if changed else 'already current'}")
        return 0
    emit(card, args.json, render_markdown)
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register `card` on the top-level subparsers."""
    s = sub.add_parser("card", help="print a checkpoint's model card (Markdown), or refresh a README's eval table")
    s.add_argument("--model", help="checkpoint (default: shipped)")
    s.add_argument("--readme", metavar="FILE",
                   help="rewrite the eval headline table between the card markers in FILE (e.g. docs/RESULTS.md)")
    s.add_argument("--json", action="store_true", help="print the card as JSON")
    s.set_defaults(func=cmd_card)
