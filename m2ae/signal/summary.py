"""What ``m2ae read`` prints: a record's channels, what the signal contract made of them, and notes.

``summarize`` turns a ``Record`` and its ``Windows`` (from ``m2ae.preprocess``) into a JSON-able
dict (``m2ae read --json``); ``format_summary`` writes that dict as a few readable lines.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..contract import FS_HZ, QUALITY_THRESHOLD, WINDOW_S
from ..record import Record, Windows


def _median(x: np.ndarray | None) -> float | None:
    if x is None:
        return None
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    return round(float(np.median(x)), 3) if len(x) else None


def summarize(rec: Record, win: Windows) -> dict[str, Any]:
    """The ``m2ae read --json`` summary: what was found, how, and what the signal contract made of it.

    ``channels`` lists every channel found in the file; ``dropped`` ({modality: reason}) those that
    were dead and left out, so ``quality``, ``heart_rate_bpm`` (medians over windows, bpm; None
    when no window has one) and ``no_beats`` (count of windows without detected beats) cover the
    channels used (``win.modalities``). Quality is per channel (median, min).
    """
    meta = rec.meta
    units = meta.get("units") or {}
    matched_by = meta.get("matched_by") or {}
    channels: dict[str, Any] = {}
    for mod in rec.modalities:
        channels[mod] = {
            "column": meta.get(f"{mod}_column"),
            "matched_by": meta.get(f"{mod}_matched_by", matched_by.get(mod) if isinstance(matched_by, dict) else None),
            "lead": meta.get("lead") if mod == "ecg" else None,
            "units": units.get(mod) if isinstance(units, dict) else None,
        }
    used = win.modalities
    quality = {}
    for mod in used:
        q = getattr(win, f"{mod}_quality")
        quality[mod] = {"median": _median(q), "min": round(float(np.nanmin(q)), 3) if len(q) else None}
    no_beats = {}
    for mod in used:
        flags = getattr(win, f"{mod}_no_beats")
        no_beats[mod] = int(np.sum(flags)) if flags is not None else 0
    return {
        "source": meta.get("source"),
        "fs_hz": rec.fs,
        "duration_s": round(rec.duration_s, 3),
        "channels": channels,
        "dropped": dict(win.meta.get("dropped") or {}),
        "contract": {"fs_hz": FS_HZ, "window_s": WINDOW_S, "stride_s": win.meta.get("stride_s", WINDOW_S)},
        "n_windows": len(win),
        "n_low_quality": int(np.sum(win.low_quality)) if win.low_quality is not None else 0,
        "quality_threshold": win.meta.get("quality_threshold", QUALITY_THRESHOLD),
        "quality": quality,
        "heart_rate_bpm": {mod: _median(getattr(win, f"hr_{mod}_bpm")) for mod in used},
        "no_beats": no_beats,
        "pat_ms": _median(win.pat_ms) if len(used) == 2 else None,
        "ppg_flipped": win.meta.get("ppg_flipped", False) if win.ppg is not None else None,
        "ecg_inverted": win.meta.get("ecg_inverted", False) if win.ecg is not None else None,
        "labels": meta.get("labels") or {},
        "notes": win.meta.get("notes", []),
    }


def format_summary(s: dict[str, Any]) -> str:
    """``summarize``'s dict as a few readable lines (``m2ae read`` without ``--json``)."""
    def num(v: Any, fmt: str) -> str:
        return "n/a" if v is None else format(v, fmt)

    dropped = s.get("dropped") or {}
    no_beats = s.get("no_beats") or {}
    lines = [f"{s['source']}: {s['duration_s']:.1f} s at {s['fs_hz']:g} Hz → {s['n_windows']} windows of "
             f"{s['contract']['window_s']:g} s at {s['contract']['fs_hz']:g} Hz "
             f"({s['n_low_quality']} below quality {s['quality_threshold']:g})"]
    for mod, ch in s["channels"].items():
        how = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in ch.items() if v is not None and k != "column")
        head = f"  {mod.upper()}  column {ch['column']!r}" + (f" ({how})" if how else "")
        if mod in dropped:
            lines.append(f"{head}; DROPPED: {dropped[mod]}")
            continue
        q = s["quality"][mod]
        line = (head + f"; quality median {num(q['median'], '.2f')} (min {num(q['min'], '.2f')})"
                + f"; heart rate {num(s['heart_rate_bpm'][mod], '.1f')} bpm")
        if no_beats.get(mod):
            line += f"; no beats detected in {no_beats[mod]} of {s['n_windows']} windows"
        lines.append(line)
    if s.get("pat_ms") is not None:
        lines.append(f"  R-peak → pulse-peak delay {s['pat_ms']:.0f} ms (median over windows)")
    lines += [f"  note: {n}" for n in s.get("notes", [])]
    return "\n".join(lines)
