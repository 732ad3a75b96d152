"""sample_data/: every manifest entry exists, is small, reads back with its channels, rate and labels."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import m2ae
from m2ae.contract import RHYTHM_CODES
from m2ae.simulate.registry import SOURCES, registry_records

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_data"
MANIFEST = json.loads((SAMPLES / "manifest.json").read_text())
RECORDS = MANIFEST["records"]


def test_manifest_covers_rhythms_modalities_formats_and_rates():
    sim = [r for r in RECORDS if r["kind"] == "simulated"]
    assert {r["labels"]["rhythm"] for r in sim if len(r["modalities"]) == 2} == set(RHYTHM_CODES)
    assert {tuple(r["modalities"]) for r in sim} == {("ecg", "ppg"), ("ecg",), ("ppg",)}
    assert {r["format"] for r in sim} == {"wfdb", "csv", "edf", "npz"}
    assert {125.0, 250.0, 500.0} <= {r["fs_hz"] for r in sim}
    for r in RECORDS:
        assert r["description"] and r["licence"] and r["source"] and r["command"]
    total = sum(f.stat().st_size for f in SAMPLES.rglob("*") if f.is_file())
    assert total < 3_000_000, f"sample_data is {total / 1e6:.1f} MB"


@pytest.mark.parametrize("entry", RECORDS, ids=[r["name"] for r in RECORDS])
def test_each_sample_reads_back(entry):
    rec = m2ae.load_record(SAMPLES / entry["path"])
    assert sorted(rec.modalities) == sorted(entry["modalities"])
    assert rec.fs == pytest.approx(entry["fs_hz"], rel=1e-3)
    assert rec.duration_s == pytest.approx(entry["duration_s"], abs=0.05)
    dead = entry.get("dead_channels", {})  # real records may carry a dead channel on purpose (a flat PPG)
    for mod in rec.modalities:
        x = getattr(rec, mod)
        flat = dead.get(mod, "").startswith("flat line")  # a pulseless PPG is dead but not flat
        assert np.isfinite(x).all() and (np.std(x) == 0 if flat else np.std(x) > 0), mod
    if entry["kind"] == "simulated" and "ecg" in rec.modalities:
        assert 0.1 < np.ptp(rec.ecg) < 10.0  # mV survived the format's scaling


def test_registry_records_match_their_sources():
    recs = registry_records()
    if not recs:
        pytest.skip("no registry excerpts in m2ae/simulate/registry_excerpts and no pyhrv/heartpy installed")
    by_id = {r.meta["record_id"]: r for r in recs}
    assert set(by_id) == {s.record_id for s in SOURCES}
    ecg = by_id["bitalino_ecg"]
    assert ecg.fs == 1000.0 and ecg.ppg is None and "BSD-3-Clause" in ecg.meta["licence"]
    assert 0.2 < np.ptp(ecg.ecg) < 5.0  # counts converted to mV
    ppg = by_id["heartpy_ppg_100hz"]
    assert ppg.fs == 100.0 and ppg.ecg is None and ppg.meta["labels"] == {}
    assert by_id["heartpy_ppg_117hz"].fs == pytest.approx(116.99, abs=0.01)


def test_registry_parsers_read_the_package_formats():
    from m2ae.simulate.registry import parse_bitalino_ecg, parse_heartpy_ppg

    header = ('# OpenSignals Text File Format\n# {"00:00": {"sampling rate": 1000, "resolution": [4, 1, 1, 1, 1, 10],'
              ' "column": ["nSeq", "I1", "I2", "O1", "O2", "A2"]}}\n# EndOfHeader\n')
    ecg, fs = parse_bitalino_ecg(header + "0\t1\t1\t0\t0\t512\n1\t1\t1\t0\t0\t1023\n")
    assert fs == 1000.0 and ecg[0] == pytest.approx(0.0) and ecg[1] == pytest.approx(1.497, abs=1e-3)
    with pytest.raises(m2ae.InputError):
        parse_bitalino_ecg("1\t2\n")
    ppg, fs = parse_heartpy_ppg("530\n518\n506\n", "data.csv")
    assert fs == 100.0 and ppg.tolist() == [530.0, 518.0, 506.0]
    timer = "timer,hr\n" + "".join(f"{i * 10.0},{i}\n" for i in range(20000))
    ppg, fs = parse_heartpy_ppg(timer, "data2.csv")
    assert fs == pytest.approx(100.0) and len(ppg) == 12420 - 5400


def test_readme_table_matches_manifest():
    """The README's per-record labels are the manifest's (regenerating samples must update both)."""
    readme = (SAMPLES / "README.md").read_text().replace("−", "-")
    for r in RECORDS:
        line = next((ln for ln in readme.splitlines() if ln.startswith(f"| `{r['path']}`")), None)
        assert line is not None, r["path"]
        labels = r["labels"]
        if "alarm_type" in labels:  # a real ICU alarm record: alarm type, verdict and split
            verdict = "true alarm" if labels["true_alarm"] else "false alarm"
            assert f"{labels['alarm_type']} alarm" in line and verdict in line and f"{labels['split']} split" in line, line
        elif labels:
            assert f"HR {round(labels['hr_bpm'])}" in line and f"age {round(labels['age'])}" in line, line
            if len(r["modalities"]) == 2:
                assert f"PAT {round(labels['pat_ms'])} ms" in line, line


ICU = [r for r in RECORDS if "alarm_type" in r["labels"]]


@pytest.mark.parametrize("entry", ICU, ids=[r["name"] for r in ICU])
def test_icu_samples_come_from_train_and_preprocess(entry):
    """The CinC 2015 samples are train-side records; preprocess cuts them whole, dropping only dead channels."""
    from m2ae.io import cinc2015_split

    labels = entry["labels"]
    assert cinc2015_split(entry["subject_id"]) == labels["split"] == "train"
    assert labels["alarm_type"] in ("VT", "other") and isinstance(labels["true_alarm"], bool)
    assert "ODC-By 1.0" in entry["licence"] and "Clifford" in entry["licence"] and "Goldberger" in entry["licence"]
    win = m2ae.preprocess(m2ae.load_record(SAMPLES / entry["path"]))
    assert len(win) == int(entry["duration_s"] // 10)
    assert set(win.meta.get("dropped", {})) == set(entry["dead_channels"])
    assert set(win.modalities) == set(entry["modalities"]) - set(entry["dead_channels"])
