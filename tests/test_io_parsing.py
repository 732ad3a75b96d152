"""Numbers are parsed in linear time and round-trip; nothing about rate, units or columns is guessed silently."""
from __future__ import annotations

import io
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from m2ae.errors import InputError
from m2ae.io import load_record
from m2ae.io.delimited import is_number

# Text that the old backtracking pattern choked on (long digit runs ending in a non-digit) and more.
_TOKEN = st.text(alphabet="0123456789.eE+-x ,;\t", min_size=1, max_size=12)


def _best_of(fn, repeats: int = 3) -> float:
    """Shortest of ``repeats`` wall times of ``fn()`` in s (the least disturbed by other processes)."""
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _read_quietly(data: bytes) -> None:
    try:
        load_record(io.BytesIO(data), name="x.csv", fs=100)
    except InputError:
        pass


def _csv_of(token: str, n_bytes: int, rows: bool) -> bytes:
    """A CSV of about ``n_bytes``: the token repeated as one long cell (rows=False) or as many rows."""
    reps = max(1, n_bytes // len(token))
    body = (token + "\n") * (reps // 2) if rows else token * reps + "x\n0,1,2\n"
    return ("time,II,PLETH\n" + body).encode()


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(token=_TOKEN, rows=st.booleans())
@example(token="1", rows=False)       # one 64 KB run of digits: 42 s per 50 KB for the old pattern
@example(token="12.5e", rows=False)
@example(token="1.5,2,3", rows=True)
def test_parsing_time_grows_linearly(token, rows):
    """4x the bytes may cost at most ~8x the time (quadratic parsing would cost 16x); 20 ms slack for timer noise."""
    small, large = _csv_of(token, 16_000, rows), _csv_of(token, 64_000, rows)
    t_small = _best_of(lambda: _read_quietly(small))
    t_large = _best_of(lambda: _read_quietly(large))
    assert t_large <= 8 * t_small + 0.02, (token, rows, t_small, t_large)


@settings(max_examples=20, deadline=None)
@given(digits=st.integers(1_000, 60_000), tail=st.sampled_from(["x", ".", "e", "e+", "..", "-"]))
def test_number_check_is_linear_on_long_tokens(digits, tail):
    tok = "1" * digits + tail
    assert _best_of(lambda: is_number(tok), 2) < 0.01
    assert not is_number(tok)


@pytest.mark.parametrize("tok, ok", [("1", True), ("-1.5e-3", True), (".5", True), ("5.", True), ("+7E2", True),
                                     ("NaN", True), ("inf", True), ("1,5", False), ("1e", False), ("--1", False),
                                     ("abc", False), ("1.2.3", False)])
def test_number_check_cases(tok, ok):
    assert is_number(tok) is ok


@settings(max_examples=25, deadline=None)
@given(values=st.lists(st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False), min_size=20, max_size=60))
def test_numbers_round_trip(values):
    x = np.array(values)
    text = "time,II,PLETH\n" + "".join(f"{i / 100!r},{v!r},{-v!r}\n" for i, v in enumerate(values))
    rec = load_record(io.BytesIO(text.encode()), name="rt.csv")
    assert rec.fs == 100.0
    np.testing.assert_allclose(rec.ecg, x, rtol=1e-12, atol=0)
    np.testing.assert_allclose(rec.ppg, -x, rtol=1e-12, atol=0)


# --- no silent guesses --------------------------------------------------------------------------

R289 = "sample_data/cinc2015_r289"


def _wfdb_with_rate(tmp_path, rate_field: str | None):
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / R289
    lines = (src / "r289.hea").read_text().splitlines()
    lines[0] = f"r289 3 {rate_field} 75000" if rate_field is not None else "r289 3"
    (tmp_path / "r289.hea").write_text("\n".join(lines) + "\n")
    (tmp_path / "r289.dat").symlink_to(src / "r289.dat")
    return tmp_path / "r289.hea"


@pytest.mark.parametrize("rate", ["-250", "-500", "abc", None])
def test_wfdb_invalid_or_missing_rate_needs_fs(tmp_path, rate):
    hea = _wfdb_with_rate(tmp_path, rate)
    with pytest.raises(InputError, match=r"r289\.hea: the WFDB header.*(rate|sampling).*pass --fs HZ"):
        load_record(hea)


def test_wfdb_invalid_rate_with_fs_given_is_read_and_noted(tmp_path):
    rec = load_record(_wfdb_with_rate(tmp_path, "-250"), fs=250)
    assert rec.fs == 250.0 and rec.n_samples == 75000
    assert any("'-250' is not a positive number" in n and "250 Hz given" in n for n in rec.meta["notes"])


def test_csv_without_time_column_or_rate_names_fs():
    data = "II,PLETH\n" + "\n".join(f"{i % 7},{i % 5}" for i in range(300))
    with pytest.raises(InputError, match=r"no time column and no sampling rate; pass --fs HZ"):
        load_record(io.BytesIO(data.encode()), name="nofs.csv")
    assert load_record(io.BytesIO(data.encode()), name="nofs.csv", fs=100).fs == 100.0


@pytest.mark.parametrize("name, scale", [("II µV", 1e-3), ("II uV", 1e-3), ("ECG (mV)", 1.0), ("II [uV]", 1e-3),
                                         ("ECG_uV", 1e-3), ("II mV", 1.0), ("Lead II (V)", 1e3),
                                         ("II μV", 1e-3)])
def test_units_in_column_names_are_recognised_and_converted(name, scale):
    x = np.round(np.sin(np.arange(500) / 10) * 1000, 3)
    data = f"time,{name},PLETH\n" + "".join(f"{i / 100},{v},{i % 5}\n" for i, v in enumerate(x))
    rec = load_record(io.BytesIO(data.encode("utf-8")), name="units.csv")
    assert rec.meta["ecg_column"] == name and rec.meta["units"]["ecg"] == "mV"
    np.testing.assert_allclose(rec.ecg, x * scale)
    if name.startswith("II") or "Lead II" in name:
        assert rec.meta["lead"] == "II"


def test_duplicate_column_names_get_a_note_and_an_override_is_ambiguous():
    data = "time,II,II,PLETH\n" + "".join(f"{i / 100},{i % 7},{i % 3},{i % 5}\n" for i in range(300))
    rec = load_record(io.BytesIO(data.encode()), name="dup.csv")
    assert rec.meta["ecg_column"] == "II" and rec.ecg[1] == 1.0  # the first 'II' column
    assert any("2 columns are named 'II'" in n and "used column 1" in n for n in rec.meta["notes"])
    with pytest.raises(InputError, match=r"--ecg 'II' is ambiguous: columns 1, 2"):
        load_record(io.BytesIO(data.encode()), name="dup.csv", ecg="II")
    assert load_record(io.BytesIO(data.encode()), name="dup.csv", ecg="2").ecg[1] == 1.0 % 3


def test_header_saying_1000_hz_for_250_hz_data_gets_a_rate_note(tmp_path):
    """r289 (250 Hz, ECG + PLETH) with its header rewritten to 1000 Hz: the heart rates it implies are
    ~400 bpm in both channels, so the windows carry a note that the rate looks wrong."""
    import m2ae

    rec = load_record(_wfdb_with_rate(tmp_path, "1000"))
    assert rec.fs == 1000.0
    notes = m2ae.preprocess(rec).meta["notes"]
    hits = [n for n in notes if "declared sampling rate 1000 Hz looks wrong" in n]
    assert hits and "at 250 Hz" in hits[0], notes
    right = m2ae.preprocess(load_record(tmp_path / "r289.hea", fs=250))  # the true rate: no note
    assert not any("looks wrong" in n for n in right.meta["notes"])


def test_rate_note_rules():
    from m2ae.signal.rate_check import rate_note

    assert rate_note([80.0], [80.0], 250.0, 80.0, 81.0) is None
    assert "looks wrong" in rate_note([150.0], [100.0], 1000.0, 390.0, 395.0)
    # 72 bpm at 250 Hz declared as 1000 Hz: 288 bpm in both, a rate no pulse the PPG shows can have
    assert "at 250 Hz they would be 72 and 72 bpm" in rate_note([150.0], [140.0], 1000.0, 288.0, 288.0)
    assert rate_note([200.0], [200.0], 250.0, 200.0, 201.0) is None  # a fast but possible tachycardia
    # ECG and PPG repeating at different rates: a pulse deficit, not a clock fault
    assert rate_note([150.0], [75.0], 250.0, 400.0, 75.0) is None
    # one channel: a fast repetition the beat detector does not confirm may be the QRS's own notches
    assert rate_note([70.0], None, 250.0, 600.0) is None
    assert "ECG 600 bpm" in rate_note([np.nan], None, 250.0, 600.0)
