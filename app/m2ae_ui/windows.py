"""A preprocessed record as the Record page shows it: one window cut out in seconds, the
per-window quality table and the whole-record headline figures.

Times are seconds from the record's start, heart rates bpm, pulse arrival times ms; signals are the
cleaned 125-Hz traces in the record's own units.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from m2ae.contract import QUALITY_THRESHOLD, WINDOW_SAMPLES
from m2ae.errors import InputError
from m2ae.record import Windows


@dataclass
class WindowView:
    """One 10-s window in the record's units, ready to draw.

    t_s : [n] seconds from the record's start; ecg, ppg : [n] cleaned signal (None when absent);
    r_peaks_s, pulse_peaks_s : peak times (s) inside the window; units : {"ecg": ..., "ppg": ...}.
    """

    index: int
    t_s: np.ndarray
    ecg: np.ndarray | None
    ppg: np.ndarray | None
    r_peaks_s: np.ndarray
    pulse_peaks_s: np.ndarray
    units: dict[str, str]
    ecg_quality: float = float("nan")
    ppg_quality: float = float("nan")
    low_quality: bool = False
    hr_bpm: float = float("nan")
    pat_ms: float = float("nan")
    ecg_no_beats: bool = False      # the detector found no beats to count in this window (e.g. asystole)
    ppg_no_beats: bool = False
    r_peak_classes: np.ndarray | None = None  # beat class per R peak in the window: 0 normal, 1 ventricular


def _at(arr: Any, i: int, default: Any = float("nan")) -> Any:
    # Per-window arrays are None when a channel was absent: that is a missing value, not an error.
    if arr is None:
        return default
    try:
        return arr[i]
    except (IndexError, TypeError):
        return default


def window_view(win: Windows, i: int) -> WindowView:
    """Cut window ``i`` of ``win`` out of the cleaned whole-record signals, with its peaks.

    Uses ``ecg_clean``/``ppg_clean`` (original units, 125 Hz) when present, else the window's
    normalised samples mapped back with ``Windows.to_original_units``. ``i`` is clamped to the
    windows there are.
    """
    n = len(win)
    if n == 0:
        raise InputError("record: no 10-s window to show")
    i = int(np.clip(i, 0, n - 1))
    fs = float(win.fs)
    start = int(round(float(win.starts_s[i]) * fs))
    stop = start + WINDOW_SAMPLES
    t = (start + np.arange(WINDOW_SAMPLES)) / fs
    signals: dict[str, np.ndarray | None] = {}
    for mod in ("ecg", "ppg"):
        clean = getattr(win, f"{mod}_clean", None)
        norm = getattr(win, mod)
        if clean is not None and len(clean) >= stop:
            signals[mod] = np.asarray(clean[start:stop], dtype=np.float64)
        elif norm is not None:
            signals[mod] = win.to_original_units(mod, norm[i:i + 1], slice(i, i + 1))[0].astype(np.float64)
        else:
            signals[mod] = None

    def peaks_in(p: np.ndarray | None) -> np.ndarray:
        if p is None:
            return np.zeros(0)
        p = np.asarray(p)
        return p[(p >= start) & (p < stop)] / fs

    units = dict((win.meta or {}).get("units") or {})
    classes = None
    if signals["ecg"] is not None and win.r_peaks is not None and win.r_peak_classes is not None \
            and len(win.r_peak_classes) == len(win.r_peaks):
        p = np.asarray(win.r_peaks)
        classes = np.asarray(win.r_peak_classes)[(p >= start) & (p < stop)]
    hr = _at(win.hr_ecg_bpm, i)
    if not np.isfinite(hr):
        hr = _at(win.hr_ppg_bpm, i)
    return WindowView(
        index=i, t_s=t, ecg=signals["ecg"], ppg=signals["ppg"],
        r_peaks_s=peaks_in(win.r_peaks if signals["ecg"] is not None else None),
        pulse_peaks_s=peaks_in(win.pulse_peaks if signals["ppg"] is not None else None),
        units={"ecg": units.get("ecg", "a.u."), "ppg": units.get("ppg", "a.u.")},
        ecg_quality=float(_at(win.ecg_quality, i)), ppg_quality=float(_at(win.ppg_quality, i)),
        low_quality=bool(_at(win.low_quality, i, False)), hr_bpm=float(hr), pat_ms=float(_at(win.pat_ms, i)),
        ecg_no_beats=bool(_at(win.ecg_no_beats, i, False)), ppg_no_beats=bool(_at(win.ppg_no_beats, i, False)),
        r_peak_classes=classes,
    )


_MARKDOWN_SPECIAL = set("\\`*_{}[]()#+-.!|<>~$:")


def escape_markdown(text: str) -> str:
    """``text`` (e.g. a note naming a file's column) shown literally by ``st.markdown``/``st.warning``:
    every Markdown punctuation mark backslash-escaped, line breaks flattened."""
    return "".join("\\" + c if c in _MARKDOWN_SPECIAL else c for c in " ".join(str(text).split()))


def dropped_channels(win: Windows) -> list[str]:
    """One plain sentence per channel preprocessing dropped as dead (``meta["dropped"]``), e.g.
    "PPG dropped: flat line (every sample = 0); the record goes on as ECG only"."""
    dropped = dict((win.meta or {}).get("dropped") or {})
    notes = [str(n) for n in (win.meta or {}).get("notes") or []]
    out = []
    for mod, why in dropped.items():
        said = [n for n in notes if n.startswith(f"{mod.upper()} dropped:")]
        out.append(said[0] if said else f"{mod.upper()} dropped: {why}")
    return out


def quality_table(win: Windows) -> pd.DataFrame:
    """Per-window table: start (s), quality per channel, heart rate (bpm), PAT (ms), low-quality flag."""
    n = len(win)
    nan = np.full(n, np.nan)

    def col(a: np.ndarray | None) -> np.ndarray:
        return nan if a is None else np.asarray(a, dtype=float)

    return pd.DataFrame({
        "window": np.arange(n),
        "start_s": np.asarray(win.starts_s, dtype=float),
        "ecg_quality": col(win.ecg_quality),
        "ppg_quality": col(win.ppg_quality),
        "hr_ecg_bpm": col(win.hr_ecg_bpm),
        "hr_ppg_bpm": col(win.hr_ppg_bpm),
        "pat_ms": col(win.pat_ms),
        "low_quality": np.zeros(n, bool) if win.low_quality is None else np.asarray(win.low_quality, bool),
    })


def record_figures(win: Windows) -> dict[str, float]:
    """Whole-record headline numbers: median HR (bpm) from ECG and PPG, median PAT (ms), windows, flagged."""
    def med(a: np.ndarray | None) -> float:
        if a is None:
            return float("nan")
        a = np.asarray(a, dtype=float)
        a = a[np.isfinite(a)]
        return float(np.median(a)) if a.size else float("nan")

    low = 0 if win.low_quality is None else int(np.sum(win.low_quality))
    return {"hr_ecg_bpm": med(win.hr_ecg_bpm), "hr_ppg_bpm": med(win.hr_ppg_bpm), "pat_ms": med(win.pat_ms),
            "n_windows": len(win), "n_low_quality": low, "quality_threshold": QUALITY_THRESHOLD}


# --- events (alarms, annotations) and leads -----------------------------------------------------

def review_events(meta: dict[str, Any] | None, info: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The record's marked moments, earliest first: ``[{"time_s": s from the record's start, "label"}]``.

    From the record's own meta (``m2ae.record.record_events``: CinC alarm, WFDB annotations); when the
    reader found none, from the sample manifest entry ``info`` (its ``labels``/``events``), which is
    where a sample copied out of a labelled corpus keeps its alarm.
    """
    from m2ae.record import record_events

    events = record_events(dict(meta or {}))
    if not events and info:
        events = record_events({"labels": info.get("labels") or {}, "events": info.get("events") or []})
    return events


def events_between(events: list[dict[str, Any]], t0_s: float, t1_s: float) -> list[dict[str, Any]]:
    """The events with ``t0_s ≤ time_s ≤ t1_s`` (s from the record's start), e.g. those a window shows."""
    return [e for e in events if t0_s - 1e-6 <= float(e["time_s"]) <= t1_s + 1e-6]


def event_word(event: dict[str, Any]) -> str:
    """A one-word tag for a window label: "alarm" for monitor alarms, else "event"."""
    return "alarm" if str(event.get("label", "")).lower().startswith("alarm") else "event"


def ecg_leads(win: Windows, model_lead: str | None) -> list[str]:
    """Every ECG lead the record carried, the model's input lead first; ``[model_lead]`` (or ``[]`` without
    ECG) when the record had a single lead."""
    if win.ecg is None and win.ecg_clean is None:
        return []
    leads = list((win.ecg_leads_clean or {}).keys())
    first = str(model_lead) if model_lead else "ECG"
    return [first] + [lead for lead in leads if lead != first] if leads else [first]


def lead_window(win: Windows, lead: str, i: int) -> np.ndarray | None:
    """Window ``i`` of ECG lead ``lead`` (cleaned, record units, 125 Hz), or None when the record lacks it."""
    leads = win.ecg_leads_clean or {}
    if lead not in leads:
        return None
    start = int(round(float(win.starts_s[int(i)]) * float(win.fs)))
    x = np.asarray(leads[lead][start:start + WINDOW_SAMPLES], dtype=np.float64)
    return x if len(x) == WINDOW_SAMPLES else None


def pat_context(pat_ms: float, hr_bpm: float) -> str | None:
    """One plain sentence on a pulse arrival time (R peak → pulse peak, ms): physiological at the finger
    or likely a device delay (``m2ae.signal.timing.pat_plausibility``, with the beat interval from
    ``hr_bpm``); None when PAT is unknown."""
    from m2ae.signal.timing import pat_plausibility

    if pat_ms is None or not np.isfinite(pat_ms):
        return None
    rr_ms = 60000.0 / hr_bpm if hr_bpm is not None and np.isfinite(hr_bpm) and hr_bpm > 0 else None
    return f"PAT {pat_plausibility(float(pat_ms), rr_ms)}"
