"""`m2ae read PATH [--json]` as a user runs it: real records, readable output, bad input → exit 2."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
ENV.pop("M2AE_DEBUG", None)


def m2ae(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "m2ae.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=180, env=ENV)


def read_json(path: Path, *extra: str, capsys=None) -> dict:
    """``m2ae read PATH --json`` as a subprocess, or in-process through ``cli.main`` given ``capsys``."""
    if capsys is None:
        out = m2ae("read", path, "--json", *extra)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)
    from m2ae.cli import main

    code = main(["read", str(path), "--json", *extra])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def write_csv(path: Path, fs_hz: float, ecg: np.ndarray | None, ppg: np.ndarray | None) -> Path:
    cols, names = [np.arange(len(ecg if ecg is not None else ppg)) / fs_hz], ["Time [s]"]
    for name, x in (("ECG", ecg), ("PPG", ppg)):
        if x is not None:
            cols.append(x)
            names.append(name)
    np.savetxt(path, np.column_stack(cols), delimiter=",", header=",".join(names), comments="", fmt="%.6f")
    return path


def pulse_pair(fs_hz: float, duration_s: float, hr_bpm: float = 70.0) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(int(duration_s * fs_hz)) / fs_hz
    phase = (t * hr_bpm / 60.0) % 1.0
    ecg = np.exp(-0.5 * ((phase - 0.3) / 0.012) ** 2)                       # narrow R-like spikes
    tau = (phase - 0.5) % 1.0                                               # pulse 0.5 beat after the spike
    ppg = np.where(tau < 0.12, np.sin(0.5 * np.pi * tau / 0.12), np.exp(-(tau - 0.12) / 0.3))
    noise = np.random.default_rng(0).standard_normal((2, len(t)))
    return ecg + 0.01 * noise[0], ppg + 0.01 * noise[1]


def test_read_bidmc01_csv(bidmc_csv):
    s = read_json(bidmc_csv)
    assert s["fs_hz"] == 125.0 and s["duration_s"] == pytest.approx(480.0, abs=0.1)
    assert s["channels"]["ecg"]["column"] == "II" and s["channels"]["ppg"]["column"] == "PLETH"
    assert s["n_windows"] == 48
    hr = s["heart_rate_bpm"]
    assert hr["ecg"] == pytest.approx(91.5, abs=1.0) and abs(hr["ecg"] - hr["ppg"]) < 1.0
    assert 0.5 < s["quality"]["ecg"]["median"] <= 1.0 and 0.5 < s["quality"]["ppg"]["median"] <= 1.0
    assert s["pat_ms"] == pytest.approx(640.0, abs=40.0)


def test_read_a103l_wfdb(a103l_hea):
    s = read_json(a103l_hea)
    assert s["fs_hz"] == 250.0 and s["duration_s"] == pytest.approx(330.0)
    assert set(s["channels"]) == {"ecg", "ppg"} and s["channels"]["ecg"]["lead"] == "II"
    assert s["n_windows"] == 33
    hr = s["heart_rate_bpm"]
    assert hr["ecg"] == pytest.approx(127.0, abs=3.0) and abs(hr["ecg"] - hr["ppg"]) < 3.0
    assert any("resampled 250" in n for n in s["notes"])


def test_read_human_output_and_stride(tmp_path):
    ecg, ppg = pulse_pair(250.0, 40.0, hr_bpm=70.0)
    path = write_csv(tmp_path / "pair.csv", 250.0, ecg, ppg)
    out = m2ae("read", path, "--stride", "5")
    assert out.returncode == 0, out.stderr
    assert "7 windows of 10 s" in out.stdout and "heart rate 70" in out.stdout
    assert out.stdout.count("\n") >= 3 and not out.stdout.lstrip().startswith("{")


def test_read_single_modality_csv(tmp_path, capsys):
    _, ppg = pulse_pair(100.0, 30.0, hr_bpm=60.0)
    s = read_json(write_csv(tmp_path / "ppg_only.csv", 100.0, None, ppg), capsys=capsys)
    assert list(s["channels"]) == ["ppg"] and s["pat_ms"] is None
    assert s["heart_rate_bpm"]["ppg"] == pytest.approx(60.0, abs=1.5)


def _bad(path: Path, *extra: str, capsys=None) -> str:
    """Run ``m2ae read`` expecting bad input: in-process via ``cli.main`` when ``capsys`` is given
    (same code path as the console script, without a 2-s interpreter start), else as a subprocess."""
    if capsys is None:
        out = m2ae("read", path, *extra)
        code, stdout, stderr = out.returncode, out.stdout, out.stderr
    else:
        from m2ae.cli import main

        code = main(["read", str(path), *extra])
        captured = capsys.readouterr()
        stdout, stderr = captured.out, captured.err
    assert code == 2, (code, stdout, stderr)
    err = stderr.strip()
    assert "Traceback" not in stderr and err.count("\n") == 0, err
    assert err.startswith("error: ") and stdout == ""
    return err


def test_bad_input_short_record(tmp_path):
    ecg, ppg = pulse_pair(125.0, 6.0)
    err = _bad(write_csv(tmp_path / "short.csv", 125.0, ecg, ppg), "--json")
    assert "short.csv" in err and "6.00 s long" in err and "10 s" in err


def test_flat_line_channel_is_dropped(tmp_path, capsys):
    """A flat ECG beside a good PPG: read as PPG only, and the output says what was dropped and why."""
    ecg, ppg = pulse_pair(125.0, 30.0)
    path = write_csv(tmp_path / "flat.csv", 125.0, np.full_like(ecg, 0.5), ppg)
    s = read_json(path, capsys=capsys)
    assert s["dropped"] == {"ecg": "flat line (every sample = 0.5)"}
    assert set(s["channels"]) == {"ecg", "ppg"} and list(s["quality"]) == ["ppg"]
    assert s["heart_rate_bpm"] == {"ppg": pytest.approx(70.0, abs=1.5)} and s["pat_ms"] is None
    assert s["notes"][0] == "ECG dropped: flat line (every sample = 0.5); the record goes on as PPG only"
    from m2ae.cli import main

    assert main(["read", str(path)]) == 0
    text = capsys.readouterr().out
    assert "ECG  column 'ECG'" in text and "DROPPED: flat line (every sample = 0.5)" in text
    assert "PPG  column 'PPG'" in text and "heart rate 70" in text


def test_bad_input_both_channels_dead(tmp_path, capsys):
    ecg, ppg = pulse_pair(125.0, 30.0)
    err = _bad(write_csv(tmp_path / "dead.csv", 125.0, np.full_like(ecg, 0.5), np.zeros_like(ppg)), capsys=capsys)
    assert err == (f"error: {tmp_path / 'dead.csv'}: no usable channel — ECG: flat line (every sample = 0.5); "
                   f"PPG: flat line (every sample = 0)")


def test_long_gaps_everywhere_in_one_channel_drop_it(tmp_path, capsys):
    ecg, ppg = pulse_pair(125.0, 60.0)
    for start in range(0, 60, 6):          # 2 s of missing samples every 6 s
        ppg[start * 125 + 500:start * 125 + 750] = np.nan
    s = read_json(write_csv(tmp_path / "gappy.csv", 125.0, ecg, ppg), capsys=capsys)
    assert list(s["dropped"]) == ["ppg"] and "no usable 10-s stretch" in s["dropped"]["ppg"]
    assert s["n_windows"] == 6 and s["heart_rate_bpm"]["ecg"] == pytest.approx(70.0, abs=1.5)


def test_bad_input_long_gaps_everywhere(tmp_path, capsys):
    _, ppg = pulse_pair(125.0, 60.0)
    for start in range(0, 60, 6):          # 2 s of missing samples every 6 s
        ppg[start * 125 + 500:start * 125 + 750] = np.nan
    path = write_csv(tmp_path / "gappy.csv", 125.0, None, ppg)
    err = _bad(path, capsys=capsys)
    assert "gappy.csv" in err and "no usable 10-s stretch" in err


def test_bad_input_missing_file(tmp_path, capsys):
    err = _bad(tmp_path / "absent.csv", capsys=capsys)
    assert "absent.csv" in err


def test_bad_stride(tmp_path, capsys):
    ecg, ppg = pulse_pair(125.0, 30.0)
    err = _bad(write_csv(tmp_path / "ok.csv", 125.0, ecg, ppg), "--stride", "-1", capsys=capsys)
    assert "stride" in err


def test_short_nan_gap_is_interpolated_and_reported(tmp_path, capsys):
    ecg, ppg = pulse_pair(125.0, 30.0)
    ecg[1000:1050] = np.nan                  # 0.4 s of blank cells
    s = read_json(write_csv(tmp_path / "gap.csv", 125.0, ecg, ppg), capsys=capsys)
    assert s["n_windows"] == 3
    assert any("interpolated 1 gap" in n for n in s["notes"])


def test_long_nan_gap_splits_the_record(tmp_path, capsys):
    ecg, ppg = pulse_pair(125.0, 40.0)
    ppg[125 * 12:125 * 15] = np.nan          # 3 s: windows 0-10 s, then 15-25, 25-35 s
    s = read_json(write_csv(tmp_path / "split.csv", 125.0, ecg, ppg), capsys=capsys)
    assert s["n_windows"] == 3
    assert any("split" in n for n in s["notes"])


def test_channel_unusable_everywhere_is_dropped(tmp_path, capsys):
    ecg, _ = pulse_pair(125.0, 30.0)
    rail = np.clip(5 * np.sin(2 * np.pi * 0.05 * np.arange(len(ecg)) / 125.0), -1, 1)   # PPG stuck at its rails
    s = read_json(write_csv(tmp_path / "rail.csv", 125.0, ecg, rail), capsys=capsys)
    assert list(s["dropped"]) == ["ppg"] and s["dropped"]["ppg"].startswith("unusable in every window (")
    assert s["notes"][0].startswith("PPG dropped: unusable in every window")
    assert s["notes"][0].endswith("the record goes on as ECG only")
    assert s["heart_rate_bpm"] == {"ecg": pytest.approx(70.0, abs=1.5)} and s["no_beats"] == {"ecg": 0}


def test_beatless_ecg_reports_windows_without_beats(tmp_path, capsys):
    """An ECG without QRS complexes (slow wander and movement only) is read, not refused; the summary
    counts the windows without beats and gives no heart rate."""
    from scipy import signal as sps

    t = np.arange(125 * 30) / 125.0
    b, a = sps.butter(2, 2.0, fs=125.0)
    slow = sps.filtfilt(b, a, np.random.default_rng(1).standard_normal(len(t)))
    ecg = 0.4 * np.sin(2 * np.pi * 0.2 * t) + 0.05 * slow / slow.std()
    s = read_json(write_csv(tmp_path / "asystole.csv", 125.0, ecg, None), capsys=capsys)
    assert s["dropped"] == {} and s["no_beats"] == {"ecg": 3} and s["heart_rate_bpm"] == {"ecg": None}
