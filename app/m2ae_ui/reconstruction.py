"""How the Reconstruction page shows a reconstruction: hidden patches as shaded time spans, and a
caption on where a modality rebuilt from the other was placed in time.

>>> spans = masked_spans([True, True, False, True])   # patches of 0.2 s
>>> [(round(a, 2), round(b, 2)) for a, b in spans]
[(0.0, 0.4), (0.6, 0.8)]
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from m2ae.contract import FS_HZ, PATCH_SAMPLES, WINDOW_SAMPLES

PATCH_S: float = PATCH_SAMPLES / FS_HZ  # 0.2 s


def masked_spans(mask: Sequence[bool] | np.ndarray, patch_s: float = PATCH_S, offset_s: float = 0.0
                 ) -> list[tuple[float, float]]:
    """Merge a per-patch mask (True = hidden from the model) into (start_s, stop_s) spans to shade.

    A per-sample mask (one flag per 125-Hz sample of the window) is reduced to patches first;
    ``offset_s`` is the window's start in seconds from the record's start.
    """
    m: np.ndarray = np.asarray(mask, dtype=bool).ravel()
    if m.size == WINDOW_SAMPLES:  # a per-sample mask: one flag per patch is enough
        m = np.any(m.reshape(-1, PATCH_SAMPLES), axis=1)
    spans: list[tuple[float, float]] = []
    edges = np.diff(np.concatenate([[0], m.astype(np.int8), [0]]))
    for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
        spans.append((float(offset_s + a * patch_s), float(offset_s + b * patch_s)))
    return spans


def timing_caption(target: str, source: str, pulse_arrival_s: float | None, moved_ms: float) -> str:
    """One line on where a rebuilt modality was placed in time (see ``M2AEModel.reconstruct``).

    pulse_arrival_s : the checkpoint's typical R → pulse delay (s), None when it records none;
    moved_ms : how far the rebuilt trace was shifted (ms), NaN when no beats were found to place it.
    """
    if pulse_arrival_s is None:
        return ("Timing: the decoder's own phase (this checkpoint records no typical pulse arrival); compare "
                "shapes, or read r after the best lag.")
    delay_ms = 1000.0 * pulse_arrival_s
    if not np.isfinite(moved_ms):
        return (f"Timing: the decoder's own phase — beats could not be found in this window to place the "
                f"{target.upper()} {delay_ms:.0f} ms from the {source.upper()}'s beats.")
    placed = (f"its pulse peaks come {delay_ms:.0f} ms after the ECG's R peaks" if target == "ppg"
              else f"its R peaks come {delay_ms:.0f} ms before the PPG's pulse peaks")
    return (f"Timing: placed so {placed} (the training data's typical R → pulse delay; moved {moved_ms:+.0f} ms). "
            f"This record's own delay may differ: see r after best lag.")
