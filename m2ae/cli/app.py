"""`m2ae app`: start the Streamlit app of a source checkout (blocks; serves http://localhost:8501)."""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from ..errors import InputError


def app_dir() -> Path:
    """The checkout's ``app/`` folder: the app ships beside the package, not inside it."""
    return Path(__file__).resolve().parents[2] / "app"


def cmd_app(args: argparse.Namespace) -> int:
    """`m2ae app`: run the checkout's Streamlit app (blocks); returns Streamlit's exit code."""
    folder = app_dir()
    if not (folder / "streamlit_app.py").exists():
        raise InputError(f"app not found in {folder}: install m2ae from a source checkout (pip install -e .)")
    extra = [a for a in args.streamlit_args if a != "--"]
    # app/serve.py = `streamlit run app/streamlit_app.py` with the heavy imports warmed in the background.
    # Run from the checkout so its .streamlit/config.toml (theme, upload limit, XSRF, no watcher) applies.
    return subprocess.call([sys.executable, str(folder / "serve.py"), *extra], cwd=folder.parent)


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register `app` on the top-level subparsers."""
    s = sub.add_parser("app",
                       help="start the web app (further arguments go to `streamlit run`, e.g. --server.port 8502)")
    s.add_argument("streamlit_args", nargs=argparse.REMAINDER)
    s.set_defaults(func=cmd_app)
