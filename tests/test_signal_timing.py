"""m2ae.signal.timing: pulse-arrival delays, periodic shifts, placing a rebuilt modality at a
physiological delay; and the shipped model's cross-modal output placed that way."""
from __future__ import annotations

import numpy as np
import pytest

from m2ae.contract import FS_HZ
from m2ae.signal.timing import (align_pulse_arrival, arrival_delays_s, pulse_arrival_shift_samples, shift_periodic,
                                typical_pulse_arrival_s)


def test_shift_periodic_moves_content_and_fills_from_one_period_away():
    x = np.tile(np.arange(5.0), 4)                      # period 5 samples, length 20
    later = shift_periodic(x, 2, period_samples=5)
    np.testing.assert_array_equal(later, np.roll(x, 2))  # a periodic signal shifts without a seam
    earlier = shift_periodic(x, -3, period_samples=5)
    np.testing.assert_array_equal(earlier, np.roll(x, -3))
    np.testing.assert_array_equal(shift_periodic(x, 0, 5), x)
    with pytest.raises(ValueError, match="period"):
        shift_periodic(x, 6, period_samples=5)


def test_arrival_delays_take_the_next_pulse_peak():
    r = np.array([100, 200, 300])
    p = np.array([140, 240, 345, 900])
    np.testing.assert_allclose(arrival_delays_s(r, p, fs_hz=100.0), [0.4, 0.4, 0.45])
    assert arrival_delays_s(r, np.array([], int)).size == 0


def test_pulse_arrival_shift_moves_to_the_target_and_wraps_only_past_one_beat():
    r = np.arange(0, 1000, 100)                         # one beat per 100 samples
    p = r + 10                                          # PPG peaks 10 samples after R
    assert pulse_arrival_shift_samples(r, p, target_delay_s=30 / FS_HZ, period_samples=100) == 20
    assert pulse_arrival_shift_samples(r, p, target_delay_s=90 / FS_HZ, period_samples=100) == 80
    assert pulse_arrival_shift_samples(r, p, target_delay_s=0.0, period_samples=100) == -10
    # 120 samples later looks exactly like 20 samples later when every beat is alike
    assert pulse_arrival_shift_samples(r, p, target_delay_s=130 / FS_HZ, period_samples=100) == 20
    assert pulse_arrival_shift_samples(r[:1], p[:1], 0.3, 100) is None   # one beat: unmeasurable


@pytest.fixture(scope="module")
def pairs():
    """Held-out-style simulated paired windows (regular rhythms, 4 subjects)."""
    from m2ae.simulate.labelled import subject_windows
    from m2ae.simulate.splits import EVAL_SEED

    d = subject_windows(24, 1, EVAL_SEED + 17)
    keep = np.isin(np.asarray(d["rhythm"]), ["NSR", "SB"])  # regular rhythms: the delay is well defined
    return d["ecg"][keep][:4].astype(np.float64), d["ppg"][keep][:4].astype(np.float64)


@pytest.mark.parametrize("rebuilt", ["ppg", "ecg"])
def test_align_pulse_arrival_undoes_a_known_offset(pairs, rebuilt):
    ecg, ppg = pairs
    truth, given = (ppg, ecg) if rebuilt == "ppg" else (ecg, ppg)
    offset = 23  # samples (184 ms) too early: what a lag-tolerant decoder may output
    for i in range(len(ecg)):
        own_delay = typical_pulse_arrival_s(ecg[i], ppg[i])   # this pair's own R → pulse delay
        assert 0.1 < own_delay < 0.8
        period = np.median(np.diff(_beats(given[i], rebuilt)))
        moved = shift_periodic(truth[i], -offset, period)[None]
        aligned, shift = align_pulse_arrival(moved, given[i:i + 1], rebuilt, own_delay)
        assert abs(shift[0] - offset) <= 1, shift
        assert np.corrcoef(aligned[0], truth[i])[0, 1] > 0.9 > np.corrcoef(moved[0], truth[i])[0, 1] + 0.2


def _beats(x, rebuilt):
    from m2ae.signal.peaks import detect_pulse_peaks, detect_r_peaks

    return detect_r_peaks(x, FS_HZ) if rebuilt == "ppg" else detect_pulse_peaks(x, FS_HZ)


def test_align_pulse_arrival_leaves_beatless_windows_alone(pairs):
    ecg, _ = pairs
    flat = np.zeros_like(ecg[:2])
    aligned, shift = align_pulse_arrival(flat, ecg[:2], "ppg", 0.3)
    assert np.isnan(shift).all()
    np.testing.assert_array_equal(aligned, flat)
    with pytest.raises(ValueError, match="rebuilt_modality"):
        align_pulse_arrival(flat, ecg[:2], "abp", 0.3)


def test_shipped_model_places_rebuilt_ppg_at_the_pulse_arrival(pairs):
    """ECG→PPG from the shipped checkpoint: the decoder's raw timing is arbitrary (lag-tolerant loss);
    placed at the card's pulse-arrival delay, the plain (unlagged) correlation rises."""
    import m2ae

    ecg, ppg = pairs
    model = m2ae.load_model()
    assert model.pulse_arrival_s is not None and 0.1 < model.pulse_arrival_s < 0.8
    raw = model.reconstruct(ecg=ecg.astype(np.float32), mode="ppg_from_ecg", align_timing=False)["ppg"]
    placed = model.reconstruct(ecg=ecg.astype(np.float32), mode="ppg_from_ecg")["ppg"]
    assert np.isnan(raw["timing_shift_samples"]).all() and np.isfinite(placed["timing_shift_samples"]).all()
    r_raw = np.median([np.corrcoef(a, b)[0, 1] for a, b in zip(raw["prediction"], ppg)])
    r_placed = np.median([np.corrcoef(a, b)[0, 1] for a, b in zip(placed["prediction"], ppg)])
    assert r_placed > 0.5 and r_placed > r_raw + 0.2, (r_raw, r_placed)
    # a modality absent from the record is placed too, whatever the other's mask
    absent = model.reconstruct(ecg=ecg.astype(np.float32), mode="complementary", mask_ratio=0.5)
    assert np.isfinite(absent["ppg"]["timing_shift_samples"]).all()
    assert np.isnan(absent["ecg"]["timing_shift_samples"]).all()
    # masked (not cross-modal) reconstruction is never moved
    both = model.reconstruct(ecg=ecg.astype(np.float32), ppg=ppg.astype(np.float32), mode="complementary")
    assert np.isnan(both["ppg"]["timing_shift_samples"]).all()


def test_pat_plausibility_sentences():
    from m2ae.signal.timing import pat_plausibility

    assert "physiologically plausible" in pat_plausibility(300.0, rr_ms=800.0)
    one_beat = pat_plausibility(650.0, rr_ms=640.0)
    assert "about one beat interval" in one_beat and "device" in one_beat
    assert "device" in pat_plausibility(620.0)                     # > 500 ms without a beat interval
    assert "not aligned" in pat_plausibility(-80.0)
    assert "upper edge" in pat_plausibility(480.0, rr_ms=1000.0)
    assert pat_plausibility(float("nan")).startswith("No pulse arrival time")
    for s in (one_beat, pat_plausibility(100.0)):
        assert "\n" not in s and s.endswith(".")


def test_pat_plausibility_flags_the_device_delay_of_bidmc_01(bidmc_csv):
    """BIDMC 01's R → pulse-peak delay (614-698 ms, about one beat interval) gets the device-delay note."""
    import pandas as pd

    from m2ae import Record, preprocess
    from m2ae.signal.timing import pat_plausibility

    df = pd.read_csv(bidmc_csv, skipinitialspace=True)
    win = preprocess(Record(ecg=df["II"].to_numpy(float), ppg=df["PLETH"].to_numpy(float), fs=125.0,
                            meta={"source": bidmc_csv.name, "lead": "II"}))
    ok = np.isfinite(win.pat_ms) & np.isfinite(win.hr_ecg_bpm)
    pat, rr = float(np.median(win.pat_ms[ok])), float(np.median(60000.0 / win.hr_ecg_bpm[ok]))
    assert 600 <= pat <= 720
    assert "device" in pat_plausibility(pat, rr)
    assert all("device" in pat_plausibility(p, r) for p, r in zip(win.pat_ms[ok], 60000.0 / win.hr_ecg_bpm[ok]))
