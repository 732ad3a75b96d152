"""`m2ae` command line: argparse adapters over the library, one module per command group.

Each command parses its flags, calls typed library functions and prints their result (``--json`` or
text, see :mod:`m2ae.cli.output`). Bad input prints one line ``error: …`` on stderr and exits 2, never
a traceback (set ``M2AE_DEBUG=1`` to see one for unexpected failures). Library modules never import
this package.
"""
from __future__ import annotations

import argparse
import os
import sys

from ..errors import InputError
from . import app, card, data, evaluate, index, records, report, train
from .output import EXIT_BAD_INPUT, emit

__all__ = ["main", "build_parser", "emit", "EXIT_BAD_INPUT"]


def build_parser() -> argparse.ArgumentParser:
    """The ``m2ae`` parser with every command group's subcommands."""
    p = argparse.ArgumentParser(prog="m2ae", description="Cross-modal ECG/PPG foundation model tools.")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for group in (records, train, index, evaluate, card, data, report, app):
        group.add_commands(sub)
    return p


def one_line(text: str) -> str:
    """``text`` as one printable line: control characters from file names or contents (a newline, a
    terminal escape) are shown escaped (``\\n``, ``\\x1b``), never acted on by the terminal."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def main(argv: list[str] | None = None) -> int:
    """Run one command (``argv``: arguments after ``m2ae``; default ``sys.argv[1:]``); returns the exit code."""
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
        from .. import __version__

        print(__version__)
        return 0
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        return int(args.func(args) or 0)
    except InputError as e:
        print(f"error: {one_line(str(e))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except FileNotFoundError as e:
        print(f"error: {one_line(str(e.filename or e))}: no such file", file=sys.stderr)
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
        print(f"error: unexpected {type(e).__name__}: {one_line(str(e))} (set M2AE_DEBUG=1 for details)",
              file=sys.stderr)
        return 1

