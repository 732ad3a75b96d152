"""m2ae clinical exploration app: `m2ae app` or `streamlit run app/streamlit_app.py`.

Pages only present; every number comes from the m2ae library. This entry file sets up the pages
(st.navigation) and the sidebar every page shares: the current record, the window selector and the
"not for clinical use" notice.
"""
from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

APP_DIR = Path(__file__).resolve().parent
if str(APP_DIR) not in sys.path:  # page files import the shared m2ae_ui helpers
    sys.path.insert(0, str(APP_DIR))

from m2ae_ui import warm  # noqa: E402

st.set_page_config(page_title="m2ae — ECG/PPG explorer", page_icon="🫀", layout="wide")
warm.wait()  # started by app/serve.py (`m2ae app`); a no-op under plain `streamlit run`
import m2ae  # noqa: E402
from m2ae_ui import report, review, state  # noqa: E402
from m2ae_ui.guard import page_guard, short_message  # noqa: E402
from m2ae_ui.text import plain  # noqa: E402
from m2ae_ui.windows import escape_markdown, event_word  # noqa: E402

PAGES = [
    st.Page("views/record.py", title="Record", icon=":material/monitor_heart:", default=True),
    st.Page("views/reconstruction.py", title="Reconstruction", icon=":material/auto_fix_high:"),
    st.Page("views/fingerprint_map.py", title="Fingerprint map", icon=":material/scatter_plot:"),
    st.Page("views/similar_patients.py", title="Similar patients", icon=":material/group:"),
    st.Page("views/predictions.py", title="Predictions & explanations", icon=":material/insights:"),
    st.Page("views/model_card.py", title="Model card", icon=":material/description:"),
]
page = st.navigation(PAGES)
state.persist_settings()


def _window_label(win, i: int, marked: dict[int, str]) -> str:
    # Short: the sidebar is narrow, and the flags must stay readable (the window number is on every page).
    start = float(win.starts_s[i])
    label = f"{start:.0f}–{start + 10:.0f} s"
    if i in marked:
        label += f" · {marked[i]}"
    if win.low_quality is not None and bool(win.low_quality[i]):
        label += " ⚠ quality"
    return label


def _go_to_event(i: int) -> None:
    st.session_state[state.WINDOW_KEY] = i


def _report_download(src, rec, win) -> None:
    """"Prepare PDF report" for the current record and window, then its download button (kept per record
    and window in the session, see m2ae_ui.report)."""
    # the selector's value, read without state.window_index (which consumes the page's reset flag)
    i = min(max(int(st.session_state.get(state.WINDOW_KEY, 0) or 0), 0), max(len(win) - 1, 0))
    pdf = report.cached_report(st.session_state, src.key, i)
    if pdf is None and st.button("Prepare PDF report", key="report_prepare",
                                 help="Record, window, ECG/PPG, measurements, model outputs with quality and "
                                      "familiarity, neighbours, re-identification risk, model version. Takes up "
                                      "to a minute."):
        model = index = None
        if not warm.model_pending():  # the report leaves out model outputs rather than wait for the load
            model, _ = state.get_model()
            index = state.get_index()[0] if model is not None else None
        try:
            with st.spinner("Building the report…"):
                pdf = report.build_report(st.session_state, src.key, rec, win, i, model=model, index=index,
                                          subject_id=state.record_subject(src, rec))
        except m2ae.InputError as e:
            st.error(plain(short_message(e)))
    if pdf is not None:
        st.download_button("Download PDF report", data=pdf, file_name=report.report_file_name(src.name, i),
                           mime="application/pdf", key="report_download", icon=":material/download:")


with st.sidebar:
    with page_guard("Sidebar"):
        cur = state.current()
        if cur is None:
            st.info("No record yet: pick a sample or upload one on the Record page.")
        else:
            src, rec, win = cur
            st.markdown(f"**Record:** {plain(src.name)}")
            mods = " + ".join(m.upper() for m in rec.modalities)
            st.caption(f"{mods} · {rec.duration_s:.0f} s · {rec.fs:g} Hz · {plain(src.description)}")
            events = review.events(src, rec)
            marked = review.marked_windows(win, events)
            # a new record opens on the window of its first alarm/annotation (the alarm window ends at it)
            st.session_state[state.WINDOW_KEY] = review.opening_window(src, rec, win)
            st.selectbox("Window (10 s)", options=list(range(len(win))), key=state.WINDOW_KEY,
                         format_func=lambda i: _window_label(win, i, marked),
                         help="The 10-s window every page shows. \"alarm\" marks the window ending at the "
                              "record's alarm (\"event\": one holding an annotation); ⚠ = low signal quality "
                              "(flagged, not dropped).")
            if events:
                first = review.first_event(events)
                at = review.event_window(win, [first])
                st.caption(f"{escape_markdown(first['label'])} at {first['time_s']:g} s → window {at + 1}"
                           + (f" (+{len(events) - 1} more)" if len(events) > 1 else ""))
                if st.session_state[state.WINDOW_KEY] != at:
                    st.button(f"Back to the {event_word(first)} window", on_click=_go_to_event, args=(at,),
                              key="go_to_event")
            _report_download(src, rec, win)
    st.warning(state.NOT_CLINICAL, icon=":material/warning:")

page.run()
