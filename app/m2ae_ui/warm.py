"""Import the signal/plotting stack in the background while the server starts (see app/serve.py).

The first page waits for the warm-up to finish (``wait``) instead of importing the same modules
concurrently: two threads importing pandas/plotly at once can see half-initialised modules.
"""
from __future__ import annotations

import threading

_thread: threading.Thread | None = None


def _imports() -> None:
    try:
        import pandas  # noqa: F401  (fully, before plotly looks for it)
        import scipy.signal  # noqa: F401
        import plotly.graph_objects  # noqa: F401
        import plotly.subplots  # noqa: F401

        import m2ae.app_support  # noqa: F401
        import m2ae.io  # noqa: F401
        import m2ae.signal  # noqa: F401
        import neurokit2  # noqa: F401
    except Exception:  # an optimisation only: the app imports (and reports) for itself
        pass


def start() -> None:
    global _thread
    if _thread is None:
        _thread = threading.Thread(target=_imports, name="m2ae-warm-imports", daemon=True)
        _thread.start()


def wait(timeout_s: float = 60.0) -> None:
    if _thread is not None and _thread.is_alive():
        _thread.join(timeout_s)
