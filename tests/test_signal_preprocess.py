"""m2ae.preprocess: the signal contract end to end, quality, peaks, heart rate, pulse arrival, bad input."""
from __future__ import annotations

import re
import warnings
from collections.abc import Callable

import numpy as np
import pytest

from m2ae import InputError, Record, Windows
from m2ae.contract import FS_HZ, QUALITY_THRESHOLD, WINDOW_SAMPLES
from m2ae.signal import filters as F
from m2ae.signal import quality as ql
from m2ae.signal import format_summary, preprocess, summarize


def simulated_pair(fs_hz: float, duration_s: float = 60.0, hr_bpm: float = 75.0, delay_s: float = 0.25,
                   seed: int = 0, source: str = "simulated") -> Record:
    """Beat-locked ECG (Gaussian P-QRS-T waves, mV) and PPG (fast rise, slow fall) with a known delay.

    The PPG systolic peak comes ``delay_s`` + 0.12 s (upstroke) after each R-peak.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(duration_s * fs_hz))) / fs_hz
    rr = 60.0 / hr_bpm * (1 + 0.02 * rng.standard_normal(int(duration_s * hr_bpm / 60) + 4))
    beats = 0.3 + np.cumsum(rr) - rr[0]
    ecg = np.zeros_like(t)
    ppg = np.zeros_like(t)
    waves = ((-0.2, 0.025, 0.15), (-0.03, 0.008, -0.1), (0.0, 0.01, 1.0), (0.03, 0.008, -0.25), (0.25, 0.04, 0.3))
    for b in beats[beats < duration_s + 1]:
        for offset, width, amp in waves:
            ecg += amp * np.exp(-0.5 * ((t - b - offset) / width) ** 2)
        tau = t - (b + delay_s)
        rise = (tau >= 0) & (tau < 0.12)
        fall = (tau >= 0.12) & (tau < 1.5)
        ppg[rise] += np.sin(0.5 * np.pi * tau[rise] / 0.12)
        ppg[fall] += np.exp(-(tau[fall] - 0.12) / 0.3)
    ecg += 0.01 * rng.standard_normal(len(t))
    ppg = 1000.0 + 50.0 * ppg + 0.5 * rng.standard_normal(len(t))
    return Record(ecg=ecg, ppg=ppg, fs=fs_hz, meta={"source": source, "units": {"ecg": "mV", "ppg": "au"}})


@pytest.fixture(scope="module")
def bidmc_record(bidmc_csv) -> Record:
    import pandas as pd

    df = pd.read_csv(bidmc_csv, skipinitialspace=True)
    return Record(ecg=df["II"].to_numpy(float), ppg=df["PLETH"].to_numpy(float), fs=125.0,
                  meta={"source": bidmc_csv.name, "lead": "II"})


@pytest.fixture(scope="module")
def a103l_record(a103l_hea) -> Record:
    import wfdb

    r = wfdb.rdrecord(str(a103l_hea.with_suffix("")))
    return Record(ecg=r.p_signal[:, r.sig_name.index("II")], ppg=r.p_signal[:, r.sig_name.index("PLETH")],
                  fs=float(r.fs), meta={"source": a103l_hea.name, "lead": "II"})


# --- the contract ----------------------------------------------------------------------------------

def test_preprocess_fills_every_windows_field():
    rec = simulated_pair(250.0, 60.0)
    win = preprocess(rec)
    assert isinstance(win, Windows) and len(win) == 6 and win.fs == FS_HZ
    for mod in ("ecg", "ppg"):
        x = getattr(win, mod)
        assert x.shape == (6, WINDOW_SAMPLES) and x.dtype == np.float32 and np.isfinite(x).all()
        for field in (f"{mod}_center", f"{mod}_scale", f"{mod}_quality", f"hr_{mod}_bpm"):
            assert getattr(win, field).shape == (6,), field
        assert getattr(win, f"{mod}_clean").shape == (60 * 125,)
    assert win.low_quality.dtype == bool and win.pat_ms.shape == (6,)
    assert win.r_peaks.dtype == np.int64 and win.pulse_peaks.dtype == np.int64
    np.testing.assert_allclose(win.starts_s, np.arange(6) * 10.0)
    assert win.meta["source"] == "simulated" and any("resampled 250" in n for n in win.meta["notes"])


@pytest.mark.parametrize("fs_hz", [100.0, 250.0, 360.0, 500.0])
def test_heart_rate_and_delay_do_not_depend_on_the_input_rate(fs_hz):
    win = preprocess(simulated_pair(fs_hz, 40.0, hr_bpm=75.0, delay_s=0.25))
    assert len(win) == 4
    assert np.nanmedian(win.hr_ecg_bpm) == pytest.approx(75.0, abs=2.0)
    assert np.nanmedian(win.hr_ppg_bpm) == pytest.approx(75.0, abs=2.0)
    assert np.all(win.ecg_quality > QUALITY_THRESHOLD) and np.all(win.ppg_quality > QUALITY_THRESHOLD)


def test_pulse_arrival_delay_follows_the_shift_between_modalities():
    for delay_s in (0.15, 0.35):
        pat_ms = preprocess(simulated_pair(125.0, 40.0, delay_s=delay_s)).pat_ms
        assert np.nanmedian(pat_ms) == pytest.approx(1000 * (delay_s + 0.12), abs=16.0)  # R → systolic peak


def test_pulse_arrival_longer_than_a_beat_is_paired_with_its_own_beat():
    # 0.8 s + 0.12 s upstroke > one beat interval at 90 bpm (0.67 s): the next pulse belongs to the
    # previous beat; the beat-to-beat RR variation tells the pairings apart.
    win = preprocess(simulated_pair(250.0, 60.0, hr_bpm=90.0, delay_s=0.8))
    assert np.nanmedian(win.pat_ms) == pytest.approx(920.0, abs=16.0)
    assert any("paired" in n for n in win.meta["notes"])


def test_normalised_windows_map_back_to_the_filtered_signal():
    win = preprocess(simulated_pair(125.0, 30.0))
    for mod in ("ecg", "ppg"):
        back = win.to_original_units(mod, getattr(win, mod))
        clean = getattr(win, f"{mod}_clean")[: 3 * WINDOW_SAMPLES].reshape(3, -1)
        np.testing.assert_allclose(back, clean, rtol=1e-5, atol=1e-5 * np.abs(clean).max())


def test_stride_overlaps_windows():
    win = preprocess(simulated_pair(125.0, 60.0), stride_s=5.0)
    assert len(win) == 11
    np.testing.assert_allclose(np.diff(win.starts_s), 5.0)
    assert win.meta["stride_s"] == 5.0


def test_inverted_ppg_is_flipped_and_reported():
    rec = simulated_pair(125.0, 40.0)
    upright = preprocess(rec)
    rec.ppg = -rec.ppg
    flipped = preprocess(rec)
    assert flipped.meta["ppg_flipped"] is True and upright.meta["ppg_flipped"] is False
    np.testing.assert_allclose(flipped.ppg, upright.ppg, atol=1e-4)
    assert any("PPG inverted" in n for n in flipped.meta["notes"])


def test_single_modality_records():
    rec = simulated_pair(125.0, 30.0)
    ecg_only = preprocess(Record(ecg=rec.ecg, ppg=None, fs=125.0, meta={"source": "e"}))
    assert ecg_only.ppg is None and ecg_only.pulse_peaks is None
    assert np.isnan(ecg_only.ppg_quality).all() and np.isnan(ecg_only.pat_ms).all()
    assert not ecg_only.low_quality.any()
    ppg_only = preprocess(Record(ecg=None, ppg=rec.ppg, fs=125.0, meta={"source": "p"}))
    assert ppg_only.ecg is None and np.isfinite(ppg_only.hr_ppg_bpm).all()


# --- quality ---------------------------------------------------------------------------------------

def test_quality_is_lower_on_a_noise_window_than_on_clean_ones():
    rng = np.random.default_rng(3)
    rec = simulated_pair(125.0, 60.0)
    ecg, ppg = rec.ecg.copy(), rec.ppg.copy()
    ecg[3 * 1250:4 * 1250] = np.median(ecg) + np.std(ecg) * rng.standard_normal(1250)   # window 3: ECG noise
    ppg[1 * 1250:2 * 1250] = np.median(ppg) + np.std(ppg) * rng.standard_normal(1250)   # window 1: PPG noise
    win = preprocess(Record(ecg=ecg, ppg=ppg, fs=125.0, meta={"source": "noisy"}))
    clean_e = np.delete(win.ecg_quality, 3)
    clean_p = np.delete(win.ppg_quality, 1)
    assert win.ecg_quality[3] < QUALITY_THRESHOLD < clean_e.min()
    assert win.ppg_quality[1] < QUALITY_THRESHOLD < clean_p.min()
    assert win.low_quality.tolist() == [False, True, False, True, False, False]
    assert len(win) == 6  # flagged, not dropped


def test_template_quality_matches_neurokit_templatematch(bidmc_record):
    """Our vectorised beat-template correlation is neurokit2's templatematch index, beat for beat."""
    import neurokit2 as nk

    from m2ae.signal import peaks, quality

    x = F.ppg_bandpass(bidmc_record.ppg[: 125 * 60], 125.0)
    p = peaks.detect_pulse_peaks(x, 125.0)
    ours = quality.beat_template_correlation(x, p, 125.0)[:-1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = nk.ppg_quality(x, peaks=p, sampling_rate=125, method="templatematch")[p[:-1]]
    ok = np.isfinite(ours) & np.isfinite(theirs)
    assert ok.sum() > 50
    assert np.mean(np.abs(ours[ok] - theirs[ok])) < 0.02


def test_pure_noise_is_flagged_low_quality():
    """Noise in both channels: the ECG is kept and flagged (an ECG is never dropped for want of beats),
    the PPG shows no pulse anywhere and is dropped."""
    rng = np.random.default_rng(4)
    win = preprocess(Record(ecg=rng.standard_normal(125 * 40), ppg=rng.standard_normal(125 * 40), fs=125.0,
                            meta={"source": "noise"}))
    assert win.low_quality.all()
    assert np.all(win.ecg_quality < QUALITY_THRESHOLD)
    assert win.ppg is None and list(win.meta["dropped"]) == ["ppg"]


def test_clipped_window_scores_lower():
    rec = simulated_pair(125.0, 40.0)
    ecg = rec.ecg.copy()
    seg = slice(2 * 1250, 3 * 1250)
    rail = ecg.max()
    window2 = ecg[seg]                         # a view: writes go into ecg
    window2[window2 > np.percentile(ecg, 60)] = rail   # amplifier saturated at its rail in window 2
    win = preprocess(Record(ecg=ecg, ppg=rec.ppg, fs=125.0, meta={"source": "clipped"}))
    assert win.ecg_quality[2] < QUALITY_THRESHOLD
    assert np.delete(win.ecg_quality, 2).min() > QUALITY_THRESHOLD


# --- gaps ------------------------------------------------------------------------------------------

def test_short_gap_is_interpolated_and_reported():
    rec = simulated_pair(250.0, 40.0)
    rec.ppg[2500:2600] = np.nan                    # 0.4 s
    win = preprocess(rec)
    assert len(win) == 4 and np.isfinite(win.ppg).all()
    assert any("interpolated 1 gap" in n for n in win.meta["notes"])


def test_long_gap_splits_and_no_window_crosses_it():
    rec = simulated_pair(125.0, 60.0)
    rec.ecg[125 * 25:125 * 28] = np.nan            # 3-s gap from 25 s to 28 s
    win = preprocess(rec)
    ends = win.starts_s + 10.0
    assert not np.any((win.starts_s < 28.0) & (ends > 25.0))
    assert len(win) == 5                           # 0,10 | 28,38,48
    np.testing.assert_allclose(win.starts_s, [0.0, 10.0, 28.0, 38.0, 48.0])
    assert np.isnan(win.ecg_clean[125 * 25 + 5:125 * 28 - 5]).all()
    assert any("split" in n for n in win.meta["notes"])
    assert np.isfinite(win.pat_ms).all()


# --- real records ----------------------------------------------------------------------------------

def test_bidmc01_heart_rates_agree(bidmc_record):
    win = preprocess(bidmc_record)
    assert len(win) == 48
    hr_e, hr_p = np.nanmedian(win.hr_ecg_bpm), np.nanmedian(win.hr_ppg_bpm)
    assert hr_e == pytest.approx(91.5, abs=1.0) and abs(hr_e - hr_p) < 1.0
    # per window too, where both channels are good
    good = ~win.low_quality
    assert good.mean() > 0.9
    assert np.nanmedian(np.abs(win.hr_ecg_bpm[good] - win.hr_ppg_bpm[good])) < 1.0
    assert np.nanmedian(win.pat_ms) == pytest.approx(640.0, abs=40.0)  # device delay seen in BIDMC 01


def test_a103l_heart_rates_agree(a103l_record):
    win = preprocess(a103l_record)
    assert len(win) == 33 and a103l_record.fs == 250.0
    hr_e, hr_p = np.nanmedian(win.hr_ecg_bpm), np.nanmedian(win.hr_ppg_bpm)
    assert hr_e == pytest.approx(127.0, abs=3.0) and abs(hr_e - hr_p) < 3.0


def test_summarize_reports_the_contract(bidmc_record):
    win = preprocess(bidmc_record)
    s = summarize(bidmc_record, win)
    assert s["fs_hz"] == 125.0 and s["duration_s"] == pytest.approx(480.0, abs=0.1)
    assert s["n_windows"] == 48 and s["channels"]["ecg"]["lead"] == "II"
    assert set(s["quality"]) == {"ecg", "ppg"} and 0 <= s["quality"]["ppg"]["min"] <= s["quality"]["ppg"]["median"] <= 1
    assert s["heart_rate_bpm"]["ecg"] == pytest.approx(91.5, abs=1.0)
    assert s["n_low_quality"] == int(win.low_quality.sum())
    assert s["ppg_flipped"] is False and s["ecg_inverted"] is False


# --- bad input -------------------------------------------------------------------------------------

def _one_line_error(rec: Record, match: str, **kw) -> str:
    with pytest.raises(InputError, match=match) as e:
        preprocess(rec, **kw)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(rec.meta["source"])
    return msg


def test_record_shorter_than_one_window():
    rec = simulated_pair(125.0, 6.0, source="short.csv")
    msg = _one_line_error(rec, "6.00 s long")
    assert "10 s" in msg


def _dropped(rec: Record, mod: str, reason: str) -> Windows:
    """Preprocess ``rec`` expecting ``mod`` dropped for ``reason`` (regex) and the other channel to go on."""
    win = preprocess(rec)
    other = "ppg" if mod == "ecg" else "ecg"
    assert getattr(win, mod) is None and getattr(win, other) is not None
    assert win.modalities == (other,) and list(win.meta["dropped"]) == [mod]
    assert re.search(reason, win.meta["dropped"][mod]), win.meta["dropped"]
    why = win.meta["dropped"][mod]
    assert win.meta["notes"][0] == f"{mod.upper()} dropped: {why}; the record goes on as {other.upper()} only"
    assert getattr(win, f"{mod}_no_beats") is None and np.isnan(win.pat_ms).all()
    assert np.isnan(getattr(win, f"{mod}_quality")).all() and np.isnan(getattr(win, f"hr_{mod}_bpm")).all()
    assert np.isfinite(getattr(win, f"hr_{other}_bpm")).all() and not getattr(win, f"{other}_no_beats").any()
    assert np.nanmedian(getattr(win, f"hr_{other}_bpm")) == pytest.approx(75.0, abs=3.0)
    return win


def test_flat_line():
    rec = simulated_pair(125.0, 30.0, source="flat.csv")
    rec.ecg = np.full(rec.n_samples, 0.42)
    _dropped(rec, "ecg", r"^flat line \(every sample = 0.42\)")


def test_flat_ppg_goes_on_as_ecg_only():
    """A PPG recorded as all zeros (a clip that fell off, common in CinC 2015) beside a good ECG."""
    rec = simulated_pair(250.0, 40.0, source="flatppg.hea")
    rec.ppg = np.zeros(rec.n_samples)
    win = _dropped(rec, "ppg", r"^flat line \(every sample = 0\)$")
    assert win.meta["notes"][0] == "PPG dropped: flat line (every sample = 0); the record goes on as ECG only"
    assert win.pulse_peaks is None and win.ppg_clean is None and len(win) == 4
    s = summarize(rec, win)
    assert s["dropped"] == {"ppg": "flat line (every sample = 0)"} and list(s["quality"]) == ["ecg"]
    assert s["heart_rate_bpm"] == {"ecg": pytest.approx(75.0, abs=3.0)} and s["no_beats"] == {"ecg": 0}
    assert s["pat_ms"] is None and s["ppg_flipped"] is None and set(s["channels"]) == {"ecg", "ppg"}
    text = format_summary(s)
    assert "PPG  column None (units au); DROPPED: flat line (every sample = 0)" in text
    assert "note: PPG dropped: flat line" in text


def test_channel_without_finite_samples():
    rec = simulated_pair(125.0, 30.0, source="nan.csv")
    rec.ppg = np.full(rec.n_samples, np.nan)
    _dropped(rec, "ppg", "^no finite samples$")


def test_channel_unusable_everywhere():
    rec = simulated_pair(125.0, 30.0, source="square.csv")
    # saturated: stuck at one rail or the other, with brief swings between them (so not just two values)
    rec.ppg = np.clip(5 * np.sin(2 * np.pi * 0.05 * np.arange(rec.n_samples) / 125.0), -1, 1)
    _dropped(rec, "ppg", r"unusable in every window \(.*clipped in \d+.* of 3\)")


def test_channel_of_a_few_values_is_dropped_cheaply():
    """A PPG toggling between two codes (a disconnected sensor's square wave): no waveform, dropped by
    the cheap check that training code shares (``usable.dead_channel_reasons``)."""
    from m2ae.signal.usable import dead_channel_reasons

    rec = simulated_pair(125.0, 30.0, source="square.csv")
    rec.ppg = np.sign(np.sin(2 * np.pi * 0.02 * np.arange(rec.n_samples) / 125.0) + 1e-9)
    assert dead_channel_reasons(rec) == {"ppg": "only 2 distinct values: no waveform (sensor off, disconnected "
                                                "or stuck)"}
    _dropped(rec, "ppg", r"^only 2 distinct values")


def test_dead_channel_reasons_is_cheap_and_agrees_with_preprocess():
    """The check training code uses: flat, nearly flat (a few ADC steps), absurd, empty; {} for signal."""
    from m2ae.signal.usable import dead_channel_reasons

    rec = simulated_pair(250.0, 40.0, source="ok.csv")
    assert dead_channel_reasons(rec) == {}
    steps = np.round(rec.ppg * 1000) / 1000                     # ADC steps of 0.001
    codes = 500 + np.arange(len(steps)) % 2                     # a sensor off, toggling between 2 codes ...
    codes[100:110] = 500 + 20 * np.arange(1, 11)                # ... after one glitch of 200 steps (CinC r290)
    quiet = 0.001 * codes
    for bad, why in [(np.full(len(steps), np.nan), "^no finite samples$"), (steps * 1e300, "^absurd scale"),
                     (np.zeros(len(steps)), r"^flat line \(every sample = 0\)$"),
                     (quiet, r"^nearly flat \(no 10-s stretch spans 10 ADC steps")]:
        rec2 = Record(ecg=rec.ecg, ppg=bad, fs=250.0, meta={"source": "dead.csv"})
        got = dead_channel_reasons(rec2)
        assert list(got) == ["ppg"] and re.search(why, got["ppg"]), got
        assert preprocess(rec2).meta["dropped"] == got


def test_both_channels_dead_is_refused_with_both_reasons():
    rec = simulated_pair(125.0, 30.0, source="dead.csv")
    rec.ecg = np.full(rec.n_samples, 0.42)
    rec.ppg = np.full(rec.n_samples, np.nan)
    msg = _one_line_error(rec, "no usable channel")
    assert msg == "dead.csv: no usable channel — ECG: flat line (every sample = 0.42); PPG: no finite samples"


def test_single_dead_channel_is_refused():
    _one_line_error(Record(ecg=None, ppg=np.zeros(125 * 30), fs=125.0, meta={"source": "ppgonly.csv"}),
                    r"^ppgonly.csv: no usable channel — PPG: flat line \(every sample = 0\)$")


def _noise(n: int, seed: int, colour: str) -> np.ndarray:
    """Unit-variance noise: white, or brown (integrated: slow, smooth, the hardest to tell from pulses)."""
    x = np.random.default_rng(seed).standard_normal(n)
    if colour == "brown":
        x = np.cumsum(x)
    return (x - x.mean()) / x.std()


@pytest.mark.parametrize("seed,colour", [(11, "white"), (12, "brown"), (13, "brown")])
def test_pulseless_ppg_beside_a_good_ecg_is_dropped(seed, colour):
    """A PPG of noise: the detector still finds "beats" in it, but they never look alike and they
    fall anywhere in the heartbeat, not at one delay after each R-peak."""
    rec = simulated_pair(125.0, 120.0, source="pulseless.csv")
    rec.ppg = 1000.0 + 50.0 * _noise(rec.n_samples, seed, colour)
    win = _dropped(rec, "ppg", r"^no pulse \(in none of 12 windows do the detected beats look alike, "
                               r"and only \d+% of R-peaks are followed by a pulse peak at one delay")
    locked = int(re.search(r"only (\d+)%", win.meta["dropped"]["ppg"]).group(1))
    assert locked < 100 * ql.PULSE_LOCK_MIN
    assert not win.low_quality.any()
    # alone, with no ECG to check it against, the same PPG is kept, flagged low quality and noted
    alone = preprocess(Record(ecg=None, ppg=rec.ppg, fs=125.0, meta={"source": "pulseless.csv"}))
    assert alone.meta["dropped"] == {} and alone.low_quality.all()
    assert any(n.startswith("PPG: the detected beats look alike in none of 12 windows") for n in alone.meta["notes"])


def test_noisy_but_real_ppg_locked_to_the_ecg_is_kept():
    """A real pulse buried in noise, so that its beats look alike in no window: its peaks still
    follow each R-peak at one delay, so the PPG is kept (a good PPG is never dropped)."""
    rec = simulated_pair(125.0, 60.0, source="noisy.csv")
    rec.ppg = rec.ppg + 0.9 * rec.ppg.std() * _noise(rec.n_samples, 21, "white")
    win = preprocess(rec)
    assert win.meta["dropped"] == {} and win.modalities == ("ecg", "ppg")


def test_simulated_records_never_lose_their_ppg():
    """Every rhythm, several rates and lengths, with the simulator's noise: no PPG is dropped (the
    check over 400 such records and the sample records is noted above ``quality.PULSE_CLEAR_MIN``)."""
    from m2ae.simulate import simulate_record

    for seed, rhythm in enumerate(["NSR", "AF", "PVC", "SB", "ST", "AF"]):
        rec = simulate_record(rhythm, duration_s=[10.0, 20.0, 30.0][seed % 3], fs_hz=[125.0, 250.0][seed % 2],
                              seed=seed, noise=True)
        win = preprocess(rec)
        assert win.meta["dropped"] == {} and win.modalities == ("ecg", "ppg"), (rhythm, win.meta["dropped"])


def _beatless_ecg(n: int, fs_hz: float, seed: int) -> np.ndarray:
    """Baseline wander (0.2 + 0.05 Hz) and slow movement noise (< 2 Hz) at ECG amplitude (mV): no QRS."""
    from scipy import signal as sps

    t = np.arange(n) / fs_hz
    b, a = sps.butter(2, 2.0, fs=fs_hz)
    slow = sps.filtfilt(b, a, np.random.default_rng(seed).standard_normal(n))
    return 0.4 * np.sin(2 * np.pi * 0.2 * t) + 0.2 * np.sin(2 * np.pi * 0.05 * t) + 0.05 * slow / slow.std()


@pytest.mark.parametrize("with_ppg", [True, False])
def test_beatless_ecg_is_kept_with_no_beats_marked(with_ppg):
    """Asystole: the ECG is there (amplitude fine, not clipped, not missing) but has no beats. Kept,
    every window marked, heart rate NaN (absent, never 0 bpm), no error, nothing dropped."""
    rec = simulated_pair(250.0, 60.0, source="asystole.hea")
    ecg = _beatless_ecg(rec.n_samples, 250.0, seed=3)
    win = preprocess(Record(ecg=ecg, ppg=rec.ppg if with_ppg else None, fs=250.0, meta={"source": "asystole.hea"}))
    assert win.meta["dropped"] == {} and win.ecg is not None and len(win) == 6
    assert win.ecg_no_beats.dtype == bool and win.ecg_no_beats.all()
    assert np.isnan(win.hr_ecg_bpm).all() and not (win.hr_ecg_bpm == 0).any()
    assert (win.ecg_quality == 0).all() and win.low_quality.all()
    assert any("ECG: no beats detected in any window" in n for n in win.meta["notes"])
    if with_ppg:
        assert not win.ppg_no_beats.any() and np.nanmedian(win.hr_ppg_bpm) == pytest.approx(75.0, abs=3.0)
    else:
        assert win.ppg_no_beats is None
    s = summarize(Record(ecg=ecg, ppg=None, fs=250.0, meta={"source": "asystole.hea"}), win)
    assert s["no_beats"]["ecg"] == 6 and s["heart_rate_bpm"]["ecg"] is None and s["dropped"] == {}
    assert "heart rate n/a bpm; no beats detected in 6 of 6 windows" in format_summary(s)


def test_windows_without_beats_are_marked_where_they_are():
    """A 20-s pause in an otherwise beating ECG: only the windows inside it are marked."""
    rec = simulated_pair(125.0, 60.0, source="pause.csv")
    rec.ecg[125 * 20:125 * 40] = _beatless_ecg(125 * 20, 125.0, seed=5) * 0.1 + np.median(rec.ecg)
    win = preprocess(rec)
    assert win.ecg_no_beats.tolist() == [False, False, True, True, False, False]
    assert np.isnan(win.hr_ecg_bpm[2:4]).all() and np.isfinite(np.delete(win.hr_ecg_bpm, [2, 3])).all()
    assert not win.ppg_no_beats.any()
    assert any("ECG: no beats detected in 2 of 6 windows" in n for n in win.meta["notes"])


def test_channel_flat_for_part_of_the_record_is_kept():
    """A PPG sensor unplugged for the second half: the live half keeps its pulses and normal quality."""
    rec = simulated_pair(250.0, 60.0, source="unplugged.hea")
    rec.ppg = np.round(rec.ppg * 10) / 10                      # ADC steps of 0.1 au
    rec.ppg[250 * 30:] = 0.0                                   # sensor off after 30 s
    win = preprocess(rec)
    assert win.meta["dropped"] == {} and win.ppg is not None
    assert win.ppg_no_beats.tolist() == [False, False, False, True, True, True]
    assert (win.ppg_quality[:3] > QUALITY_THRESHOLD).all() and (win.ppg_quality[3:] == 0).all()
    assert any(n.startswith("PPG: flat (no signal) in ") for n in win.meta["notes"])


def test_no_usable_window_after_gap_splitting():
    rec = simulated_pair(125.0, 60.0, source="gappy.csv")
    for start in range(0, 60, 6):                  # a 2-s gap every 6 s
        rec.ecg[start * 125 + 500:start * 125 + 750] = np.nan
    _dropped(rec, "ecg", r"^no usable 10-s stretch \(gaps longer than 1 s split it into pieces of at most 4.0 s\)$")
    msg = _one_line_error(Record(ecg=rec.ecg, ppg=None, fs=125.0, meta={"source": "gappy.csv"}),
                          "no usable channel — ECG: no usable 10-s stretch")
    assert "1 s" in msg


def test_gaps_in_both_channels_that_never_leave_10_s_together():
    rec = simulated_pair(125.0, 60.0, source="interleaved.csv")
    for start in range(0, 60, 12):                 # each channel alone has 10-s stretches, never both at once
        rec.ecg[start * 125:start * 125 + 250] = np.nan
        rec.ppg[(start + 6) * 125:(start + 6) * 125 + 250] = np.nan
    _one_line_error(rec, "no usable 10-s stretch: gaps longer than 1 s in ECG and PPG together")


@pytest.mark.parametrize("stride_s", [0.0, -1.0, 0.001, float("nan")])
def test_bad_stride(stride_s):
    _one_line_error(simulated_pair(125.0, 30.0, source="s.csv"), "stride must be at least one sample", stride_s=stride_s)


def test_absurd_amplitude():
    rec = simulated_pair(125.0, 30.0, source="scaled.csv")
    rec.ecg = rec.ecg * 1e300
    _dropped(rec, "ecg", r"^absurd scale \(reaches .*not a physiological signal")


def test_nearly_flat_line():
    rec = simulated_pair(125.0, 30.0, source="tiny.csv")
    rec.ppg = 1000.0 + 1e-10 * np.sin(np.arange(rec.n_samples))
    _dropped(rec, "ppg", r"^flat line \(it varies by only")


def test_mostly_missing_samples_are_not_passed_off_as_signal():
    rng = np.random.default_rng(5)
    rec = simulated_pair(125.0, 30.0, source="holes.csv")
    rec.ppg[rng.random(rec.n_samples) < 0.6] = np.nan   # short gaps everywhere: 60% would be made up
    _dropped(rec, "ppg", r"^unusable in every window \(mostly missing samples in (\d) of \1\)$")


def test_window_mostly_interpolated_is_flagged():
    rng = np.random.default_rng(6)
    rec = simulated_pair(125.0, 40.0, source="holes.csv")
    seg = rec.ecg[1250:2500]
    seg[rng.random(1250) < 0.5] = np.nan                 # window 1 half made of filled-in samples
    win = preprocess(rec)
    assert win.ecg_quality[1] == 0.0 and win.low_quality[1]
    assert np.delete(win.ecg_quality, 1).min() > QUALITY_THRESHOLD


def test_fast_path_gives_the_same_windows_as_preprocess():
    """Training (contract_windows_fast) and inference (preprocess) must feed the model the same input."""
    rec = simulated_pair(360.0, 50.0)
    rec.ppg = -rec.ppg                                      # exercise the polarity step too
    full = preprocess(rec)
    fast = F.contract_windows_fast(rec.ecg, rec.ppg, rec.fs)
    np.testing.assert_allclose(fast.starts_s, full.starts_s)
    for mod in ("ecg", "ppg"):
        np.testing.assert_allclose(getattr(fast, mod), getattr(full, mod), atol=1e-5)
        np.testing.assert_allclose(getattr(fast, f"{mod}_scale"), getattr(full, f"{mod}_scale"), rtol=1e-5)


def test_window_count_limit():
    rec = simulated_pair(125.0, 30.0, source="long.csv")
    rec.ecg = np.tile(rec.ecg, 40)              # 20 min at a 10-ms stride: ~119 000 windows
    rec.ppg = np.tile(rec.ppg, 40)
    _one_line_error(rec, r"would give 1190\d\d windows \(limit 100000\)", stride_s=0.01)


def test_inverted_ecg_is_reported_not_flipped():
    rec = simulated_pair(125.0, 30.0)
    upright = preprocess(rec)
    rec.ecg = -rec.ecg
    inverted = preprocess(rec)
    assert upright.meta["ecg_inverted"] is False and inverted.meta["ecg_inverted"] is True
    assert any("point mostly downward" in n for n in inverted.meta["notes"])
    np.testing.assert_allclose(inverted.ecg, -upright.ecg, atol=1e-5)   # the data stay as recorded


# --- real ICU records with dead channels (CinC 2015) ------------------------------------------------

@pytest.fixture(scope="module")
def cinc(cinc_dir) -> Callable[[str], Windows]:
    """Preprocess one CinC 2015 record by name (r001...r550); skips when the corpus is absent."""
    import m2ae

    def run(name: str) -> Windows:
        return preprocess(m2ae.load_record(cinc_dir / "records" / f"{name}.hea"))
    return run


def test_cinc_flat_ppg_goes_on_as_ecg_only(cinc):
    """r065 (false VT alarm): PLETH is 0 throughout. Refused before; now an ECG-only record."""
    win = cinc("r065")
    assert win.modalities == ("ecg",) and win.meta["dropped"] == {"ppg": "flat line (every sample = 0)"}
    assert win.meta["notes"][0] == "PPG dropped: flat line (every sample = 0); the record goes on as ECG only"
    assert len(win) == 30 and not win.ecg_no_beats.any() and win.ppg_no_beats is None
    assert np.nanmedian(win.hr_ecg_bpm) == pytest.approx(106.0, abs=4.0)


def test_cinc_flat_ecg_goes_on_as_ppg_only(cinc):
    """r153 (false alarm): lead II is 0 throughout, the PPG has pulses."""
    win = cinc("r153")
    assert win.modalities == ("ppg",) and win.meta["dropped"] == {"ecg": "flat line (every sample = 0)"}
    assert win.ecg_no_beats is None and not win.ppg_no_beats.any() and np.isfinite(win.hr_ppg_bpm).all()


def test_cinc_flat_ppg_and_beatless_ecg_is_kept(cinc):
    """r337 (false VT alarm): PLETH 0 throughout, lead II without a single detectable beat. Refused
    before; now ECG only. Lead II has no beats; from ~190 s lead V's artefact gives the detectors
    "beats" (issue 15: every lead is searched), and every window is flagged low quality."""
    win = cinc("r337")
    assert win.modalities == ("ecg",) and list(win.meta["dropped"]) == ["ppg"]
    assert len(win) == 33 and win.ecg_no_beats[win.starts_s < 180].all()
    assert np.isnan(win.hr_ecg_bpm[win.starts_s < 180]).all()
    assert (win.ecg_quality < QUALITY_THRESHOLD).all() and win.low_quality.all()
    assert any("ECG: no beats detected in" in n for n in win.meta["notes"])


def test_cinc_true_alarm_without_beats_after_the_alarm(cinc):
    """r366 (true alarm, 330 s): the rhythm slows to 2-6 beats per 10 s (20-30 bpm) and from the alarm
    at 300 s no beat is detected. The ECG windows from 300 s on are marked; the PPG, without a pulse
    anywhere, is dropped. Before the alarm every window shows its R-peaks (neurokit2 alone had added
    noise "beats" on the flat baseline between them, checked by eye on 140-150 and 180-190 s); where
    the rate falls below 25 bpm the heart rate is left blank."""
    win = cinc("r366")
    assert win.modalities == ("ecg",) and win.meta["dropped"]["ppg"].startswith("no pulse (")
    after = win.starts_s >= 300.0
    assert after.sum() == 3 and win.ecg_no_beats[after].all() and np.isnan(win.hr_ecg_bpm[after]).all()
    start = np.round(win.starts_s * 125).astype(np.int64)
    per_window = np.searchsorted(win.r_peaks, start + 1250) - np.searchsorted(win.r_peaks, start)
    assert (per_window[~after] >= 2).all() and (per_window[after] == 0).all()


def test_cinc_ppg_dead_for_half_the_record_is_kept(cinc):
    """r364: PLETH flat for the first 170 s, pulses after. Refused before ("unusable in every window":
    the flat half set the amplitude reference); now kept, the flat windows marked."""
    win = cinc("r364")
    assert win.modalities == ("ecg", "ppg") and win.meta["dropped"] == {}
    early = win.starts_s < 170.0
    assert win.ppg_no_beats[early].all() and (win.ppg_quality[early] == 0).all()
    assert not win.ppg_no_beats[~early].any() and np.median(win.ppg_quality[~early]) > QUALITY_THRESHOLD
    assert np.isfinite(win.hr_ppg_bpm[~early]).all() and np.median(win.hr_ppg_bpm[~early]) == pytest.approx(98.0, abs=5.0)
