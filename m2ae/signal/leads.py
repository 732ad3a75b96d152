"""ECG leads beside the model's input lead: filtered for display, combined for beats, named in advice.

``Record.ecg_leads`` holds every lead a source carried (CinC 2015: II with V, aVL, MCL, ...). The
pipeline filters each one like the model lead (``clean_leads`` -> ``Windows.ecg_leads_clean``), hands
them to the multi-lead beat detector (``detect_ecg_beats``, ``m2ae.signal.beats``), and when the
model lead is dead, names a lead that carries signal (``lead_advice``).
"""
from __future__ import annotations

import numpy as np

from ..contract import FS_HZ
from ..record import Record
from . import beats as bt, filters, peaks as pk
from .usable import channel_problem

MODEL_LEAD = "ECG"                       # key of the model's input lead among the detector's leads
LEAD_MAX_FILLED = 0.2  # a lead with more of a segment missing than this sits that segment out


def live_other_leads(rec: Record) -> list[str]:
    """ECG leads of ``rec`` other than the model lead that pass the cheap dead-channel check."""
    if not rec.ecg_leads or rec.ecg is None:
        return []
    model = bt.model_lead_name(rec.meta, rec.ecg, rec.ecg_leads)
    return [n for n, x in rec.ecg_leads.items() if n != model and channel_problem(x, rec.fs) is None]


def lead_advice(rec: Record) -> str:
    """" — way forward: …" naming another ECG lead that carries signal, or "" when there is none."""
    live = live_other_leads(rec)
    if not live:
        return ""
    return (f" — way forward: ECG lead {live[0]} carries signal; choose it as the ECG "
            f"(ecg={live[0]!r}, or --ecg {live[0]} in m2ae read)")


def clean_leads(rec: Record, bounds_raw: list[tuple[int, int]], bounds: list[tuple[int, int]], n_total: int
                 ) -> dict[str, np.ndarray] | None:
    """Every ECG lead of ``rec`` filtered like ``ecg_clean`` (125 Hz, NaN outside the segments), or None.

    Short gaps are bridged linearly; a lead missing more than ``LEAD_MAX_FILLED`` of a segment is left
    NaN there (the beat detector then does without it).
    """
    if not rec.ecg_leads or rec.ecg is None:
        return None
    out = {}
    for name, raw in rec.ecg_leads.items():
        y_all = np.full(n_total, np.nan)
        for (a, b), (a125, b125) in zip(bounds_raw, bounds):
            x = np.asarray(raw[a:b], dtype=np.float64)
            ok = np.isfinite(x)
            if ok.mean() < 1 - LEAD_MAX_FILLED or ok.sum() < 2:
                continue
            if not ok.all():
                x = np.interp(np.arange(len(x)), np.flatnonzero(ok), x[ok])
            y = filters.ecg_bandpass(filters.resample_to(x, rec.fs, FS_HZ), FS_HZ)
            n = min(len(y), b125 - a125)
            y_all[a125:a125 + n] = y[:n]
        out[name] = y_all
    return out


def detect_ecg_beats(x: np.ndarray, leads: dict[str, np.ndarray] | None, model_lead: str | None,
                      bounds: list[tuple[int, int]], method: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """R-peaks (int64, on ``x``), their classes (int8, ``beats.BEAT_CLASSES``) and detector agreement
    (float, NaN for ``method="single"``), detected once per gap-free segment ``bounds``."""
    peaks, classes, agree = [], [], []
    for a, b in bounds:
        if method == "single":
            p = pk.detect_r_peaks(x[a:b], FS_HZ)
            peaks.append(p + a)
            classes.append(np.full(len(p), -1, np.int8))
            agree.append(np.full(len(p), np.nan))
            continue
        seg = {MODEL_LEAD: x[a:b]}
        for name, y in (leads or {}).items():
            if name != model_lead and np.isfinite(y[a:b]).all() and np.ptp(y[a:b]) > 0:
                seg[name] = y[a:b]
        det = bt.detect_beats_multilead(seg, MODEL_LEAD, FS_HZ)
        peaks.append(det.peaks + a)
        classes.append(det.classes)
        agree.append(det.agreement)
    return (np.concatenate(peaks).astype(np.int64), np.concatenate(classes).astype(np.int8),
            np.concatenate(agree).astype(np.float64))
