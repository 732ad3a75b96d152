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
