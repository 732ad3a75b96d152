"""Beats and quality in CinC 2015 alarm windows: the single-lead detector (before issue 15) beside the multi-lead one.

For every record of one split of ``../shared/data/cinc2015`` (train by default; thresholds were set
on it, never on the test split), ``m2ae.preprocess`` runs twice — ``beats="single"`` (neurokit2 on the
model lead, template quality: the old behaviour) and ``beats="multilead"`` (``m2ae.signal.beats``) —
and the alarm window (290-300 s; the alarm sounds at 300 s) is read off both. Printed per group
(true / false VT alarms, true / false other alarms): records, VT-run rate (the window's detected
beats hold 5 consecutive beats at >= 100 bpm), ventricular-run rate (5 consecutive beats classed
ventricular; multi-lead only), ECG-low rate (ECG quality below the threshold), low-quality rate
(the window's ``low_quality`` flag, any channel), and seconds per record.

Done-when (issue 15): true VT: VT-run rate >= 0.90 and low-quality rate <= 1/3; true alarms' windows
flagged no more often than false alarms' windows.

    OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE python bench/bench_alarm_beats.py [--split train] [--limit N] [--json]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from m2ae import Record, preprocess  # noqa: E402
from m2ae.contract import QUALITY_THRESHOLD  # noqa: E402
from m2ae.signal.rhythm import window_interval_summary  # noqa: E402

ALARM_WINDOW_S = 290.0
MODES = ("single", "multilead")
GROUPS = (("VT", True), ("VT", False), ("other", True), ("other", False))


def read_cinc_record(path: Path) -> Record:
    """A CinC 2015 record with every ECG lead (``ecg_leads``), lead II (else the first) as model lead."""
    import wfdb

    r = wfdb.rdrecord(str(path))
    leads = {n: r.p_signal[:, i] for i, n in enumerate(r.sig_name) if n.upper() not in ("PLETH", "RESP", "ABP")}
    model = "II" if "II" in leads else next(iter(leads))
    ppg = r.p_signal[:, r.sig_name.index("PLETH")] if "PLETH" in r.sig_name else None
    return Record(ecg=leads[model], ppg=ppg, fs=float(r.fs), meta={"source": path.name, "lead": model},
                  ecg_leads=leads if len(leads) > 1 else None)


def alarm_window_figures(rec: Record, mode: str, start_s: float = ALARM_WINDOW_S) -> dict:
    """VT run, ventricular run, ECG-low and low-quality flags of the window starting at ``start_s``."""
    t0 = time.perf_counter()
    win = preprocess(rec, beats=mode)
    dt = time.perf_counter() - t0
    i = int(np.argmin(np.abs(win.starts_s - start_s)))
    if abs(win.starts_s[i] - start_s) > 1.0 or win.r_peaks is None:
        return {"seconds": dt, "missing": True}
    s = window_interval_summary(win.r_peaks, win.r_peak_classes, float(win.starts_s[i]), win.fs)
    return {"seconds": dt, "missing": False, "vt_run": s.fast_run, "v_run": s.longest_ventricular_run >= 5,
            "ecg_low": bool(win.ecg_quality[i] < QUALITY_THRESHOLD), "low": bool(win.low_quality[i]),
            "fastest_bpm": s.fastest_run_bpm}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(os.environ.get(
        "M2AE_CINC2015_DATA", ROOT.parent / "shared" / "data" / "cinc2015")))
    ap.add_argument("--split", default="train", choices=("train", "validation", "test"))
    ap.add_argument("--limit", type=int, default=0, help="records per group (0 = all)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if not (args.data / "labels.csv").is_file():
        print(f"error: no CinC 2015 corpus at {args.data}", file=sys.stderr)
        return 2
    split = {r["record"]: r["split"] for r in csv.DictReader(open(ROOT / "m2ae/io/corpus/cinc2015_split.csv"))}
    rows = [r for r in csv.DictReader(open(args.data / "labels.csv")) if split.get(r["record"]) == args.split]
    results: dict[str, dict[str, list[dict]]] = {}
    for kind, true in GROUPS:
        group = f"{'true' if true else 'false'} {kind}"
        mine = [r for r in rows if r["alarm_type"] == kind and (r["true_alarm"] == "1") == true]
        if args.limit:
            mine = mine[:args.limit]
        results[group] = {m: [] for m in MODES}
        for r in mine:
            rec = read_cinc_record(args.data / "records" / r["record"])
            for m in MODES:
                results[group][m].append(alarm_window_figures(rec, m) | {"record": r["record"]})
    table = {}
    for group, by_mode in results.items():
        for m, res in by_mode.items():
            ok = [x for x in res if not x["missing"]]
            table[f"{group} / {m}"] = {
                "records": len(ok),
                "vt_run_rate": float(np.mean([x["vt_run"] for x in ok])) if ok else None,
                "ventricular_run_rate": float(np.mean([x["v_run"] for x in ok])) if ok and m == "multilead" else None,
                "ecg_low_rate": float(np.mean([x["ecg_low"] for x in ok])) if ok else None,
                "low_quality_rate": float(np.mean([x["low"] for x in ok])) if ok else None,
                "s_per_record": float(np.mean([x["seconds"] for x in res])) if res else None,
                "no_vt_run": [x["record"] for x in ok if not x["vt_run"]] if group == "true VT" else None}
    if args.json:
        print(json.dumps({"split": args.split, "window_s": [ALARM_WINDOW_S, ALARM_WINDOW_S + 10], "groups": table},
                         indent=1))
        return 0
    print(f"CinC 2015 {args.split} split, alarm window {ALARM_WINDOW_S:g}-{ALARM_WINDOW_S + 10:g} s "
          f"(quality threshold {QUALITY_THRESHOLD:g})")
    print(f"{'group / detector':28s} {'n':>4s} {'VT-run':>7s} {'V-run':>6s} {'ECG-low':>8s} {'low-q':>6s} {'s/rec':>6s}")

    def f(v: float | None) -> str:
        return "   n/a" if v is None else f"{v:6.2f}"

    for k, v in table.items():
        print(f"{k:28s} {v['records']:4d} {f(v['vt_run_rate']):>7s} {f(v['ventricular_run_rate']):>6s} "
              f"{f(v['ecg_low_rate']):>8s} {f(v['low_quality_rate']):>6s} {f(v['s_per_record']):>6s}")
    for k, v in table.items():
        if v["no_vt_run"]:
            print(f"{k}: no VT run in {', '.join(v['no_vt_run'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
