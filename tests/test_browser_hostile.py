"""Hostile metadata in a real browser: file-derived strings are shown as text and never make Chromium fetch anything.

`streamlit run` on 127.0.0.1 driven by headless Debian Chromium (the fixtures and helpers of
test_browser_e2e.py). A tiny HTTP server on another local port counts every request it gets. The
browser uploads a WFDB record whose header comments and labels carry ``![x](http://127.0.0.1:PORT/p.png)``
and a CSV whose column names are ``<img src=http://127.0.0.1:PORT/q.png>`` and a Markdown image (refused
with the names in the error, then read through the mapping form with the ``<img>`` column as the ECG), and
visits every page after each. Done when: zero requests reached the counter, no page raised, and the
hostile text is visible as text. A control at the end adds a real ``<img>`` pointing at the counter to
the app's page, so the test proves the browser *could* have reached it.
"""
from __future__ import annotations

import http.server
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from test_app_pages import app_env, sim_records  # noqa: F401  (shared fixtures: samples + index)
from test_browser_e2e import body_text, driver, no_exception, open_page, server, shot, wait_ready  # noqa: F401

pytestmark = pytest.mark.browser

PAGES = [("Reconstruction", "Reconstruction"), ("Fingerprint map", "Fingerprint map"),
         ("Similar patients", "Similar patients"), ("Predictions", "Predictions & explanations"),
         ("Model card", "Model card"), ("Record", "Record")]


class _Counter(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []
    PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
                        "0000000d49444154789c6360000002000100e221bc330000000049454e44ae426082")

    def do_GET(self):  # noqa: N802  (http.server's naming)
        type(self).hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(self.PNG)))
        self.end_headers()
        self.wfile.write(self.PNG)

    do_HEAD = do_GET  # noqa: N815

    def log_message(self, *args):  # keep the test output quiet
        pass


@pytest.fixture(scope="module")
def counter():
    """(port, list of paths requested): a local image server that only counts."""
    _Counter.hits = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counter)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1], _Counter.hits
    httpd.shutdown()
    httpd.server_close()


def _hostile_files(folder: Path, port: int, sim) -> tuple[list[Path], Path, str, str]:
    """A WFDB pair and a CSV carrying hostile strings; returns (wfdb files, csv, image text, tag text)."""
    from m2ae.io.writers import write_record
    from m2ae.record import Record

    image = f"![x](http://127.0.0.1:{port}/p.png)"
    tag = f"<img src=http://127.0.0.1:{port}/q.png>"
    rec = Record(ecg=sim.ecg, ppg=sim.ppg, fs=sim.fs,
                 meta={"source": "hostile", "units": {"ecg": "mV", "ppg": "au"}, "start_time": image,
                       "labels": {"rhythm_name": image, "sex": "F", "dx": tag}})
    hea = write_record(rec, folder / "hostile.hea", fmt="wfdb")
    hea.write_text(hea.read_text() + f"# age: {image}\n# dx: {image}\n")
    csv = folder / "hostile_columns.csv"
    # no recognisable name: the reader refuses it naming the columns, and the mapping form offers them
    pd.DataFrame({"time": np.arange(len(sim.ecg)) / sim.fs, tag: sim.ecg,
                  f"![c](http://127.0.0.1:{port}/c.png)": sim.ppg}).to_csv(csv, index=False)
    return [hea, hea.with_suffix(".dat")], csv, image, tag


def _upload(drv, paths: list[Path], must_contain: str) -> None:
    from selenium.webdriver.common.by import By

    open_page(drv, "Record", "Sample record")
    tabs = [t for t in drv.find_elements(By.CSS_SELECTOR, "[role=tab]") if "Upload" in t.text]
    assert tabs, "no Upload tab"
    tabs[0].click()
    drv.find_element(By.CSS_SELECTOR, "[data-testid=stFileUploader] input[type=file]").send_keys(
        "\n".join(str(p) for p in paths))
    wait_ready(drv, must_contain)
    no_exception(drv)


def _choose_option(drv, label: str, text: str) -> None:
    """Open the selectbox labelled ``label`` and click the option that reads ``text``."""
    from selenium.webdriver.common.by import By

    boxes = [b for b in drv.find_elements(By.CSS_SELECTOR, "[data-testid=stSelectbox]") if label in b.text]
    assert boxes, f"no selectbox {label!r}"
    opener = boxes[0].find_elements(By.CSS_SELECTOR, "[role=combobox], div[data-baseweb=select]")
    opener[0].click()
    time.sleep(0.7)
    options = [o for o in drv.find_elements(By.CSS_SELECTOR, "[role=option]") if o.text == text]
    assert options, [o.text for o in drv.find_elements(By.CSS_SELECTOR, "[role=option]")]
    options[0].click()
    time.sleep(0.5)


def _every_page(drv, tag: str, port: int) -> None:
    from selenium.webdriver.common.by import By

    for title, heading in PAGES:
        open_page(drv, title, heading)
        shot(drv, f"hostile_{tag}_{title.split()[0].lower()}")
        # file text is not even a link (GFM would turn a bare URL into one)
        links = [a.get_attribute("href") for a in drv.find_elements(By.CSS_SELECTOR, "a[href]")]
        assert not [h for h in links if f":{port}" in (h or "")], (title, links)


def test_hostile_metadata_makes_no_request_and_pages_work(server, driver, counter, tmp_path, sim_records):  # noqa: F811
    from selenium.webdriver.common.by import By

    port, hits = counter
    wfdb_files, csv, image, tag = _hostile_files(tmp_path, port, sim_records["NSR"])
    drv = driver
    drv.get(server)
    wait_ready(drv, "Heart rate", ".js-plotly-plot")

    _upload(drv, wfdb_files, "hostile.hea")
    try:
        wait_ready(drv, "Heart rate", ".js-plotly-plot", timeout=60)
    finally:
        shot(drv, "hostile_wfdb_record")
    shown = body_text(drv).replace("\u200b", "")
    assert image in shown, f"the hostile label is not shown as text: {shown[:3000]}"
    _every_page(drv, "wfdb", port)

    _upload(drv, [csv], "hostile_columns.csv")
    assert tag in body_text(drv), "the refusal names the columns, as text"
    _choose_option(drv, "ECG column", tag)          # map the hostile column as the ECG
    _choose_option(drv, "PPG column", "(none: leave out)")
    [b for b in drv.find_elements(By.CSS_SELECTOR, "button") if "Read with this mapping" in b.text][0].click()
    wait_ready(drv, "Heart rate", ".js-plotly-plot")
    shot(drv, "hostile_csv_mapped")
    _every_page(drv, "csv", port)
    time.sleep(2.0)  # images load asynchronously: give a fetch time to arrive
    assert hits == [], f"the browser fetched {hits} from the counter: file text was rendered as markup"

    # control: the same page does reach the counter when it really holds an image
    drv.execute_script("const i = document.createElement('img'); i.src = arguments[0]; document.body.appendChild(i);",
                       f"http://127.0.0.1:{port}/control.png")
    deadline = time.time() + 10
    while not hits and time.time() < deadline:
        time.sleep(0.2)
    assert hits and hits[0].startswith("/control.png"), "control image not fetched: the counter proves nothing"
