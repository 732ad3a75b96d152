"""Similar patients: FAISS top-k neighbours of the current window, their waveforms, the label make-up."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from m2ae.index.neighbours import (cohort_table, index_fingerprints, is_numeric_label, knn_estimate, knn_vote,
                                   label_head_pairs, neighbour_filters, vote_columns)
from m2ae.index.linkability import SCORE_MEANING, calibration_note, record_linkability, risk_metrics
from m2ae_ui import beats, index_figures, review, state
from m2ae_ui.guard import page_guard
from m2ae_ui.predictions import head_summary, headline
from m2ae_ui.tables import to_csv_bytes
from m2ae_ui.text import plain

REQUIRE = {"any": None, "ECG recorded": "ecg", "PPG recorded": "ppg", "both recorded": "both"}


def _label_summary(col, idx, hits, preds, pairs, i) -> None:
    """One label's make-up among the neighbours (vote or weighted mean), beside the head's output."""
    name = col[len("label_"):].removesuffix("_name")
    numeric = is_numeric_label(idx.metadata[col])
    if numeric:
        est = knn_estimate(hits[col].tolist(), hits["score"].tolist())
        if not est["n"]:
            return
        st.markdown(f"*{plain(name)}* — neighbours' similarity-weighted mean: **{est['mean']:.1f}** "
                    f"(sd {est['sd']:.1f}, n = {est['n']})")
    else:
        vote = knn_vote(hits[col].tolist(), hits["score"].tolist())
        if vote.empty:
            return
        st.markdown(f"*{plain(name)}* — kNN vote: **{plain(vote.iloc[0]['label'])}** "
                    f"({vote.iloc[0]['weighted_share']:.0%} of similarity-weighted neighbours)")
    if col in pairs:
        h = head_summary(preds[pairs[col]], i)
        if h["uncertain"]:
            st.caption(f"Head prediction: {headline(h)} ({h['why']})")
        elif h["kind"] == "class":
            st.caption(f"Head prediction: {h['label']} (calibrated p = {h['probability']:.2f})")
        else:
            st.caption(f"Head prediction: {h['value']:.1f} {h['unit']} "
                       f"({h['level']:.0%} interval {h['low']:.1f}–{h['high']:.1f})")
    if not numeric:
        st.dataframe(vote, hide_index=True,
                     column_config={"share": st.column_config.NumberColumn(format="%.2f"),
                                    "weighted_share": st.column_config.NumberColumn(format="%.2f")})


st.title("Similar patients")
with page_guard("Similar patients"):
    src, rec, win, i = state.require_record()
    model = state.require_model()
    idx = state.require_index()
    if model is None or idx is None:
        st.stop()
    version = state.model_version(model)
    choices = state.input_choices(rec)   # radio label -> input mode
    uses = list(choices)
    state.keep(sim_k=10, sim_use=uses[0], sim_exclude=True, sim_quality=0.0, sim_require="any")
    if st.session_state["sim_use"] not in uses:
        st.session_state["sim_use"] = uses[0]
    c = st.columns(5)
    k = c[0].slider("Neighbours (k)", 1, 50, key="sim_k")
    use_label = c[1].selectbox("Query with", uses, key="sim_use")
    exclude = c[2].checkbox("Exclude the same subject", key="sim_exclude",
                            help="Leave out windows of this record's subject (when the index knows it).")
    min_q = c[3].slider("Min. neighbour quality", 0.0, 1.0, step=0.05, key="sim_quality")
    require = c[4].selectbox("Neighbour modalities", list(REQUIRE), key="sim_require")

    review.model_output_warnings(src, rec, win, i, choices[use_label])
    events = review.events(src, rec)
    review.event_note(win, events, i)
    filters = neighbour_filters(idx.metadata.columns, min_q, REQUIRE[require])
    hits = state.neighbours(model, idx, src, rec, win, i, choices[use_label], k=int(k), exclude_own=exclude,
                            filters=filters or None)
    if hits.attrs.get("note"):
        st.info(hits.attrs["note"])
    if hits.empty:
        st.warning("No indexed window passes these filters.")
        st.stop()

    labels = idx.label_columns()
    # labels these neighbours carry first (real ICU windows have alarm labels, no simulated ones)
    known = sorted((c for c in labels if c in hits), key=lambda c: bool(hits[c].isna().all()))
    show = ["rank", "score", *[c for c in ("record", "subject_id", "start_s", "source") if c in hits], *known]
    table = hits[[c for c in show if c in hits]].rename(columns={"score": "similarity"})
    st.caption(f"Window {i + 1} of {plain(src.name)}, fingerprinted from {use_label}; "
               "similarity = cosine of fingerprints.")
    st.dataframe(table, hide_index=True, height=min(420, 40 + 35 * len(table)),
                 column_config={"similarity": st.column_config.ProgressColumn("similarity", min_value=0.0,
                                                                              max_value=1.0, format="%.3f")})

    left, right = st.columns([3, 2])
    with left:
        options = [f"#{int(r)}" for r in hits["rank"]]
        st.session_state["sim_show"] = [o for o in st.session_state.get("sim_show", options[:4]) if o in options]
        chosen = st.multiselect("Neighbours to show beside the query", options, key="sim_show")
        picked = hits[[f"#{int(r)}" in chosen for r in hits["rank"]]]
        wf = idx.waveforms(picked["id"].to_numpy()) if len(picked) else None
        t0 = float(win.starts_s[i])
        items = [{"title": "query (this window)", "query": True, "fs": win.fs,
                  "ecg": None if win.ecg is None else win.ecg[i], "ppg": None if win.ppg is None else win.ppg[i],
                  "events": [{**e, "time_s": e["time_s"] - t0} for e in review.window_events(win, events, i)]}]
        for j in range(len(picked)):
            row = picked.iloc[j]
            items.append({"title": f"#{int(row['rank'])} · sim {row['score']:.2f} · {row.get('record', '')}",
                          "ecg": wf["ecg"][j], "ppg": wf["ppg"][j], "fs": wf["fs_hz"]})
        st.plotly_chart(index_figures.stacked_windows_figure(items), key="sim_waveforms")
        if len(picked):
            aligned = beats.aligned_beats(win, i, idx, picked["id"].to_numpy())
            if aligned:
                names = {int(r["id"]): f"#{int(r['rank'])}" for _, r in picked.iterrows()}
                st.markdown("**Aligned beats**")
                st.plotly_chart(beats.beats_figure(aligned, rec.meta.get("units") or {}, names), key="sim_beats")
                st.caption(beats.SCALE_NOTE)
    with right:
        st.markdown("**Label make-up of the neighbourhood**")
        preds = state.predictions(src.key, version, choices[use_label], model, win)
        pairs = label_head_pairs(labels, preds)
        cols = vote_columns(labels)
        with_head = [c for c in cols if c in pairs]
        others = [c for c in cols if c not in pairs]
        for col in with_head:
            _label_summary(col, idx, hits, preds, pairs, i)
        if others:
            with st.expander(f"Other labels of the neighbours ({len(others)})"):
                for col in others:
                    _label_summary(col, idx, hits, preds, pairs, i)

    st.markdown("**Re-identification risk of this record**")
    fps = state.fingerprints(src.key, version, choices[use_label], model, win)
    risk = record_linkability(idx, fps, subject_id=state.record_subject(src, rec),
                              record=rec.meta.get("record_id") or None)
    metrics = risk_metrics(risk)
    if metrics:
        for col, (label, value) in zip(st.columns(len(metrics)), metrics):
            col.metric(label, value, help=SCORE_MEANING if label == "Linkability score" else None)
    st.markdown(plain(risk["sentence"], limit=None))
    st.caption(plain(f"{calibration_note(risk['calibration'])} Fingerprints from {use_label}.", limit=None))

    def neighbours_csv() -> bytes:
        export = cohort_table(hits.drop(columns=["map_x", "map_y"], errors="ignore"),
                              index_fingerprints(idx, hits["id"].to_numpy()))
        query = pd.DataFrame({"query_record": [src.name] * len(export), "query_window": i,
                              "query_start_s": float(win.starts_s[i])})
        return to_csv_bytes(pd.concat([query, export], axis=1))

    st.download_button("Export neighbours CSV (metadata + fingerprints)", neighbours_csv,
                       file_name="m2ae_neighbours.csv", mime="text/csv", key="sim_export", on_click="ignore")
