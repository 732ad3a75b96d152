"""Malformed inputs: each gives one InputError line naming the file and what is wrong."""
from __future__ import annotations

import io
import re

import numpy as np
import pytest

import m2ae.contract
from m2ae.errors import InputError
from m2ae.io import load_record, write_record
from m2ae.record import Record


def expect_error(src, pattern, shown=None, **kwargs):
    """load_record(src) must raise one line that names the input and matches ``pattern``."""
    with pytest.raises(InputError) as info:
        load_record(src, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg, msg
    if shown is None:
        shown = src.name if hasattr(src, "name") else str(src)
    assert str(shown).rsplit("/", 1)[-1] in msg, msg
    assert re.search(pattern, msg), msg
    return msg


def _csv(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def _good(fs=250.0, n=3000):
    t = np.arange(n) / fs
    return Record(np.sin(7 * t), np.cos(7 * t), fs, {})


def test_empty_file(tmp_path):
    expect_error(_csv(tmp_path, "empty.csv", ""), "file is empty")


def test_blank_lines_only(tmp_path):
    expect_error(_csv(tmp_path, "blank.csv", "\n\n  \n"), "no data rows")


def test_header_only(tmp_path):
    expect_error(_csv(tmp_path, "head.csv", "Time [s], II, PLETH\n"), "header only.*II")


def test_text_in_numeric_column(tmp_path):
    rows = "\n".join(f"{i / 100},{'abc' if i == 7 else i},{i}" for i in range(300))
    expect_error(_csv(tmp_path, "text.csv", "time,ECG,PPG\n" + rows), r"'ECG' holds text 'abc' at data row 8")


def test_inf_values(tmp_path):
    rows = "\n".join(f"{i / 100},{'inf' if i == 42 else i % 5},{i % 3}" for i in range(300))
    expect_error(_csv(tmp_path, "inf.csv", "time,ECG,PPG\n" + rows), r"infinite values \(first at sample 42")


def test_all_nan_channel(tmp_path):
    rows = "\n".join(f"{i / 100},,{i % 3}" for i in range(300))
    expect_error(_csv(tmp_path, "nan.csv", "time,ECG,PPG\n" + rows), r"ECG channel 'ECG' has no numeric samples")


def test_nan_run_is_kept_not_refused(tmp_path):
    rows = "\n".join(f"{i / 100},{'nan' if 100 <= i < 180 else i % 5},{i % 3}" for i in range(300))
    rec = load_record(_csv(tmp_path, "gap.csv", "time,ECG,PPG\n" + rows))
    assert np.isnan(rec.ecg).sum() == 80 and "80 NaN samples" in rec.meta["notes"][0]


def test_nan_in_npz_all_nan_ppg(tmp_path):
    p = tmp_path / "allnan.npz"
    np.savez(p, ecg=np.ones(1000), ppg=np.full(1000, np.nan), fs=100.0)
    expect_error(p, "PPG.*no numeric samples")


def test_unknown_extension(tmp_path):
    expect_error(_csv(tmp_path, "signal.xyz", "a,b\n1,2\n"), r"unknown format \(\.xyz\); supported: WFDB")


def test_unknown_upload_without_extension():
    buf = io.BytesIO(b"just some words")
    buf.name = "upload"
    expect_error(buf, r"unknown format \(no extension\)")


def test_wfdb_data_file_missing(tmp_path):
    hea = write_record(_good(), tmp_path / "rec", "wfdb")
    (tmp_path / "rec.dat").unlink()
    expect_error(hea, r"data file rec\.dat is missing")
    # the same as an upload of the header alone
    expect_error({"rec.hea": hea.read_bytes()}, r"data file rec\.dat is missing \(upload it together", shown="rec.hea")


def test_wfdb_data_file_truncated(tmp_path):
    hea = write_record(_good(), tmp_path / "cut", "wfdb")
    dat = tmp_path / "cut.dat"
    dat.write_bytes(dat.read_bytes()[:5000])
    expect_error(hea, r"truncated|not loaded correctly")


def test_multisegment_segment_missing(tmp_path):
    from test_io_corpus import write_mimic_record

    master = write_mimic_record(tmp_path, "p000777", "p000777-2150-01-01-10-00")
    (master.parent / "3000001_0002.hea").unlink()
    expect_error(master, r"segment header 3000001_0002\.hea is missing")


def test_wfdb_header_garbage(tmp_path):
    expect_error(_csv(tmp_path, "junk.hea", "this is not a header\n"), "not a valid WFDB header")


def test_pickle_bearing_npy(tmp_path):
    p = tmp_path / "evil.npy"
    np.save(p, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    expect_error(p, r"pickle.*never unpickles", fs=100, ecg="0")


def test_pickle_bearing_npz(tmp_path):
    p = tmp_path / "evil.npz"
    np.savez(p, ecg=np.zeros(500), fs=100.0, meta=np.array([object()], dtype=object))
    expect_error(p, r"array 'meta' holds Python objects \(pickle\)")


def test_no_recognisable_column(tmp_path):
    rows = "\n".join(f"{i / 100},{i % 4},{i % 9}" for i in range(300))
    msg = expect_error(_csv(tmp_path, "resp.csv", "Time [s], RESP, CO2\n" + rows), "no ECG or PPG column recognised")
    assert "columns: Time [s], RESP, CO2" in msg and "--ecg" in msg and "--ppg" in msg


@pytest.mark.parametrize("fs", [0, -125, 1e6])
def test_absurd_sampling_rate_override(tmp_path, fs):
    p = write_record(_good(), tmp_path / "ok.npz")
    expect_error(p, r"sampling rate .* Hz is outside the supported range \[20, 10000\] Hz", fs=fs)


def test_absurd_rate_from_time_column(tmp_path):
    rows = "\n".join(f"{i * 0.5},{i % 4},{i % 3}" for i in range(300))  # 2 Hz
    expect_error(_csv(tmp_path, "slow.csv", "time_s,ECG,PPG\n" + rows), r"sampling rate 2 Hz is outside")


def test_time_column_not_monotonic(tmp_path):
    t = [i / 100 for i in range(300)]
    t[150], t[151] = t[151], t[150]
    rows = "\n".join(f"{a},{i % 4},{i % 3}" for i, a in enumerate(t))
    expect_error(_csv(tmp_path, "back.csv", "Time [s],II,PLETH\n" + rows), r"time column 'Time \[s\]' is not increasing")


def test_time_column_constant(tmp_path):
    rows = "\n".join(f"5,{i % 4},{i % 3}" for i in range(300))
    expect_error(_csv(tmp_path, "frozen.csv", "time,II,PLETH\n" + rows), "does not advance")


def test_gigantic_file(tmp_path, monkeypatch):
    p = write_record(_good(), tmp_path / "big.csv")
    monkeypatch.setattr(m2ae.contract, "MAX_FILE_BYTES", 1000)
    expect_error(p, r"MiB, larger than the .* limit")
    buf = io.BytesIO(p.read_bytes())
    buf.name = "big_upload.csv"
    expect_error(buf, r"larger than the .* limit")


def test_binary_garbage_named_csv(tmp_path):
    p = tmp_path / "garbage.csv"
    p.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    expect_error(p, "binary data, not a text CSV")


def test_mismatched_channel_lengths(tmp_path):
    p = tmp_path / "uneven.npz"
    np.savez(p, ecg=np.zeros(1000), ppg=np.zeros(900), fs=100.0)
    expect_error(p, r"ECG and PPG lengths differ \(1000 vs 900 samples\)")


def test_ragged_csv_rows(tmp_path):
    rows = [f"{i / 100},{i},{i}" for i in range(100)]
    rows[40] += ",9,9"
    expect_error(_csv(tmp_path, "ragged.csv", "time,II,PLETH\n" + "\n".join(rows)), "malformed table")


def test_override_column_missing(tmp_path):
    p = write_record(_good(), tmp_path / "named.csv")
    expect_error(p, r"--ecg column 'Lead X' not found \(columns: Time \[s\], ECG II \[mV\], PLETH \[NU\]\)", ecg="Lead X")
    expect_error(p, r"--ppg index 7 out of range", ppg="7")


def test_same_column_for_both(tmp_path):
    p = write_record(_good(), tmp_path / "same.csv")
    expect_error(p, r"same column 'PLETH \[NU\]' was chosen for ECG and PPG", ecg="PLETH", ppg="PLETH [NU]")
    # an ECG override on the PLETH column leaves PPG unmatched rather than doubling it up
    rec = load_record(p, ecg="PLETH")
    assert rec.meta["ecg_column"] == "PLETH [NU]" and rec.ppg is None


def test_npy_without_fs(tmp_path):
    p = tmp_path / "nofs.npy"
    np.save(p, np.zeros((2, 500)))
    expect_error(p, "NPY files carry no sampling rate; pass --fs HZ", ecg="0")


def test_npy_one_channel_needs_a_modality(tmp_path):
    p = tmp_path / "one.npy"
    np.save(p, np.zeros(500))
    expect_error(p, "1-D array is one channel; say which with --ecg 0 or --ppg 0", fs=100)


def test_npz_without_fs(tmp_path):
    p = tmp_path / "nofs.npz"
    np.savez(p, ecg=np.zeros(500))
    expect_error(p, r"no sampling rate \(key 'fs'\).*pass --fs HZ")


def test_edf_without_matching_channel(tmp_path):
    from pyedflib import highlevel

    p = tmp_path / "eeg.edf"
    heads = [highlevel.make_signal_header(lab, "uV", 100, -100, 100) for lab in ("EEG Fpz-Cz", "EOG horizontal")]
    highlevel.write_edf(str(p), [np.zeros(1000), np.zeros(1000)], heads)
    expect_error(p, r"no ECG or PPG column recognised \(columns: EEG Fpz-Cz, EOG horizontal\)")


def test_corrupt_edf(tmp_path):
    good = write_record(_good(), tmp_path / "ok.edf")
    p = tmp_path / "corrupt.edf"
    p.write_bytes(b"0       " + good.read_bytes()[8:200])
    expect_error(p, "not a readable EDF/BDF file")


def test_lone_mat_and_dat(tmp_path):
    (tmp_path / "x.mat").write_bytes(b"MATLAB 5.0 MAT-file" + bytes(200))
    expect_error(tmp_path / "x.mat", r"without its WFDB header x\.hea")
    (tmp_path / "y.dat").write_bytes(bytes(200))
    expect_error(tmp_path / "y.dat", r"without its WFDB header y\.hea")


def test_vital_not_gzip(tmp_path):
    expect_error(_csv(tmp_path, "fake.vital", "hello"), r"not a VitalDB \.vital file")


def test_missing_path_and_unnamed_upload(tmp_path):
    expect_error(tmp_path / "nowhere.csv", "file not found")
    with pytest.raises(InputError, match="needs a file name"):
        load_record(io.BytesIO(b"1,2,3"))


def test_wfdb_data_over_size_limit(tmp_path, monkeypatch):
    hea = write_record(_good(), tmp_path / "huge", "wfdb")  # the small .hea passes, its .dat does not
    monkeypatch.setattr(m2ae.contract, "MAX_FILE_BYTES", 2000)
    expect_error(hea, r"data files hold .* MiB, more than the .* limit")


def test_headerless_csv_needs_columns(tmp_path):
    p = _csv(tmp_path, "bare.csv", "\n".join(f"{i % 5},{i % 3}" for i in range(400)))
    expect_error(p, r"no header row naming the columns \(2 columns\); pass --ecg INDEX", fs=100)
    rec = load_record(p, fs=100, ecg="0", ppg="1")
    assert rec.meta["ecg_matched_by"] == "override" and rec.meta.get("lead") is None
