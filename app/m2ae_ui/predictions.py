"""How the app shows the model's heads: one head's output for one window, and the rhythm head's
call checked against the window's measured beat intervals."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from .windows import WindowView


# When a head does not say itself (``"uncertain"`` in ``Head.present``), the app judges: a class whose
# calibrated probability is within this band of chance (1 / number of classes) is no answer, and an
# interval wider than the value itself (e.g. age 11.9–99.4 years) says nothing about the person.
CHANCE_BAND = 0.15
OUTSIDE_NOTE = "outside what this head knows"


def _flag(prediction: Mapping[str, Any], key: str, window: int) -> bool | None:
    v = prediction.get(key)
    if v is None:
        return None
    try:
        return bool(np.asarray(v, dtype=bool)[window])
    except (IndexError, TypeError, ValueError):
        return None


def head_summary(prediction: Mapping[str, Any], window: int) -> dict[str, Any]:
    """One head's output for one window, as the app shows it.

    Classifier → {"kind": "class", "label", "code", "probability", "table" (class, name, probability)};
    regressor → {"kind": "value", "value", "low", "high", "level", "unit"} (interval bounds in ``unit``).
    Both add "uncertain" (bool: show no class/value, see ``CHANCE_BAND``), "outside" (bool: the input is
    outside what the head knows, e.g. an ICU rhythm the rhythm head never learnt) and "why" (a plain
    sentence when either is True, else "").
    """
    outside = bool(_flag(prediction, "outside", window))
    if "probabilities" in prediction:
        p = np.asarray(prediction["probabilities"], dtype=float)[window]
        classes = list(prediction.get("classes") or range(len(p)))
        names = list(prediction.get("class_names") or classes)
        j = int(np.argmax(p))
        table = pd.DataFrame({"class": [str(c) for c in classes], "name": [str(n) for n in names], "probability": p})
        chance = 1.0 / max(len(p), 1)
        flagged = _flag(prediction, "uncertain", window)
        uncertain = bool(p[j] < chance + CHANCE_BAND) if flagged is None else flagged
        why = (f"no class stands out: the top calibrated probability {p[j]:.2f} is within {CHANCE_BAND:g} of "
               f"chance ({chance:.2f} for {len(p)} classes)") if uncertain else ""
        out = {"kind": "class", "label": str(names[j]), "code": str(classes[j]), "probability": float(p[j]),
               "table": table.sort_values("probability", ascending=False).reset_index(drop=True)}
    else:
        value = float(np.asarray(prediction["value"], dtype=float)[window])
        lo, hi = (float(v) for v in np.asarray(prediction["interval"], dtype=float)[window])
        unit = str(prediction.get("unit", ""))
        level = float(prediction.get("interval_level", float("nan")))
        flagged = _flag(prediction, "uncertain", window)
        uncertain = bool(not np.isfinite(hi - lo) or hi - lo > abs(value)) if flagged is None else flagged
        level_txt = f"{level:.0%} " if np.isfinite(level) else ""
        why = (f"the {level_txt}prediction interval {lo:.1f}–{hi:.1f}{' ' + unit if unit else ''} is too wide "
               "to name a value") if uncertain else ""
        out = {"kind": "value", "value": value, "low": lo, "high": hi, "level": level, "unit": unit}
    if outside:
        why = str(prediction.get("outside_note") or OUTSIDE_NOTE)
    return {**out, "uncertain": uncertain or outside, "outside": outside, "why": why}


def headline(summary: Mapping[str, Any]) -> str:
    """The card's one-line answer: the class or value, or "uncertain" / "outside what this head knows"."""
    if summary["outside"]:
        return OUTSIDE_NOTE
    if summary["uncertain"]:
        return "uncertain"
    if summary["kind"] == "class":
        return str(summary["label"])
    unit = f" {summary['unit']}" if summary["unit"] else ""
    return f"{summary['value']:.1f}{unit}"


def beat_intervals(view: WindowView) -> tuple[Any, str]:
    """The measured beat intervals of ``view``'s window (``m2ae.signal.rhythm.IntervalSummary``: fastest
    5-beat run in bpm, pauses in ms, irregularity, ventricular beats when classified) and where the beats
    came from ("R peaks" when the window has enough, else "pulse peaks")."""
    from m2ae.signal.rhythm import MIN_BEATS, interval_summary

    use_r = len(view.r_peaks_s) >= MIN_BEATS
    beats = view.r_peaks_s if use_r else view.pulse_peaks_s
    classes = view.r_peak_classes if use_r else None
    return interval_summary(beats, classes), "R peaks" if use_r else "pulse peaks"


def rhythm_interval_warning(prediction: Mapping[str, Any] | None, view: WindowView) -> str | None:
    """The rhythm head's call for ``view``'s window checked against its measured beat intervals
    (R peaks when the window has ECG, else pulse peaks; pauses count as irregular): a warning line,
    or None when they agree, cannot be compared, or the card shows no call ("uncertain", "outside")."""
    from m2ae.signal.rhythm import rhythm_interval_check

    if not prediction or "probabilities" not in prediction:
        return None
    summary = head_summary(prediction, view.index)
    if summary["uncertain"]:
        return None  # no call to check: the card already says uncertain / outside
    measured, beats_from = beat_intervals(view)
    return rhythm_interval_check(summary["code"], measured.irregularity, beats_from, pauses_ms=measured.pauses_ms)
