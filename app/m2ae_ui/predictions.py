"""How the app shows the model's heads: one head's output for one window, and the rhythm head's
call checked against the window's measured beat intervals."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from .windows import WindowView


def head_summary(prediction: Mapping[str, Any], window: int) -> dict[str, Any]:
    """One head's output for one window, as the app shows it.

    Classifier → {"kind": "class", "label", "code", "probability", "table" (class, name, probability)};
    regressor → {"kind": "value", "value", "low", "high", "level", "unit"} (interval bounds in ``unit``).
    """
    if "probabilities" in prediction:
        p = np.asarray(prediction["probabilities"], dtype=float)[window]
        classes = list(prediction.get("classes") or range(len(p)))
        names = list(prediction.get("class_names") or classes)
        j = int(np.argmax(p))
        table = pd.DataFrame({"class": [str(c) for c in classes], "name": [str(n) for n in names], "probability": p})
        return {"kind": "class", "label": str(names[j]), "code": str(classes[j]), "probability": float(p[j]),
                "table": table.sort_values("probability", ascending=False).reset_index(drop=True)}
    value = float(np.asarray(prediction["value"], dtype=float)[window])
    lo, hi = (float(v) for v in np.asarray(prediction["interval"], dtype=float)[window])
    return {"kind": "value", "value": value, "low": lo, "high": hi,
            "level": float(prediction.get("interval_level", float("nan"))), "unit": str(prediction.get("unit", ""))}


def rhythm_interval_warning(prediction: Mapping[str, Any] | None, view: WindowView) -> str | None:
    """The rhythm head's call for ``view``'s window checked against its measured beat intervals
    (R peaks when the window has ECG, else pulse peaks): a warning line, or None when they agree
    or cannot be compared (``m2ae.signal.rhythm``)."""
    from m2ae.signal.rhythm import MIN_BEATS, rhythm_interval_check, rr_irregularity

    if not prediction or "probabilities" not in prediction:
        return None
    use_r = len(view.r_peaks_s) >= MIN_BEATS
    beats = view.r_peaks_s if use_r else view.pulse_peaks_s
    return rhythm_interval_check(head_summary(prediction, view.index)["code"], rr_irregularity(beats),
                                 "R peaks" if use_r else "pulse peaks")
