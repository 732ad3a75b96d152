"""The alarm rule checker on synthetic beats (no data needed): a run of wide fast beats is VT, sinus
rhythm is not; pauses, slow and fast runs, fibrillatory waves; and the Challenge score."""
from __future__ import annotations

import numpy as np
import pytest

from m2ae.eval.alarm_rules import (check_rules, longest_pause_s, qrs_widths_s, rate_run, vf_band_share, vt_run)
from m2ae.signal.filters import ecg_bandpass
from m2ae.train.alarm_scores import best_threshold, challenge_score, confusion

FS = 125.0
T = np.arange(1250) / FS


def ecg_with(beats_s: np.ndarray, widths_sigma_s: np.ndarray, seed: int = 0) -> np.ndarray:
    """A band-passed 10-s ECG-like window: one R wave (Gaussian of the given sigma, with an S dip and
    a T wave) per beat; a sigma of 12 ms is a narrow complex, 35 ms a wide ventricular one."""
    x = np.zeros_like(T)
    for b, s in zip(beats_s, widths_sigma_s):
        x += np.exp(-0.5 * ((T - b) / s) ** 2) - 0.3 * np.exp(-0.5 * ((T - b - 2.5 * s) / s) ** 2)
        x += 0.2 * np.exp(-0.5 * ((T - b - 0.3) / 0.05) ** 2)
    x += 0.01 * np.random.default_rng(seed).standard_normal(len(T))
    return ecg_bandpass(x, FS)


def sinus(rate_bpm: float = 70.0) -> np.ndarray:
    return np.arange(0.4, 9.8, 60.0 / rate_bpm)


def vt_like() -> tuple[np.ndarray, np.ndarray]:
    """Four sinus beats, then wide complexes at 160 bpm to the end of the window."""
    beats = np.r_[np.arange(0.4, 3.3, 0.85), np.arange(3.6, 9.8, 60.0 / 160)]
    sigma = np.where(beats >= 3.6, 0.035, 0.012)
    return beats, sigma


def _peaks(beats_s: np.ndarray) -> np.ndarray:
    return np.round(beats_s * FS).astype(np.int64)


def _rules(beats_s: np.ndarray, sigma: np.ndarray, alarm_type: str, pulses_s: np.ndarray | None = None) -> dict:
    x = ecg_with(beats_s, sigma)
    return check_rules([x], [_peaks(beats_s)], [290.0], 290.0 + beats_s,
                       None if pulses_s is None else 290.0 + pulses_s, alarm_type, (290.0, 300.0))


def test_qrs_width_tells_wide_from_narrow():
    beats, sigma = vt_like()
    w = qrs_widths_s(ecg_with(beats, sigma), _peaks(beats))
    narrow, wide = w[beats < 3.6], w[beats >= 3.6]
    assert np.nanmax(narrow) < 0.12 <= np.nanmin(wide[np.isfinite(wide)])
    assert np.isfinite(wide).sum() >= 10


def test_vt_run_of_wide_fast_beats_triggers_vt_and_sinus_does_not():
    beats, sigma = vt_like()
    vt = _rules(beats, sigma, "VT")
    assert vt["called_true"] and vt["criterion"] == "vt" and vt["measures"]["vt_run_beats"] >= 5
    normal = _rules(sinus(), np.full(len(sinus()), 0.012), "VT")
    assert not normal["called_true"] and normal["measures"]["vt_run_beats"] == 0
    # wide but slow (a bundle-branch block at 70 bpm) is no VT either
    slow_wide = _rules(sinus(), np.full(len(sinus()), 0.035), "VT")
    assert not slow_wide["called_true"]


def test_run_counting():
    t = np.r_[0.0, 0.3, 0.6, 0.9, 1.2, 3.0, 3.3]  # 5 beats at 200 bpm, a pause, 2 more
    assert vt_run(t, np.full(len(t), 0.15)) == 4  # the first beat has no interval before it
    assert rate_run(np.arange(0, 8, 1.6), slow=True) == 5        # 37.5 bpm for 5 beats
    assert rate_run(np.arange(0, 10, 60 / 150), slow=False) >= 17
    assert rate_run(np.arange(0, 3, 60 / 150), slow=False) < 17
    assert longest_pause_s(np.array([1.0, 2.0, 7.5]), 0.0, 10.0) == pytest.approx(5.5)


def test_other_alarm_criteria():
    # asystole: beats stop after 3 s
    beats = np.arange(0.4, 3.0, 0.8)
    asys = _rules(beats, np.full(len(beats), 0.012), "other")
    assert asys["called_true"] and asys["criterion"] == "asystole"
    # ... unless the PPG shows a pulse all along (a lead came off; the heart beat)
    vetoed = _rules(beats, np.full(len(beats), 0.012), "other", pulses_s=np.arange(0.6, 9.8, 0.8))
    assert vetoed["scores"]["asystole"] < 1 and not vetoed["called_true"]
    brady = np.arange(0.4, 9.8, 1.7)
    assert _rules(brady, np.full(len(brady), 0.012), "other")["criterion"] == "brady"
    tachy = np.arange(0.2, 9.9, 60.0 / 160)
    out = _rules(tachy, np.full(len(tachy), 0.012), "other")
    assert out["called_true"] and out["scores"]["tachy"] >= 1
    normal = _rules(sinus(), np.full(len(sinus()), 0.012), "other")
    assert not normal["called_true"] and normal["score"] < 1


def test_fibrillatory_wave_is_vf_and_sinus_is_not():
    rng = np.random.default_rng(1)
    f = 5.0 + 0.3 * np.cumsum(rng.standard_normal(len(T))) / np.sqrt(len(T))  # wandering 5-Hz waves
    vf = ecg_bandpass(np.sin(2 * np.pi * np.cumsum(f) / FS) * (1 + 0.3 * rng.standard_normal(len(T))), FS)
    assert vf_band_share(vf) >= 0.6
    out = check_rules([vf], [np.zeros(0, np.int64)], [290.0], np.zeros(0), None, "other", (290.0, 300.0))
    assert out["called_true"] and out["scores"]["vf"] >= 1
    assert vf_band_share(ecg_with(sinus(), np.full(len(sinus()), 0.012))) < 0.6


def test_no_usable_channel_is_called_true():
    out = check_rules([], [], [], None, None, "VT", (290.0, 300.0))
    assert out["called_true"] and out["criterion"] == "no usable channel"


def test_challenge_score_formula_and_threshold():
    assert challenge_score(tp=10, tn=20, fp=5, fn=2) == pytest.approx(100 * 30 / (10 + 20 + 5 + 5 * 2))
    assert challenge_score(0, 0, 0, 0) != challenge_score(0, 0, 0, 0)  # NaN with no records
    y = np.array([True, True, False, False, False])
    c = confusion(y, np.array([True, False, True, False, False]))
    assert c == {"tp": 1, "tn": 2, "fp": 1, "fn": 1}
    # a missed true alarm costs five false ones: the best threshold keeps the low-scoring true alarm
    score = np.array([0.9, 0.2, 0.5, 0.1, 0.3])
    thr = best_threshold(y, score)
    called = score >= thr
    assert called[y].all() and thr == pytest.approx(0.2)
