"""One real-browser run: `streamlit run` on 127.0.0.1 driven by headless Debian Chromium (Selenium).

Picks a sample, sees the reconstruction plot, uploads the real BIDMC CSV when present, opens Similar
patients, drags a box on the fingerprint map, and saves a screenshot of every page under
test-artifacts/ (gitignored). Then a real ICU alarm sample (CinC 2015 r289): the review opens on the
window that ends at the alarm (marked, its selector label not cut off), the ECG lead switch goes to lead V,
Similar patients lists real ICU neighbours (source cinc2015) and Predictions shows the alarm head, said to
have learnt from real labels. Skips with the reason when chromium/chromedriver are missing.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from test_app_pages import app_env, sim_records  # noqa: F401  (shared fixtures: samples + index)

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
REAL_CSV = "bidmc_01_Signals.csv"
WAIT_S = 240  # the first page loads torch, the model and neurokit2 on 2 shared cores (120 s timed out at load 30)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(app_env):  # noqa: F811
    port = _free_port()
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    ARTIFACTS.mkdir(exist_ok=True)
    log = open(ARTIFACTS / "streamlit_server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app" / "streamlit_app.py"),
         "--server.address", "127.0.0.1", "--server.port", str(port), "--server.headless", "true",
         "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.3)
    else:
        proc.terminate()
        pytest.fail(f"streamlit did not start; see {ARTIFACTS / 'streamlit_server.log'}")
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not chromedriver:
        pytest.skip("Debian chromium and chromedriver are not installed (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # never let Selenium Manager download a browser
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update", "--no-first-run",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}", "--window-size=1500,1500"):
        opts.add_argument(flag)
    drv = webdriver.Chrome(options=opts, service=Service(chromedriver))
    drv.set_page_load_timeout(WAIT_S)
    yield drv
    drv.quit()


# --- helpers ----------------------------------------------------------------------------------

def _by():
    from selenium.webdriver.common.by import By

    return By


def wait_ready(drv, must_contain: str | None = None, css: str | None = None, timeout: float = WAIT_S) -> None:
    """Wait for the script to finish (not just the server's health) and for the page's content."""
    from selenium.webdriver.support.ui import WebDriverWait

    By = _by()

    def ready(d):
        if not d.find_elements(By.CSS_SELECTOR, "[data-testid=stApp][data-test-script-state=notRunning]"):
            return False
        if must_contain and must_contain not in d.find_element(By.TAG_NAME, "body").text:
            return False
        if css and not d.find_elements(By.CSS_SELECTOR, css):
            return False
        return True

    time.sleep(0.5)  # let a rerun that was just triggered flip the script state to running first
    WebDriverWait(drv, timeout, poll_frequency=0.25).until(ready)


def body_text(drv) -> str:
    return drv.find_element(_by().TAG_NAME, "body").text


def no_exception(drv) -> None:
    By = _by()
    assert not drv.find_elements(By.CSS_SELECTOR, "[data-testid=stException]"), body_text(drv)[:2000]
    assert "Traceback" not in body_text(drv)


def shot(drv, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    drv.save_screenshot(str(path))
    return path


def open_page(drv, title: str, must_contain: str, css: str | None = None) -> None:
    By = _by()
    links = [a for a in drv.find_elements(By.CSS_SELECTOR, "[data-testid=stSidebarNav] a") if title in a.text]
    assert links, f"no sidebar link {title!r}"
    links[0].click()
    wait_ready(drv, must_contain, css)
    no_exception(drv)


def pick_option(drv, label: str, option_index: int) -> str:
    """Open the selectbox whose label is ``label`` and click its option number ``option_index``."""
    By = _by()
    boxes = [b for b in drv.find_elements(By.CSS_SELECTOR, "[data-testid=stSelectbox]") if label in b.text]
    assert boxes, f"no selectbox {label!r}"
    opener = boxes[0].find_elements(By.CSS_SELECTOR, "button[aria-label=Open]") or \
        boxes[0].find_elements(By.CSS_SELECTOR, "[role=combobox], div[data-baseweb=select]")
    opener[0].click()
    time.sleep(0.7)
    options = drv.find_elements(By.CSS_SELECTOR, "[role=option]")
    assert len(options) > option_index, [o.text for o in options]
    text = options[option_index].text
    options[option_index].click()
    return text


# --- the walk-through ------------------------------------------------------------------------------

def test_walk_through_every_page(server, driver, app_env):  # noqa: F811
    from selenium.webdriver.common.action_chains import ActionChains

    By = _by()
    drv = driver
    drv.get(server)
    wait_ready(drv, "Heart rate", ".js-plotly-plot")
    no_exception(drv)
    assert "not for clinical use" in body_text(drv)
    shot(drv, "01_record_default")

    # pick a sample (the second one; the first opens by default)
    samples = app_env["samples"]
    if len(samples) > 1:
        chosen = pick_option(drv, "Sample record", 1)
        name = chosen.split(" — ")[0]
        wait_ready(drv, name, ".js-plotly-plot")
        no_exception(drv)
        shot(drv, "02_record_sample")
        single = [k for k, e in enumerate(samples) if len(e.info.get("modalities") or ["ecg", "ppg"]) == 1]
        if single:  # an ECG-only or PPG-only sample: the other modality is drawn as a reconstruction
            chosen = pick_option(drv, "Sample record", single[0])
            wait_ready(drv, chosen.split(" — ")[0], ".js-plotly-plot")
            no_exception(drv)
            assert "reconstructed from" in body_text(drv)
            shot(drv, "02b_record_single_modality")

    # reconstruction plot
    open_page(drv, "Reconstruction", "Cross-modal", ".js-plotly-plot")
    assert "reconstructed" in body_text(drv) or drv.find_elements(By.XPATH, "//*[text()='reconstructed']")
    assert len(drv.find_elements(By.CSS_SELECTOR, ".js-plotly-plot")) >= 2  # overlay + cross-modal panel(s)
    shot(drv, "03_reconstruction")

    # upload the real BIDMC CSV when the shared data is present
    real = Path(os.environ.get("M2AE_REAL_DATA", ROOT.parent / "shared" / "data" / "real")) / REAL_CSV
    if real.exists():
        open_page(drv, "Record", "Sample record")
        tabs = [t for t in drv.find_elements(By.CSS_SELECTOR, "[role=tab]") if "Upload" in t.text]
        assert tabs, "no Upload tab"
        tabs[0].click()
        drv.find_element(By.CSS_SELECTOR, "[data-testid=stFileUploader] input[type=file]").send_keys(str(real))
        wait_ready(drv, REAL_CSV, ".js-plotly-plot")
        no_exception(drv)
        assert "480 s" in body_text(drv)
        shot(drv, "04_record_uploaded_bidmc")

    open_page(drv, "Similar patients", "Label make-up", ".js-plotly-plot")
    assert "kNN vote" in body_text(drv)
    shot(drv, "05_similar_patients")

    open_page(drv, "Predictions", "Share of evidence", ".js-plotly-plot")
    shot(drv, "06_predictions")

    open_page(drv, "Model card", "Weights version")
    assert "not for clinical use" in body_text(drv)
    shot(drv, "07_model_card")

    # fingerprint map: drag a box over the middle of the map once
    open_page(drv, "Fingerprint map", "Colour by", ".js-plotly-plot")
    shot(drv, "08_fingerprint_map")
    drag = drv.find_elements(By.CSS_SELECTOR, ".js-plotly-plot .nsewdrag")[0]
    w, h = drag.size["width"], drag.size["height"]
    # a box over part of the map (offsets are from the drag layer's centre)
    ActionChains(drv).move_to_element_with_offset(drag, int(-w * 0.4), int(-h * 0.4)).click_and_hold() \
        .move_by_offset(int(w * 0.2), int(h * 0.2)).move_by_offset(int(w * 0.3), int(h * 0.3)).release().perform()
    wait_ready(drv, "Selection:", "[data-testid=stDownloadButton]")
    no_exception(drv)
    assert "Export cohort CSV" in body_text(drv)
    total = int(body_text(drv).split(" indexed windows")[0].split()[-1].replace(",", ""))
    selected = int(body_text(drv).split("Selection: ")[1].split()[0].replace(",", ""))
    assert 0 < selected < total, (selected, total)
    shot(drv, "09_fingerprint_map_selection")


# --- a real ICU alarm record (issue 11 / issue 15): alarm window, real neighbours, alarm head, leads ---

ALARM_SAMPLE = "cinc2015_r289"  # a true VT alarm at 300 s, ECG leads II and V + PPG


def _sidebar_window_value(drv) -> tuple[str, bool]:
    """The sidebar window selector's shown value and whether it fits its box (not cut off)."""
    return tuple(drv.execute_script("""
        const box = document.querySelector('[data-testid=stSidebar] [data-testid=stSelectbox]');
        const input = box.querySelector('input');
        if (input && input.value) { return [input.value, input.scrollWidth <= input.clientWidth + 1]; }
        const label = box.querySelector('[data-testid=stWidgetLabel]');
        const els = Array.from(box.querySelectorAll('*')).filter(
            e => e.children.length === 0 && !(label && label.contains(e)) && /\\d s/.test(e.textContent));
        if (!els.length) { return [box.innerHTML.slice(0, 600), false]; }
        return [els[0].textContent, els[0].scrollWidth <= els[0].clientWidth + 1];
    """))


def test_real_icu_alarm_sample(server, driver, app_env):  # noqa: F811
    from m2ae.model.card import LABEL_SOURCES

    By = _by()
    names = [e.name for e in app_env["samples"]]
    if ALARM_SAMPLE not in names:
        pytest.skip(f"sample_data has no {ALARM_SAMPLE} (the real CinC 2015 samples are not in this checkout)")
    drv = driver
    drv.get(server)
    wait_ready(drv, "Heart rate", ".js-plotly-plot")
    pick_option(drv, "Sample record", names.index(ALARM_SAMPLE))
    # the review opens on the window that ends at the alarm, marked in the selector and on the plot
    wait_ready(drv, "Window 30 of 30", ".js-plotly-plot")
    no_exception(drv)
    shown, fits = _sidebar_window_value(drv)
    assert shown.startswith("290–300 s · alarm") and fits, (shown, fits)
    assert "alarm: VT (true)" in body_text(drv)
    assert any("alarm: VT (true)" in t.text for t in drv.find_elements(By.CSS_SELECTOR, ".js-plotly-plot .annotation"))
    # every ECG lead: switch to lead V, the model's input (II) named
    assert "Model input: II" in body_text(drv)
    lead_v = [lab for lab in drv.find_elements(By.CSS_SELECTOR, "[data-testid=stRadio] label") if lab.text == "V"]
    assert lead_v, "no lead switch offering lead V"
    lead_v[0].click()
    wait_ready(drv, "not the model's input", ".js-plotly-plot")
    no_exception(drv)
    shot(drv, "10_real_alarm_record_lead_v")

    # real ICU neighbours: the neighbour table's source column names the CinC 2015 corpus
    open_page(drv, "Similar patients", "Label make-up", "[data-testid=stDataFrame] [role=gridcell]")
    cells = [c.get_attribute("textContent") for c in
             drv.find_elements(By.CSS_SELECTOR, "[data-testid=stDataFrame] [role=gridcell]")]
    assert any("cinc2015" in c for c in cells), cells[:30]
    shot(drv, "11_real_alarm_neighbours")

    # the alarm head's output, said to come from real labels
    open_page(drv, "Predictions", "Share of evidence", ".js-plotly-plot")
    text = body_text(drv)
    assert f"alarm_vt · {LABEL_SOURCES['real']}" in text, text[:1500]
    shot(drv, "12_real_alarm_predictions")
