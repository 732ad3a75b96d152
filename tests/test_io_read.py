"""load_record: every format, uploads kept in memory, channel matching, overrides, real records."""
from __future__ import annotations

import io

import numpy as np
import pytest

from m2ae.io import load_record, write_record
from m2ae.record import Record


def _record(fs=250.0, seconds=12.0, ecg=True, ppg=True):
    t = np.arange(int(seconds * fs)) / fs
    return Record(np.sin(2 * np.pi * 1.2 * t) if ecg else None,
                  np.cos(2 * np.pi * 1.2 * t) + 2.0 if ppg else None, fs,
                  {"lead": "II", "subject_id": "sim-3", "labels": {"age": 47, "sex": "M", "rhythm": "SB"}})


@pytest.mark.parametrize("fmt", ["npz", "csv", "wfdb", "edf"])
def test_round_trip_every_format(tmp_path, fmt):
    rec = _record()
    back = load_record(write_record(rec, tmp_path / "r", fmt))
    assert back.fs == 250.0 and back.n_samples == rec.n_samples
    np.testing.assert_allclose(back.ecg, rec.ecg, atol=1e-3)
    np.testing.assert_allclose(back.ppg, rec.ppg, atol=1e-3)
    assert back.meta["lead"] == "II"
    assert back.meta["ecg_matched_by"] == "name" and back.meta["ppg_matched_by"] == "name"
    if fmt in ("npz", "wfdb"):
        assert back.meta["labels"]["rhythm"] == "SB" and back.meta["subject_id"] == "sim-3"
    if fmt == "edf":
        assert "start_time" not in back.meta  # 01.01.85 = unknown, not a clock time


@pytest.mark.parametrize("fmt", ["npz", "csv", "edf"])
def test_single_modality_round_trip(tmp_path, fmt):
    back = load_record(write_record(_record(fs=125.0, ecg=False), tmp_path / "p", fmt))
    assert back.ecg is None and back.ppg is not None and back.fs == 125.0


def test_uploads_stay_in_memory(tmp_path, monkeypatch):
    rec = _record()
    csv = write_record(rec, tmp_path / "u.csv")
    buf = io.BytesIO(csv.read_bytes())
    buf.name = "from_browser.csv"
    back = load_record(buf)
    assert back.meta["source"] == "from_browser.csv" and back.fs == 250.0
    hea = write_record(rec, tmp_path / "w", "wfdb")
    files = {"w.hea": hea.read_bytes(), "w.dat": (tmp_path / "w.dat").read_bytes()}
    # wfdb needs files: they must go to RAM (/dev/shm), never to the normal temp dir.
    seen = []
    import m2ae.io.sources as common
    real = common.ram_tempdir

    def spy():
        cm = real()
        seen.append(cm)
        return cm
    monkeypatch.setattr(common, "ram_tempdir", spy)
    back = load_record(files)
    assert back.meta["source"] == "w.hea" and back.meta["labels"]["age"] == 47
    assert len(seen) == 1


def test_csv_names_delimiters_decimal_comma_and_ms_time():
    n = 2000
    t_ms = np.arange(n) * 4.0  # 250 Hz in milliseconds
    ecg = np.sin(np.arange(n) / 10)
    lines = ["Zeit (ms);Lead II;SpO2 wave"] + [f"{a:.0f};{str(round(b, 5)).replace('.', ',')};{str(round(b + 1, 5)).replace('.', ',')}"
                                              for a, b in zip(t_ms, ecg)]
    buf = io.BytesIO("\n".join(lines).encode())
    buf.name = "eu.txt"
    rec = load_record(buf)
    assert rec.fs == 250.0
    assert rec.meta["ecg_column"] == "Lead II" and rec.meta["ppg_column"] == "SpO2 wave"
    np.testing.assert_allclose(rec.ecg, np.round(ecg, 5), atol=1e-9)
    tsv = "TIMESTAMP\tecg_ii\tBVP\n" + "\n".join(f"{i / 128:.6f}\t{i % 7}\t{i % 5}" for i in range(600))
    rec = load_record({"w.tsv": tsv.encode()})
    assert rec.fs == 128.0 and rec.meta["lead"] == "II"


def test_csv_overrides_and_fs_without_time_column():
    text = "a,b,c\n" + "\n".join(f"{i},{i % 3},{i % 4}" for i in range(500))
    rec = load_record({"x.csv": text.encode()}, fs=100, ecg="b", ppg="2")
    assert rec.meta["ecg_column"] == "b" and rec.meta["ecg_matched_by"] == "override"
    assert rec.meta["ppg_column"] == "c" and rec.fs == 100.0
    rec = load_record({"x.csv": ("# fs = 200 Hz\nECG\n" + "\n".join(str(i % 9) for i in range(400))).encode()})
    assert rec.fs == 200.0 and rec.ppg is None
    rec = load_record({"x.csv": ("ECG,PPG\n" + "\n".join(f"{i},{i}" for i in range(400))).encode()},
                      fs=100, ppg="none")
    assert rec.ppg is None and rec.ecg is not None


def test_csv_nan_kept_and_time_gaps_become_nan():
    rows = [f"{i / 100:.2f},{'' if 50 <= i < 60 else i % 7},{i % 3}" for i in range(300) if not 200 <= i < 250]
    rec = load_record({"g.csv": ("time,ECG,PLETH\n" + "\n".join(rows)).encode()})
    assert rec.fs == 100.0 and rec.n_samples == 300
    assert np.isnan(rec.ecg[50:60]).all() and np.isnan(rec.ppg[200:250]).all()
    assert np.isfinite(rec.ppg[:200]).all()
    assert any("NaN" in n for n in rec.meta["notes"]) and any("gaps" in n for n in rec.meta["notes"])


def test_physionet_csv_export_with_units_row_and_clock_time():
    rows = ["'Elapsed time','II','PLETH'", "'hh:mm:ss.mmm','uV','NU'"]
    rows += [f"'0:{i // 125:02d}.{(i % 125) * 8:03d}',{(i % 50) * 10},{i % 40}" for i in range(1250)]
    rec = load_record({"samples.csv": "\n".join(rows).encode()})
    assert rec.fs == 125.0
    assert rec.meta["units"]["ecg"] == "mV" and rec.ecg.max() == pytest.approx(0.49)  # µV -> mV


def test_npy_with_fs_and_channel_indices(tmp_path):
    x = np.random.default_rng(0).normal(size=(3, 1000))
    np.save(tmp_path / "a.npy", x)
    rec = load_record(tmp_path / "a.npy", fs=250, ecg="0", ppg="2")
    np.testing.assert_allclose(rec.ecg, x[0])
    np.testing.assert_allclose(rec.ppg, x[2])
    np.save(tmp_path / "b.npy", x[1])
    rec = load_record(tmp_path / "b.npy", fs=250, ppg="0")
    assert rec.ecg is None and rec.meta["ppg_matched_by"] == "override"


def test_edf_resamples_channels_with_different_rates(tmp_path):
    from pyedflib import highlevel

    ecg = np.sin(np.arange(5000) / 20)
    ppg = np.cos(np.arange(1250) / 5)
    heads = [highlevel.make_signal_header("EKG", "uV", 500, -2, 2), highlevel.make_signal_header("Pleth", "", 125, -2, 2)]
    highlevel.write_edf(str(tmp_path / "m.edf"), [ecg, ppg], heads)
    rec = load_record(tmp_path / "m.edf")
    assert rec.fs == 500.0 and rec.n_samples == 5000
    assert rec.meta["units"]["ecg"] == "mV"
    assert any("resampled from 125 to 500 Hz" in n for n in rec.meta["notes"])


def test_vital_file(tmp_path):
    vitaldb = pytest.importorskip("vitaldb")
    path = _write_vital(tmp_path / "0007.vital", vitaldb)
    rec = load_record(path)
    assert rec.fs == 500.0 and abs(rec.duration_s - 20.0) < 0.05
    assert rec.meta["ecg_column"] == "SNUADC/ECG_II" and rec.meta["ppg_column"] == "SNUADC/PLETH"
    assert rec.meta["lead"] == "II"


def _write_vital(path, vitaldb, seconds=20.0, dtstart=1_600_000_000.0):
    vf = vitaldb.VitalFile()
    vf.dtstart, vf.dtend = dtstart, dtstart + seconds
    t = np.arange(int(seconds * 500)) / 500
    vf.add_track("SNUADC/ECG_II", [{"dt": dtstart, "val": np.sin(2 * np.pi * 1.1 * t).astype(np.float32)}],
                 srate=500, unit="mV")
    vf.add_track("SNUADC/PLETH", [{"dt": dtstart, "val": (np.cos(2 * np.pi * 1.1 * t) + 50).astype(np.float32)}],
                 srate=500, unit="")
    vf.add_track("Solar8000/HR", [{"dt": dtstart + i, "val": 66.0} for i in range(int(seconds))])
    vf.to_vital(str(path))
    return path


def test_multisegment_wfdb(tmp_path):
    from test_io_corpus import write_mimic_record

    master = write_mimic_record(tmp_path, "p000123", "p000123-2150-01-01-10-00")
    rec = load_record(master)
    assert rec.fs == 125.0 and rec.n_samples == 3 * 1250
    assert np.isnan(rec.ppg[1250:2500]).all()  # the middle segment has no PLETH
    assert rec.meta["lead"] == "II"


def test_real_bidmc_csv(bidmc_csv):
    rec = load_record(bidmc_csv)
    assert rec.fs == 125.0
    assert rec.meta["ecg_column"] == "II" and rec.meta["ppg_column"] == "PLETH"
    assert rec.meta["lead"] == "II" and rec.meta["ecg_matched_by"] == "name"
    assert abs(rec.duration_s - 480.0) < 0.05
    assert np.isfinite(rec.ecg).all() and np.isfinite(rec.ppg).all()


def test_real_a103l_wfdb(a103l_hea):
    rec = load_record(a103l_hea)
    assert rec.fs == 250.0 and rec.duration_s == 330.0
    assert rec.meta["ecg_column"] == "II" and rec.meta["ppg_column"] == "PLETH"
    assert rec.meta["units"] == {"ecg": "mV", "ppg": "NU"}
    # the same record uploaded as two in-memory files
    up = load_record({"a103l.hea": a103l_hea.read_bytes(), "a103l.mat": a103l_hea.with_suffix(".mat").read_bytes()})
    np.testing.assert_array_equal(up.ecg, rec.ecg)


def test_list_of_uploads_like_streamlit_multiple_files(tmp_path):
    hea = write_record(_record(), tmp_path / "m", "wfdb")
    ups = []
    for p in (hea, tmp_path / "m.dat"):
        b = io.BytesIO(p.read_bytes())
        b.name = p.name
        ups.append(b)
    rec = load_record(ups)
    assert rec.meta["source"] == "m.hea" and rec.modalities == ("ecg", "ppg")


def test_channel_names_ranked():
    from m2ae.io.channels import choose_channels, ecg_rank, ppg_rank

    for name in ("II", "Lead II", "ECG_II", "ECG II", " ecg ii ", "MLII", "ECG lead II", "Lead 2", "II,"):
        assert ecg_rank(name) == 0, name
    for name in ("ECG", "EKG", "ecg1", "ECG (mV)"):
        assert ecg_rank(name) == 1, name
    for name in ("V", "AVR", "V5", "ECG V1", "Lead III"):
        assert ecg_rank(name) == 2, name
    for name in ("PLETH", "pleth", "PPG", "BVP", "SpO2 wave", "Pleth [NU]"):
        assert ppg_rank(name) == 0, name
    assert ppg_rank("PPG_IR") == 1
    for name in ("HR", "SpO2", "PULSE", "RESP", "Time [s]", "ECG HR", "Pleth HR", "ABP"):
        assert ecg_rank(name) is None and ppg_rank(name) is None, name
    # lead II wins over a generic or another lead, whatever the column order
    c = choose_channels(["V", "ECG", "II", "PLETH"], "x.csv")
    assert (c.ecg, c.ppg, c.ecg_how) == (2, 3, "name")
    c = choose_channels(["RESP", "V", "PLETH"], "x.csv")
    assert c.ecg_name == "V"


def test_excel_sep_line_and_min_duration(tmp_path):
    text = "sep=;\nTime [s];ECG;PLETH\n" + "\n".join(f"{i / 100:.2f};{i % 5};{i % 3}" for i in range(500))
    rec = load_record({"excel.csv": text.encode()})
    assert rec.fs == 100.0 and rec.n_samples == 500
    from m2ae.io import iter_corpus

    write_record(_record(seconds=5), tmp_path / "short", "npz")
    write_record(_record(seconds=12), tmp_path / "long", "npz")
    kept = list(iter_corpus(tmp_path, "folder", min_duration_s=10.0))
    assert [r.meta["record_id"] for r in kept] == ["long"]


def test_unix_time_stamps_give_clock_time():
    rows = "\n".join(f"{1_700_000_000 + i / 125:.3f},{i % 5}" for i in range(1000))
    rec = load_record({"epoch.csv": ("timestamp,PPG\n" + rows).encode()})
    assert rec.fs == 125.0 and rec.meta["start_time"] == "2023-11-14T22:13:20+00:00"
    rows = "\n".join(f"{1_700_000_000_000 + i * 4},{i % 5}" for i in range(1000))  # milliseconds
    rec = load_record({"epoch_ms.csv": ("timestamp,ECG\n" + rows).encode()})
    assert rec.fs == 250.0 and rec.meta["start_time"].startswith("2023-11-14T22:13:20")


def test_fixed_layout_multisegment_with_gap(tmp_path):
    import wfdb

    parts = []
    for k in range(2):
        sig = np.column_stack([np.sin(np.arange(1250) / 9 + k), np.cos(np.arange(1250) / 9 + k)])
        parts.append(sig)
        wfdb.wrsamp(f"s_{k}", fs=125, units=["mV", "NU"], sig_name=["II", "PLETH"], p_signal=sig,
                    fmt=["16", "16"], write_dir=str(tmp_path))
    (tmp_path / "fixed.hea").write_text("fixed/3 2 125 2750\ns_0 1250\n~ 250\ns_1 1250\n")
    rec = load_record(tmp_path / "fixed.hea")
    assert rec.n_samples == 2750 and rec.meta["units"] == {"ecg": "mV", "ppg": "NU"}
    assert np.isnan(rec.ecg[1250:1500]).all() and np.isfinite(rec.ecg[:1250]).all()
    np.testing.assert_allclose(rec.ppg[1500:], parts[1][:, 1], atol=1e-3)


def test_bdf_24_bit(tmp_path):
    from pyedflib import highlevel

    x = np.sin(np.arange(2560) / 11)
    heads = [highlevel.make_signal_header("ECG", "mV", 256, -1.5, 1.5), highlevel.make_signal_header("PPG", "au", 256, -1.5, 1.5)]
    highlevel.write_edf(str(tmp_path / "b.bdf"), [x, -x], heads)
    rec = load_record(tmp_path / "b.bdf")
    assert rec.fs == 256.0 and rec.meta["lead"] is None  # 'ECG' says no lead
    np.testing.assert_allclose(rec.ppg, -x, atol=1e-4)  # header digital range is 16-bit
