"""Benchmark the web app against its goals; prints each measurement beside its goal as a ratio.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/bench_app.py [--sessions 20] [--skip-browser] [--cold-only]

1. server start → first interactive page (goal ≤ 5 s): `m2ae app` (app/serve.py) on 127.0.0.1 and
   headless Chromium; "interactive" = the script finished ([data-test-script-state=notRunning]) and
   the Record page's waveform traces are drawn (plotly's .scatterlayer .trace in the DOM). Skipped when chromium/chromedriver are missing.
2. widget change → re-render on a cached record (goal ≤ 300 ms): median AppTest run after changing
   the window selector / the mask ratio back and forth (every result already cached).
3. upload → all pages ready for a 10-minute record (goal ≤ 3 s): a simulated 10-min paired record
   (CSV, 250 Hz) uploaded through the file uploader, then every page rendered once (AppTest).
4. 20 concurrent sessions share one model (goal: one model load per server, no memory growth):
   20 browser tabs open the Reconstruction page at once (each a Streamlit session using the model),
   twice; the server's RSS after the second wave must not exceed the first by more than 100 MB.
   (AppTest is not thread-safe, so concurrency is measured over HTTP/websocket with real sessions.)

Timings are server-side script runs (AppTest) except (1), which includes the browser.
ratio = measured / goal: ≤ 1.00 meets the goal.
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app" / "streamlit_app.py"
PAGES = ["views/reconstruction.py", "views/fingerprint_map.py", "views/similar_patients.py",
         "views/predictions.py", "views/model_card.py"]


def report(name: str, measured: float, goal: float, unit: str, note: str = "") -> None:
    ratio = measured / goal if goal else float("nan")
    flag = "ok " if ratio <= 1 else "MISS"
    print(f"{flag} {name:<52s} {measured:9.3f} {unit:<3s} goal ≤ {goal:g} {unit:<3s} ratio {ratio:5.2f}  {note}")


def record_csv(duration_s: float, seed: int, fs: float = 250.0) -> bytes:
    from m2ae.simulate import simulate_record

    rec = simulate_record("NSR", duration_s=duration_s, fs_hz=fs, seed=seed)
    t = np.arange(rec.n_samples) / fs
    return pd.DataFrame({"Time [s]": t, "II": rec.ecg, "PLETH": rec.ppg}).to_csv(index=False, float_format="%.5f").encode()


def new_app():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=600)
    at.run()
    return at


def check(at) -> None:
    if at.exception:
        raise RuntimeError(f"app raised: {[e.value for e in at.exception]}")


def timed_run(at) -> float:
    t0 = time.perf_counter()
    at.run()
    dt = time.perf_counter() - t0
    check(at)
    return dt


# --- 1 and 4 (HTTP): a real server, real browser sessions ------------------------------------------

def _server_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def bench_browser(n_sessions: int, plain_streamlit: bool = False) -> None:
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not chromedriver:
        print("skip browser benchmarks: chromium/chromedriver not installed")
        return
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    os.environ["SE_OFFLINE"] = "true"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    profiles: list[str] = []

    def new_browser():  # a fresh profile: nothing of the app's frontend cached
        opts = webdriver.ChromeOptions()
        opts.binary_location = chromium
        profile = tempfile.mkdtemp(prefix="bench-chromium-")
        profiles.append(profile)
        for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--disable-background-networking", "--disable-component-update", "--no-first-run",
                     f"--user-data-dir={profile}", "--window-size=1400,1200"):
            opts.add_argument(flag)
        return webdriver.Chrome(options=opts, service=Service(chromedriver))

    drv, fresh = new_browser(), new_browser()  # both started before the clock
    log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
    proc = None

    def ready(d):
        return (d.find_elements(By.CSS_SELECTOR, "[data-testid=stApp][data-test-script-state=notRunning]")
                and d.find_elements(By.CSS_SELECTOR, ".js-plotly-plot .scatterlayer .trace"))

    try:
        t0 = time.perf_counter()
        # what `m2ae app` runs: app/serve.py = `streamlit run app/streamlit_app.py` + import warm-up
        launcher = [str(ROOT / "app" / "serve.py")] if not plain_streamlit else ["-m", "streamlit", "run", str(APP)]
        proc = subprocess.Popen([sys.executable, *launcher, "--server.address", "127.0.0.1",
                                 "--server.port", str(port), "--server.headless", "true"],
                                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1):
                    break
            except OSError as e:
                if time.perf_counter() - t0 > 120:
                    raise RuntimeError("server did not start within 120 s") from e
                time.sleep(0.05)
        t_health = time.perf_counter() - t0
        drv.get(url)
        WebDriverWait(drv, 300, poll_frequency=0.05).until(ready)
        t_ready = time.perf_counter() - t0
        report("server start → health OK", t_health, 5.0, "s")
        how = "streamlit run" if plain_streamlit else "m2ae app (app/serve.py)"
        report(f"server start → first interactive page, cold ({how})", t_ready, 5.0, "s",
               "fresh process: imports, reads + preprocesses the first sample, browser draws it")
        t1 = time.perf_counter()
        drv.get(url)  # a second visitor: imports done, record cached in the running server
        WebDriverWait(drv, 300, poll_frequency=0.05).until(ready)
        report("second visitor → interactive page (warm server)", time.perf_counter() - t1, 5.0, "s")
        t1 = time.perf_counter()
        fresh.get(url)  # the same warm server, a browser that has never loaded the app's frontend
        WebDriverWait(fresh, 300, poll_frequency=0.05).until(ready)
        report("new browser → interactive page (warm server)", time.perf_counter() - t1, 5.0, "s",
               "the browser's share of a cold start: loading Streamlit's and plotly's JavaScript afresh")
        if n_sessions <= 0:
            return
        drv.get(f"{url}/reconstruction")  # warm-up: the model loads once
        WebDriverWait(drv, 300, poll_frequency=0.1).until(ready)
        time.sleep(2)
        rss = [_server_rss_mb(proc.pid)]
        main = drv.current_window_handle
        for wave in range(2):
            t1 = time.perf_counter()
            tabs = []
            for _ in range(n_sessions):  # open all sessions before waiting for any
                drv.switch_to.new_window("tab")
                drv.get(f"{url}/reconstruction")
                tabs.append(drv.current_window_handle)
            for h in tabs:
                drv.switch_to.window(h)
                WebDriverWait(drv, 600, poll_frequency=0.2).until(ready)
            wall = time.perf_counter() - t1
            rss.append(_server_rss_mb(proc.pid))
            for h in tabs:
                drv.switch_to.window(h)
                drv.close()
            drv.switch_to.window(main)
            time.sleep(3)
            print(f"     wave {wave + 1}: {n_sessions} sessions on the Reconstruction page ready in {wall:.1f} s; "
                  f"server RSS {rss[-1]:.0f} MB")
        log.flush()
        loads = sum("m2ae app: model loaded" in line for line in open(log.name))
        report(f"{1 + 2 * n_sessions} browser sessions: model loads", float(loads), 1.0, "", "st.cache_resource")
        report(f"{n_sessions} more sessions: server RSS growth (wave 2 vs wave 1)", rss[2] - rss[1], 100.0, "MB",
               f"RSS warm {rss[0]:.0f} → wave 1 {rss[1]:.0f} → wave 2 {rss[2]:.0f} MB")
    finally:
        drv.quit()
        fresh.quit()
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=20)
        for profile in profiles:
            shutil.rmtree(profile, ignore_errors=True)
        os.unlink(log.name)


# --- 2. widget change on a cached record -----------------------------------------------------------

def bench_widget_change(repeats: int = 6) -> None:
    at = new_app()
    check(at)
    n = len(at.sidebar.selectbox(key="window").options)
    pair = [0, min(1, n - 1)]
    for w in pair:  # fill the caches
        at.sidebar.selectbox(key="window").set_value(w)
        timed_run(at)
    times = []
    for k in range(repeats):
        at.sidebar.selectbox(key="window").set_value(pair[k % 2])
        times.append(timed_run(at))
    report("window change, Record page (cached record)", statistics.median(times) * 1000, 300, "ms",
           f"median of {repeats}")
    at.switch_page("views/reconstruction.py")
    timed_run(at)
    for r in (0.3, 0.5):
        at.slider(key="recon_ratio").set_value(r)
        timed_run(at)
    times = []
    for k in range(repeats):
        at.slider(key="recon_ratio").set_value((0.3, 0.5)[k % 2])
        times.append(timed_run(at))
    report("mask-ratio change, Reconstruction (cached)", statistics.median(times) * 1000, 300, "ms",
           f"median of {repeats}")


# --- 3. upload a 10-minute record, all pages ready ------------------------------------------------

def bench_upload_all_pages() -> None:
    data = record_csv(600.0, seed=101)
    at = new_app()
    t0 = time.perf_counter()
    at.file_uploader(key="upload").set_value(("ten_minutes.csv", data, "text/csv"))
    timed_run(at)
    if at.subheader[0].value != "ten_minutes.csv":
        raise RuntimeError(f"upload did not open: {[e.value for e in at.error]}")
    t_record = time.perf_counter() - t0
    for page in PAGES:
        at.switch_page(page)
        timed_run(at)
    total = time.perf_counter() - t0
    report("10-min upload → Record page ready", t_record, 3.0, "s", f"{len(data) / 2**20:.1f} MiB CSV at 250 Hz")
    report("10-min upload → all 6 pages ready", total, 3.0, "s", "each page rendered once, first time")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sessions", type=int, default=20)
    p.add_argument("--skip-browser", action="store_true")
    p.add_argument("--cold-only", action="store_true",
                   help="only (1): server start → first interactive page, then the second visitor; no sessions, no AppTest")
    p.add_argument("--plain-streamlit", action="store_true",
                   help="start with `streamlit run` instead of app/serve.py (no import warm-up), to compare")
    args = p.parse_args()
    import torch

    print(f"machine: {os.cpu_count()} CPU cores, torch {torch.__version__}, "
          f"CUDA {'yes' if torch.cuda.is_available() else 'no'}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    if not args.skip_browser:
        bench_browser(0 if args.cold_only else args.sessions, args.plain_streamlit)
    if args.cold_only:
        return
    bench_widget_change()
    bench_upload_all_pages()


if __name__ == "__main__":
    main()
