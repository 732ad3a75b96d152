"""Aligned beats for Similar patients: the query window's median ECG beat / PPG pulse beside each
neighbour's, cut and aligned by the library's cohort code (``m2ae.index.cohort.median_beats``: R-peak
for ECG, systolic peak for PPG, at the index's 62.5 Hz display rate).

Units: the query's beat is in the record's units (normalised value · the window's scale + centre).
The index keeps neighbours' display waveforms normalised, so their beats are drawn at the query's
amplitude (normalised value · the query's scale + the query's centre): shapes and timing compare,
absolute amplitudes do not. The caption says so.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from scipy.signal import resample_poly

from m2ae.index.cohort import median_beats
from m2ae.index.waveforms import WAVEFORM_FS_HZ
from m2ae.record import Windows

ALIGN_ON = {"ecg": "R-peak", "ppg": "systolic peak"}
SCALE_NOTE = ("Beats aligned at t = 0 on the R-peak (ECG) and the pulse's systolic peak (PPG); median over "
              "each window's beats. The query is in the record's units; the index keeps neighbours' waveforms "
              "normalised, so their beats are drawn at the query's amplitude (its scale and centre): compare "
              "shape and timing, not absolute amplitude.")


class _Arrays:
    """The one method ``median_beats`` asks of an index (``waveforms(ids)``), over arrays in memory."""

    def __init__(self, waves: dict[str, np.ndarray]):
        self._w = waves

    def waveforms(self, ids: Any) -> dict[str, np.ndarray]:
        ids = np.asarray(ids, dtype=np.int64)
        return {m: self._w[m][ids] for m in ("ecg", "ppg")}


def _display_rate(x: np.ndarray | None, fs_hz: float, n: int) -> np.ndarray:
    """A window at the display rate (62.5 Hz, polyphase) or NaNs when the modality is absent."""
    if x is None:
        return np.full(n, np.nan)
    up, down = (1, 2) if abs(fs_hz - 2 * WAVEFORM_FS_HZ) < 1e-6 else (int(round(WAVEFORM_FS_HZ * 10)),
                                                                          int(round(fs_hz * 10)))
    return resample_poly(np.asarray(x, np.float64), up, down)[:n]


def _scale(win: Windows, mod: str, i: int) -> tuple[float, float]:
    """(scale, centre) of window ``i``'s channel ``mod``, (1, 0) when unknown."""
    s, c = getattr(win, f"{mod}_scale", None), getattr(win, f"{mod}_center", None)
    if s is None or c is None or not np.isfinite(s[i]) or not np.isfinite(c[i]):
        return 1.0, 0.0
    return float(s[i]), float(c[i])


def aligned_beats(win: Windows, i: int, idx: Any, neighbour_ids: Any) -> dict[str, Any]:
    """Median beats of query window ``i`` and of each neighbour window (index ids), per modality.

    Returns {"ecg"/"ppg": {"t_s": [n] seconds from the alignment point, "query": [n] in the record's
    units or None, "neighbours": [(id, [n] at the query's scale) …] (neighbours without ≥ 2 beats left out),
    "scale", "center"}}.
    """
    n = int(round(10.0 * WAVEFORM_FS_HZ))
    q = {m: _display_rate(getattr(win, m)[i] if getattr(win, m) is not None else None, win.fs, n)[None, :]
         for m in ("ecg", "ppg")}
    qb = median_beats(_Arrays(q), [0])
    ids = [int(x) for x in np.atleast_1d(np.asarray(neighbour_ids, dtype=np.int64))]
    nb = {j: median_beats(idx, [j]) for j in ids}
    out: dict[str, Any] = {}
    for m in ("ecg", "ppg"):
        scale, center = _scale(win, m, i)
        beats = [(j, nb[j][m]["median"] * scale + center) for j in ids if nb[j][m] is not None]
        ref = qb[m] if qb[m] is not None else next((nb[j][m] for j in ids if nb[j][m] is not None), None)
        if ref is None:
            continue
        out[m] = {"t_s": ref["t_s"], "query": None if qb[m] is None else qb[m]["median"] * scale + center,
                  "neighbours": beats, "scale": scale, "center": center}
    return out


def beats_figure(beats: dict[str, Any], units: dict[str, str], labels: dict[int, str]) -> go.Figure:
    """One panel per modality: the query's median beat (black, thick) over its neighbours' (thin)."""
    mods = [m for m in ("ecg", "ppg") if m in beats]
    fig = make_subplots(rows=1, cols=max(len(mods), 1), subplot_titles=[
        f"{m.upper()} median beat, aligned on the {ALIGN_ON[m]}" for m in mods])
    for c, m in enumerate(mods, start=1):
        b = beats[m]
        t_ms = np.asarray(b["t_s"]) * 1000.0
        for j, y in b["neighbours"]:
            fig.add_trace(go.Scatter(x=t_ms, y=y, mode="lines", name=f"{m.upper()} {labels.get(j, j)}",
                                     line=dict(width=1.2), opacity=0.75), row=1, col=c)
        if b["query"] is not None:
            fig.add_trace(go.Scatter(x=t_ms, y=b["query"], mode="lines", name=f"{m.upper()} query",
                                     line=dict(width=3, color="#111111")), row=1, col=c)
        fig.update_xaxes(title_text="ms from alignment point", row=1, col=c)
        fig.update_yaxes(title_text=units.get(m) or "record units", row=1, col=c)
    fig.update_layout(height=340, margin=dict(l=40, r=10, t=40, b=40))
    return fig
