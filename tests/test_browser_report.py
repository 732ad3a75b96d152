"""Real-browser check of issue 13's calipers and PDF report: `streamlit run` driven by headless Chromium.

Opens the default sample (nsr_wfdb when the project's samples are present), clicks two points on the ECG
trace of the Record page's chart with real mouse moves (ActionChains at the pixel where plotly draws the
chosen samples), checks the caliper reading "Δt … ms · rate … bpm" against the clicked times, then presses
"Prepare PDF report", downloads the PDF through Chromium's download directory and opens it with pypdf
(≥ 1 page, the record's name and "not for clinical use" in its text). Server and driver fixtures come from
tests/test_browser_e2e.py; skips with the reason when chromium/chromedriver are missing.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from test_app_pages import app_env, sim_records  # noqa: F401  (shared fixtures: samples + index)
from test_browser_e2e import _by, body_text, driver, no_exception, server, shot, wait_ready  # noqa: F401

pytestmark = pytest.mark.browser

REPORT_WAIT_S = 150  # the report renders figures and runs the model: ~60 s on 2 loaded cores, margin for load
DT_TOLERANCE_MS = 250.0  # a click snaps to the nearest drawn point (possibly of a neighbouring trace)

# Pixel offsets (from the ECG subplot's drag layer's top-left) of the ECG samples nearest two fractions of
# the shown time range, and those samples' times in s. The ECG row is the "xy" subplot's longest trace.
_ECG_POINTS_JS = """
const gd = document.querySelectorAll('.js-plotly-plot')[0];
const fl = gd._fullLayout, xa = fl.xaxis, ya = fl.yaxis;
const traces = gd._fullData.filter(t => (t.xaxis || 'x') === 'x' && (t.yaxis || 'y') === 'y' && t.x && t.y);
traces.sort((a, b) => b.x.length - a.x.length);
const tr = traces[0];
const r0 = xa.range[0], r1 = xa.range[1];
return arguments[0].map(frac => {
    const target = r0 + frac * (r1 - r0);
    let best = 0;
    for (let k = 1; k < tr.x.length; k++) {
        if (Math.abs(tr.x[k] - target) < Math.abs(tr.x[best] - target)) { best = k; }
    }
    return [xa.l2p(tr.x[best]), ya.l2p(tr.y[best]), tr.x[best]];
});
"""


def _ecg_drag_layer(drv):
    By = _by()
    plot = drv.find_elements(By.CSS_SELECTOR, ".js-plotly-plot")[0]
    layers = plot.find_elements(By.CSS_SELECTOR, ".nsewdrag[data-subplot=xy]") or \
        plot.find_elements(By.CSS_SELECTOR, ".nsewdrag")
    return layers[0]


def _click_ecg_at(drv, frac: float) -> float:
    """Real mouse click on the ECG sample nearest ``frac`` of the shown time range; returns its time (s)."""
    from selenium.webdriver.common.action_chains import ActionChains

    drag = _ecg_drag_layer(drv)
    drv.execute_script("arguments[0].scrollIntoView({block:'center'})", drag)
    time.sleep(0.5)
    (px, py, t_s), = drv.execute_script(_ECG_POINTS_JS, [frac])
    w, h = drag.size["width"], drag.size["height"]
    # Selenium 4 offsets are from the element's centre
    ActionChains(drv).move_to_element_with_offset(drag, int(round(px - w / 2)), int(round(py - h / 2))) \
        .pause(0.8).click().perform()
    return float(t_s)


def _download_dir(drv, path: Path) -> None:
    """Let headless Chromium save downloads into ``path`` without asking."""
    params = {"behavior": "allow", "downloadPath": str(path)}
    try:
        drv.execute_cdp_cmd("Browser.setDownloadBehavior", {**params, "eventsEnabled": False})
    except Exception:  # older Chromium: the page-level command
        drv.execute_cdp_cmd("Page.setDownloadBehavior", params)


def _button(drv, text: str):
    By = _by()
    # a button's text can start with its icon's ligature name ("download\nDownload PDF report")
    found = [b for b in drv.find_elements(By.TAG_NAME, "button") if b.text.strip().endswith(text)]
    return found[0] if found else None


def test_calipers_and_pdf_report_download(server, driver, app_env, tmp_path):  # noqa: F811
    pypdf = pytest.importorskip("pypdf")
    from selenium.webdriver.support.ui import WebDriverWait

    drv = driver
    name = app_env["samples"][0].name  # the sample the Record page opens by default
    drv.get(server)
    wait_ready(drv, "Measurements in this window", ".js-plotly-plot")
    no_exception(drv)
    assert name in body_text(drv)
    time.sleep(2)  # let plotly finish laying out the chart before reading its axes

    # --- calipers: two real clicks on the ECG trace ---
    t1 = _click_ecg_at(drv, 0.25)
    wait_ready(drv, "first point at")
    time.sleep(1.5)
    t2 = _click_ecg_at(drv, 0.6)
    wait_ready(drv, "Δt ")
    no_exception(drv)
    text = body_text(drv)
    m = re.search(r"Δt (\d+) ms · rate (\d+) bpm", text)
    assert m, [ln for ln in text.splitlines() if "Calipers" in ln]
    dt_ms, rate = float(m.group(1)), float(m.group(2))
    expected_ms = 1000.0 * abs(t2 - t1)
    assert abs(dt_ms - expected_ms) <= DT_TOLERANCE_MS, (dt_ms, expected_ms, t1, t2)
    assert abs(rate - 60000.0 / dt_ms) <= 1.0, (rate, dt_ms)
    shot(drv, "13_record_calipers")

    # --- report: prepare, download, open ---
    _download_dir(drv, tmp_path)
    prepare = _button(drv, "Prepare PDF report")
    assert prepare is not None, "no 'Prepare PDF report' button"
    drv.execute_script("arguments[0].scrollIntoView({block:'center'})", prepare)
    prepare.click()
    wait_ready(drv, css="[data-testid=stDownloadButton]", timeout=REPORT_WAIT_S)
    no_exception(drv)
    download = _button(drv, "Download PDF report")
    assert download is not None, "no 'Download PDF report' button"
    drv.execute_script("arguments[0].scrollIntoView({block:'center'})", download)
    download.click()

    def saved(_):
        done = [p for p in tmp_path.glob("*.pdf") if p.stat().st_size > 0]
        return done[0] if done and not list(tmp_path.glob("*.crdownload")) else False

    pdf_path = WebDriverWait(drv, 60, poll_frequency=0.5).until(saved)
    shot(drv, "14_report_downloaded")
    reader = pypdf.PdfReader(str(pdf_path))
    assert len(reader.pages) >= 1
    pdf_text = "\n".join(page.extract_text() or "" for page in reader.pages)
    assert "not for clinical use" in pdf_text.lower(), pdf_text[:1500]
    assert name in pdf_text, pdf_text[:1500]
