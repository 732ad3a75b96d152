"""What every page shares when a record is reviewed: its marked moments (alarms, annotations), the
ECG lead switch, and the warnings that go with any model output (unfamiliar record, low-quality window).

Times are seconds from the record's start.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import streamlit as st

from m2ae.contract import QUALITY_THRESHOLD
from m2ae.record import Record, Windows, event_window

from . import state
from .text import plain
from .windows import ecg_leads, escape_markdown, event_word, events_between, lead_window, review_events

ALL_LEADS = "All leads (stacked)"
LEAD_PREF_KEY = "_ecg_lead_pref"  # not a widget key: the lead choice survives page visits
OPENED_KEY = "_window_opened_for"  # the record key whose opening window was already chosen


def events(src: state.CurrentRecord, rec: Record) -> list[dict[str, Any]]:
    """The record's alarms and annotations (``windows.review_events``), earliest first."""
    return review_events(rec.meta, src.info)


def first_event(evs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Where review starts: the first monitor alarm, else the first event; None without events."""
    return next((e for e in evs if event_word(e) == "alarm"), evs[0] if evs else None)


def opening_window(src: state.CurrentRecord, rec: Record, win: Windows) -> int:
    """The window every page shows: the session's choice (``state.window_index``), except when a record
    was just opened: then the window of its first alarm (or event; an alarm's window ends at the
    alarm), so review starts where the monitor alarmed."""
    opened = bool(st.session_state.get(state.RESET_WINDOW_KEY))  # set_record was called for this run
    i = state.window_index(win)
    if st.session_state.get(OPENED_KEY) == src.key and not opened:
        return i
    st.session_state[OPENED_KEY] = src.key
    first = first_event(events(src, rec))
    return i if first is None else event_window(win, [first])


def marked_windows(win: Windows, evs: list[dict[str, Any]]) -> dict[int, str]:
    """{window index: "alarm"/"event"} for the windows that hold an event (start < t ≤ end)."""
    out: dict[int, str] = {}
    for ev in evs:
        w = event_window(win, [ev])
        out.setdefault(w, event_word(ev))
    return out


def window_events(win: Windows, evs: list[dict[str, Any]], i: int) -> list[dict[str, Any]]:
    """The events inside window ``i`` (its 10 s, both ends included)."""
    t0 = float(win.starts_s[i])
    return events_between(evs, t0, t0 + 10.0)


def model_lead(rec: Record, win: Windows) -> str | None:
    lead = rec.meta.get("lead") or (win.meta or {}).get("lead")
    return None if lead is None else str(lead)


def lead_switch(rec: Record, win: Windows, i: int, key: str,
                model_ecg: np.ndarray | None = None) -> list[tuple[str, np.ndarray]] | None:
    """The ECG lead switch (when the record has more than one lead): rows to draw, [(lead, samples)] of
    window ``i``, or None to draw the model's input lead alone. Says which lead the model reads.

    model_ecg : window ``i`` of the model's input lead as the page draws it (used when the record's
        lead table lacks it)."""
    lead = model_lead(rec, win)
    leads = ecg_leads(win, lead)
    if len(leads) < 2:
        if leads and lead:
            st.caption(f"ECG lead {escape_markdown(lead)} (model input; the record has one ECG lead).")
        return None
    options = [*leads, ALL_LEADS]
    if st.session_state.get(key) not in options:
        pref = st.session_state.get(LEAD_PREF_KEY)
        st.session_state[key] = pref if pref in options else leads[0]
    choice = st.radio("ECG lead", options, key=key, horizontal=True, format_func=plain,  # names from the file
                      help="Every ECG lead of the record. The model reads one of them; the others are shown "
                           "as recorded, so an alarm raised on another lead can be checked.")
    st.session_state[LEAD_PREF_KEY] = choice
    st.caption(f"Model input: {escape_markdown(leads[0])} · other leads: "
               f"{', '.join(escape_markdown(x) for x in leads[1:])}")
    shown = leads if choice == ALL_LEADS else [choice]
    rows = []
    for name in shown:
        y = lead_window(win, name, i)
        if y is None and name == leads[0]:
            y = model_ecg
        if y is not None:
            rows.append((name, y))
    return rows or None


def model_output_warnings(src: state.CurrentRecord, rec: Record, win: Windows, i: int, use: str) -> None:
    """The warnings every page with model output shows: the record (or window ``i``) is unlike the index's
    windows, and window ``i`` is below the quality threshold."""
    state.warn_if_unfamiliar(src, rec, win, i, use)
    if win.low_quality is not None and bool(win.low_quality[i]):
        st.warning(f"Window {i + 1} is below the quality threshold ({QUALITY_THRESHOLD:g}): treat the model's "
                   "outputs for it with extra caution.", icon=":material/warning:")


def event_note(win: Windows, evs: list[dict[str, Any]], i: int) -> None:
    """One line naming the event in window ``i`` (or where the record's first event is)."""
    here = window_events(win, evs, i)
    if here:
        st.info("**" + "; ".join(f"{escape_markdown(e['label'])} at {e['time_s']:g} s" for e in here)
                + "** — marked with a dotted line on the plots.", icon=":material/notifications_active:")
    elif evs:
        first = first_event(evs)
        st.caption(f"This record's {event_word(first)} ({escape_markdown(first['label'])}) is at "
                   f"{first['time_s']:g} s, in window {event_window(win, [first]) + 1}.")
