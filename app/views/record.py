"""Record: pick a sample or upload a record; waveforms with peaks, heart rate, PAT and quality."""
from __future__ import annotations

import numpy as np
import streamlit as st

import m2ae
from m2ae.contract import INPUT_MODE_NAMES
from m2ae.contract import QUALITY_THRESHOLD
from m2ae.io import uploads
from m2ae_ui import calipers, figures, review, state, warm
from m2ae_ui.guard import page_guard, short_message
from m2ae_ui.predictions import beat_intervals
from m2ae_ui.text import plain, plain_html, plain_list
from m2ae_ui.windows import (dropped_channels, escape_markdown, pat_context, quality_table, record_figures,
                             window_view)

ERROR_KEY = "record_error"
TICKS_KEY = "_familiarity_ticks"  # runs of _familiarity_pending in this session
PENDING_KEY = "pending_upload"      # {name: bytes} of an upload that needs a channel/rate mapping
DETECT, LEAVE_OUT = "(detect from file)", "(none: leave out)"


def _fmt(v: float, unit: str, digits: int = 0) -> str:
    return f"{v:.{digits}f} {unit}" if v is not None and np.isfinite(v) else "—"


# --- callbacks: run before the page, so the sidebar already shows the new record ---------------

def _open_sample() -> None:
    entries = {e.label: e for e in state.samples()}
    entry = entries.get(st.session_state.get("sample_choice"))
    if entry is None:
        return
    try:
        state.set_record(state.sample_source(entry))
        st.session_state.pop(ERROR_KEY, None)
    except m2ae.InputError as e:
        st.session_state[ERROR_KEY] = short_message(e)


def _open_upload() -> None:
    uploaded = st.session_state.get("upload") or []
    if not isinstance(uploaded, list):
        uploaded = [uploaded]
    if not uploaded:  # the upload was removed: drop its error, its mapping form and the record it gave
        st.session_state.pop(ERROR_KEY, None)
        st.session_state.pop(PENDING_KEY, None)
        state.forget_upload()
        return
    try:  # two different files with one name would replace each other: refused, record cleared
        files = uploads.upload_files((f.name, f.getvalue()) for f in uploaded)
    except m2ae.InputError as e:
        state.clear_record()
        st.session_state[ERROR_KEY] = short_message(e)
        st.session_state.pop(PENDING_KEY, None)
        return
    try:
        state.set_record(state.upload_source(files))
        st.session_state.pop(ERROR_KEY, None)
        st.session_state.pop(PENDING_KEY, None)
    except m2ae.InputError as e:
        # set_record cleared the previous record (no page shows it); offer the mapping form for this upload.
        st.session_state[ERROR_KEY] = short_message(e)
        st.session_state[PENDING_KEY] = files


def _apply_mapping() -> None:
    files = st.session_state.get(PENDING_KEY)
    if not files:
        return

    def pick(key):
        v = st.session_state.get(key)
        return None if v in (None, DETECT) else ("none" if v == LEAVE_OUT else v)

    fs = st.session_state.get("map_fs") or None
    try:
        state.set_record(state.upload_source(files, fs=fs, ecg=pick("map_ecg"), ppg=pick("map_ppg")))
        st.session_state.pop(ERROR_KEY, None)
        st.session_state.pop(PENDING_KEY, None)
    except m2ae.InputError as e:
        st.session_state[ERROR_KEY] = short_message(e)


def _set_calipers(record_key: str, t_s: np.ndarray, rows: dict) -> None:
    channel = st.session_state.get("caliper_channel", "ECG").lower()
    if rows.get(channel) is None:
        st.session_state["caliper_error"] = f"This record has no {channel.upper()} to put calipers on."
        return
    st.session_state.pop("caliper_error", None)
    times = [float(st.session_state.get("caliper_t1") or 0.0), float(st.session_state.get("caliper_t2") or 0.0)]
    calipers.store_points(st.session_state, record_key, calipers.points_at_times(times, channel, t_s, rows[channel]))


def _clear_calipers(record_key: str) -> None:
    calipers.store_points(st.session_state, record_key, [])
    st.session_state.pop("caliper_error", None)


def _take_clicks(record_key: str) -> None:
    # A click on the chart reruns the page with the selection under the chart's key: turn it into a caliper
    # point before drawing, once (the selection stays there on later reruns), with the last run's trace map.
    sel = st.session_state.get("record_waveforms")
    sig = calipers.selection_signature(sel)
    if not sig or st.session_state.get(calipers.SEEN_KEY) == sig:
        return
    st.session_state[calipers.SEEN_KEY] = sig
    clicked = calipers.points_from_selection(sel, st.session_state.get("_caliper_curves") or {})
    if clicked:
        kept = calipers.stored_points(st.session_state, record_key)
        calipers.store_points(st.session_state, record_key, calipers.add_clicks(kept, clicked))


def _measurements(res) -> None:
    """The window's interval measurements beside its quality (withheld values say why)."""
    from m2ae.signal.intervals import interval_rows

    st.markdown("**Measurements in this window** (median beat; IQR and count over single beats)")
    m1, m2 = st.columns([3, 1])
    rows = interval_rows(res)
    m1.table({"measurement": [r[0] for r in rows], "median (IQR)": [r[1] for r in rows],
              "beats / why not measured": [r[2] for r in rows]})
    m2.caption("Quality of these measurements")
    m2.markdown(f"ECG: {'measured' if res.ecg_reason is None else 'withheld — ' + res.ecg_reason}"
                + (f" (median beat of {res.ecg_beats_used} of {res.ecg_beats_offered} beats, r = "
                   f"{res.ecg_template_corr:.2f})" if res.ecg_beats_used else "") + "  \n"
                f"PPG: {'measured' if res.ppg_reason is None else 'withheld — ' + res.ppg_reason}")
    m2.caption("Markers on the ECG: P onset, QRS onset/offset, T end; on the PPG: pulse foot. QTc: Bazett QT/√RR, "
               "Fridericia QT/∛RR. Automatic delineation, not a cardiologist's reading.")


def _caliper_controls(record_key: str, view, rows: dict, t0: float, t1: float) -> None:
    kept = calipers.stored_points(st.session_state, record_key)
    if len(kept) == 2:
        st.markdown(f"**Calipers:** {calipers.caliper_reading(kept[0], kept[1], view.units).sentence()} "
                    f"(at {kept[0].t_s:.3f} s and {kept[1].t_s:.3f} s, {kept[0].channel.upper()}"
                    f"{'' if kept[0].channel == kept[1].channel else ' / ' + kept[1].channel.upper()})")
        if len(calipers.in_window(kept, t0, t1)) < 2:
            st.caption("The calipers lie outside this window, so they are not drawn here.")
    elif kept:
        st.caption(f"Calipers: first point at {kept[0].t_s:.3f} s ({kept[0].channel.upper()}); click a second point.")
    else:
        st.caption("Calipers: click two points on the ECG or PPG trace, or type two times below.")
    with st.expander("Calipers by time (s from the record's start)"):
        c = st.columns([1, 1, 1, 1, 1])
        c[0].number_input("First point (s)", value=float(t0 + 1.0), step=0.01, format="%.3f", key="caliper_t1")
        c[1].number_input("Second point (s)", value=float(t0 + 2.0), step=0.01, format="%.3f", key="caliper_t2")
        c[2].radio("Channel", ["ECG", "PPG"], key="caliper_channel", horizontal=True)
        c[3].button("Set calipers", key="caliper_set", on_click=_set_calipers, args=(record_key, view.t_s, rows))
        c[4].button("Clear calipers", key="caliper_clear", on_click=_clear_calipers, args=(record_key,),
                    disabled=not kept)
        if st.session_state.get("caliper_error"):
            st.error(st.session_state["caliper_error"])


def _load_model_and_index() -> None:
    state.get_model()
    state.get_index()


@st.fragment(run_every=1.0)
def _familiarity_pending() -> None:
    # Start loading torch only at the second tick (~2 s after the page's run), when the browser
    # has drawn the charts: loading it while plotly.js draws slows both down on a small machine.
    # The first call is the page's own run, not a tick.
    ticks = st.session_state.get(TICKS_KEY, 0)
    st.session_state[TICKS_KEY] = ticks + 1
    if ticks >= 2:
        warm.start_model(_load_model_and_index)
    if not warm.model_pending():
        st.rerun()  # the whole page again, now with the familiarity line
    st.caption("Familiarity check: the model is loading in the background…")


# --- page --------------------------------------------------------------------------------------

st.title("Record")

with page_guard("Record: choosing a record"):
    tab_sample, tab_upload = st.tabs(["Sample records", "Upload a record"])
    with tab_sample:
        entries = state.samples()
        if not entries:
            st.warning(f"No sample records found in {state.sample_dir()} (manifest.json missing).")
        else:
            labels = [e.label for e in entries]
            cur = st.session_state.get(state.RECORD_KEY)
            if "sample_choice" not in st.session_state and cur is not None and cur.kind == "sample":
                names = [e.name for e in entries]
                if cur.name in names:
                    st.session_state["sample_choice"] = labels[names.index(cur.name)]
            st.selectbox("Sample record", labels, key="sample_choice", on_change=_open_sample,
                         help="Small records made by the project (see sample_data/manifest.json).")
            if cur is None or cur.kind == "upload":  # also after a refused upload cleared the record
                st.button("Open the selected sample", on_click=_open_sample)
    with tab_upload:
        st.file_uploader(
            "ECG and/or PPG record — for WFDB select the .hea and its .dat/.mat together",
            type=list(uploads.UPLOAD_TYPES), accept_multiple_files=True, key="upload", on_change=_open_upload,
            help="WFDB (.hea + .dat/.mat), CSV/TSV, NPZ/NPY, EDF/EDF+, VitalDB .vital. "
                 "Uploads stay in this server's memory and are never written to its disk by the app.")
    if st.session_state.get(ERROR_KEY):
        st.error(plain(st.session_state[ERROR_KEY], limit=None))
    pending = st.session_state.get(PENDING_KEY)
    if pending:
        channels = uploads.list_channels(pending)
        with st.form("mapping"):
            st.markdown(f"**Tell the reader how to read {plain_list(sorted(pending))}**")
            c1, c2, c3 = st.columns(3)
            options = [DETECT, LEAVE_OUT, *channels]
            c1.selectbox("ECG column / channel", options, key="map_ecg")
            c2.selectbox("PPG column / channel", options, key="map_ppg")
            c3.number_input("Sampling rate (Hz, 0 = from the file)", min_value=0.0, max_value=10000.0,
                            value=0.0, step=1.0, key="map_fs")
            st.form_submit_button("Read with this mapping", on_click=_apply_mapping)

with page_guard("Record"):
    cur = state.current()
    if cur is None:
        st.info("Pick a sample record or upload one to begin.")
        st.stop()
    src, rec, win = cur
    i = state.window_index(win)
    view = window_view(win, i)
    summary = record_figures(win)
    lead = review.model_lead(rec, win)
    events = review.events(src, rec)

    st.subheader(plain(src.name))
    st.caption(" · ".join(plain(x) for x in (src.description, str(rec.meta.get("source", ""))) if x))
    if rec.meta.get("start_time"):
        st.caption(f"Recording started {plain(rec.meta['start_time'])}; times below are seconds from that start.")
    known = rec.meta.get("labels") or src.info.get("labels") or {}
    shown = {k: v for k, v in known.items() if k in ("rhythm_name", "hypertension", "age", "sex")}
    if shown:
        st.caption("Known labels (from the record's source, not the model): "
                   + ", ".join(f"{plain(k.replace('_name', ''))} {plain(v)}" for k, v in shown.items()))
    for note in dropped_channels(win):
        st.warning(escape_markdown(note), icon=":material/report:")
    c = st.columns(6)
    c[0].metric("Duration", f"{rec.duration_s:.0f} s")
    c[1].metric("Sampling rate", f"{rec.fs:g} Hz", help="Resampled to 125 Hz for the model")
    c[2].metric("Windows (10 s)", summary["n_windows"],
                delta=f"{summary['n_low_quality']} low quality" if summary["n_low_quality"] else None,
                delta_color="inverse")
    c[3].metric("Heart rate (ECG)", _fmt(summary["hr_ecg_bpm"], "bpm"), help="Median over windows, from R-peaks")
    c[4].metric("Heart rate (PPG)", _fmt(summary["hr_ppg_bpm"], "bpm"), help="Median over windows, from pulse peaks")
    c[5].metric("Pulse arrival time", _fmt(summary["pat_ms"], "ms"),
                help=" ".join(x for x in ("Median R-peak → pulse-peak delay.",
                                          pat_context(summary["pat_ms"], summary["hr_ecg_bpm"])) if x))

    use = "both" if len(rec.modalities) == 2 else rec.modalities[0]
    # The familiarity check needs the model and the index. Under `m2ae app` they load in the
    # background after the page is drawn (see _familiarity_pending): the record shows at once.
    if warm.model_pending():
        fam = None
        _familiarity_pending()
    else:
        fam = state.record_familiarity(src, rec, win, use)
    if fam is not None and fam.get("calibrated"):
        from m2ae.index.familiarity import summary_text  # the index package (faiss) only once it is used

        text = f"Familiarity ({INPUT_MODE_NAMES[use]}): {summary_text(fam)}."
        if fam["record_unfamiliar"]:
            st.warning(f"**Unfamiliar record.** {text} The demo model was trained on simulated data; treat its "
                       "outputs for this record as unreliable.", icon=":material/report:")
        else:
            st.caption(text)
    st.markdown(f"**Window {i + 1} of {len(win)}** — {view.t_s[0]:.0f}–{view.t_s[-1] + 1 / win.fs:.0f} s")
    review.event_note(win, events, i)
    w = st.columns(4)
    w[0].metric("Heart rate", _fmt(view.hr_bpm, "bpm"))
    pat_note = pat_context(view.pat_ms, view.hr_bpm)
    w[1].metric("PAT", _fmt(view.pat_ms, "ms"), help=pat_note)
    w[2].metric("ECG quality", _fmt(view.ecg_quality, "", 2))
    w[3].metric("PPG quality", _fmt(view.ppg_quality, "", 2))
    beatless = [m.upper() for m in ("ecg", "ppg") if getattr(view, f"{m}_no_beats")]
    if beatless:
        st.info(f"No beats detected in this window's {' or '.join(beatless)}: its heart rate is left blank "
                "(absent, not 0 bpm)." + (" In an ECG that is what asystole looks like." if view.ecg_no_beats else ""))
    if pat_note:
        st.caption(pat_note)
    measured, beats_from = beat_intervals(view)
    st.caption(f"Beat intervals ({beats_from}): {measured.sentence()}.")
    res = calipers.window_measurements(st.session_state, src.key, win, i)
    _measurements(res)
    if view.low_quality:
        st.warning(f"This window's signal quality is below {QUALITY_THRESHOLD:g}: peaks, heart rate and model "
                   "outputs for it are less reliable.", icon=":material/signal_cellular_connected_no_internet_0_bar:")

    reconstructed = {}
    missing = [m for m in ("ecg", "ppg") if getattr(view, m) is None]
    if missing:
        model, why = state.get_model()
        if model is None:
            st.warning(f"{missing[0].upper()} is absent and the model is unavailable to reconstruct it: {why}")
        else:
            mode = "ppg_from_ecg" if missing[0] == "ppg" else "ecg_from_ppg"
            out = state.reconstruction(src.key, state.model_version(model), i, 1.0, mode, 0, model, win)
            reconstructed[missing[0]] = out[missing[0]]["prediction"][0]
            st.info(f"This record has no {missing[0].upper()}: the dashed trace is the model's reconstruction "
                    f"from the {('ECG' if missing[0] == 'ppg' else 'PPG')} (normalised units), not a measurement.")
    ecg_rows = review.lead_switch(rec, win, i, "record_lead", view.ecg) if view.ecg is not None else None
    if ecg_rows:  # lead names come from the file: plotly titles and legends take HTML
        ecg_rows = [(plain_html(name), y) for name, y in ecg_rows]
    fig = figures.waveform_figure(view, reconstructed, lead=plain_html(lead), ecg_rows=ecg_rows,
                                  events=review.window_events(win, events, i))
    t0, t1 = float(view.t_s[0]), float(view.t_s[-1])
    caliper_rows = {"ecg": ecg_rows[0][1] if ecg_rows else view.ecg, "ppg": view.ppg}
    _take_clicks(src.key)
    st.session_state["_caliper_curves"] = figures.add_measurement_layers(
        fig, view, calipers.marker_rows(res), calipers.in_window(calipers.stored_points(st.session_state, src.key),
                                                                  t0, t1),
        caliper_rows["ecg"], ppg_row=(len(ecg_rows) if ecg_rows else 1) + 1)
    st.plotly_chart(fig, key="record_waveforms", on_select="rerun", selection_mode=("points",))
    _caliper_controls(src.key, view, caliper_rows, t0, t1)
    if view.units.get("ecg") != "mV" and view.ecg is not None:
        st.caption("ECG amplitude units are not known for this record, so the mm/mV paper grid is not drawn.")

    st.markdown("**Signal quality per window**")
    table = quality_table(win)
    st.plotly_chart(figures.quality_figure(table, i, QUALITY_THRESHOLD, marked=review.marked_windows(win, events)),
                    key="record_quality")
    # A toggle rather than a collapsed expander: Streamlit draws an expander's content even when
    # closed, and the table widget's code (~1.3 MB of JS) would load with the first page.
    if st.toggle("Show the per-window table", key="record_show_table"):
        st.dataframe(table, hide_index=True)
    # The windows' notes: the reader's and what preprocessing did (dropped channels, gaps, resampling).
    notes = win.meta.get("notes") or rec.meta.get("notes") or []
    if notes:
        with st.expander("Reading notes"):
            for n in notes:
                st.markdown(f"- {escape_markdown(n)}")
