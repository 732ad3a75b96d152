"""The report's figures as PNG bytes: the ECG on a clinical grid (25 mm/s, 10 mm/mV) with the delineated
interval markers, the PPG with pulse feet and peaks, and the cross-modal reconstructions.

One concept: rendering a report window to images. matplotlib with the headless Agg backend (no display, no
browser, no system libraries beyond the wheel); figures are sized in millimetres so that the ECG grid prints
at true scale when the PDF page is printed at 100 %.
"""
from __future__ import annotations

import io

import numpy as np

from ..contract import FS_HZ
from .content import ReportContent

MM_PER_INCH = 25.4
PAPER_SPEED_MM_S = 25.0
GAIN_MM_MV = 10.0
ECG_GRID_WIDTH_MM = 250.0   # 10 s at 25 mm/s
ECG_GRID_HEIGHT_MM = 40.0   # ±2 mV around the trace's median
MARKER_STYLE = {"p_onset": ("tab:green", "P on"), "qrs_onset": ("tab:blue", "QRS on"),
                "qrs_offset": ("tab:purple", "QRS off"), "t_offset": ("tab:orange", "T off")}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)  # headless: a report is made without a display
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=150)
    _pyplot().close(fig)
    return buf.getvalue()


def ecg_grid_png(content: ReportContent) -> bytes | None:
    """The window's ECG at 25 mm/s and 10 mm/mV on 1-mm / 5-mm grid lines, interval markers on top;
    None without ECG. Printed at the PDF's stated width, 1 mm on paper is 1 mm of grid."""
    x = content.signals.get("ecg")
    if x is None:
        return None
    plt = _pyplot()
    t_mm = np.arange(len(x)) / FS_HZ * PAPER_SPEED_MM_S
    mid = float(np.median(x))
    y_mm = (x - mid) * GAIN_MM_MV
    fig = plt.figure(figsize=(ECG_GRID_WIDTH_MM / MM_PER_INCH, ECG_GRID_HEIGHT_MM / MM_PER_INCH))
    ax = fig.add_axes((0, 0, 1, 1))
    h = ECG_GRID_HEIGHT_MM / 2
    for v in np.arange(0, ECG_GRID_WIDTH_MM + 0.5, 1.0):
        ax.axvline(v, color="#f4b6b6", lw=0.8 if v % 5 == 0 else 0.25, zorder=0)
    for v in np.arange(-h, h + 0.5, 1.0):
        ax.axhline(v, color="#f4b6b6", lw=0.8 if round(v) % 5 == 0 else 0.25, zorder=0)
    ax.plot(t_mm, np.clip(y_mm, -h, h), color="black", lw=0.7, zorder=2)
    t0 = content.window_start_s
    for key, (colour, _label) in MARKER_STYLE.items():
        for t in content.intervals.markers.get(key, []):
            ax.axvline((t - t0) * PAPER_SPEED_MM_S, color=colour, lw=0.6, ls="--", zorder=1)
    ax.set_xlim(0, ECG_GRID_WIDTH_MM)
    ax.set_ylim(-h, h)
    ax.axis("off")
    return _png(fig)


def _trace_axes(ax, t: np.ndarray, y: np.ndarray, title: str, unit: str, colour: str) -> None:
    ax.plot(t, y, color=colour, lw=0.8)
    ax.set_title(title, fontsize=8, loc="left")
    ax.set_ylabel(unit, fontsize=7)
    ax.tick_params(labelsize=6)
    ax.grid(alpha=0.3)


def signals_png(content: ReportContent) -> bytes:
    """PPG of the window (feet and peaks marked) over the cross-modal reconstructions (ECG from PPG, PPG
    from ECG) beside the recorded signals, time in s from the window's start."""
    plt = _pyplot()
    rows = [("ppg", "Recorded PPG", content.signals.get("ppg"), "tab:red")]
    rec = content.reconstructions
    if rec.get("ecg_from_ppg") is not None:
        rows.append(("ecg", "ECG rebuilt from PPG (model) vs recorded ECG", rec["ecg_from_ppg"], "tab:blue"))
    if rec.get("ppg_from_ecg") is not None:
        rows.append(("ppg", "PPG rebuilt from ECG (model) vs recorded PPG", rec["ppg_from_ecg"], "tab:blue"))
    drawn: list[tuple[str, str, np.ndarray, str]] = [(m, title, np.asarray(y), c) for m, title, y, c in rows
                                                     if y is not None]
    fig, axes = plt.subplots(max(len(drawn), 1), 1, figsize=(7.5, 1.6 * max(len(drawn), 1)), squeeze=False)
    for ax, (mod, title, y, colour) in zip(axes[:, 0], drawn):
        t = np.arange(len(y)) / FS_HZ
        recorded = content.signals.get(mod)
        if title.startswith("Recorded"):
            _trace_axes(ax, t, y, title, content.units.get(mod, ""), colour)
            t0 = content.window_start_s
            for key, marker in (("ppg_foot", "^"), ("ppg_peak", "v")):
                ts = np.asarray(content.intervals.markers.get(key, []), dtype=np.float64) - t0
                ts = ts[(ts >= 0) & (ts < len(y) / FS_HZ)]
                ax.plot(ts, np.interp(ts, t, y), marker, color="black", ms=3, ls="none")
        else:
            if recorded is not None:
                ax.plot(t, recorded, color="0.6", lw=0.8, label="recorded")
            _trace_axes(ax, t, y, title, content.units.get(mod, ""), colour)
            ax.legend(fontsize=6, loc="upper right")
    if not drawn:
        axes[0, 0].text(0.5, 0.5, "no PPG and no reconstruction (no model)", ha="center", va="center")
        axes[0, 0].axis("off")
    axes[-1, 0].set_xlabel("time in window (s)", fontsize=7)
    fig.tight_layout()
    return _png(fig)
