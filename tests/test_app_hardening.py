"""App hardening (issue 12 items 4–6, issue 15 item 6): metadata is data, bounded server memory, safe by default,
and a refused upload that leaves no stale record behind.

Pure checks (metadata types, escaping, the record store, the server's address) run first; the AppTest
ones reuse the fixtures of test_app_pages.py (samples and an index that exist, whatever has been built).
"""
from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from m2ae.errors import InputError
from m2ae.record import Record, checked_meta
from m2ae_ui.text import plain, plain_html, unplain

ROOT = Path(__file__).resolve().parents[1]
HOSTILE_IMG = "![x](http://127.0.0.1:9/p.png)"
HOSTILE_TAG = "<img src=http://127.0.0.1:9/q.png>"


# --- metadata is data ----------------------------------------------------------------------------

def test_record_meta_with_wrong_types_is_fixed_or_dropped_with_a_note():
    meta = {"source": "x.npz", "units": 5, "labels": ["age", 3], "notes": "one note", "lead": 2,
            "subject_id": np.int64(7), "events": [{"time_s": 3, "label": 5}, {"time_s": "soon"}, 4],
            "dropped": {"ppg": 1, "ecg": "flat"}, "ppg_flipped": "yes", "deep": [[[[[[[[[[1]]]]]]]]]],
            "array": np.arange(3), "blob": object(), 5: "int key"}
    rec = Record(ecg=np.zeros(2500), ppg=None, fs=250.0, meta=meta)
    m = rec.meta
    assert "units" not in m and "labels" not in m and "blob" not in m and "ppg_flipped" not in m and 5 not in m
    assert m["lead"] == "2" and m["subject_id"] == 7 and type(m["subject_id"]) is int
    assert m["events"] == [{"time_s": 3, "label": "5"}]
    assert m["dropped"] == {"ecg": "flat"} and m["array"] == [0, 1, 2]
    assert m["notes"][0] == "one note" and "'units'" in m["notes"][-1] and "'blob'" in m["notes"][-1]
    json.dumps(m)  # plain JSON-like data all the way down
    assert checked_meta("not a dict")["notes"]


def test_good_meta_is_kept_as_the_same_objects():
    notes, labels = ["resampled"], {"age": 61.0, "sex": "F", "alarm_time_s": 300, "true_alarm": True}
    meta = {"source": "a.hea", "units": {"ecg": "mV"}, "labels": labels, "notes": notes, "lead": None}
    rec = Record(ecg=np.zeros(2500), ppg=None, fs=250.0, meta=meta)
    assert rec.meta is meta and rec.meta["notes"] is notes and rec.meta["labels"] is labels
    assert rec.meta == {"source": "a.hea", "units": {"ecg": "mV"}, "labels": labels, "notes": notes, "lead": None}


def _npz_with_meta(meta: dict, seconds: float = 30.0) -> bytes:
    from m2ae.simulate import simulate_record

    rec = simulate_record("NSR", duration_s=seconds, fs_hz=125.0, seed=3)
    buf = io.BytesIO()
    np.savez(buf, ecg=rec.ecg, ppg=rec.ppg, fs=np.array(125.0), meta_json=np.array(json.dumps(meta)))
    return buf.getvalue()


def test_npz_meta_json_with_units_5_reads_with_a_note():
    from m2ae.io.uploads import read_upload

    rec = read_upload({"bad_meta.npz": _npz_with_meta({"units": 5, "labels": "x", "notes": 5})})
    assert "units" not in rec.meta and "labels" not in rec.meta
    assert any("'units'" in n for n in rec.meta["notes"])


# --- escaping ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [HOSTILE_IMG, HOSTILE_TAG, "[link](http://a.example)", ":red[alarm] :material/home:",
                                  "$x^2$", "# heading", "1. item", "a_b_c *x* `code` ~~s~~ | t |", "&lt;b&gt;",
                                  "http://127.0.0.1:9/bare.png", "line one\nline two\\", "<b>bold</b>"])
def test_plain_renders_as_the_same_text_in_markdown(text):
    markdown_it = pytest.importorskip("markdown_it")
    md = markdown_it.MarkdownIt("commonmark").enable(["table", "strikethrough"])
    html = md.render(plain(text))
    assert "<img" not in html and "<a " not in html and "<h1" not in html and "<ol" not in html
    assert "<em" not in html and "<code" not in html and "<b>" not in html and "<s>" not in html
    import html as html_lib

    shown = html_lib.unescape(re.sub(r"</?p>", "", html)).strip().replace("\u200b", "")  # see text.plain
    assert shown == " ".join(text.split())  # exactly the file's text, on one line
    assert unplain(plain(text)) == " ".join(text.split())
    assert "<" not in plain_html(text) and ">" not in plain_html(text)


# --- the record store: bounded in bytes, freed when no session holds a record -----------------------

def test_record_store_shares_bounds_and_frees():
    from m2ae_ui.memory import MB, RecordStore

    store = RecordStore(store_bytes=40 * MB, record_bytes=16 * MB, derived_bytes=2 * MB, idle_bytes=8 * MB)
    calls = []

    def make(mb):
        def compute():
            calls.append(mb)
            return np.zeros(int(mb * MB) // 8)
        return compute

    a = store.get("a", "s1", make(10), kind="upload")
    assert store.get("a", "s2", make(10), kind="upload") is a and calls == [10]   # shared, computed once
    with pytest.raises(InputError, match="at most 16 MB"):
        store.get("huge", "s3", make(20), kind="upload")
    assert store.memo("a", "fp", lambda: np.ones(1000)) is store.memo("a", "fp", lambda: None)
    store.memo("a", "big", lambda: np.ones(int(3 * MB)))    # over the per-record derived budget: not kept
    assert store.stats()["records"] == 1
    store.release("s1")
    assert store.stats()["records"] == 1                     # s2 still looks at it
    store.release("s2")
    assert store.stats() == {"records": 0, "held": 0, "sessions": 0, "bytes": 0}   # an upload: dropped at once
    # samples stay warm while idle ones fit in idle_bytes; ended sessions are pruned
    store.get("s-a", "s1", make(6), kind="sample")
    store.get("s-b", "s2", make(6), kind="sample")
    assert store.prune(lambda sid: sid != "s1") == 1 and store.stats()["held"] == 1
    store.prune(lambda sid: False)
    assert store.stats()["records"] == 1 and store.used_bytes() <= 8 * MB  # the most recent idle sample only
    # full of records that live sessions hold: refused, with the budget named
    for k in range(3):
        store.get(f"u{k}", f"live{k}", make(12), kind="upload")
    with pytest.raises(InputError, match="memory budget"):
        store.get("u3", "live3", make(12), kind="upload")


# --- safe by default: the server binds to 127.0.0.1 --------------------------------------------------

def test_config_binds_localhost():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1"


def test_serve_adds_localhost_when_nothing_chose_an_address(tmp_path, monkeypatch):
    import serve

    monkeypatch.chdir(tmp_path)                     # no .streamlit/config.toml here
    monkeypatch.setenv("HOME", str(tmp_path))       # nor in ~/.streamlit
    monkeypatch.delenv("STREAMLIT_SERVER_ADDRESS", raising=False)
    args, address, port = serve.serve_args(["--server.port", "8600"])
    assert address == "127.0.0.1" and port == 8600 and args[-2:] == ["--server.address", "127.0.0.1"]
    args, address, _ = serve.serve_args(["--server.address=0.0.0.0"])
    assert address == "0.0.0.0" and "127.0.0.1" not in args
    assert args[-2:] == ["--server.port", "8501"]  # said explicitly: a busy port is refused, not silently moved
    assert "this machine only" in serve.where_line("127.0.0.1", 8501) and "Blocks" in serve.where_line("::1", 1)
    assert "WITHOUT authentication" in serve.where_line("0.0.0.0", 8501)


@pytest.mark.parametrize("argv, expected", [
    (["app"], []),
    (["app", "--address", "0.0.0.0", "--port", "9000"], ["--server.address", "0.0.0.0", "--server.port", "9000"]),
    (["app", "--server.headless", "true", "--port=9001"], ["--server.port", "9001", "--server.headless", "true"]),
])
def test_m2ae_app_address_and_port_flags(monkeypatch, argv, expected):
    import m2ae.cli as cli
    import m2ae.cli.app as cli_app

    seen = []
    monkeypatch.setattr(cli_app.subprocess, "call", lambda cmd, cwd: seen.append(cmd[2:]) or 0)
    assert cli.main(argv) == 0
    assert seen == [expected]


def test_m2ae_app_bad_port_is_a_one_line_error(capsys):
    import m2ae.cli as cli

    assert cli.main(["app", "--port", "http"]) == 2
    assert capsys.readouterr().err.strip() == "error: --port must be a number, got 'http'"


def _listening(port: int) -> set[str]:
    """Local addresses with a TCP socket listening on ``port`` (from /proc/net/tcp and tcp6)."""
    out = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            addr, p = local.split(":")
            if state == "0A" and int(p, 16) == port:  # 0A = LISTEN
                out.add(socket.inet_ntop(socket.AF_INET, bytes.fromhex(addr)[::-1]) if len(addr) == 8 else addr)
    return out


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc/net/tcp to see the bound address")
def test_m2ae_app_listens_on_localhost_only_by_default(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "m2ae.cli", "app", "--port", str(port)], cwd=tmp_path,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1"})
    try:
        deadline, ok = time.time() + 90, False
        while time.time() < deadline and not ok:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    ok = r.status == 200
            except OSError:
                assert proc.poll() is None, (tmp_path / "server.log").read_text()
                time.sleep(0.3)
        assert ok, (tmp_path / "server.log").read_text()
        assert _listening(port) == {"127.0.0.1"}
        assert f"serving http://127.0.0.1:{port} (this machine only" in (tmp_path / "server.log").read_text()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


# --- same-named uploads ----------------------------------------------------------------------------

def test_same_named_uploads_are_refused_and_paths_cut_to_base_names():
    from m2ae.io.uploads import upload_files

    assert upload_files([("../../etc/r1.hea", b"h"), ("folder\\r1.dat", b"d")]) == {"r1.hea": b"h", "r1.dat": b"d"}
    assert upload_files([("a/r1.hea", b"h"), ("b/r1.hea", b"h")]) == {"r1.hea": b"h"}   # the same file twice
    with pytest.raises(InputError, match="r1.hea: two different uploaded files share this name"):
        upload_files([("a/r1.hea", b"h1"), ("b/r1.hea", b"h2")])


# --- AppTest: hostile metadata, refused uploads, budgets ---------------------------------------------

AppTest = pytest.importorskip("streamlit.testing.v1").AppTest
from test_app_pages import PAGES, app_env, charts, goto, new_app, sim_records  # noqa: E402, F401

MARKDOWN_ELEMENTS = ("markdown", "caption", "error", "warning", "info", "success", "subheader", "title", "header")


def shown_markdown(at) -> list[str]:
    """Every Markdown string the page (and sidebar) sends: alerts, captions, headings, metric labels."""
    out = [str(e.value) for kind in MARKDOWN_ELEMENTS for e in at.get(kind)]
    return out + [str(m.label) for m in at.metric]


def assert_no_live_markup(at) -> None:
    for text in shown_markdown(at):
        assert not re.search(r"(?<!\\)!\\?\[.*?(?<!\\)\]\(", text), text  # no Markdown image
        assert not re.search(r"(?<!\\)<\s*img", text, re.I), text        # no raw HTML tag
    for spec in charts(at):
        assert "<img" not in json.dumps(spec).lower()


def _hostile_wfdb(tmp_path: Path, sim) -> list[tuple[str, bytes, str]]:
    from m2ae.io.writers import write_record

    rec = Record(ecg=sim.ecg, ppg=sim.ppg, fs=sim.fs,
                 meta={"source": "hostile", "units": {"ecg": "mV", "ppg": "au"}, "start_time": HOSTILE_IMG,
                       "labels": {"rhythm_name": HOSTILE_IMG, "sex": "F", "dx": HOSTILE_TAG}})
    hea = write_record(rec, tmp_path / "hostile.hea", fmt="wfdb")
    hea.write_text(hea.read_text() + f"# age: {HOSTILE_IMG}\n# dx: {HOSTILE_IMG}\n")
    return [("hostile.hea", hea.read_bytes(), "text/plain"),
            ("hostile.dat", hea.with_suffix(".dat").read_bytes(), "application/octet-stream")]


def test_hostile_wfdb_metadata_is_shown_as_text_on_every_page(app_env, sim_records, tmp_path):  # noqa: F811
    at = new_app()
    at.file_uploader(key="upload").set_value(_hostile_wfdb(tmp_path, sim_records["NSR"])).run()
    assert not at.exception and not [e.value for e in at.error if "clinical" not in e.value]
    assert unplain(at.subheader[0].value) == "hostile.hea"
    labels = " ".join(c.value for c in at.caption if "Known labels" in c.value)
    assert HOSTILE_IMG in unplain(labels)          # the label is shown, as text
    assert_no_live_markup(at)
    for page in PAGES[1:]:
        goto(at, page)
        assert_no_live_markup(at)


def test_npz_units_5_renders_every_page(app_env):  # noqa: F811
    at = new_app()
    upload = ("units5.npz", _npz_with_meta({"units": 5, "lead": HOSTILE_TAG, "record_id": {"a": 1}}), "x/npz")
    at.file_uploader(key="upload").set_value(upload).run()
    assert not at.exception and unplain(at.subheader[0].value) == "units5.npz"
    assert_no_live_markup(at)
    for page in PAGES[1:]:
        goto(at, page)
        assert_no_live_markup(at)


def _stale(at, name: str) -> list[str]:
    return [t for t in shown_markdown(at) if name in unplain(t)]


def test_refused_upload_clears_the_record_on_every_page_and_names_the_way_forward(app_env, sim_records):  # noqa: F811
    rec = sim_records["NSR"]
    good = pd.DataFrame({"time": np.arange(len(rec.ecg)) / rec.fs, "II": rec.ecg, "PLETH": rec.ppg})
    at = new_app()
    at.file_uploader(key="upload").set_value(("good_one.csv", good.to_csv(index=False).encode(), "text/csv")).run()
    assert unplain(at.subheader[0].value) == "good_one.csv" and charts(at)
    bad = pd.DataFrame({"chan_a": rec.ecg, "chan_b": rec.ppg}).to_csv(index=False).encode()
    at.file_uploader(key="upload").set_value(("refused.csv", bad, "text/csv")).run()
    assert not at.exception
    message = unplain(at.error[0].value)
    assert message.startswith("refused.csv:") and "way forward: give the sampling rate in the form below" in message
    for page in PAGES:
        goto(at, page) if page != PAGES[0] else None
        assert not _stale(at, "good_one.csv"), page
        if page not in ("views/model_card.py",):
            assert not charts(at) or page == "views/fingerprint_map.py", page
    at.switch_page(PAGES[0]).run()  # back on the Record page: the refusal is still said, no record shown
    assert not at.exception and "way forward" in at.error[0].value and not at.subheader
    assert any("No record yet" in x.value for x in at.sidebar.info)


def test_refused_sample_after_upload_and_removed_upload_free_the_record(app_env, sim_records):  # noqa: F811
    from m2ae_ui import state

    rec = sim_records["AF"]
    data = pd.DataFrame({"time": np.arange(len(rec.ecg)) / rec.fs, "II": rec.ecg}).to_csv(index=False).encode()
    at = new_app()
    at.file_uploader(key="upload").set_value(("ecg_only_upload.csv", data, "text/csv")).run()
    assert unplain(at.subheader[0].value) == "ecg_only_upload.csv"
    held = state.STORE.stats()["records"]
    at.file_uploader(key="upload").set_value(None).run()   # removing the upload frees it
    assert not at.exception and not at.subheader and not charts(at)
    assert state.STORE.stats()["records"] == held - 1


def test_same_named_uploads_are_an_error_in_the_app(app_env):  # noqa: F811
    at = new_app()
    at.file_uploader(key="upload").set_value([("r.csv", b"time,II\n0,1\n", "text/csv"),
                                              ("r.csv", b"time,II\n0,2\n", "text/csv")]).run()
    assert not at.exception and "two different uploaded files share this name" in unplain(at.error[0].value)
    assert not at.subheader


def test_upload_over_the_decoded_budget_is_refused_with_the_budget(app_env, sim_records, monkeypatch):  # noqa: F811
    from m2ae_ui import state

    monkeypatch.setattr(state.STORE, "record_bytes", 64 << 10)   # 0.0625 MB: a 30-s record and its windows are over it
    rec = sim_records["NSR"]
    data = pd.DataFrame({"time": np.arange(len(rec.ecg)) / rec.fs, "II": rec.ecg + 0.001}).to_csv(index=False)
    at = new_app()
    at.file_uploader(key="upload").set_value(("too_big.csv", data.encode(), "text/csv")).run()
    assert not at.exception
    message = unplain(at.error[0].value)
    assert message.startswith("too_big.csv:") and "at most 0.0625 MB" in message
