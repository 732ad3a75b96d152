"""Start the app server (what `m2ae app` runs): `streamlit run app/streamlit_app.py`, plus a warm-up.

Streamlit runs the app script only when the first browser connects, so the first visitor would
also pay for importing the signal stack (neurokit2, wfdb, scipy.signal, plotly: ~2 s on 2 cores).
Here those imports run in a background thread while the server starts and the browser loads the
page; the first script run waits for them rather than importing them a second time.
Arguments are passed to `streamlit run` unchanged.

    python app/serve.py [streamlit run options, e.g. --server.port 8502]
"""
from __future__ import annotations

import sys
from pathlib import Path

APP_DIR = Path(__file__).resolve().parent
ENTRY = APP_DIR / "streamlit_app.py"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if str(APP_DIR) not in sys.path:
        sys.path.insert(0, str(APP_DIR))
    from streamlit.web import cli  # the server's own imports first, then warm ours beside it

    from m2ae_ui import warm

    warm.start()
    return cli.main.main(args=["run", str(ENTRY), *argv], prog_name="streamlit", standalone_mode=False) or 0


if __name__ == "__main__":
    sys.exit(main())
