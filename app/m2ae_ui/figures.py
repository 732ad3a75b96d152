"""Plotly figures in the clinical display conventions (see ARCHITECTURE.md).

- ECG on the standard paper grid when amplitudes are in mV: 25 mm/s and 10 mm/mV, i.e. minor lines
  every 0.04 s / 0.1 mV and major lines every 0.2 s / 0.5 mV, the lead name on the trace.
- Time in seconds from the record's start, heart rate in bpm, pulse arrival time in ms.
- Anything the model produced is dashed and coloured differently, with "reconstructed" in its legend,
  so it is never mistaken for a recording.

Figures of the index (fingerprint map, neighbours' windows) are in :mod:`.index_figures`.
"""
from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .windows import WindowView

ECG_COLOR = "#1b2430"
PPG_COLOR = "#1f5fa8"
RECON_COLOR = "#d9480f"
ORIGINAL_GREY = "#9aa5b1"
PEAK_COLOR = "#b3261e"
MASK_FILL = "rgba(120, 120, 120, 0.16)"
GRID_MAJOR = "rgba(214, 76, 76, 0.50)"
GRID_MINOR = "rgba(236, 150, 150, 0.28)"
RECON_DASH = "dash"
EVENT_COLOR = "#7b1fa2"  # alarms and annotations: a colour no trace uses

# 25 mm/s and 10 mm/mV: grid spacing of ECG paper (1 mm and 5 mm boxes).
MM_PER_S, MM_PER_MV = 25.0, 10.0
MINOR_S, MAJOR_S = 0.04, 0.2
MINOR_MV, MAJOR_MV = 0.1, 0.5


def _layout(fig: go.Figure, height: int) -> go.Figure:
    fig.update_layout(height=height, margin=dict(l=60, r=20, t=70, b=40), plot_bgcolor="white",
                      legend=dict(orientation="h", yanchor="bottom", y=1.04, xanchor="left", x=0),
                      hovermode="x unified")
    return fig


def ecg_grid(fig: go.Figure, row: int, col: int = 1, y: np.ndarray | None = None) -> None:
    """Put the ECG paper grid (0.04 s/0.1 mV minor, 0.2 s/0.5 mV major) on one subplot."""
    fig.update_xaxes(dtick=MAJOR_S, tick0=0, ticklabelstep=5, gridcolor=GRID_MAJOR, gridwidth=1,
                     showgrid=True, minor=dict(dtick=MINOR_S, tick0=0, gridcolor=GRID_MINOR, showgrid=True),
                     row=row, col=col)
    # 25 mm/s and 10 mm/mV: one mV spans 0.4 × the pixels of one second, so grid boxes are square.
    # The x axis keeps the width; plotly widens the mV range to fill the panel at that scale.
    x_name = fig.get_subplot(row, col).xaxis.plotly_name.replace("axis", "")
    yaxis = dict(dtick=MAJOR_MV, tick0=0, gridcolor=GRID_MAJOR, gridwidth=1, showgrid=True, zeroline=False,
                 minor=dict(dtick=MINOR_MV, tick0=0, gridcolor=GRID_MINOR, showgrid=True),
                 scaleanchor=x_name, scaleratio=MM_PER_MV / MM_PER_S,
                 constrain="range")
    if y is not None and np.isfinite(y).any():
        lo, hi = float(np.nanmin(y)), float(np.nanmax(y))
        yaxis["range"] = [np.floor(lo / MAJOR_MV) * MAJOR_MV - MAJOR_MV / 2,
                          np.ceil(hi / MAJOR_MV) * MAJOR_MV + MAJOR_MV / 2]
    fig.update_yaxes(**yaxis, row=row, col=col)


def _plain_grid(fig: go.Figure, row: int, col: int = 1) -> None:
    fig.update_xaxes(showgrid=True, gridcolor="#e4e7eb", row=row, col=col)
    fig.update_yaxes(showgrid=True, gridcolor="#e4e7eb", zeroline=False, row=row, col=col)


def _value_at(t: np.ndarray, y: np.ndarray, at: np.ndarray) -> np.ndarray:
    return np.interp(at, t, y) if len(at) else np.zeros(0)


def mark_events(fig: go.Figure, events: Sequence[dict] | None, rows: Sequence[int], offset_s: float = 0.0,
                col: int = 1) -> go.Figure:
    """Draw each event (``time_s`` s from the record's start, ``label``) as a dotted vertical line over the
    subplot ``rows`` of a ``make_subplots`` figure, its label beside the line on the first row.

    offset_s : subtracted from ``time_s`` when the x axis is time within the window, not the record.
    """
    shapes = list(fig.layout.shapes or [])
    for ev in events or []:
        x = float(ev["time_s"]) - offset_s
        refs = []
        for row in rows:
            sp = fig.get_subplot(row, col)
            refs.append((sp.xaxis.plotly_name.replace("axis", ""), sp.yaxis.plotly_name.replace("axis", "")))
        for xref, yref in refs:
            shapes.append(dict(type="line", xref=xref, yref=f"{yref} domain", x0=x, x1=x, y0=0, y1=1,
                               line=dict(color=EVENT_COLOR, width=2, dash="dot"), layer="above"))
        if refs:
            # plotly reads annotation text as HTML: a label from a file is escaped first
            fig.add_annotation(x=x, xref=refs[0][0], y=1.0, yref=f"{refs[0][1]} domain", showarrow=False,
                               text=f"<b>{html.escape(str(ev.get('label', 'event')))}</b> · {float(ev['time_s']):g} s",
                               xanchor="right", yanchor="top", bgcolor="rgba(255,255,255,0.85)",
                               font=dict(color=EVENT_COLOR, size=12))
    fig.update_layout(shapes=shapes)
    return fig


def waveform_figure(view: WindowView, reconstructed: dict[str, np.ndarray] | None = None,
                    lead: str | None = None, height: int | None = None,
                    ecg_rows: Sequence[tuple[str, np.ndarray]] | None = None,
                    events: Sequence[dict] | None = None) -> go.Figure:
    """One 10-s window: ECG (clinical grid) above PPG, peaks marked; absent modalities reconstructed.

    reconstructed : {"ecg"|"ppg": samples aligned with ``view.t_s``} for a modality the record lacks,
        drawn dashed with "reconstructed" in the legend.
    lead : the model's input lead (``view.ecg``).
    ecg_rows : [(lead name, samples aligned with ``view.t_s``)] to draw instead of ``view.ecg``, one row
        each (a lead switch or every lead stacked); R-peaks (beat times) are marked on every row.
    events : [{"time_s", "label"}] drawn as labelled vertical lines (see ``mark_events``).
    """
    reconstructed = reconstructed or {}
    t = view.t_s
    ecg_units = view.units.get("ecg", "a.u.")
    ppg_units = view.units.get("ppg", "a.u.")
    if ecg_rows is None:
        ecg_rows = [(lead or "", view.ecg)] if view.ecg is not None else []
    n_ecg = max(len(ecg_rows), 1)
    on_paper = bool(ecg_rows) and ecg_units == "mV"
    titles = []
    for name, _ in ecg_rows:
        note = " (model input)" if len(ecg_rows) > 1 and lead and name == lead else (
            f" (not the model's input, lead {lead})" if lead and name and name != lead else "")
        titles.append("ECG" + (f" — lead {name}" if name else "") + note + (" · 25 mm/s, 10 mm/mV" if on_paper else ""))
    if not ecg_rows:
        titles.append("ECG — reconstructed from PPG (not measured)" if "ecg" in reconstructed else "ECG")
    titles.append("PPG — reconstructed from ECG (not measured)" if view.ppg is None and "ppg" in reconstructed
                  else "PPG")
    ppg_row = n_ecg + 1
    fig = make_subplots(rows=ppg_row, cols=1, shared_xaxes=True, vertical_spacing=0.07 if n_ecg == 1 else 0.05,
                        row_heights=[0.58 / n_ecg * (1 if n_ecg == 1 else 1.6)] * n_ecg + [0.42],
                        subplot_titles=titles)
    # ECG: one row per lead shown
    for row, (name, y) in enumerate(ecg_rows, start=1):
        fig.add_trace(go.Scatter(x=t, y=y, name=f"ECG {name}".strip(), mode="lines",
                                 line=dict(color=ECG_COLOR, width=1.3)), row=row, col=1)
        classes = view.r_peak_classes
        ventricular = (np.asarray(classes) == 1 if classes is not None and len(classes) == len(view.r_peaks_s)
                       else np.zeros(len(view.r_peaks_s), bool))
        for beats, name, symbol in ((view.r_peaks_s[~ventricular], "R-peaks", "triangle-down"),
                                    (view.r_peaks_s[ventricular], "ventricular beats", "diamond-open")):
            if len(beats):
                fig.add_trace(go.Scatter(x=beats, y=_value_at(t, y, beats), name=name, legendgroup=name,
                                         showlegend=row == 1, mode="markers",
                                         marker=dict(color=PEAK_COLOR, size=8, symbol=symbol)), row=row, col=1)
        if ecg_units == "mV":
            ecg_grid(fig, row, y=y)
        else:
            _plain_grid(fig, row)
        fig.update_yaxes(title_text=ecg_units, row=row, col=1)
    if not ecg_rows and "ecg" in reconstructed:
        fig.add_trace(go.Scatter(x=t, y=reconstructed["ecg"], name="ECG reconstructed from PPG", mode="lines",
                                 line=dict(color=RECON_COLOR, width=1.3, dash=RECON_DASH)), row=1, col=1)
        _plain_grid(fig, 1)
        fig.update_yaxes(title_text="normalised", row=1, col=1)
    # PPG
    if view.ppg is not None:
        fig.add_trace(go.Scatter(x=t, y=view.ppg, name="PPG", mode="lines", line=dict(color=PPG_COLOR, width=1.3)),
                      row=ppg_row, col=1)
        if len(view.pulse_peaks_s):
            fig.add_trace(go.Scatter(x=view.pulse_peaks_s, y=_value_at(t, view.ppg, view.pulse_peaks_s),
                                     name="pulse peaks", mode="markers",
                                     marker=dict(color=PEAK_COLOR, size=7, symbol="circle-open")), row=ppg_row, col=1)
        fig.update_yaxes(title_text=ppg_units, row=ppg_row, col=1)
    elif "ppg" in reconstructed:
        fig.add_trace(go.Scatter(x=t, y=reconstructed["ppg"], name="PPG reconstructed from ECG", mode="lines",
                                 line=dict(color=RECON_COLOR, width=1.3, dash=RECON_DASH)), row=ppg_row, col=1)
        fig.update_yaxes(title_text="normalised", row=ppg_row, col=1)
    _plain_grid(fig, ppg_row)
    fig.update_xaxes(title_text="time (s from record start)", row=ppg_row, col=1)
    mark_events(fig, events, range(1, ppg_row + 1))
    return _layout(fig, height or (520 if n_ecg == 1 else 300 * n_ecg + 240))


def overlay_figure(t: np.ndarray, rows: Sequence[dict], height_per_row: int = 230,
                   events: Sequence[dict] | None = None) -> go.Figure:
    """Original / model input / reconstruction per modality, masked spans shaded.

    rows : dicts with ``title``, ``original`` (or None when not recorded), ``visible`` (bool per
        sample: what the model saw), ``reconstructed``, ``spans`` [(t0, t1)], ``units``; a row with
        ``reference`` True is a recording the model was not given (another ECG lead), drawn plain.
    events : [{"time_s", "label"}] drawn as labelled vertical lines (see ``mark_events``).
    """
    fig = make_subplots(rows=len(rows), cols=1, shared_xaxes=True, vertical_spacing=0.09,
                        subplot_titles=[r["title"] for r in rows])
    shapes: list[dict] = []
    for i, r in enumerate(rows, start=1):
        first = i == 1
        orig = r.get("original")
        if r.get("reference"):
            fig.add_trace(go.Scatter(x=t, y=orig, name=r.get("name", "recorded, not model input"), mode="lines",
                                     line=dict(color=ECG_COLOR, width=1.2)), row=i, col=1)
            fig.update_yaxes(title_text=r.get("units", ""), row=i, col=1)
            _plain_grid(fig, i)
            continue
        if orig is not None:
            fig.add_trace(go.Scatter(x=t, y=orig, name="original", legendgroup="original", showlegend=first,
                                     mode="lines", line=dict(color=ORIGINAL_GREY, width=1.2)), row=i, col=1)
            vis = np.asarray(r.get("visible", np.ones_like(orig, bool)), bool)
            shown = np.where(vis, orig, np.nan)
            if vis.any():
                    fig.add_trace(go.Scatter(x=t, y=shown, name="model input (visible)", legendgroup="visible",
                                         showlegend=first, mode="lines",
                                         line=dict(color=ECG_COLOR if "ECG" in r["title"] else PPG_COLOR, width=1.4)),
                              row=i, col=1)
        fig.add_trace(go.Scatter(x=t, y=r["reconstructed"], name="reconstructed", legendgroup="reconstructed",
                                 showlegend=first, mode="lines",
                                 line=dict(color=RECON_COLOR, width=1.4, dash=RECON_DASH)), row=i, col=1)
        # Shapes are appended in one go: plotly's add_vrect re-validates the figure per call (~10 ms each).
        xref = fig.get_subplot(i, 1).xaxis.plotly_name.replace("axis", "")
        yref = fig.get_subplot(i, 1).yaxis.plotly_name.replace("axis", "")
        shapes += [dict(type="rect", xref=xref, yref=f"{yref} domain", x0=a, x1=b, y0=0, y1=1,
                        fillcolor=MASK_FILL, line_width=0, layer="below") for a, b in r.get("spans", [])]
        fig.update_yaxes(title_text=r.get("units", ""), row=i, col=1)
        _plain_grid(fig, i)
    fig.update_layout(shapes=shapes)
    fig.update_xaxes(title_text="time (s from record start)", row=len(rows), col=1)
    mark_events(fig, events, range(1, len(rows) + 1))
    return _layout(fig, 60 + height_per_row * len(rows))


def attribution_figure(t: np.ndarray, signals: dict[str, np.ndarray | None], attributions: dict[str, np.ndarray | None],
                       units: dict[str, str], height: int = 560, events: Sequence[dict] | None = None,
                       lead: str | None = None) -> go.Figure:
    """Waveforms with their attribution heatmap strip underneath (red pushes the output up); ``events``
    ([{"time_s", "label"}]) as labelled vertical lines over the waveforms; ``lead`` names the ECG lead."""
    mods = [m for m in ("ecg", "ppg") if signals.get(m) is not None]
    n = max(len(mods), 1)
    fig = make_subplots(rows=2 * n, cols=1, shared_xaxes=True, vertical_spacing=0.03,
                        row_heights=[0.78, 0.22] * n,
                        subplot_titles=sum([[f"ECG — lead {lead}" if m == "ecg" and lead else m.upper(), ""]
                                            for m in mods], []))
    lim = max([float(np.nanmax(np.abs(a))) for a in attributions.values() if a is not None and np.size(a)] + [1e-12])
    for k, m in enumerate(mods):
        r = 2 * k + 1
        fig.add_trace(go.Scatter(x=t, y=signals[m], mode="lines", name=m.upper(), showlegend=False,
                                 line=dict(color=ECG_COLOR if m == "ecg" else PPG_COLOR, width=1.2)), row=r, col=1)
        fig.update_yaxes(title_text=units.get(m, ""), row=r, col=1)
        a = attributions.get(m)
        if a is not None:
            fig.add_trace(go.Heatmap(x=t, y=["evidence"], z=np.asarray(a, dtype=float)[None, :], zmin=-lim, zmax=lim,
                                     colorscale="RdBu_r", zmid=0, showscale=k == 0,
                                     colorbar=dict(title="attribution", len=0.5),
                                     hovertemplate="t=%{x:.2f} s<br>attribution %{z:.3g}<extra></extra>"),
                          row=r + 1, col=1)
        fig.update_yaxes(showticklabels=False, row=r + 1, col=1)
    fig.update_xaxes(title_text="time (s from record start)", row=2 * n, col=1)
    mark_events(fig, events, range(1, 2 * n, 2))
    return _layout(fig, height)


def quality_figure(table: pd.DataFrame, current: int, threshold: float, height: int = 220,
                   marked: dict[int, str] | None = None) -> go.Figure:
    """Quality per window and channel, the threshold as a line, low-quality windows marked;
    ``marked`` ({window index: label}, e.g. the alarm window) as labelled vertical lines."""
    fig = go.Figure()
    for col, name, color in (("ecg_quality", "ECG quality", ECG_COLOR), ("ppg_quality", "PPG quality", PPG_COLOR)):
        if table[col].notna().any():
            fig.add_trace(go.Bar(x=table["window"] + 1, y=table[col], name=name, marker_color=color, opacity=0.8))
    low = table[table["low_quality"]]
    if len(low):
        fig.add_trace(go.Scatter(x=low["window"] + 1, y=[1.05] * len(low), mode="markers", name="low quality",
                                 marker=dict(symbol="x", color=PEAK_COLOR, size=9)))
    fig.add_hline(y=threshold, line_dash="dot", line_color=PEAK_COLOR,
                  annotation_text=f"threshold {threshold:g}", annotation_position="top left")
    fig.add_vline(x=current + 1, line_color="#444", line_width=1)
    for w, label in (marked or {}).items():
        fig.add_vline(x=w + 1, line_color=EVENT_COLOR, line_width=2, line_dash="dot",
                      annotation_text=html.escape(label), annotation_position="top left",
                      annotation_font_color=EVENT_COLOR)
    fig.update_layout(barmode="group", height=height, margin=dict(l=50, r=20, t=30, b=40), plot_bgcolor="white",
                      legend=dict(orientation="h", y=1.15))
    fig.update_yaxes(range=[0, 1.12], title_text="quality (0–1)")
    fig.update_xaxes(title_text="window", dtick=max(1, len(table) // 20))
    return fig


MARKER_STYLE = {  # delineation markers on the grid: (legend name, plotly symbol, colour)
    "p_onset": ("P onset", "line-ns", "#2b8a3e"), "qrs_onset": ("QRS onset", "line-ns", "#e67700"),
    "qrs_offset": ("QRS offset", "line-ns", "#e67700"), "t_offset": ("T end", "line-ns", "#5f3dc4"),
    "ppg_foot": ("pulse foot", "line-ns", "#2b8a3e")}
CALIPER_COLOR = "#0b7285"  # calipers: a colour no trace or marker uses


def add_measurement_layers(fig: go.Figure, view: WindowView, markers: dict[str, list[float]],
                           calipers: Sequence, ecg_y: np.ndarray | None, ppg_row: int) -> dict[int, str]:
    """Add to a :func:`waveform_figure` the delineation ``markers`` (times in s; ECG ones on row 1, PPG's on
    ``ppg_row``), the caliper points (``t_s``, ``value``, ``channel``) joined by a line, and a transparent
    scatter of every sample of ``ecg_y`` (row 1) and ``view.ppg`` so a click selects a point. Returns {trace
    index: channel} of the clickable sample traces (``points_from_selection`` reads it)."""
    t = view.t_s
    rows = {"ecg": (1, ecg_y), "ppg": (ppg_row, view.ppg)}
    clickable = {}
    for channel, (row, y) in rows.items():
        if y is not None:  # invisible but selectable: a click on the trace picks its nearest sample
            fig.add_trace(go.Scatter(x=t, y=y, name=f"{channel.upper()} samples (click for calipers)",
                                     mode="markers", marker=dict(size=6, opacity=0), showlegend=False,
                                     hovertemplate="%{x:.3f} s, %{y:.3g}<extra></extra>"), row=row, col=1)
            clickable[len(fig.data) - 1] = channel
    for key, times in markers.items():
        channel = "ppg" if key.startswith("ppg") else "ecg"
        row, y = rows[channel]
        at = np.asarray([x for x in times if t[0] <= x <= t[-1]], dtype=float)
        if y is None or not len(at):
            continue
        name, symbol, color = MARKER_STYLE[key]  # line-ns: a tick across the trace, like a caliper mark
        fig.add_trace(go.Scatter(x=at, y=_value_at(t, y, at), name=name, mode="markers",
                                 marker=dict(symbol=symbol, size=14, color=color, line=dict(width=2, color=color))),
                      row=row, col=1)
    for channel in ("ecg", "ppg"):
        pts = [p for p in calipers if p.channel == channel]
        if pts and rows[channel][1] is not None:
            fig.add_trace(go.Scatter(x=[p.t_s for p in pts], y=[p.value for p in pts], name=f"caliper ({channel})",
                                     mode="lines+markers", line=dict(color=CALIPER_COLOR, width=2, dash="dot"),
                                     marker=dict(size=11, color=CALIPER_COLOR, symbol="x")),
                          row=rows[channel][0], col=1)
    return clickable
