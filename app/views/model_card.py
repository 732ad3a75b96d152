"""Model card: what the checkpoint was trained on, its `m2ae eval` metrics, limits and privacy figures.

Every number on this page is read from the checkpoint's card (``model.card``), which ``m2ae eval
--write-card`` fills in; none is typed here.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from m2ae.model.card import head_labels_source, headline_rows
from m2ae_ui import state
from m2ae_ui.guard import page_guard
from m2ae_ui.tables import find_entries, flatten

PRIVACY_WORDS = ("privacy", "reident", "re_ident", "re-ident", "inversion")


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)) and len(v) > 12:
        return f"[{len(v)} values]"
    return "—" if v is None else str(v)


def _table(rows):
    # One text column: values of mixed types (numbers, names, lists) as the card holds them.
    return pd.DataFrame([(k, _fmt(v)) for k, v in rows], columns=["field", "value"])


st.title("Model card")
st.error("Demo model — not for clinical use. Outputs are research illustrations, never a diagnosis.",
         icon=":material/block:")
with page_guard("Model card"):
    model = state.require_model()
    if model is None:
        st.stop()
    card = dict(model.card or {})
    st.subheader(card.get("name", "M2AE"))
    if card.get("summary"):
        st.markdown(card["summary"])
    if card.get("disclaimer"):
        st.caption(card["disclaimer"])
    c = st.columns(3)
    c[0].metric("Weights version", model.version)
    c[1].metric("Parameters", f"{sum(p.numel() for p in model.net.parameters()):,}")
    c[2].metric("Device", str(model.device))

    tabs = st.tabs(["Training data", "Evaluation (m2ae eval)", "Task heads", "Privacy", "Limits", "Index"])
    with tabs[0]:
        for title, key in (("Data", "data"), ("Training run", "training"), ("Hardware", "hardware"),
                           ("Architecture", "model")):
            if card.get(key):
                st.markdown(f"**{title}**")
                st.dataframe(_table(flatten(card[key])), hide_index=True)
        if not any(card.get(k) for k in ("data", "training")):
            st.info("The card records no training data yet.")
    with tabs[1]:
        if card.get("eval"):
            st.caption(f"From `m2ae eval --write-card`, {card.get('eval_date', 'date not recorded')}. "
                       "Each figure names the data it was measured on.")
            ev = card["eval"]
            for data, s in (ev.get("summary") or {}).items():
                if "better" in s:
                    st.markdown(f"**{data}**: of {s.get('comparisons')} comparisons with a baseline, the model is "
                                f"better in {s['better']}, tied in {s.get('tie')} and worse in {s.get('worse')} "
                                "(95 % CI of the difference, resampling subjects or records).")
                else:  # cards written before the eval reported uncertainty
                    st.markdown(f"**{data}**: the model beats the baseline in {s.get('model_better')} of "
                                f"{s.get('comparisons')} comparisons.")
            if isinstance(ev.get("headline"), list) and ev["headline"]:
                st.markdown("**Headline: model beside each baseline, measured in the same run**")
                st.dataframe(pd.DataFrame(headline_rows(ev["headline"])), hide_index=True)
            for section, body in ev.items():
                if section in ("headline", "summary"):
                    continue
                with st.expander(section):
                    if isinstance(body, dict):
                        st.dataframe(_table(flatten(body)), hide_index=True)
                    else:
                        st.write(body)
        else:
            st.warning("This checkpoint has not been evaluated yet: run `m2ae eval --write-card`.")
    with tabs[2]:
        heads = card.get("heads") or {}
        if heads:
            rows = []
            for name, h in heads.items():
                rows.append({"head": name, "labels": head_labels_source(h), "kind": h.get("kind", ""),
                             "outputs": (", ".join(map(str, h.get("class_names") or h.get("classes") or []))
                                         or h.get("unit", "")),
                             "trained on": h.get("training_data", ""),
                             "held-out metric": ", ".join(f"{k}: {v:.3g}" if isinstance(v, float) else f"{k}: {v}"
                                                          for k, v in (h.get("metrics") or {}).items()),
                             "date": h.get("date", "")})
            st.dataframe(pd.DataFrame(rows), hide_index=True)
            for name, h in heads.items():
                if h.get("definition"):
                    st.markdown(f"- **{name}**: {h['definition']}")
        else:
            st.info(f"Heads in this checkpoint: {', '.join(model.heads) or 'none'}; the card describes none.")
    with tabs[3]:
        privacy = find_entries(card, PRIVACY_WORDS)
        if privacy:
            st.caption("How much a fingerprint reveals: re-identification from fingerprints and how well a "
                       "decoder trained on fingerprints alone rebuilds the raw window (from `m2ae eval`).")
            st.dataframe(_table(privacy), hide_index=True)
        else:
            st.warning("No privacy figures in the card yet (`m2ae eval --write-card` adds them).")
        st.markdown("Uploaded records stay in this server's memory for your session and are not written to its "
                    "disk by the app; exports happen only when you press a download button.")
    with tabs[4]:
        limits = card.get("limitations") or []
        for x in limits:
            st.markdown(f"- {x}")
        st.markdown("- Not a medical device; not validated for diagnosis, triage or monitoring.")
    with tabs[5]:
        idx, why = state.get_index()
        if idx is None:
            st.warning(f"No index loaded ({why}).")
        else:
            man = {k: v for k, v in idx.manifest.items() if k not in ("added",)}
            st.dataframe(_table(flatten(man)), hide_index=True)
