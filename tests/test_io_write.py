"""write_record: each format holds the channels, rate and labels it was given."""
from __future__ import annotations

import numpy as np
import pytest

from m2ae.errors import InputError
from m2ae.io import write_record
from m2ae.record import Record


def _record(fs=250.0, seconds=12.0):
    t = np.arange(int(seconds * fs)) / fs
    ecg = np.sin(2 * np.pi * 1.2 * t) * 1.5
    ppg = np.cos(2 * np.pi * 1.2 * t) + 2.0
    return Record(ecg, ppg, fs, {"lead": "II", "subject_id": "sim-007", "record_id": "sim-007-a",
                                 "labels": {"age": 61, "sex": "F", "rhythm": "AF", "hypertension": 1}})


def test_wfdb_written_is_read_by_wfdb(tmp_path):
    import wfdb

    rec = _record()
    hea = write_record(rec, tmp_path / "r1", "wfdb")
    assert hea.name == "r1.hea" and (tmp_path / "r1.dat").exists()
    w = wfdb.rdrecord(str(hea.with_suffix("")))
    assert w.sig_name == ["II", "PLETH"] and w.fs == 250
    np.testing.assert_allclose(w.p_signal[:, 0], rec.ecg, atol=2e-3)
    np.testing.assert_allclose(w.p_signal[:, 1], rec.ppg, atol=2e-3)
    assert any("<age>: 61" in c for c in w.comments)


def test_edf_written_is_read_by_pyedflib(tmp_path):
    import pyedflib

    rec = _record(fs=125.0)
    p = write_record(rec, tmp_path / "r2.edf")
    with pyedflib.EdfReader(str(p)) as f:
        assert f.getSignalLabels() == ["ECG II", "PLETH"]
        assert list(f.getSampleFrequencies()) == [125.0, 125.0]
        np.testing.assert_allclose(f.readSignal(0), rec.ecg, atol=1e-3)
        np.testing.assert_allclose(f.readSignal(1), rec.ppg, atol=1e-3)


def test_npz_and_csv_written_without_pickle(tmp_path):
    rec = _record()
    p = write_record(rec, tmp_path / "r3", "npz")
    with np.load(p, allow_pickle=False) as z:
        assert float(z["fs"]) == 250.0
        np.testing.assert_allclose(z["ecg"], rec.ecg, atol=1e-6)
        assert '"rhythm": "AF"' in str(z["meta_json"])
    c = write_record(rec, tmp_path / "r4.csv")
    head = c.read_text().splitlines()[:2]
    assert head[0] == "Time [s],ECG II [mV],PLETH [NU]"
    assert head[1].startswith("0.000000,")


def test_edf_refuses_nan_and_unknown_format(tmp_path):
    rec = _record()
    rec.ecg[10:20] = np.nan
    with pytest.raises(InputError, match="EDF cannot store NaN"):
        write_record(rec, tmp_path / "bad.edf")
    with pytest.raises(InputError, match="unknown output format"):
        write_record(rec, tmp_path / "x", "mat")
