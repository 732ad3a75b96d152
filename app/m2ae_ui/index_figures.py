"""Plotly figures of what the fingerprint index holds: the 2-D fingerprint map with the current record
placed on it, and stacked windows side by side (neighbours, a map selection), in the display conventions
of :mod:`.figures` (same trace colours, events as dotted lines).
"""
from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .figures import ECG_COLOR, EVENT_COLOR, PPG_COLOR, mark_events


def map_figure(frame: pd.DataFrame, color: str, placed: np.ndarray | None = None, height: int = 560,
               marked: dict[int, str] | None = None) -> go.Figure:
    """The index's 2-D fingerprint map coloured by ``color``; the current record's windows as stars.

    marked : {window index: label} of the record's windows to name on the map (e.g. the alarm window).

    frame needs columns ``map_x``, ``map_y`` and ``_row`` (row number, carried as customdata so a
    box/lasso selection returns rows; see ``selection.selected_rows``).
    """
    fig = go.Figure()
    values = frame[color] if color in frame else pd.Series(["all"] * len(frame))
    hover = "row %{customdata[0]}<br>" + color + ": %{customdata[1]}<extra></extra>"
    numeric = pd.api.types.is_numeric_dtype(values) and values.nunique(dropna=True) > 12
    if numeric:
        fig.add_trace(go.Scattergl(
            x=frame["map_x"], y=frame["map_y"], mode="markers", name=color,
            customdata=np.stack([frame["_row"].to_numpy(), values.to_numpy()], axis=1),
            hovertemplate=hover, showlegend=False,
            marker=dict(size=5, color=values, colorscale="Viridis", opacity=0.75, colorbar=dict(title=color))))
    else:
        labels = values.astype(str).where(values.notna(), "unknown")
        for lab in sorted(labels.unique()):
            sub = frame[labels == lab]
            fig.add_trace(go.Scattergl(
                x=sub["map_x"], y=sub["map_y"], mode="markers", name=str(lab),
                customdata=np.stack([sub["_row"].to_numpy(), labels[labels == lab].to_numpy()], axis=1),
                hovertemplate=hover, marker=dict(size=5, opacity=0.7)))
    if placed is not None and len(placed):
        placed = np.asarray(placed)
        fig.add_trace(go.Scatter(x=placed[:, 0], y=placed[:, 1], mode="markers", name="this record",
                                 hovertemplate="this record, window %{text}<extra></extra>",
                                 text=[str(i + 1) for i in range(len(placed))],
                                 marker=dict(symbol="star", size=15, color="#111111",
                                             line=dict(color="white", width=1.2))))
        for w, label in (marked or {}).items():
            if 0 <= w < len(placed):
                fig.add_trace(go.Scatter(x=placed[w:w + 1, 0], y=placed[w:w + 1, 1], mode="markers+text",
                                         name=f"this record: {html.escape(label)}", text=[html.escape(label)],
                                         textposition="top center", textfont=dict(color=EVENT_COLOR, size=13),
                                         hovertemplate=f"window {w + 1}: {html.escape(label)}<extra></extra>",
                                         marker=dict(symbol="star", size=19, color=EVENT_COLOR,
                                                     line=dict(color="white", width=1.2))))
    fig.update_layout(height=height, margin=dict(l=20, r=20, t=30, b=20), plot_bgcolor="white",
                      dragmode="select", legend=dict(itemsizing="constant"))
    fig.update_xaxes(showticklabels=False, title_text="map x", showgrid=False, zeroline=False)
    fig.update_yaxes(showticklabels=False, title_text="map y", showgrid=False, zeroline=False)
    return fig


def stacked_windows_figure(items: Sequence[dict], height_per_row: int = 120) -> go.Figure:
    """Rows of windows side by side: ECG left, PPG right (normalised units), one row per item.

    items : dicts with ``title``, ``ecg``, ``ppg`` (1-D or None), ``fs`` (Hz, default 125),
        ``query`` (bool: draw in black), ``events`` ([{"time_s" within the window, "label"}], optional).
    """
    n = max(len(items), 1)
    titles = []
    for it in items:
        titles += [f"{it['title']} · ECG", f"{it['title']} · PPG"]
    fig = make_subplots(rows=n, cols=2, shared_xaxes=True, horizontal_spacing=0.05,
                        vertical_spacing=min(0.6 / n, 0.08), subplot_titles=titles)
    for i, it in enumerate(items, start=1):
        for j, mod in ((1, "ecg"), (2, "ppg")):
            y = it.get(mod)
            if y is None or not np.isfinite(np.asarray(y, dtype=float)).any():
                continue
            t = np.arange(len(y)) / float(it.get("fs", 125.0))
            color = "#111111" if it.get("query") else (ECG_COLOR if mod == "ecg" else PPG_COLOR)
            fig.add_trace(go.Scatter(x=t, y=np.asarray(y), mode="lines", showlegend=False,
                                     line=dict(color=color, width=1.1), name=f"{it['title']} {mod.upper()}"),
                          row=i, col=j)
            fig.update_yaxes(showticklabels=False, row=i, col=j)
    fig.update_annotations(font_size=11)
    for i, it in enumerate(items, start=1):
        for j in (1, 2):
            mark_events(fig, it.get("events"), [i], col=j)
    fig.update_layout(height=40 + height_per_row * n, margin=dict(l=20, r=20, t=40, b=30),
                      plot_bgcolor="white", hovermode=False)
    fig.update_xaxes(title_text="s within window", row=n)
    return fig
