"""Start the app server (what `m2ae app` runs): `streamlit run app/streamlit_app.py`, plus a warm-up.

Streamlit runs the app script only when the first browser connects, so the first visitor would
also pay for importing the signal stack (neurokit2, wfdb, scipy.signal, plotly: ~2 s on 2 cores).
Here those imports run in a background thread while the server starts and the browser loads the
page; the first script run waits for them rather than importing them a second time.
Arguments are passed to `streamlit run` unchanged. glibc malloc is held to two arenas
(``limit_malloc_arenas``) so that memory freed after many concurrent uploads goes back to the system.

Safe by default: the server listens on 127.0.0.1 (this machine only) unless an address is given
(`--server.address`, ``STREAMLIT_SERVER_ADDRESS`` or a config.toml); Streamlit itself would listen
on every interface. One line on stderr says where it serves and that it blocks.

    python app/serve.py [streamlit run options, e.g. --server.port 8502 --server.address 0.0.0.0]
"""
from __future__ import annotations

import ctypes
import sys
from pathlib import Path

APP_DIR = Path(__file__).resolve().parent
ENTRY = APP_DIR / "streamlit_app.py"
DEFAULT_ADDRESS = "127.0.0.1"
DEFAULT_PORT = 8501
MALLOC_ARENAS = 2
M_ARENA_MAX = -8   # glibc's mallopt parameter number


def limit_malloc_arenas(n: int = MALLOC_ARENAS) -> bool:
    """Let glibc malloc use at most ``n`` arenas in this process (False where that is not glibc).

    Why: every script run is a new thread, and glibc gives concurrent threads their own arenas (up to
    8 per core). Twenty sessions uploading at once spread their parse buffers over as many arenas,
    where what is freed stays resident between the chunks still in use. Must run before those threads.
    """
    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, n))
    except (OSError, AttributeError):
        return False


def _flag(argv: list[str], name: str) -> str | None:
    """The value of ``--name value`` or ``--name=value`` in ``argv`` (the last one wins)."""
    value = None
    for k, a in enumerate(argv):
        if a == name and k + 1 < len(argv):
            value = argv[k + 1]
        elif a.startswith(name + "="):
            value = a.split("=", 1)[1]
    return value


def serve_args(argv: list[str]) -> tuple[list[str], str, int]:
    """(`streamlit run` arguments, address, port): ``argv`` plus ``--server.address 127.0.0.1`` when
    neither the arguments, the environment nor a config file (read from the current folder and
    ~/.streamlit, as Streamlit does) chose an address."""
    from streamlit import config

    config.get_config_options(force_reparse=True)
    address = _flag(argv, "--server.address") or config.get_option("server.address")
    args = list(argv)
    if not address:
        address = DEFAULT_ADDRESS
        args += ["--server.address", DEFAULT_ADDRESS]
    port = _flag(argv, "--server.port") or config.get_option("server.port") or DEFAULT_PORT
    if not _flag(argv, "--server.port"):
        # said explicitly, Streamlit refuses a busy port instead of moving to the next one unannounced
        args += ["--server.port", str(port)]
    return args, str(address), int(port)


def port_in_use(address: str, port: int) -> bool:
    """Whether something already listens on ``address``:``port`` (TCP)."""
    import socket

    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        return s.connect_ex((address if address not in ("0.0.0.0", "::") else "localhost", port)) == 0


def where_line(address: str, port: int) -> str:
    """The start-up line: where the app serves, who can reach it, and that the command blocks."""
    local = address in ("127.0.0.1", "localhost", "::1")
    who = ("this machine only; `m2ae app --address 0.0.0.0` serves the network — put an authenticating proxy "
           "in front, see README 'Serving a team'") if local else \
        "every machine that can reach this address, WITHOUT authentication unless a proxy or [auth] adds it"
    host = f"[{address}]" if ":" in address else address
    return f"m2ae app: serving http://{host}:{port} ({who}). Blocks until Ctrl+C."


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    limit_malloc_arenas()
    if str(APP_DIR) not in sys.path:
        sys.path.insert(0, str(APP_DIR))
    from streamlit.web import cli  # the server's own imports first, then warm ours beside it

    from m2ae_ui import warm

    args, address, port = serve_args(argv)
    if port_in_use(address, port):
        print(f"error: port {port} on {address} is already in use (another m2ae app?); choose another with "
              f"`m2ae app --port {port + 1}`", file=sys.stderr, flush=True)
        return 2
    warm.start()
    print(where_line(address, port), file=sys.stderr, flush=True)
    return cli.main.main(args=["run", str(ENTRY), *args], prog_name="streamlit", standalone_mode=False) or 0


if __name__ == "__main__":
    sys.exit(main())
