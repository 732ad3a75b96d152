"""Fingerprint map: the index's 2-D map, the current record placed on it, box/lasso → cohort export."""
from __future__ import annotations

import numpy as np
import streamlit as st

from m2ae.index.neighbours import cohort_table, index_fingerprints
from m2ae.errors import InputError
from m2ae_ui import cohorts, index_figures, review, state
from m2ae_ui.guard import page_guard
from m2ae_ui.selection import selected_rows
from m2ae_ui.tables import to_csv_bytes
from m2ae_ui.text import plain, plain_html

HIDDEN_COLUMNS = {"map_x", "map_y", "id", "_row"}
MAX_WAVEFORMS = 8

st.title("Fingerprint map")
with page_guard("Fingerprint map"):
    src, rec, win, i = state.require_record()
    idx = state.require_index()
    if idx is None:
        st.stop()
    if not idx.has_map:
        st.warning("This index was built without a 2-D map.")
        st.stop()
    meta = idx.metadata
    columns = [c for c in meta.columns if c not in HIDDEN_COLUMNS]
    default = next((c for c in ("label_rhythm", "source", "subject_id") if c in columns), columns[0])
    state.keep(map_color=default, map_values=[], map_waveforms=False)
    if st.session_state["map_color"] not in columns:
        st.session_state["map_color"] = default
    c1, c2 = st.columns([1, 2])
    color = c1.selectbox("Colour by", columns, key="map_color")
    search = st.text_input("Search the map", key="map_search",
                           placeholder="record name, subject, source, or label:AF / record:r1 / source:cinc",
                           help="All words must match; matches are ringed in red and the map zooms to them.")
    try:
        found = cohorts.search_map(meta, search)
    except InputError as e:
        found = None
        st.warning(plain(str(e)))
    if found is not None:
        st.caption(f"Search: {found['n']:,} matching windows" + ("" if found["n"] else " — nothing to show."))

    model = state.require_model()
    query = None if model is None else state.record_query(src, rec, win, "both")
    placed = None if query is None else query.windows_xy
    if model is not None:
        review.model_output_warnings(src, rec, win, i, "both")
    events = review.events(src, rec)
    marked = {w: f"{plain_html(label)} window" for w, label in review.marked_windows(win, events).items()}

    frame = meta[["map_x", "map_y", color]].copy()
    frame["_row"] = np.arange(len(meta))
    if frame[color].dtype == object:  # labels from the indexed files: plotly legends and hover take HTML
        frame[color] = frame[color].map(plain_html, na_action="ignore")
    st.caption(f"{idx.count:,} indexed windows. ★ = the {len(win)} windows of {plain(src.name)} placed among their "
               "nearest indexed neighbours. Drag a box or lasso (toolbar) to select windows.")
    fig = cohorts.decorate_map(index_figures.map_figure(frame, color, placed, marked=marked), meta, found)
    event = st.plotly_chart(fig, key="map_chart", on_select="rerun", selection_mode=("box", "lasso"))
    rows = selected_rows(event)

    values = sorted(meta[color].dropna().astype(str).unique().tolist()) if meta[color].nunique() <= 50 else []
    if values:
        st.session_state["map_values"] = [v for v in st.session_state["map_values"] if v in values]
        chosen = c2.multiselect(f"…or select windows by {plain(color)}", values, key="map_values",
                                help="Used when nothing is selected on the map.")
        if not rows and chosen:
            rows = np.flatnonzero(meta[color].astype(str).isin(chosen).to_numpy()).tolist()

    if not rows:
        st.info("Select windows on the map (box or lasso) or by value to see them and export a cohort.")
        cohorts.cohort_section(idx, model)
        st.stop()
    selection = meta.iloc[rows]
    st.subheader(f"Selection: {len(rows):,} windows")
    shown_cols = [c for c in selection.columns if c not in {"map_x", "map_y"}]
    st.dataframe(selection[shown_cols], hide_index=True, height=260)

    first = np.asarray(rows[:MAX_WAVEFORMS])
    wf = idx.waveforms(first)
    items = [{"title": f"{selection.iloc[k].get('record', first[k])} @ {selection.iloc[k].get('start_s', 0):.0f} s",
              "ecg": wf["ecg"][k], "ppg": wf["ppg"][k], "fs": wf["fs_hz"]} for k in range(len(first))]
    st.plotly_chart(index_figures.stacked_windows_figure(items), key="map_selection_waveforms")
    if len(rows) > MAX_WAVEFORMS:
        st.caption(f"Waveforms of the first {MAX_WAVEFORMS} selected windows (normalised units).")

    include = st.checkbox("Include raw waveforms in the export (compact 62.5 Hz, normalised)", key="map_waveforms")
    def cohort_csv() -> bytes:
        # Built only when the button is pressed: a large selection is tens of MB of CSV.
        waves = None
        if include:
            all_wf = idx.waveforms(np.asarray(rows))
            waves = {"ecg": all_wf["ecg"], "ppg": all_wf["ppg"]}
        table = cohort_table(selection.drop(columns=["map_x", "map_y"], errors="ignore"),
                             index_fingerprints(idx, rows), waves)
        return to_csv_bytes(table)

    st.download_button(f"Export cohort CSV ({len(rows):,} windows{', with waveforms' if include else ''})",
                       cohort_csv, file_name="m2ae_cohort.csv", mime="text/csv", key="map_export",
                       on_click="ignore")

    c3, c4 = st.columns([3, 1])
    cohort_name = c3.text_input("Name for this selection as a cohort", key="cohort_name",
                                placeholder=cohorts.next_name())
    if c4.button("Save as cohort", key="cohort_save"):
        st.session_state["cohort_pick"] = cohorts.add_cohort(cohort_name or cohorts.next_name(), rows,
                                                             f"map selection ({len(rows):,} windows)")
    cohorts.cohort_section(idx, model)
