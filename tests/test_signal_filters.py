"""Pure numpy/scipy filters of the signal contract: rates, bands, polarity, normalisation, windows, gaps."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from m2ae.contract import FS_HZ, WINDOW_SAMPLES
from m2ae.signal import filters as F


def _sine(freq_hz: float, fs_hz: float, duration_s: float = 30.0, phase: float = 0.0) -> np.ndarray:
    t = np.arange(int(round(duration_s * fs_hz))) / fs_hz
    return np.sin(2 * np.pi * freq_hz * t + phase)


def _gain(filtered: np.ndarray, original: np.ndarray, fs_hz: float) -> float:
    """Amplitude ratio away from the edges (filter transients excluded)."""
    edge = int(5 * fs_hz)
    return float(np.std(filtered[edge:-edge]) / np.std(original[edge:-edge]))


def pulse_train(fs_hz: float, duration_s: float = 60.0, hr_bpm: float = 72.0, seed: int = 0) -> np.ndarray:
    """Upright PPG-like pulses: fast systolic rise (~0.12 s), slow diastolic decay (~0.45 s)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(duration_s * fs_hz)) / fs_hz
    x = np.zeros_like(t)
    beat = 60.0 / hr_bpm
    for onset in np.arange(0.2, duration_s - 1.0, beat):
        tau = t - onset
        rise = (tau >= 0) & (tau < 0.12)
        fall = tau >= 0.12
        x[rise] += np.sin(0.5 * np.pi * tau[rise] / 0.12)
        x[fall] += np.exp(-(tau[fall] - 0.12) / 0.3) * (tau[fall] < 1.5)
    return x + 0.01 * rng.standard_normal(len(t))


# --- band-pass -------------------------------------------------------------------------------------

@pytest.mark.parametrize("fs_hz", [125.0, 250.0, 500.0])
def test_ecg_bandpass_passes_in_band_and_attenuates_out_of_band(fs_hz):
    assert _gain(F.ecg_bandpass(_sine(10.0, fs_hz), fs_hz), _sine(10.0, fs_hz), fs_hz) > 0.95
    assert _gain(F.ecg_bandpass(_sine(0.05, fs_hz, 120), fs_hz), _sine(0.05, fs_hz, 120), fs_hz) < 0.1  # wander
    if fs_hz / 2 > 60:
        assert _gain(F.ecg_bandpass(_sine(60.0, fs_hz), fs_hz), _sine(60.0, fs_hz), fs_hz) < 0.1        # mains


def test_ppg_bandpass_passes_pulse_band_and_attenuates_noise():
    fs = 125.0
    assert _gain(F.ppg_bandpass(_sine(1.5, fs), fs), _sine(1.5, fs), fs) > 0.95
    assert _gain(F.ppg_bandpass(_sine(20.0, fs), fs), _sine(20.0, fs), fs) < 0.05
    assert _gain(F.ppg_bandpass(_sine(0.05, fs, 120), fs), _sine(0.05, fs, 120), fs) < 0.1


def test_bandpass_is_zero_phase_and_works_on_batches():
    fs = 125.0
    x = np.stack([_sine(5.0, fs), _sine(3.0, fs, phase=1.0), _sine(7.0, fs, phase=2.0)])  # [3, T]
    y = F.ecg_bandpass(x, fs)
    assert y.shape == x.shape
    for i in range(3):
        np.testing.assert_allclose(y[i], F.ecg_bandpass(x[i], fs), atol=1e-10)
    # zero phase: the in-band sine is not shifted (peak cross-correlation at lag 0)
    mid = slice(1000, 2000)
    lags = [np.dot(np.roll(y[0], k)[mid], x[0][mid]) for k in range(-5, 6)]
    assert int(np.argmax(lags)) - 5 == 0


# --- resampling ------------------------------------------------------------------------------------

@pytest.mark.parametrize("fs_in_hz", [250.0, 360.0, 500.0, 100.0, 128.0])
def test_resample_to_125_hz_keeps_duration_frequency_and_amplitude(fs_in_hz):
    x = _sine(5.0, fs_in_hz, duration_s=60.0)
    y = F.resample_to(x, fs_in_hz)
    assert len(y) == 60 * int(FS_HZ)
    spectrum = np.abs(np.fft.rfft(y[1000:-1000] * np.hanning(len(y) - 2000)))
    freqs = np.fft.rfftfreq(len(y) - 2000, d=1 / FS_HZ)
    assert abs(freqs[np.argmax(spectrum)] - 5.0) < 0.05
    assert abs(np.std(y[500:-500]) - np.std(x)) < 0.01


def test_rational_ratio_for_common_rates():
    assert F.rational_ratio(360.0) == (25, 72)
    assert F.rational_ratio(128.0) == (125, 128)
    assert F.rational_ratio(125.0) == (1, 1)
    np.testing.assert_allclose(F.resample_to(np.arange(10.0), 125.0), np.arange(10.0))


def test_resample_antialiases_content_above_new_nyquist():
    # 100 Hz at 500 Hz sampling would fold to 25 Hz at 125 Hz without the polyphase low-pass
    y = F.resample_to(_sine(100.0, 500.0), 500.0)
    assert np.std(y[200:-200]) < 0.05


# --- PPG polarity ----------------------------------------------------------------------------------

def test_ppg_polarity_detects_inverted_pulses():
    fs = 125.0
    ppg = F.ppg_bandpass(pulse_train(fs), fs)
    fixed, flipped = F.ppg_fix_polarity(ppg, fs)
    assert flipped is False
    np.testing.assert_array_equal(fixed, ppg)
    fixed, flipped = F.ppg_fix_polarity(-ppg, fs)
    assert flipped is True
    np.testing.assert_allclose(fixed, ppg)
    # batch: each row decided on its own
    batch = np.stack([ppg, -ppg, ppg])
    fixed, flipped = F.ppg_fix_polarity(batch, fs)
    assert flipped.tolist() == [False, True, False]
    np.testing.assert_allclose(fixed, np.stack([ppg, ppg, ppg]))


def test_ppg_polarity_on_real_bidmc_pleth(bidmc_csv):
    import pandas as pd

    df = pd.read_csv(bidmc_csv, skipinitialspace=True)
    ppg = F.ppg_bandpass(df["PLETH"].to_numpy(float), 125.0)
    assert F.ppg_fix_polarity(ppg, 125.0)[1] is False
    assert F.ppg_fix_polarity(-ppg, 125.0)[1] is True


# --- normalisation ---------------------------------------------------------------------------------

def test_robust_normalise_round_trips_to_original_units():
    rng = np.random.default_rng(1)
    x = 3.0 + 0.5 * rng.standard_normal((4, WINDOW_SAMPLES))  # e.g. mV with an offset
    z, center, scale = F.robust_normalise(x)
    assert center.shape == scale.shape == (4,)
    np.testing.assert_allclose(z * scale[:, None] + center[:, None], x, atol=1e-12)
    np.testing.assert_allclose(center, np.median(x, axis=1))
    np.testing.assert_allclose(scale, 0.5, rtol=0.1)  # reads like a std for Gaussian data
    assert abs(np.median(z)) < 1e-12


def test_robust_normalise_ignores_a_short_artefact_and_floors_flat_windows():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, WINDOW_SAMPLES))
    x[1, 100:105] = 1000.0            # 0.04 s spike: < 1% of the window
    x[2] = 7.0                        # flat window
    z, center, scale = F.robust_normalise(x)
    assert 0.8 < scale[1] < 1.2
    assert np.isfinite(z).all() and np.all(z[2] == 0)
    assert scale[2] >= 0.05 * np.median(scale[:2]) * 0.99


# --- windows ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("stride_s, n_expected", [(10.0, 6), (5.0, 11), (2.0, 26)])
def test_cut_windows_shapes_starts_strides(stride_s, n_expected):
    x = np.arange(60 * 125, dtype=float)
    w, starts = F.cut_windows(x, 125.0, stride_s=stride_s)
    assert w.shape == (n_expected, WINDOW_SAMPLES)
    np.testing.assert_allclose(starts, np.arange(n_expected) * stride_s)
    np.testing.assert_array_equal(w[:, 0], starts * 125)
    np.testing.assert_array_equal(w[-1], x[int(starts[-1] * 125): int(starts[-1] * 125) + WINDOW_SAMPLES])


def test_cut_windows_short_signal_and_batch():
    w, starts = F.cut_windows(np.zeros(1249), 125.0)
    assert w.shape == (0, WINDOW_SAMPLES) and len(starts) == 0
    w, starts = F.cut_windows(np.zeros((3, 2600)), 125.0)
    assert w.shape == (3, 2, WINDOW_SAMPLES)


# --- gaps ------------------------------------------------------------------------------------------

def test_fill_gaps_interpolates_short_gaps():
    fs = 125.0
    x = np.linspace(0.0, 10.0, 2000)
    y = x.copy()
    y[500:560] = np.nan               # 0.48 s
    filled, segments, notes = F.fill_gaps(y, fs, max_gap_s=1.0, name="PPG")
    np.testing.assert_allclose(filled, x, atol=1e-9)
    assert segments == [(0, 2000)]
    assert len(notes) == 1 and "PPG" in notes[0] and "interpolated 1 gap" in notes[0]


def test_fill_gaps_splits_at_long_and_edge_gaps():
    fs = 125.0
    y = np.ones(5000)
    y[:10] = np.nan                   # edge gap: no left neighbour to interpolate from
    y[2000:2300] = np.nan             # 2.4 s: split
    y[4000:4010] = np.inf             # short: interpolated
    filled, segments, notes = F.fill_gaps(y, fs, max_gap_s=1.0, name="ECG")
    assert segments == [(10, 2000), (2300, 5000)]
    assert np.isnan(filled[2000:2300]).all() and np.isnan(filled[:10]).all()
    assert np.all(filled[4000:4010] == 1.0)
    assert any("split" in n for n in notes) and any("interpolated" in n for n in notes)


def test_fill_gaps_without_gaps_is_a_copy():
    x = np.arange(10.0)
    filled, segments, notes = F.fill_gaps(x, 125.0)
    assert segments == [(0, 10)] and notes == []
    filled[0] = 99
    assert x[0] == 0


# --- fast path -------------------------------------------------------------------------------------

def test_contract_windows_fast_single_record_matches_the_steps():
    fs = 250.0
    ecg = _sine(1.2, fs, 60) + 0.3 * _sine(15.0, fs, 60)
    ppg = -pulse_train(fs, 60)                           # inverted photodiode
    win = F.contract_windows_fast(ecg, ppg, fs)
    assert win.ecg.shape == win.ppg.shape == (6, WINDOW_SAMPLES) and win.ecg.dtype == np.float32
    np.testing.assert_allclose(win.starts_s, np.arange(6) * 10.0)
    assert win.meta["ppg_flipped"] is True
    expected = F.ecg_bandpass(F.resample_to(ecg, fs), FS_HZ)[:6 * WINDOW_SAMPLES].reshape(6, -1)
    np.testing.assert_allclose(win.to_original_units("ecg", win.ecg), expected, atol=1e-4)


def test_contract_windows_fast_batch_and_nan_windows_dropped():
    fs = 125.0
    ecg = np.stack([_sine(1.0, fs, 30), _sine(1.5, fs, 30)])   # [2, T]: 3 windows each
    ppg = np.stack([pulse_train(fs, 30), pulse_train(fs, 30, seed=1)])
    ecg[1, 1300:1800] = np.nan                                  # 4 s gap in record 1, window 1
    win = F.contract_windows_fast(ecg, ppg, fs, stride_s=10.0)
    assert win.meta["record_index"].tolist() == [0, 0, 0, 1, 1]
    assert win.starts_s.tolist() == [0.0, 10.0, 20.0, 0.0, 20.0]
    assert np.isfinite(win.ecg).all() and np.isfinite(win.ppg).all()
    assert win.ecg_scale.shape == (5,)


def test_contract_windows_fast_single_modality():
    win = F.contract_windows_fast(None, pulse_train(100.0, 40), 100.0, stride_s=5.0)
    assert win.ecg is None and win.ppg.shape == (7, WINDOW_SAMPLES)


def test_filters_import_without_neurokit2():
    """The GPU training box may lack neurokit2: filters, the fast path and m2ae.signal must import."""
    code = (
        "import sys; sys.modules['neurokit2'] = None\n"
        "import numpy as np\n"
        "from m2ae.signal import contract_windows_fast, preprocess\n"
        "w = contract_windows_fast(np.random.randn(3000), np.random.randn(3000), 125.0)\n"
        "print(w.ecg.shape)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "(2, 1250)" in out.stdout


def test_docstring_examples_run():
    import doctest

    result = doctest.testmod(F, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 5 and result.failed == 0


def test_ecg_inversion_check_on_real_leads(bidmc_csv):
    import pandas as pd

    df = pd.read_csv(bidmc_csv, skipinitialspace=True)
    lead_ii = F.ecg_bandpass(df["II"].to_numpy(float), 125.0)
    lead_avr = F.ecg_bandpass(df["AVR"].to_numpy(float), 125.0)   # aVR: QRS negative by nature
    assert F.ecg_looks_inverted(lead_ii, 125.0) is False
    assert F.ecg_looks_inverted(lead_avr, 125.0) is True
    assert F.ecg_looks_inverted(-lead_ii, 125.0) is True


def test_polarity_keeps_narrow_upright_real_ppg():
    """HeartPy's finger PPG (real, MIT) has narrow near-symmetric pulses: slope asymmetry alone
    called it inverted and neurokit then counted the dicrotic waves (118 bpm instead of ~59)."""
    from pathlib import Path

    import m2ae
    from m2ae.signal.filters import ppg_fix_polarity, resample_to

    path = Path(__file__).resolve().parents[1] / "m2ae" / "simulate" / "registry_excerpts" / "heartpy_ppg_100hz.npz"
    rec = m2ae.load_record(path)
    x = F.ppg_bandpass(resample_to(rec.ppg, rec.fs, 125.0), 125.0)
    _, flipped = ppg_fix_polarity(x, 125.0)
    assert flipped is False
    assert np.nanmedian(m2ae.preprocess(rec).hr_ppg_bpm) < 70
    _, flipped_inv = ppg_fix_polarity(-x, 125.0)
    assert flipped_inv is True
