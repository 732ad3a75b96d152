"""Does the app server give its memory back? Resident memory of `m2ae app` around concurrent hostile uploads.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/bench_app_memory.py [--sessions 20] [--settle 120]

1. Start the server (app/serve.py, what `m2ae app` runs) on a free 127.0.0.1 port.
2. Warm it like any server in use: one browser session opens the Record page (the first sample) and
   the Reconstruction page (the model and index load: once per server, by design), then leaves.
   After ``--settle`` seconds, the server's RSS is the **baseline**.
3. N headless-Chromium sessions at once (tabs of one browser; default N = 20) each upload a
   simulated 10-minute paired record (CSV, 250 Hz, written with m2ae.simulate + m2ae.io writers),
   wait until it is shown, remove it, upload the 41 KB CSV "gap bomb" (its time column jumps to
   3e5 s: the reader would build an 83-hour grid), wait for the page to settle, then close.
4. ``--settle`` seconds after the last tab closed, the RSS is measured again: **after**. By then the
   app has released the sessions' records (within ~15 s) and closed the sessions themselves (90–105 s
   after they left; Streamlit alone would keep them, with their uploaded files).

Prints RSS baseline / peak (sampled every 0.1 s, and the kernel's VmHWM) / after, and the ratio
after / baseline (goal ≤ 1.10, issue 12 item 5). RSS is read from /proc/PID/status (Linux).
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
GOAL_RATIO = 1.10
WAIT_S = 600  # one step of one session, on 2 shared cores with N sessions at once


def proc_status_mb(pid: int, field: str = "VmRSS") -> float:
    """A memory field of /proc/PID/status (VmRSS, VmHWM) in MB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def write_inputs(folder: Path) -> tuple[Path, Path]:
    """(a 10-minute paired record as CSV at 250 Hz, the 41 KB gap-bomb CSV)."""
    from m2ae.io.writers import write_record
    from m2ae.simulate import simulate_record

    rec = simulate_record("NSR", duration_s=600.0, fs_hz=250.0, seed=7)
    record = write_record(rec, folder / "ten_minutes.csv", fmt="csv")
    rng = np.random.default_rng(0)
    n = 1950  # 15.6 s at 125 Hz, then one row 3e5 s later: ~41 KB
    rows = [f"{k / 125:.3f},{rng.normal():.4f},{rng.normal():.4f}" for k in range(n)] + ["300000.000,0.1,0.2"]
    bomb = folder / "gap_bomb.csv"
    bomb.write_text("time,II,PLETH\n" + "\n".join(rows) + "\n")
    return record, bomb


class PeakSampler(threading.Thread):
    """Samples a process's RSS every ``every_s`` seconds; ``peak`` is the highest seen (MB)."""

    def __init__(self, pid: int, every_s: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.pid, self.every_s, self.peak, self._stop = pid, every_s, 0.0, threading.Event()

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, proc_status_mb(self.pid))
            except OSError:
                return
            time.sleep(self.every_s)

    def stop(self) -> None:
        self._stop.set()


def start_server(log) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, str(ROOT / "app" / "serve.py"), "--server.port", str(port),
                             "--server.headless", "true"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    t0 = time.time()
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1):
                return proc, url
        except OSError as e:
            if time.time() - t0 > 120 or proc.poll() is not None:
                raise RuntimeError("server did not start within 120 s") from e
            time.sleep(0.2)


def browser(profile: str):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # never let Selenium Manager download a browser
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update", "--no-first-run",
                 "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
                 f"--user-data-dir={profile}", "--window-size=1300,1000"):
        opts.add_argument(flag)
    drv = webdriver.Chrome(options=opts, service=Service(shutil.which("chromedriver")))
    drv.set_page_load_timeout(WAIT_S)
    return drv


def wait_page(drv, text: str | None = None, css: str | None = None) -> None:
    """Until the script has finished and ``text`` / ``css`` are on the page."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def ready(d):
        if not d.find_elements(By.CSS_SELECTOR, "[data-testid=stApp][data-test-script-state=notRunning]"):
            return False
        if text and text not in d.find_element(By.TAG_NAME, "body").text:
            return False
        return not css or bool(d.find_elements(By.CSS_SELECTOR, css))

    time.sleep(0.3)
    WebDriverWait(drv, WAIT_S, poll_frequency=0.25).until(ready)


def send_upload(drv, path: Path) -> None:
    """Open the Record page's Upload tab and give the file input ``path`` (does not wait)."""
    from selenium.webdriver.common.by import By

    tabs = [t for t in drv.find_elements(By.CSS_SELECTOR, "[role=tab]") if "Upload" in t.text]
    tabs[0].click()
    box = drv.find_element(By.CSS_SELECTOR, "[data-testid=stFileUploader] input[type=file]")
    # chromedriver appends to a multiple-file input's earlier selection: empty it first
    drv.execute_script("arguments[0].value = '';", box)
    box.send_keys(str(path))


DELETE_BUTTONS = "button[data-testid=stFileChipDeleteBtn], [data-testid=stFileChipDeleteBtn] button"


def remove_uploads(drv) -> None:
    """Remove every uploaded file (the chips' delete buttons, on the Upload tab); the page reruns."""
    from selenium.webdriver.common.by import By

    tabs = [t for t in drv.find_elements(By.CSS_SELECTOR, "[role=tab]") if "Upload" in t.text]
    tabs[0].click()
    time.sleep(0.3)
    buttons = drv.find_elements(By.CSS_SELECTOR, DELETE_BUTTONS)
    if not buttons:
        raise RuntimeError("no delete button on the uploaded file: the Streamlit markup changed")
    for button in buttons:
        button.click()
        time.sleep(0.3)


def for_each_tab(drv, tabs: list[str], action) -> None:
    for h in tabs:
        drv.switch_to.window(h)
        action(drv)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sessions", type=int, default=20, help="concurrent browser sessions (default 20)")
    p.add_argument("--settle", type=float, default=120.0,
                   help="seconds to wait after sessions leave before measuring (default 60; sessions are "
                        "released within ~15 s of their browser closing and closed within ~45 s)")
    args = p.parse_args()
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        print("skip: Debian chromium and chromedriver are not installed (apt-get install chromium chromium-driver)")
        return 0
    work = Path(tempfile.mkdtemp(prefix="bench-app-memory-"))
    log = open(work / "server.log", "w+")
    record, bomb = write_inputs(work)
    print(f"inputs: {record.name} {record.stat().st_size / 1e6:.1f} MB (10 min, 250 Hz), "
          f"{bomb.name} {bomb.stat().st_size / 1e3:.0f} KB (time column jumps to 3e5 s)")
    proc, url = start_server(log)
    drv = browser(str(work / "profile"))
    sampler = None
    try:
        # 2. warm-up session: first sample + the model and index, then leave
        drv.get(url)
        wait_page(drv, "Heart rate", ".js-plotly-plot")
        drv.get(f"{url}/reconstruction")
        wait_page(drv, "Cross-modal", ".js-plotly-plot")
        main_tab = drv.current_window_handle
        drv.get("about:blank")
        time.sleep(args.settle)
        baseline = proc_status_mb(proc.pid)
        print(f"baseline (warm server, no session): RSS {baseline:.0f} MB")

        # 3. N sessions at once
        sampler = PeakSampler(proc.pid)
        sampler.start()
        t0 = time.time()
        tabs = []
        for _ in range(args.sessions):
            drv.switch_to.new_window("tab")
            drv.get(url)
            tabs.append(drv.current_window_handle)
        for_each_tab(drv, tabs, lambda d: wait_page(d, "Heart rate", ".js-plotly-plot"))
        for_each_tab(drv, tabs, lambda d: send_upload(d, record))
        for_each_tab(drv, tabs, lambda d: wait_page(d, record.name, ".js-plotly-plot"))
        t_record = time.time() - t0
        rss_records = proc_status_mb(proc.pid)
        for_each_tab(drv, tabs, remove_uploads)
        for_each_tab(drv, tabs, lambda d: wait_page(d, "No record yet"))
        for_each_tab(drv, tabs, lambda d: send_upload(d, bomb))
        for_each_tab(drv, tabs, lambda d: wait_page(d, bomb.name))
        t_all = time.time() - t0
        from selenium.webdriver.common.by import By

        drv.switch_to.window(tabs[0])
        bomb_says = " | ".join(e.text.replace("\n", " ")[:200] for e in
                               drv.find_elements(By.CSS_SELECTOR, "[data-testid=stAlert]")) or "(no alert)"
        print(f"{args.sessions} sessions: 10-min record shown in all after {t_record:.0f} s (RSS {rss_records:.0f} MB); "
              f"gap bomb handled in all after {t_all:.0f} s")
        print(f"  the app said about the gap bomb: {bomb_says}")
        for h in tabs:
            drv.switch_to.window(h)
            drv.close()
        drv.switch_to.window(main_tab)
        # 4. after they leave
        time.sleep(args.settle)
        sampler.stop()
        after = proc_status_mb(proc.pid)
        hwm = proc_status_mb(proc.pid, "VmHWM")
        log.flush()
        released = [line.strip() for line in open(log.name) if "released the records" in line]
        print(f"RSS baseline {baseline:.0f} MB · peak {max(sampler.peak, rss_records):.0f} MB (VmHWM {hwm:.0f} MB) · "
              f"after {after:.0f} MB ({args.settle:.0f} s after the sessions left)")
        if released:
            print(f"  server: {released[-1]}")
        ratio = after / baseline
        print(f"{'ok ' if ratio <= GOAL_RATIO else 'MISS'} RSS after / baseline = {ratio:.3f} (goal ≤ {GOAL_RATIO:.2f})")
        return 0
    finally:
        if sampler is not None:
            sampler.stop()
        drv.quit()
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
