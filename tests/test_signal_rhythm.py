"""m2ae.signal.rhythm: beat-interval irregularity and the check of a rhythm call against it."""
from __future__ import annotations

import numpy as np
import pytest

from m2ae.signal.rhythm import IRREGULAR_MIN, REGULAR_MAX, rhythm_interval_check, rr_irregularity


def test_rr_irregularity_of_regular_and_irregular_beats():
    assert rr_irregularity(np.arange(10) * 0.8) == pytest.approx(0.0)
    rng = np.random.default_rng(0)
    af_like = np.cumsum(rng.uniform(0.4, 1.2, 15))   # independent intervals, as in AF
    assert rr_irregularity(af_like) > IRREGULAR_MIN
    assert np.isnan(rr_irregularity([0.0, 1.0, 2.0]))  # too few beats to judge


def test_rhythm_interval_check_flags_only_contradictions():
    assert "regular" in rhythm_interval_check("AF", 0.01)
    assert "irregular" in rhythm_interval_check("NSR", 0.2)
    assert rhythm_interval_check("AF", 0.2) is None
    assert rhythm_interval_check("NSR", 0.01) is None
    assert rhythm_interval_check("PVC", 0.01) is None     # a window may hold no ectopic beat
    assert rhythm_interval_check("AF", float("nan")) is None


def test_thresholds_separate_the_simulators_sinus_and_af_windows():
    """The documented thresholds hold on fresh simulated subjects (not those they were read from)."""
    from m2ae.eval.baselines import window_peaks
    from m2ae.simulate.labelled import subject_windows

    d = subject_windows(120, 1, 424242)
    irr = np.array([rr_irregularity(p / 125.0) for p in window_peaks(d["ecg"], "ecg")])
    sinus, af = irr[d["rhythm"] == "NSR"], irr[d["rhythm"] == "AF"]
    assert len(sinus) >= 10 and len(af) >= 10
    assert np.nanmean(sinus < REGULAR_MAX) >= 0.8
    assert np.nanmean(af > IRREGULAR_MIN) >= 0.8


def test_the_warning_names_where_the_beats_came_from():
    assert "(pulse peaks) are irregular" in rhythm_interval_check("NSR", 0.3, beats_from="pulse peaks")


def test_docstring_examples_run():
    import doctest

    import m2ae.signal.rhythm as rhythm
    import m2ae.signal.timing as timing

    for module in (rhythm, timing):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__


def test_fastest_run_pauses_and_classes():
    from m2ae.signal.rhythm import fastest_run_bpm, find_pauses, interval_summary, longest_class_run

    t = np.concatenate([np.arange(0, 4, 0.8), 4.0 + np.arange(0, 2.0, 0.35)])   # sinus, then a fast run
    rate, start = fastest_run_bpm(t)
    assert rate == pytest.approx(60 / 0.35) and start == pytest.approx(4.0)
    assert np.isnan(fastest_run_bpm(t[:4])[0])
    assert find_pauses(np.arange(6) * 0.8) == ([], [])
    ms, at = find_pauses([0, 0.8, 1.6, 4.0, 4.8])
    assert ms == [2400.0] and at == [1.6]
    assert longest_class_run([0, 1, 1, 0, 1, 1, 1, -1]) == 3 and longest_class_run(None) == 0
    s = interval_summary(t, classes=[0] * 5 + [1] * 6)
    assert s.fast_run and s.longest_ventricular_run == 6 and s.ventricular_beats == 6
    assert s.as_dict()["fastest_run_bpm"] == pytest.approx(60 / 0.35)
    empty = interval_summary([])
    assert empty.regular is None and not empty.fast_run and empty.as_dict()["mean_hr_bpm"] is None


def test_pauses_stop_an_af_call_being_contradicted_as_regular():
    """A tachycardia with pauses of 816 and 984 ms is not "regular": the AF contradiction is withheld."""
    from m2ae.signal.rhythm import interval_summary

    beats = np.concatenate([np.arange(0, 2.0, 0.4), 1.6 + 0.816 + np.arange(0, 1.2, 0.4)])
    beats = np.concatenate([beats, beats[-1] + 0.984 + np.arange(0, 2.0, 0.4)])
    s = interval_summary(beats)
    assert s.irregularity < REGULAR_MAX                 # the median |ΔRR| alone would say "regular"
    assert rhythm_interval_check("AF", s.irregularity) is not None
    assert rhythm_interval_check("AF", s.irregularity, pauses_ms=s.pauses_ms) is None
