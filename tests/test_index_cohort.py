"""Cohorts over the shipped index: selection, label make-up, median beats, exports, the CLI (m2ae.index.cohort)."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import zipfile

import numpy as np
import pandas as pd
import pytest

from m2ae.errors import InputError
from m2ae.index import open_index
from m2ae.index.cohort import (cohort_frame, cohort_wfdb_zip, display_peaks, export_cohort, label_makeup,
                               median_beats, select_cohort)
from m2ae.index.neighbours import index_fingerprints
from m2ae.index.waveforms import WAVEFORM_FS_HZ


@pytest.fixture(scope="module")
def idx():
    return open_index()


def test_label_makeup_compares_the_cohort_with_the_index():
    meta = pd.DataFrame({"label_rhythm": ["AF", "AF", "NSR", "NSR", "NSR", None, None, None],
                         "label_age": [60.0, 70.0, 30.0, 40.0, 50.0, 20.0, 25.0, 35.0], "other": range(8)})
    mk = label_makeup(meta, [0, 1, 2])
    af = mk[(mk["column"] == "label_rhythm") & (mk["value"] == "AF")].iloc[0]
    assert af["cohort_count"] == 2 and af["cohort_share"] == pytest.approx(2 / 3)
    assert af["index_share"] == pytest.approx(2 / 5) and af["enrichment"] == pytest.approx((2 / 3) / (2 / 5))
    age = mk[mk["column"] == "label_age"].iloc[0]
    assert age["value"] == "mean ± sd" and age["cohort_mean"] == pytest.approx(160 / 3)
    assert "other" not in set(mk["column"])


def test_display_peaks_finds_spikes_in_either_polarity():
    fs = WAVEFORM_FS_HZ
    x = np.zeros(625)
    truth = np.arange(20, 600, int(0.8 * fs))  # 75 bpm
    x[truth] = 5.0
    x[truth + 1] = 2.0
    x += np.random.default_rng(0).normal(0, 0.05, len(x))
    assert np.abs(display_peaks(x, "ecg") - truth).max() <= 1 and len(display_peaks(x, "ecg")) == len(truth)
    assert len(display_peaks(-x, "ecg")) == len(truth)  # an inverted lead
    assert len(display_peaks(np.zeros(625), "ppg")) == 0


def test_select_cohort_by_predicate_ids_and_both(idx):
    vt = select_cohort(idx, where='source == "cinc2015" and alarm_type == "VT" and true_alarm == true')
    m = idx.metadata
    assert len(vt) > 100 and (m["label_alarm_type"].iloc[vt] == "VT").all()
    assert m["label_true_alarm"].iloc[vt].all() and m["source"].iloc[vt].str.contains("cinc2015").all()
    assert select_cohort(idx, ids=[5, 3, 3]).tolist() == [3, 5]
    assert select_cohort(idx, where="label.rhythm == 'AF'", ids=[0, vt[0]]).tolist() == [0]
    with pytest.raises(InputError, match="where"):
        select_cohort(idx, where="__import__('os')")
    with pytest.raises(InputError):
        select_cohort(idx, ids=[idx.count])


def test_median_beats_peak_at_the_r_peak(idx):
    ids = select_cohort(idx, where='rhythm == "NSR"')
    mb = median_beats(idx, ids, max_windows=20)
    assert mb["windows_used"] == 20 and mb["windows_in_cohort"] == len(ids)
    ecg = mb["ecg"]
    assert ecg["n_windows"] >= 15 and ecg["n_beats"] >= 10 * ecg["n_windows"] / 2
    assert abs(ecg["t_s"][np.argmax(ecg["median"])]) <= 1 / WAVEFORM_FS_HZ  # the R-peak sits at t = 0
    assert np.all(ecg["q25"] <= ecg["median"] + 1e-9) and np.all(ecg["median"] <= ecg["q75"] + 1e-9)
    assert mb["ppg"]["median"].argmax() == np.argmin(np.abs(mb["ppg"]["t_s"]))


def test_exports_hold_fingerprints_metadata_and_wfdb(idx, tmp_path):
    import wfdb

    ids = select_cohort(idx, where='record in ["r001", "af"]')
    res = export_cohort(idx, ids, tmp_path)
    frame = pd.read_parquet(res["files"]["parquet"])
    csv = pd.read_csv(res["files"]["csv"])
    assert len(frame) == len(csv) == len(ids) == res["windows"] and res["records"] == 2
    fp = frame[[c for c in frame.columns if c.startswith("fp_")]].to_numpy(np.float32)
    assert fp.shape == (len(ids), idx.dims) and np.allclose(fp, index_fingerprints(idx, ids))
    assert frame["id"].tolist() == ids.tolist() and set(frame["record"]) == {"r001", "af"}
    z = zipfile.ZipFile(res["files"]["wfdb_zip"])
    z.extractall(tmp_path / "wfdb")
    names = sorted(n[:-4] for n in z.namelist() if n.endswith(".hea"))
    assert len(names) == 2
    rec = wfdb.rdrecord(str(tmp_path / "wfdb" / [n for n in names if n.endswith("_af")][0]))
    assert rec.fs == WAVEFORM_FS_HZ and rec.sig_name == ["ECG", "PPG"]
    first = int(ids[idx.metadata["record"].iloc[ids].to_numpy() == "af"][0])
    w = idx.waveforms([first])
    want = w["ecg"][0] * w["ecg_scale"][0] + w["ecg_center"][0]
    got = rec.p_signal[:len(want), 0]
    assert np.max(np.abs(got - want)) <= 0.01 * np.ptp(want)  # 16-bit WFDB of the restored waveform
    assert cohort_frame(idx, ids[:3]).shape[0] == 3
    assert zipfile.ZipFile(io.BytesIO(cohort_wfdb_zip(idx, ids[:1]))).namelist()[-1] == "cohort.json"
    with pytest.raises(InputError, match="no window"):
        export_cohort(idx, [], tmp_path / "empty")


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "m2ae.cli", "index", "cohort", *args],
                          capture_output=True, text=True, timeout=300, env=env)


def test_cli_cohort_writes_the_exports_and_refuses_code(tmp_path):
    out = tmp_path / "c"
    r = _cli("--where", 'rhythm == "AF" and record contains "sim000001-"', "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("cohort: 6 windows from 1 records")
    assert "label_rhythm_name=atrial fibrillation: 100% of the cohort vs 20% of the index" in r.stdout
    assert {p.name for p in out.iterdir()} == {"cohort.csv", "cohort.parquet", "label_makeup.csv", "cohort_wfdb.zip"}
    bad = _cli("--where", "__import__('os').system('touch pwned')", "--out", str(tmp_path / "bad"))
    assert bad.returncode == 2 and bad.stderr.startswith("error: where:") and len(bad.stderr.splitlines()) == 1
    assert not (tmp_path / "bad").exists() and not os.path.exists("pwned")


@pytest.mark.slow  # loads the shipped model (~35 s on the shared 2 cores) and runs Captum
def test_cohort_attributions_average_over_a_bounded_sample(idx):
    import m2ae
    from m2ae.index.cohort import cohort_attributions

    model = m2ae.load_model()
    m = idx.metadata
    ids = np.r_[np.flatnonzero(m["modalities"] == "ecg")[:3], np.flatnonzero(m["modalities"] == "ecg+ppg")[:3]]
    a = cohort_attributions(model, idx, ids, "rhythm", explain_fn=m2ae.explain, max_windows=4, n_steps=4)
    assert a["windows_used"] == 4 and a["windows_in_cohort"] == 6 and "4 of 6 windows" in a["note"]
    assert a["ecg_mean_abs"].shape == (1250,) and np.all(a["ecg_mean_abs"] >= 0) and a["ecg_mean_abs"].sum() > 0
    assert a["share"]["ecg"] + a["share"]["ppg"] == pytest.approx(1.0, abs=1e-3)
    with pytest.raises(InputError, match="head"):
        cohort_attributions(model, idx, ids[:1], "no-such-head", explain_fn=m2ae.explain, n_steps=4)
    with pytest.raises(InputError, match="empty"):
        cohort_attributions(model, idx, [], "rhythm", explain_fn=m2ae.explain)
