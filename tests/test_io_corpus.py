"""iter_corpus / detect_layout on tiny fixtures written in each corpus's documented layout."""
from __future__ import annotations

import json

import numpy as np
import pytest

from m2ae.errors import InputError
from m2ae.io import detect_layout, iter_corpus, load_record, write_record
from m2ae.record import Record

FS = 125


def _wave(n, f=1.2, fs=FS, phase=0.0):
    return np.sin(2 * np.pi * f * np.arange(n) / fs + phase)


def write_mimic_record(root, subject, master, seg_len=1250):
    """MIMIC-III matched waveform layout: pXX/pXXXXXX/ with a variable-layout multi-segment master
    header, a layout header and segments; the middle segment has II + ABP but no PLETH."""
    import wfdb

    folder = root / subject[:3] / subject
    folder.mkdir(parents=True, exist_ok=True)
    base = "3000001"
    segs = {f"{base}_0001": ["II", "PLETH"], f"{base}_0002": ["II", "ABP"], f"{base}_0003": ["II", "PLETH"]}
    units = {"II": "mV", "PLETH": "NU", "ABP": "mmHg"}
    for k, (seg, names) in enumerate(segs.items()):
        sig = np.column_stack([_wave(seg_len, phase=k) * (1 if n != "ABP" else 40) + (0 if n != "ABP" else 90)
                               for n in names])
        wfdb.wrsamp(seg, fs=FS, units=[units[n] for n in names], sig_name=names, p_signal=sig,
                    fmt=["16"] * len(names), write_dir=str(folder))
    (folder / f"{base}_layout.hea").write_text(
        f"{base}_layout 3 {FS} 0 10:00:00.000 01/01/2150\n"
        "~ 0 200/mV 16 0 0 0 0 II\n~ 0 1000/NU 16 0 0 0 0 PLETH\n~ 0 10/mmHg 16 0 0 0 0 ABP\n")
    lines = [f"{master}/4 3 {FS} {3 * seg_len} 10:00:00.000 01/01/2150", f"{base}_layout 0"]
    lines += [f"{seg} {seg_len}" for seg in segs]
    (folder / f"{master}.hea").write_text("\n".join(lines) + "\n")
    return folder / f"{master}.hea"


def test_mimic3wdb_segments_with_subject(tmp_path):
    write_mimic_record(tmp_path, "p000123", "p000123-2150-01-01-10-00")
    write_mimic_record(tmp_path, "p000456", "p000456-2151-02-03-04-05")
    assert detect_layout(tmp_path) == "mimic3wdb"
    recs = list(iter_corpus(tmp_path))
    assert len(recs) == 6  # 2 subjects x 3 segments
    assert {r.meta["subject_id"] for r in recs} == {"p000123", "p000456"}
    first, middle = recs[0], recs[1]
    assert first.modalities == ("ecg", "ppg") and first.fs == 125.0 and first.meta["lead"] == "II"
    assert middle.modalities == ("ecg",)  # the II + ABP stretch: ECG only
    assert middle.meta["offset_s"] == 10.0 and middle.meta["start_time"] == "2150-01-01T10:00:10"
    assert all(r.meta["corpus"] == "mimic3wdb" for r in recs)


def write_bidmc(folder, nn="01", wfdb_too=False):
    folder.mkdir(parents=True, exist_ok=True)
    n = 1500
    t = np.arange(n) / FS
    cols = {"Time [s]": t, "RESP": _wave(n, 0.25), "PLETH": _wave(n) + 1, "V": _wave(n), "AVR": -_wave(n), "II": _wave(n)}
    rows = [", ".join(cols)] + [",".join(f"{cols[c][i]:.5g}" for c in cols) for i in range(n)]
    (folder / f"bidmc_{nn}_Signals.csv").write_text("\n".join(rows) + "\n")
    (folder / f"bidmc_{nn}_Numerics.csv").write_text(
        "Time [s], HR, PULSE, RESP, SpO2\n" + "\n".join(f"{i},{90 + i % 3},{91},{18},{97}" for i in range(12)))
    (folder / f"bidmc_{nn}_Fix.txt").write_text("Fixed parameters:\n\nAge: 88\nGender: F\nLocation: micu\n")
    if wfdb_too:
        import wfdb

        names = ["RESP,", "PLETH,", "V,", "AVR,", "II,"]  # BIDMC's WFDB names carry a comma
        wfdb.wrsamp(f"bidmc{nn}", fs=FS, units=["pm", "NU", "mV", "mV", "mV"], sig_name=names,
                    p_signal=np.column_stack([cols[c.rstrip(",")] for c in names]), fmt=["16"] * 5,
                    comments=["<age>: 88 <sex>: F <location>: micu"], write_dir=str(folder))


def test_bidmc_csv_and_wfdb(tmp_path):
    write_bidmc(tmp_path / "csv", "01")
    write_bidmc(tmp_path / "csv", "02")
    assert detect_layout(tmp_path / "csv") == "bidmc"
    recs = list(iter_corpus(tmp_path / "csv"))
    assert [r.meta["subject_id"] for r in recs] == ["bidmc_01", "bidmc_02"]
    r = recs[0]
    assert r.meta["ecg_column"] == "II" and r.meta["ppg_column"] == "PLETH" and r.fs == 125.0
    assert r.meta["labels"]["age"] == 88.0 and r.meta["labels"]["sex"] == "F"
    assert r.meta["labels"]["hr_monitor_bpm"] == 91.0
    write_bidmc(tmp_path / "w", "03", wfdb_too=True)
    (r,) = list(iter_corpus(tmp_path / "w", "bidmc"))
    assert r.meta["format"] == "wfdb" and r.meta["ecg_column"] == "II," and r.meta["lead"] == "II"
    assert r.meta["labels"]["age"] == 88.0 and r.meta["labels"]["hr_monitor_bpm"] == 91.0
    # PhysioNet's download: WFDB at the top, CSV/TXT in bidmc_csv/
    top = tmp_path / "physionet"
    write_bidmc(top / "bidmc_csv", "04")
    write_bidmc(tmp_path / "tmp04", "04", wfdb_too=True)
    for f in (tmp_path / "tmp04").glob("bidmc04.*"):
        f.rename(top / f.name)
    (r,) = list(iter_corpus(top))
    assert r.meta["format"] == "wfdb" and r.meta["labels"]["hr_monitor_bpm"] == 91.0


def test_vitaldb_with_clinical_data(tmp_path):
    vitaldb = pytest.importorskip("vitaldb")
    from test_io_read import _write_vital

    _write_vital(tmp_path / "0007.vital", vitaldb, seconds=12)
    _write_vital(tmp_path / "0011.vital", vitaldb, seconds=12)
    (tmp_path / "clinical_data.csv").write_text(
        "caseid,subjectid,age,sex,preop_htn,death_inhosp,bmi\n7,5955,77,M,1,0,26.3\n11,312,45,F,0,0,21.0\n")
    assert detect_layout(tmp_path) == "vitaldb"
    recs = list(iter_corpus(tmp_path))
    assert [r.meta["subject_id"] for r in recs] == ["vitaldb-5955", "vitaldb-312"]
    assert recs[0].meta["labels"] == {"age": 77.0, "sex": "M", "hypertension": 1, "mortality": 0, "bmi": 26.3}
    assert recs[1].meta["case_id"] == 11 and recs[1].fs == 500.0


def _mat_attrs(ds, cls):
    ds.attrs["MATLAB_class"] = np.bytes_(cls)


def write_pulsedb_segments(path, n_seg=3, age=67.0, gender="M", sbp=(150.0, 118.0, 131.0)):
    """A PulseDB segment file as MATLAB v7.3 writes it: struct array Subj_Wins whose fields are
    object references into #refs#, column vectors stored transposed, chars as uint16."""
    import h5py

    with h5py.File(path, "w", userblock_size=512) as h5:
        refs = h5.create_group("#refs#")
        g = h5.create_group("Subj_Wins")
        _mat_attrs(g, "struct")
        k = 0

        def put(value, cls):
            nonlocal k
            k += 1
            if cls == "char":
                data = np.array([[ord(c)] for c in value], dtype=np.uint16).T
            else:
                data = np.atleast_2d(np.asarray(value, dtype=np.float64))
            ds = refs.create_dataset(f"r{k}", data=data)
            _mat_attrs(ds, cls)
            return ds.ref

        fields = {"ECG_F": [], "PPG_F": [], "ABP_Raw": [], "SegSBP": [], "SegDBP": [], "Age": [], "Gender": []}
        for j in range(n_seg):
            fields["ECG_F"].append(put(_wave(1250, phase=j), "double"))
            fields["PPG_F"].append(put(_wave(1250, phase=j + 1), "double"))
            fields["ABP_Raw"].append(put(90 + 30 * _wave(1250), "double"))
            fields["SegSBP"].append(put(sbp[j % len(sbp)], "double"))
            fields["SegDBP"].append(put(75.0, "double"))
            fields["Age"].append(put(age, "double"))
            fields["Gender"].append(put(gender, "char"))
        for name, rs in fields.items():
            ds = g.create_dataset(name, data=np.array([rs], dtype=h5py.ref_dtype))  # MATLAB 1 x N
            _mat_attrs(ds, "cell")
    with open(path, "r+b") as f:  # MATLAB's 512-byte text header in the user block
        f.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 .")
    return path


def test_pulsedb_segment_files(tmp_path):
    d = tmp_path / "PulseDB_MIMIC"
    d.mkdir()
    write_pulsedb_segments(d / "p000160.mat")
    write_pulsedb_segments(d / "p000161.mat", n_seg=2, gender="F", sbp=(110.0,))
    assert detect_layout(tmp_path) == "pulsedb"
    recs = list(iter_corpus(tmp_path))
    assert len(recs) == 5
    r = recs[0]
    assert r.fs == 125.0 and r.n_samples == 1250 and r.modalities == ("ecg", "ppg")
    np.testing.assert_allclose(r.ecg, _wave(1250))
    assert r.meta["subject_id"] == "p000160" and r.meta["origin"] == "PulseDB_MIMIC"
    assert r.meta["labels"]["age"] == 67.0 and r.meta["labels"]["sex"] == "M"
    assert [x.meta["labels"]["hypertension"] for x in recs[:3]] == [1, 0, 0]  # SBP 150 / 118 / 131, DBP 75
    assert recs[3].meta["labels"]["sex"] == "F"
    with pytest.raises(InputError, match="iter_corpus"):
        load_record(d / "p000160.mat")  # a lone .mat is not a WFDB record: the message says where to go


def test_pulsedb_subset_file(tmp_path):
    import h5py

    n = 4
    with h5py.File(tmp_path / "Train_Subset.mat", "w") as h5:
        g = h5.create_group("Subset")
        sig = np.stack([np.stack([_wave(1250, phase=j), _wave(1250, phase=j + 1), 90 + _wave(1250)]) for j in range(n)])
        g.create_dataset("Signals", data=sig.transpose(2, 1, 0))  # MATLAB N x 3 x 1250 on disk: 1250 x 3 x N
        g.create_dataset("SBP", data=np.array([[145.0, 120.0, 100.0, 135.0]]))
        g.create_dataset("DBP", data=np.array([[80.0, 95.0, 60.0, 85.0]]))
        g.create_dataset("Age", data=np.array([[50.0, 50.0, 61.0, 61.0]]))
    recs = list(iter_corpus(tmp_path, "pulsedb"))
    assert len(recs) == n
    assert [r.meta["labels"]["hypertension"] for r in recs] == [1, 1, 0, 0]
    np.testing.assert_allclose(recs[2].ppg, _wave(1250, phase=3))


def write_ptbxl(folder, n=3):
    import wfdb

    leads = ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    codes = ["{'NORM': 100.0, 'SR': 0.0}", "{'IMI': 35.0, 'ABQRS': 0.0, 'SR': 0.0}", "{'LVH': 50.0, 'ISC_': 100.0}"]
    rows = ["ecg_id,patient_id,age,sex,scp_codes,strat_fold,filename_lr,filename_hr"]
    for i in range(1, n + 1):
        for rate, sub, suffix in ((100, "records100", "lr"), (500, "records500", "hr")):
            d = folder / sub / "00000"
            d.mkdir(parents=True, exist_ok=True)
            sig = np.column_stack([_wave(10 * rate, fs=rate, phase=k) * 0.5 for k in range(12)])
            wfdb.wrsamp(f"{i:05d}_{suffix}", fs=rate, units=["mV"] * 12, sig_name=leads, p_signal=sig,
                        fmt=["16"] * 12, write_dir=str(d))
        rows.append(f'{i},{1000 + i}.0,{50 + i}.0,{i % 2},"{codes[(i - 1) % 3]}",{i},'
                    f"records100/00000/{i:05d}_lr,records500/00000/{i:05d}_hr")
    (folder / "ptbxl_database.csv").write_text("\n".join(rows) + "\n")
    (folder / "scp_statements.csv").write_text(
        ",description,diagnostic,form,rhythm,diagnostic_class,diagnostic_subclass\n"
        "NORM,normal ECG,1.0,,,NORM,NORM\nIMI,inferior MI,1.0,,,MI,IMI\nLVH,left ventricular hypertrophy,1.0,,,HYP,LVH\n"
        "ISC_,non-specific ischemic,1.0,,,STTC,ISC_\nSR,sinus rhythm,,,1.0,,\nABQRS,abnormal QRS,,1.0,,,\n")


def test_ptbxl_superclasses_and_demographics(tmp_path):
    write_ptbxl(tmp_path)
    assert detect_layout(tmp_path) == "ptbxl"
    recs = list(iter_corpus(tmp_path))
    assert len(recs) == 3
    assert [r.meta["labels"]["superclasses"] for r in recs] == [["NORM"], ["MI"], ["HYP", "STTC"]]
    r = recs[0]
    assert r.ppg is None and r.meta["lead"] == "II" and r.fs == 500.0 and r.duration_s == 10.0
    assert r.meta["labels"]["sex"] == "F" and recs[1].meta["labels"]["sex"] == "M"  # PTB-XL: 0 male, 1 female
    assert r.meta["subject_id"] == "ptbxl-1001" and r.meta["labels"]["age"] == 51.0
    np.testing.assert_allclose(r.ecg, 0.5 * _wave(5000, fs=500, phase=1), atol=1e-3)


def test_folder_skips_bad_files_and_reads_multisegment_once(tmp_path, caplog):
    t = np.arange(1500) / 250
    rec = Record(np.sin(7 * t), np.cos(7 * t), 250.0, {"labels": {"rhythm": "NSR"}})
    write_record(rec, tmp_path / "a", "npz")
    write_record(rec, tmp_path / "b", "wfdb")
    write_record(rec, tmp_path / "c.edf")
    write_mimic_record(tmp_path / "m", "p000999", "p000999-2150-01-01-10-00")
    (tmp_path / "broken.csv").write_text("time,RESP\n0,1\n0.01,2\n")
    (tmp_path / "notes.json").write_text(json.dumps({"x": 1}))  # not a record format: ignored
    assert detect_layout(tmp_path / "a.npz") == "folder"
    with caplog.at_level("WARNING", logger="m2ae.io"):
        recs = list(iter_corpus(tmp_path, "folder"))
    # a.npz, b.hea, c.edf and the multi-segment master once (its segments are not listed again)
    assert sorted(r.meta["source"].rsplit("/", 1)[-1] for r in recs) == [
        "a.npz", "b.hea", "c.edf", "p000999-2150-01-01-10-00.hea"]
    assert "broken.csv" in caplog.text and "no ECG or PPG column" in caplog.text
    with pytest.raises(InputError, match="broken.csv"):
        list(iter_corpus(tmp_path, "folder", on_error="raise"))


def test_list_of_corpora(tmp_path):
    write_bidmc(tmp_path / "b", "05")
    write_ptbxl(tmp_path / "x", n=2)
    recs = list(iter_corpus([tmp_path / "b", tmp_path / "x"]))
    assert [r.meta["corpus"] for r in recs] == ["bidmc", "ptbxl", "ptbxl"]


def test_corpus_bad_paths(tmp_path):
    with pytest.raises(InputError, match="not found"):
        list(iter_corpus(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    assert detect_layout(tmp_path / "empty") is None
    with pytest.raises(InputError, match=r"no records found in .*empty \(looked for: "):
        list(iter_corpus(tmp_path / "empty"))
    with pytest.raises(InputError, match="unknown layout"):
        list(iter_corpus(tmp_path, "mimic4"))
