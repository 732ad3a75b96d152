"""Predictions & explanations: every head's calibrated output and Captum attributions per modality."""
from __future__ import annotations

import numpy as np
import streamlit as st

from m2ae.model.card import LABEL_SOURCES, head_labels_source
from m2ae_ui import figures, review, state
from m2ae_ui.guard import page_guard
from m2ae_ui.predictions import beat_intervals, head_summary, headline, rhythm_interval_warning
from m2ae_ui.text import plain_html
from m2ae_ui.windows import window_view

METHODS = {"Integrated Gradients": "integrated_gradients", "Occlusion (0.2-s patches)": "occlusion"}
PREDICTED = "(the predicted class)"

st.title("Predictions & explanations")
with page_guard("Predictions & explanations"):
    src, rec, win, i = state.require_record()
    model = state.require_model()
    if model is None:
        st.stop()
    version = state.model_version(model)
    choices = state.input_choices(rec)   # radio label -> input mode
    uses = list(choices)
    state.keep(pred_use=uses[0])
    if st.session_state["pred_use"] not in uses:
        st.session_state["pred_use"] = uses[0]
    use_label = st.radio("Model input", uses, key="pred_use", horizontal=True)
    use = choices[use_label]
    preds = state.predictions(src.key, version, use, model, win)
    review.model_output_warnings(src, rec, win, i, use)
    events = review.events(src, rec)
    review.event_note(win, events, i)
    if not preds:
        st.warning("This checkpoint has no task heads.")
        st.stop()
    st.caption("Probabilities are temperature-calibrated on held-out data; intervals are calibrated prediction "
               "intervals. They describe the demo model, not a diagnosis.")

    heads = list(preds)
    head_cards = model.card.get("heads") or {}
    per_row = 3
    for start in range(0, len(heads), per_row):
        cols = st.columns(per_row)
        for col, name in zip(cols, heads[start:start + per_row]):
            h = head_summary(preds[name], i)
            box = col.container(border=True)
            # real vs simulated labels beside every output: a head that learnt from the simulator
            # says nothing certain about a real patient
            box.caption(f"{name} · {LABEL_SOURCES[head_labels_source(head_cards.get(name))]}")
            if h["uncertain"]:
                # a coin flip or a window outside the head's knowledge is not an answer: no class, no value
                box.markdown(f"**{headline(h)}**")
                box.caption(h["why"][:1].upper() + h["why"][1:] + ": not shown as an answer.")
            elif h["kind"] == "class":
                box.markdown(f"**{h['label']}**")
                box.progress(min(max(h["probability"], 0.0), 1.0),
                             text=f"calibrated probability {h['probability']:.2f}")
            else:
                unit = f" {h['unit']}" if h["unit"] else ""
                box.markdown(f"**{h['value']:.1f}{unit}**")
                box.caption(f"{h['level']:.0%} prediction interval {h['low']:.1f}–{h['high']:.1f}{unit}")

    view = window_view(win, i)
    measured, beats_from = beat_intervals(view)
    st.caption(f"Measured beat intervals ({beats_from}), a model-free second opinion: {measured.sentence()}.")
    interval_warning = rhythm_interval_warning(preds.get("rhythm"), view)
    if interval_warning:
        st.warning(interval_warning, icon=":material/ecg_heart:")

    st.subheader("Why: attributions")
    state.keep(pred_head=heads[0], pred_method=next(iter(METHODS)))
    if st.session_state["pred_head"] not in heads:
        st.session_state["pred_head"] = heads[0]
    c1, c2, c3 = st.columns(3)
    head = c1.selectbox("Head", heads, key="pred_head")
    summary = head_summary(preds[head], i)
    target = None
    if summary["kind"] == "class":
        table = summary["table"]
        options = [PREDICTED, *table["name"].tolist()]
        cls = c2.selectbox("Class to explain", options, key=f"pred_class_{head}")
        if cls != PREDICTED:
            target = table.loc[table["name"] == cls, "class"].iloc[0]
        with st.expander(f"{head}: all class probabilities (window {i + 1})"):
            st.dataframe(table, hide_index=True,
                         column_config={"probability": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0,
                                                                                      format="%.3f")})
    else:
        c2.markdown(f"Explaining the predicted value ({summary['unit'] or 'value'}).")
    method = METHODS[c3.selectbox("Method", list(METHODS), key="pred_method")]

    att = state.explanation(src.key, version, i, head, target, method, use, model, win)
    signals = {m: (getattr(view, m) if m in (("ecg", "ppg") if use == "both" else (use,)) else None)
               for m in ("ecg", "ppg")}
    attributions = {"ecg": None if att.ecg is None else att.ecg[0], "ppg": None if att.ppg is None else att.ppg[0]}
    st.plotly_chart(figures.attribution_figure(view.t_s, signals, attributions, view.units,
                                               events=review.window_events(win, events, i),
                                               lead=plain_html(review.model_lead(rec, win))), key="pred_attr")
    explained = (att.classes[int(att.target[0])] if att.classes is not None and att.target is not None
                 else head)
    st.caption(f"{'Integrated Gradients' if method == 'integrated_gradients' else 'Occlusion'} for "
               f"{head} → {explained}. Red pushes the output up, blue down (baseline: a flat line at rest).")
    share = st.columns(3)
    for k, m in enumerate(("ecg", "ppg")):
        s = att.share.get(m)
        share[k].metric(f"Share of evidence: {m.upper()}",
                        f"{float(np.asarray(s)[0]):.0%}" if s is not None and np.isfinite(np.asarray(s)[0]) else "—")
    if att.convergence_delta is not None:
        share[2].metric("IG convergence error", f"{float(np.abs(att.convergence_delta[0])):.2g}",
                        help="Sum of attributions minus (output − baseline output): near 0 means complete.")
