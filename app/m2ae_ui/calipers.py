"""Measurements and calipers on the Record page: pure helpers, no Streamlit widgets.

Calipers: two points (time in s from the record's start, amplitude in the channel's units, channel
"ecg" or "ppg") → Δt (ms), the rate a Δt that long implies (60000 / Δt, bpm) and Δ amplitude (channel
units; only when both points are on the same channel). Points come from plotly click selections
(:func:`points_from_selection`) or from two typed times (:func:`points_at_times`), and are kept in
``st.session_state`` per record (:func:`store_points`, :func:`stored_points`).

Measurements: :func:`window_measurements` caches ``m2ae.signal.intervals.window_intervals`` per record and
window in the session (NeuroKit2 delineation takes about a second per window on a busy core).
"""
from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

CALIPER_KEY = "_calipers"          # {record key: [point dict, ...]} (at most two points per record)
SEEN_KEY = "_caliper_seen"         # signature of the last click selection already turned into a point
MEASURE_KEY = "_measurements"      # {(record key, window): WindowIntervals}
CHANNELS = ("ecg", "ppg")


@dataclass(frozen=True)
class CaliperPoint:
    """One caliper end: ``t_s`` seconds from the record's start, ``value`` in the channel's units."""

    t_s: float
    value: float
    channel: str

    def to_dict(self) -> dict[str, Any]:
        return {"t_s": self.t_s, "value": self.value, "channel": self.channel}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CaliperPoint:
        return cls(float(d["t_s"]), float(d["value"]), str(d["channel"]))


@dataclass(frozen=True)
class CaliperReading:
    """What a caliper pair measures: ``dt_ms`` (≥ 0), ``rate_bpm`` (60000 / Δt; NaN when Δt is 0) and
    ``d_value`` (second − first in ``units``; NaN when the points are on different channels)."""

    dt_ms: float
    rate_bpm: float
    d_value: float
    units: str

    def sentence(self) -> str:
        rate = f"{self.rate_bpm:.0f} bpm" if np.isfinite(self.rate_bpm) else "— bpm"
        amp = (f"Δ amplitude {self.d_value:+.3g} {self.units}" if np.isfinite(self.d_value)
               else "Δ amplitude — (points on different channels)")
        return f"Δt {self.dt_ms:.0f} ms · rate {rate} · {amp}"


def caliper_reading(a: CaliperPoint, b: CaliperPoint, units: Mapping[str, str] | None = None) -> CaliperReading:
    """Δt (ms), implied rate (bpm) and Δ amplitude between caliper points ``a`` and ``b`` (order-free in
    time: Δamplitude is later minus earlier)."""
    first, second = (a, b) if a.t_s <= b.t_s else (b, a)
    dt_ms = 1000.0 * (second.t_s - first.t_s)
    rate = 60000.0 / dt_ms if dt_ms > 0 else float("nan")
    same = first.channel == second.channel
    d_value = second.value - first.value if same else float("nan")
    unit = (units or {}).get(first.channel, "a.u.") if same else ""
    return CaliperReading(dt_ms, rate, d_value, unit)


def points_at_times(times_s: Sequence[float], channel: str, t_s: np.ndarray, y: np.ndarray) -> list[CaliperPoint]:
    """Caliper points at typed times (s from the record's start) on ``channel`` whose samples are ``y`` at
    ``t_s``; amplitudes interpolated. Times outside ``t_s`` are clipped to its ends."""
    if channel not in CHANNELS:
        raise ValueError(f"channel must be one of {CHANNELS}, not {channel!r}")
    t = np.clip(np.asarray(times_s, dtype=np.float64), float(t_s[0]), float(t_s[-1]))
    vals = np.interp(t, t_s, np.asarray(y, dtype=np.float64))
    return [CaliperPoint(float(ti), float(v), channel) for ti, v in zip(t, vals, strict=True)]


def points_from_selection(selection: Any, curve_channels: Mapping[int, str]) -> list[CaliperPoint]:
    """Caliper points from a ``st.plotly_chart(on_select=...)`` event (``{"selection": {"points": [...]}}``);
    ``curve_channels`` maps a selectable trace's index (``curve_number``) to its channel. Points on other
    traces are ignored, and so is a second point at the same time (the chart's unified hover makes one click
    report every trace under the cursor)."""
    try:
        points = (selection or {}).get("selection", {}).get("points", []) or []
    except AttributeError:
        return []
    out = []
    for p in points:
        ch = curve_channels.get(int(p.get("curve_number", -1)))
        x, y = p.get("x"), p.get("y")
        if ch is None or x is None or y is None or any(q.t_s == float(x) for q in out):
            continue
        out.append(CaliperPoint(float(x), float(y), ch))
    return out


def add_clicks(kept: Sequence[CaliperPoint], clicked: Sequence[CaliperPoint]) -> list[CaliperPoint]:
    """The caliper pair after ``clicked`` points: the two most recent of ``kept`` + ``clicked``."""
    return [*kept, *clicked][-2:]


def in_window(points: Sequence[CaliperPoint], t0_s: float, t1_s: float) -> list[CaliperPoint]:
    """The points whose time lies in [t0_s, t1_s] (s from the record's start): those the window draws."""
    return [p for p in points if t0_s <= p.t_s <= t1_s]


def stored_points(session: Mapping[str, Any], record_key: str) -> list[CaliperPoint]:
    """This record's caliper points from the session state (empty when none)."""
    return [CaliperPoint.from_dict(d) for d in (session.get(CALIPER_KEY) or {}).get(record_key, [])]


def store_points(session: MutableMapping[str, Any], record_key: str, points: Sequence[CaliperPoint]) -> None:
    """Keep ``points`` (at most the last two) as this record's caliper pair; other records' stay."""
    by_record = dict(session.get(CALIPER_KEY) or {})
    by_record[record_key] = [p.to_dict() for p in list(points)[-2:]]
    session[CALIPER_KEY] = by_record


def selection_signature(selection: Any) -> tuple:
    """A hashable summary of a click selection, to turn each click into a point once (the selection
    stays in the event on later reruns)."""
    try:
        points = (selection or {}).get("selection", {}).get("points", []) or []
    except AttributeError:
        return ()
    return tuple((p.get("curve_number"), p.get("point_index"), p.get("x")) for p in points)


def window_measurements(session: MutableMapping[str, Any], record_key: str, win: Any, i: int) -> Any:
    """``m2ae.signal.intervals.window_intervals(win, i)``, cached in ``session`` per record and window
    (the cache holds the last 64 windows)."""
    from m2ae.signal.intervals import window_intervals

    cache = session.setdefault(MEASURE_KEY, {})
    key = (record_key, int(i))
    if key not in cache:
        while len(cache) >= 64:
            cache.pop(next(iter(cache)))
        cache[key] = window_intervals(win, int(i))
    return cache[key]


def marker_rows(res: Any) -> dict[str, list[float]]:
    """The delineation marker times (s from the record's start) to draw: ECG P onset, QRS on/off, T end and
    PPG foot; empty lists where a channel was withheld (its markers would be drawn from noise)."""
    markers = getattr(res, "markers", {}) or {}
    keys = []
    if getattr(res, "ecg_reason", None) is None:
        keys += ["p_onset", "qrs_onset", "qrs_offset", "t_offset"]
    if getattr(res, "ppg_reason", None) is None:
        keys += ["ppg_foot"]
    return {k: list(markers.get(k, [])) for k in keys}
