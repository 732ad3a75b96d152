"""`m2ae data fetch cinc2015`: a real HTTP server on 127.0.0.1 serves PhysioNet's layout; no network mocks.

The served tree is ``challenge-2015/1.0.0/training/`` with RECORDS, ALARMS and three tiny WFDB records
written by ``wfdb.wrsamp`` (header comments ``#<alarm>`` / ``#True alarm`` as the Challenge writes
them; one record without comments, labelled only through ALARMS). The fetch must write the corpus
layout that ``iter_corpus`` reads, skip complete files on a second run, resume after a cut-off
download, and fail with one line (exit 2) when the server cannot be reached.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from m2ae.errors import InputError
from m2ae.io import iter_corpus
from m2ae.io.fetch import CINC2015_DATABASE, CINC2015_SUBDIR, alarm_from_comments, fetch_cinc2015

ROOT = Path(__file__).resolve().parents[1]
# A real Challenge 2015 training record as PhysioNet serves it (.hea + .mat, "#Asystole" / "#False alarm").
REAL_WFDB = Path(os.environ.get("M2AE_REAL_DATA", ROOT.parent / "shared" / "data" / "real")) / "wfdb"
FS = 250
SECONDS = 12.0
# name -> (header comments, ALARMS row): v100s true VT, a104s false asystole, t105l comments-less tachycardia
RECORDS = {
    "v100s": (["Ventricular_Tachycardia", "True alarm"], "Ventricular_Tachycardia,1"),
    "a104s": (["Asystole", "False alarm"], "Asystole,0"),
    "t105l": ([], "Tachycardia,1"),
}


def _write_record(folder: Path, name: str, comments: list[str], ppg: bool) -> None:
    import wfdb

    t = np.arange(int(SECONDS * FS)) / FS
    cols = [0.8 * np.sin(2 * np.pi * 1.2 * t) ** 15, 0.3 * np.sin(2 * np.pi * 0.3 * t)]
    names, units = ["II", "V"], ["mV", "mV"]
    if ppg:
        cols.append(0.5 + 0.4 * np.sin(2 * np.pi * 1.2 * t - 1.0))
        names.append("PLETH")
        units.append("NU")
    wfdb.wrsamp(name, fs=FS, units=units, sig_name=names, p_signal=np.column_stack(cols), fmt=["16"] * len(names),
                adc_gain=[1000.0] * len(names), baseline=[0] * len(names), comments=comments,
                write_dir=str(folder))


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass


class _Handler(_QuietHandler):
    """Serves the tree; logs each path asked for; cuts short the bodies of paths in ``truncate``."""

    requests: list[str]
    truncate: set[str]

    def do_GET(self) -> None:
        self.requests.append(self.path)
        if self.path in self.truncate:
            body = Path(self.translate_path(self.path)).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])  # then the connection closes: a download cut off
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture(scope="module")
def physionet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, type[_Handler]]]:
    """(base URL, handler class with its request log) of a local server in PhysioNet's files/ layout."""
    root = tmp_path_factory.mktemp("physionet")
    training = root / CINC2015_DATABASE / CINC2015_SUBDIR
    training.mkdir(parents=True)
    for i, (name, (comments, _)) in enumerate(RECORDS.items()):
        _write_record(training, name, comments, ppg=i != 1)
    (training / "RECORDS").write_text("".join(f"{n}\n" for n in RECORDS))
    (training / "ALARMS").write_text("".join(f"{n},{row}\n" for n, (_, row) in RECORDS.items()))
    handler = type("Handler", (_Handler,), {"requests": [], "truncate": set()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", handler
    finally:
        server.shutdown()
        server.server_close()


def _labels(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "labels.csv", newline="") as f:
        return {row["record"]: row for row in csv.DictReader(f)}


def test_fetch_writes_the_layout_iter_corpus_reads(physionet, tmp_path):
    base, handler = physionet
    out = tmp_path / "cinc"
    summary = fetch_cinc2015(out, base_url=base, progress=False)
    assert summary.records == 3 and summary.problems == [] and summary.skipped_files == 0
    assert summary.downloaded_files == 2 + 2 * len(RECORDS)  # RECORDS, ALARMS, then .hea + .dat each
    assert {p.name for p in (out / "records").iterdir()} == (
        {"RECORDS", "ALARMS"} | {f"{n}{ext}" for n in RECORDS for ext in (".hea", ".dat")})

    rows = _labels(out)
    assert rows["v100s"] == {"record": "v100s", "alarm_type": "VT", "true_alarm": "1", "original_name": "v100s",
                             "channels": "II V PLETH", "has_ppg": "1", "seconds": "12",
                             "challenge_alarm": "Ventricular_Tachycardia"}
    assert (rows["a104s"]["alarm_type"], rows["a104s"]["true_alarm"], rows["a104s"]["has_ppg"]) == ("other", "0", "0")
    assert rows["t105l"]["challenge_alarm"] == "Tachycardia"  # no header comments: from ALARMS

    recs = {r.meta["record_id"]: r for r in iter_corpus(out)}
    assert set(recs) == set(RECORDS), recs
    vt = recs["v100s"]
    assert vt.meta["labels"] == {"alarm_type": "VT", "true_alarm": True, "alarm_time_s": 300.0,
                                 "original_name": "v100s"}  # Challenge names lie outside the fixed split
    assert vt.fs == FS and vt.ppg is not None and vt.duration_s == pytest.approx(SECONDS)
    assert recs["a104s"].meta["labels"]["true_alarm"] is False and recs["a104s"].ppg is None
    assert recs["t105l"].meta["labels"]["alarm_type"] == "other"


def test_second_run_skips_complete_files_and_resumes_a_cut_off_one(physionet, tmp_path):
    base, handler = physionet
    out = tmp_path / "cinc"
    fetch_cinc2015(out, base_url=base, progress=False)
    handler.requests.clear()
    again = fetch_cinc2015(out, base_url=base, progress=False)
    assert again.downloaded_files == 0 and again.skipped_files == 2 + 2 * len(RECORDS) and again.records == 3
    assert handler.requests == []  # complete files are not even asked for

    (out / "records" / "a104s.dat").unlink()
    cut = f"/{CINC2015_DATABASE}/{CINC2015_SUBDIR}/a104s.dat"
    handler.truncate.add(cut)
    try:
        with pytest.raises(InputError, match=r"could not reach .*a104s\.dat.*run again"):
            fetch_cinc2015(out, base_url=base, progress=False)
    finally:
        handler.truncate.discard(cut)
    assert not (out / "records" / "a104s.dat").exists()  # a half file never takes the real name
    resumed = fetch_cinc2015(out, base_url=base, progress=False)
    assert resumed.downloaded_files == 1 and resumed.records == 3
    assert {r.meta["record_id"] for r in iter_corpus(out)} == set(RECORDS)


def test_limit_fetches_the_first_records_only(physionet, tmp_path):
    base, _ = physionet
    summary = fetch_cinc2015(tmp_path / "cinc", base_url=base, limit=1, progress=False)
    assert summary.records == 1 and set(_labels(tmp_path / "cinc")) == {"v100s"}


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "m2ae.cli", "data", "fetch", "cinc2015", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_cli_fetches_and_prints_the_summary(physionet, tmp_path):
    base, _ = physionet
    res = _cli("--out", str(tmp_path / "cinc"), "--base-url", base, "--json", "--quiet")
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["records"] == 3 and summary["problems"] == []
    res = _cli("--out", str(tmp_path / "cinc"), "--base-url", base)
    assert res.returncode == 0, res.stderr
    assert "3 records in labels.csv; 0 files downloaded" in res.stdout


def test_cli_unreachable_server_is_one_line_exit_2(tmp_path):
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = _cli("--out", str(tmp_path / "cinc"), "--base-url", f"http://127.0.0.1:{port}/", "--quiet")
    assert res.returncode == 2
    assert res.stderr.startswith(f"error: could not reach http://127.0.0.1:{port}/"), res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr


def test_cli_wrong_base_url_names_the_http_status(physionet, tmp_path):
    base, _ = physionet
    res = _cli("--out", str(tmp_path / "cinc"), "--base-url", base + "nothing-here/", "--quiet")
    assert res.returncode == 2 and "RECORDS: HTTP 404" in res.stderr, res.stderr


def test_alarm_from_comments_reads_the_challenge_header_lines():
    assert alarm_from_comments(["Asystole", "False alarm"]) == ("Asystole", False)
    assert alarm_from_comments([" Ventricular_Flutter_Fib", "True alarm "]) == ("Ventricular_Flutter_Fib", True)
    assert alarm_from_comments(["Asystole"]) is None and alarm_from_comments([]) is None


def test_fetch_reads_a_real_challenge_record_as_physionet_serves_it(tmp_path):
    """a103l.hea + a103l.mat (format 16+24) served as PhysioNet serves it: labels from its comments."""
    if not (REAL_WFDB / "a103l.hea").is_file() or not (REAL_WFDB / "a103l.mat").is_file():
        pytest.skip(f"{REAL_WFDB} has no a103l.hea + a103l.mat (fresh clone outside the workspace)")
    training = tmp_path / "served" / CINC2015_DATABASE / CINC2015_SUBDIR
    training.mkdir(parents=True)
    for ext in (".hea", ".mat"):  # a temporary copy for the local server, never into the repository
        shutil.copyfile(REAL_WFDB / f"a103l{ext}", training / f"a103l{ext}")
    (training / "RECORDS").write_text("a103l\n")  # no ALARMS: the header comments must carry the labels
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(tmp_path / "served")))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        summary = fetch_cinc2015(tmp_path / "out", base_url=f"http://127.0.0.1:{server.server_address[1]}",
                                 progress=False)
    finally:
        server.shutdown()
        server.server_close()
    assert summary.records == 1 and summary.downloaded_files == 3  # RECORDS, .hea, .mat (ALARMS: 404)
    row = _labels(tmp_path / "out")["a103l"]
    assert (row["alarm_type"], row["true_alarm"], row["challenge_alarm"], row["seconds"]) == ("other", "0", "Asystole", "330")
    (rec,) = list(iter_corpus(tmp_path / "out"))
    assert rec.meta["labels"]["true_alarm"] is False and "split" not in rec.meta["labels"]
    assert rec.fs == 250 and rec.duration_s == pytest.approx(330.0) and rec.ppg is not None
