"""What a record report holds, gathered once: the record, the chosen window, its signals in the record's units,
the model's cross-modal reconstructions and predictions, interval measurements, the nearest neighbours and
the record's re-identification risk.

One concept: the report's content as plain data (:class:`ReportContent`), computed by the library and laid out
by :mod:`m2ae.report.pdf`. The window is the one asked for, else the window holding the record's first event
(a monitor alarm, ``m2ae.record.record_events``), else the best-quality window.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..contract import INPUT_MODE_NAMES
from ..errors import InputError
from ..record import Record, Windows, event_window, record_events
from ..signal.intervals import WindowIntervals, window_intervals

NEIGHBOURS_K = 5


@dataclass
class ReportContent:
    """Everything one report shows; strings here may come from files (escape them before display)."""

    record_name: str
    source: str
    channels: list[str]
    duration_s: float
    fs_hz: float
    notes: list[str]
    dropped: dict[str, str]
    events: list[dict[str, Any]]
    window: int
    window_start_s: float
    window_why: str
    n_windows: int
    signals: dict[str, np.ndarray | None]          # "ecg" / "ppg": the window in the record's units
    units: dict[str, str]
    reconstructions: dict[str, np.ndarray | None]  # "ecg_from_ppg" / "ppg_from_ecg", in the record's units
    quality: dict[str, float]
    low_quality: bool
    intervals: WindowIntervals
    predictions: list[tuple[str, str, str]] = field(default_factory=list)   # (head, answer, detail)
    familiarity: str = "not computed (no index)"
    neighbours: list[dict[str, Any]] = field(default_factory=list)
    model_version: str = "no model"
    index_note: str = ""
    reidentification: dict[str, Any] | None = None  # ``m2ae.index.linkability.record_linkability`` of the record
    reidentification_lines: list[str] = field(default_factory=list)   # its wording, or why it is missing


def choose_window(win: Windows, window: int | None = None) -> tuple[int, str]:
    """(window index, why it was chosen): ``window`` when given, else the first event's window, else the
    window with the best quality (mean of the present channels' quality; low-quality windows last)."""
    n = len(win)
    if n == 0:
        raise InputError("the record has no 10-s window to report")
    if window is not None:
        if not 0 <= int(window) < n:
            raise InputError(f"window {window} outside 0-{n - 1} (the record has {n} windows of 10 s)")
        return int(window), "asked for"
    events = record_events(win.meta)
    if events:
        ev = events[0]
        return event_window(win, events), f"ends at or holds the event '{ev['label']}' at {ev['time_s']:.1f} s"
    q = [np.asarray(x, dtype=np.float64) for x in (win.ecg_quality, win.ppg_quality) if x is not None]
    score = np.nanmean(np.stack(q), 0) if q else np.zeros(n)
    score = np.nan_to_num(score, nan=-1.0)
    if win.low_quality is not None:
        score = score - 2.0 * np.asarray(win.low_quality, dtype=np.float64)
    return int(np.argmax(score)), "best signal quality"


def _window_units(win: Windows, modality: str, x: np.ndarray | None, i: int) -> np.ndarray | None:
    if x is None:
        return None
    return np.asarray(win.to_original_units(modality, np.asarray(x)[None, :], window=slice(i, i + 1))[0])


def head_answer(name: str, out: dict[str, Any]) -> tuple[str, str, str]:
    """(head, answer, detail) for window 0 of one head's ``M2AEModel.predict`` output: the class and its
    calibrated probability or the value and its interval; "uncertain" / outside when the head says so."""
    outside = bool(np.asarray(out.get("outside", [False]))[0])
    uncertain = bool(np.asarray(out.get("uncertain", [False]))[0])
    if "probabilities" in out:
        p = np.asarray(out["probabilities"], dtype=np.float64)[0]
        j = int(np.argmax(p))
        names = list(out.get("class_names") or out.get("classes") or range(len(p)))
        detail = f"top: {names[j]} p={p[j]:.2f}"
        answer = str(names[j])
    else:
        v = float(np.asarray(out["value"], dtype=np.float64)[0])
        lo, hi = (float(x) for x in np.asarray(out["interval"], dtype=np.float64)[0])
        unit = str(out.get("unit", ""))
        detail = f"{v:.1f} {unit} (interval {lo:.1f}-{hi:.1f})"
        answer = f"{v:.1f} {unit}".strip()
    if outside:
        answer, detail = "outside what this head knows", f"{detail}; {out.get('outside_note', '')}".strip("; ")
    elif uncertain:
        answer, detail = "uncertain", f"{detail}; rule: {out.get('uncertain_rule', '')}".strip("; ")
    return name, answer, detail


def _model_part(content: ReportContent, model: Any, win: Windows, i: int) -> None:
    ecg = None if win.ecg is None else win.ecg[i:i + 1]
    ppg = None if win.ppg is None else win.ppg[i:i + 1]
    content.model_version = str(getattr(model, "version", "unknown"))
    content.predictions = [head_answer(name, out) for name, out in model.predict(ecg=ecg, ppg=ppg).items()]
    for mode, given, rebuilt in (("ecg_from_ppg", ppg, "ecg"), ("ppg_from_ecg", ecg, "ppg")):
        if given is None:
            continue
        # the rebuilt modality is hidden entirely: the model sees only the other one
        out = model.reconstruct(ecg=ecg, ppg=ppg, mode=mode)
        y = np.asarray(out[rebuilt]["prediction"])[0]
        scale = getattr(win, f"{rebuilt}_scale")
        content.reconstructions[mode] = y if scale is None else _window_units(win, rebuilt, y, i)


def _index_part(content: ReportContent, index: Any, model: Any, win: Windows, i: int, record_id: str | None,
                subject_id: str | None = None) -> None:
    from ..index.query import query_windows

    # the record itself (when the index holds it) is neither its own neighbour nor proof of familiarity
    subject = subject_id or win.meta.get("subject_id") or record_id
    q = query_windows(index, model, win, k=NEIGHBOURS_K, window=i, exclude_record=record_id,
                      subject=None if subject is None else str(subject), place=False)
    fam = q.familiarity or {}
    if fam.get("calibrated") is False or fam.get("note"):
        content.familiarity = str(fam.get("note") or "not calibrated")
    elif fam:
        flag = bool(np.asarray(fam.get("unfamiliar", [False]))[i]) if len(fam.get("unfamiliar", [])) > i else False
        top = np.asarray(fam.get("top1", [np.nan]), dtype=np.float64)
        sim = float(top[i]) if len(top) > i else float("nan")
        content.familiarity = (f"{'UNFAMILIAR' if flag else 'familiar'}: nearest-neighbour similarity {sim:.3f} "
                               f"(threshold {float(fam.get('threshold', np.nan)):.3f})")
    if q.neighbours is not None:
        for _, row in q.neighbours.head(NEIGHBOURS_K).iterrows():
            content.neighbours.append({key: row.get(key) for key in (
                "rank", "score", "record", "subject_id", "start_s", "label_rhythm", "label_alarm_type",
                "label_true_alarm") if key in row.index})
    content.index_note = "; ".join(q.notes)
    _reidentification_part(content, index, q.fingerprints, q.mode, None if subject is None else str(subject),
                           record_id)


def _reidentification_part(content: ReportContent, index: Any, fps: np.ndarray, mode: str, subject: str | None,
                           record_id: str | None) -> None:
    from ..index.linkability import SCORE_MEANING, calibration_note, record_linkability, risk_metrics

    # the same call and wording as the app's Similar patients page, so the two cannot disagree
    risk = record_linkability(index, fps, subject_id=subject, record=record_id)
    content.reidentification = risk
    metrics = risk_metrics(risk)
    content.reidentification_lines = ([f"{'   '.join(f'{k}: {v}' for k, v in metrics)}. {SCORE_MEANING}"]
                                      if metrics else []) + [
        risk["sentence"],
        f"{calibration_note(risk['calibration'])} Fingerprints from {INPUT_MODE_NAMES.get(mode, mode)}."]


def report_content(rec: Record, win: Windows, window: int | None = None, model: Any = None,
                   index: Any = None, subject_id: str | None = None) -> ReportContent:
    """Gather a report on ``rec`` (already cut to ``win``). ``model`` (an ``M2AEModel``) adds predictions and
    reconstructions; ``index`` (a ``FingerprintIndex`` built by that model) adds neighbours, familiarity and
    re-identification risk. subject_id : the record's subject when known from outside the file (a sample's
    manifest); else the record's own ``subject_id`` or record id. It is left out of the index searches."""
    i, why = choose_window(win, window)
    meta = win.meta or {}
    fs = float(rec.fs)
    n_samples = len(rec.ecg) if rec.ecg is not None else len(rec.ppg) if rec.ppg is not None else 0
    units = dict(meta.get("units") or {})
    quality = {m: float(getattr(win, f"{m}_quality")[i]) for m in ("ecg", "ppg")
               if getattr(win, f"{m}_quality") is not None and np.isfinite(getattr(win, f"{m}_quality")[i])}
    record_id = meta.get("record_id") or meta.get("subject_id")
    content = ReportContent(
        record_name=str(record_id or "record"), source=str(meta.get("source", "unknown")),
        channels=list(win.modalities), duration_s=n_samples / fs, fs_hz=fs,
        notes=[str(n) for n in meta.get("notes") or []], dropped={str(k): str(v) for k, v in
                                                                  (meta.get("dropped") or {}).items()},
        events=record_events(meta), window=i, window_start_s=float(win.starts_s[i]), window_why=why,
        n_windows=len(win),
        signals={m: _window_units(win, m, getattr(win, m)[i], i) if getattr(win, m) is not None else None
                 for m in ("ecg", "ppg")},
        units={m: str(units.get(m, "mV" if m == "ecg" else "au")) for m in ("ecg", "ppg")},
        reconstructions={"ecg_from_ppg": None, "ppg_from_ecg": None}, quality=quality,
        low_quality=bool(win.low_quality[i]) if win.low_quality is not None else False,
        intervals=window_intervals(win, i))
    if model is not None:
        _model_part(content, model, win, i)
        if index is not None:
            _index_part(content, index, model, win, i, None if record_id is None else str(record_id), subject_id)
    if content.reidentification is None:
        missing = " and no ".join(what for what, given in (("model", model), ("index", index)) if given is None)
        content.reidentification_lines = [f"Re-identification risk not computed: no {missing} given (it compares "
                                          "the record's fingerprints with an index built by the model)."]
    return content
