"""`m2ae app` starts the server (app/serve.py → streamlit run) and it answers its health check."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_m2ae_app_serves(tmp_path):
    port = _free_port()
    log = open(tmp_path / "server.log", "w")
    # `python -m m2ae.cli` is the console script `m2ae`; a new session so the whole tree can be stopped.
    proc = subprocess.Popen([sys.executable, "-m", "m2ae.cli", "app", "--server.port", str(port),
                             "--server.address", "127.0.0.1"], cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    try:
        deadline, ok = time.time() + 90, False
        while time.time() < deadline and not ok:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    ok = r.status == 200 and r.read().strip() == b"ok"
            except OSError:
                assert proc.poll() is None, (tmp_path / "server.log").read_text()
                time.sleep(0.3)
        assert ok, (tmp_path / "server.log").read_text()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
            assert r.status == 200 and b"<html" in r.read().lower()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def test_m2ae_app_refuses_a_busy_port_in_one_line():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "m2ae.cli", "app", "--port", str(port)], capture_output=True,
                           text=True, timeout=120, cwd=ROOT, env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    assert r.returncode == 2, r.stderr[-2000:]
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines == [f"error: port {port} on 127.0.0.1 is already in use (another m2ae app?); choose another with "
                     f"`m2ae app --port {port + 1}`"], lines


@pytest.mark.parametrize("argv", [["app", "--server.port", "8600", "--server.headless", "true"],
                                  ["app", "--", "--server.port", "8600", "--server.headless", "true"]])
def test_m2ae_app_passes_streamlit_options_through(monkeypatch, argv):
    import m2ae.cli as cli
    import m2ae.cli.app as cli_app

    seen = {}
    monkeypatch.setattr(cli_app, "cmd_app", lambda args: seen.setdefault("args", [a for a in args.streamlit_args if a != "--"]) and 0)
    assert cli.main(argv) == 0
    assert seen["args"] == ["--server.port", "8600", "--server.headless", "true"]
