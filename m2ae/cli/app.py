"""`m2ae app`: start the Streamlit app of a source checkout (blocks; serves http://127.0.0.1:8501 by default)."""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from ..errors import InputError


def app_dir() -> Path:
    """The checkout's ``app/`` folder: the app ships beside the package, not inside it."""
    return Path(__file__).resolve().parents[2] / "app"


def _take(rest: list[str], name: str) -> str | None:
    """Remove ``name value`` / ``name=value`` from ``rest``; the value (the last one given) or None."""
    value = None
    k = 0
    while k < len(rest):
        if rest[k] == name:
            if k + 1 >= len(rest):
                raise InputError(f"{name} needs a value")
            value = rest[k + 1]
            del rest[k:k + 2]
        elif rest[k].startswith(name + "="):
            value = rest.pop(k).split("=", 1)[1]
        else:
            k += 1
    return value


def streamlit_args(args: argparse.Namespace) -> list[str]:
    """The `streamlit run` options for ``args``: ``--address``/``--port`` as ``--server.*``, then the rest."""
    # argparse hands everything after the first unknown option to the REMAINDER, our own flags included.
    rest = [a for a in args.streamlit_args if a != "--"]
    address = _take(rest, "--address") or args.address
    port = _take(rest, "--port") or args.port
    out = []
    if address:
        out += ["--server.address", str(address)]
    if port is not None:
        try:
            port = int(port)
        except ValueError:
            raise InputError(f"--port must be a number, got {port!r}") from None
        if not 1 <= port <= 65535:
            raise InputError(f"--port must be 1–65535, got {port}")
        out += ["--server.port", str(port)]
    return out + rest


def cmd_app(args: argparse.Namespace) -> int:
    """`m2ae app`: run the checkout's Streamlit app (blocks); returns Streamlit's exit code."""
    folder = app_dir()
    if not (folder / "streamlit_app.py").exists():
        raise InputError(f"app not found in {folder}: install m2ae from a source checkout (pip install -e .)")
    # app/serve.py = `streamlit run app/streamlit_app.py` with the heavy imports warmed in the background;
    # it listens on 127.0.0.1 unless told otherwise and prints where it serves.
    # Run from the checkout so its .streamlit/config.toml (address, theme, upload limit, XSRF, no watcher) applies.
    return subprocess.call([sys.executable, str(folder / "serve.py"), *streamlit_args(args)], cwd=folder.parent)


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register `app` on the top-level subparsers."""
    s = sub.add_parser("app", help="start the web app; it serves this machine only (127.0.0.1) unless --address "
                                   "says otherwise (further arguments go to `streamlit run`)")
    s.add_argument("--address", default=None,
                   help="interface to listen on (default 127.0.0.1: this machine only; 0.0.0.0: every interface — "
                        "only behind an authenticating proxy, see README 'Serving a team')")
    s.add_argument("--port", default=None, help="TCP port (default 8501)")
    s.add_argument("streamlit_args", nargs=argparse.REMAINDER)
    s.set_defaults(func=cmd_app)
