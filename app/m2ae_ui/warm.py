"""Start-up work off the first page's critical path (used by app/serve.py, i.e. `m2ae app`).

1. ``start``: import the signal/plotting stack while the server starts and the browser loads the
   page. The first script run waits for it (``wait``) instead of importing the same modules
   concurrently: two threads importing pandas/plotly at once can see half-initialised modules.
   (Tried and dropped: a throwaway chart sent first so the browser fetches plotly.js early; it
   made the cold start ~0.6 s slower here, the extra chart costing more than the overlap won.)
2. ``start_model``: load the model and the index (torch, faiss: ~1.5 s on 2 cores) once the first
   page has been drawn. The Record page does not wait for them: it asks ``model_pending`` and
   starts the load from a fragment tick, which the browser sends only after drawing the page
   (loading torch while the browser draws slows both down on a small machine).

Under plain ``streamlit run`` or AppTest nothing runs in the background: ``model_pending`` is always
False and pages load the model when they first need it, as before.
"""
from __future__ import annotations

import threading
from collections.abc import Callable

_thread: threading.Thread | None = None
_model_thread: threading.Thread | None = None


def _imports() -> None:
    try:
        import pandas  # noqa: F401  (fully, before plotly looks for it)
        import plotly.graph_objects  # noqa: F401
        import plotly.io  # noqa: F401
        import plotly.subplots  # noqa: F401
        import plotly.tools  # noqa: F401

        plotly.graph_objects.Figure().to_json()  # plotly loads its validators on first use
        import scipy.signal  # noqa: F401

        import m2ae.io.uploads  # noqa: F401  (m2ae.io with it)
        import m2ae.signal  # noqa: F401
        import neurokit2  # noqa: F401

        from . import samples, windows  # noqa: F401  (the Record page's helpers)
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


def _quiet(load: Callable[[], object]) -> None:
    try:
        load()
    except Exception:  # failures are not cached: the page that needs the model retries and reports
        pass


def start_model(load: Callable[[], object]) -> None:
    """Run ``load`` (e.g. load the model and open the index into their st.cache_resource caches)
    in a background thread, once per server; only when ``start`` ran (app/serve.py)."""
    global _model_thread
    if _thread is not None and _model_thread is None:
        _model_thread = threading.Thread(target=_quiet, args=(load,), name="m2ae-warm-model", daemon=True)
        _model_thread.start()


def model_pending() -> bool:
    """True while the background model load (app/serve.py) has not finished: a page that can do
    without the model should not block on it now."""
    if _thread is None:
        return False
    return _model_thread is None or _model_thread.is_alive()
