"""Cohorts and map search on the Fingerprint map page (issue 13 items 5 and 7).

A cohort is a named set of index window ids kept in ``st.session_state["cohorts"]`` (several may
exist): made from a box/lasso selection or a ``--where`` predicate (``m2ae.index.search.where_mask``).
What it holds comes from ``m2ae.index.cohort``: label make-up against the whole index, median beats,
attributions averaged over a bounded seeded sample (on a button: Captum is slow), and CSV / Parquet /
WFDB-zip downloads. Map search (``find_windows``) highlights matches and zooms to them; maps over
``DENSITY_ABOVE`` points get density contours (``density_grid``).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

import m2ae
from m2ae.index import cohort as lib
from m2ae.index.search import density_grid, find_windows, needs_density
from m2ae_ui.text import plain

COHORTS_KEY = "cohorts"
ATTR_KEY = "cohort_attributions"
MAX_NAME = 60
ATTR_WINDOWS = lib.MAX_ATTRIBUTION_WINDOWS  # windows explained per cohort (seeded sample); tests lower it
HIGHLIGHT = "#d62728"


def cohorts() -> dict[str, dict[str, Any]]:
    """The session's cohorts: {name: {"ids": int64 array, "how": how it was made}} (insertion order)."""
    return st.session_state.setdefault(COHORTS_KEY, {})


def add_cohort(name: str, ids: Any, how: str) -> str:
    """Keep ``ids`` as cohort ``name`` (trimmed; a taken name gets a number); returns the name used."""
    name = " ".join(str(name or "").split())[:MAX_NAME] or "cohort"
    store = cohorts()
    base, n = name, 2
    while name in store:
        name, n = f"{base} ({n})", n + 1
    store[name] = {"ids": np.asarray(ids, dtype=np.int64), "how": how}
    return name


def next_name() -> str:
    return f"cohort {len(cohorts()) + 1}"


# --- map search and density ------------------------------------------------------------------------

def search_map(meta, query: str) -> dict[str, Any] | None:
    """``find_windows`` for a non-empty query (its InputError reaches the caller), None for no query."""
    return find_windows(meta, query) if (query or "").strip() else None


def decorate_map(fig: go.Figure, meta, found: dict[str, Any] | None) -> go.Figure:
    """Density contours under a map over ``DENSITY_ABOVE`` points; search matches ringed and zoomed to."""
    if needs_density(len(meta)):
        grid = density_grid(meta[["map_x", "map_y"]].to_numpy(float))
        lv = grid["levels"]
        contours = dict(coloring="none", showlabels=False)
        if len(lv) > 1:
            contours.update(start=float(lv[0]), end=float(lv[-1]), size=float(np.diff(lv).mean()))
        fig.add_trace(go.Contour(x=grid["x"], y=grid["y"], z=grid["z"], contours=contours, name="density",
                                 line=dict(color="rgba(60,60,60,0.55)", width=1), showscale=False,
                                 hoverinfo="skip", showlegend=True))
    if found and found["n"]:
        xy = meta.iloc[found["ids"]][["map_x", "map_y"]].to_numpy(float)
        fig.add_trace(go.Scatter(x=xy[:, 0], y=xy[:, 1], mode="markers", name=f"search: {found['n']} found",
                                 hoverinfo="skip", marker=dict(size=12, color="rgba(0,0,0,0)",
                                                               line=dict(color=HIGHLIGHT, width=2))))
        x0, x1, y0, y1 = found["bounds"]
        px, py = max(0.1 * (x1 - x0), 0.5), max(0.1 * (y1 - y0), 0.5)
        fig.update_xaxes(range=[x0 - px, x1 + px])
        fig.update_yaxes(range=[y0 - py, y1 + py])
    return fig


# --- one cohort's contents -------------------------------------------------------------------------

def beats_figure(beats: dict[str, Any]) -> go.Figure:
    """The cohort's median ECG beat and PPG pulse with their 25th–75th percentile band (normalised units)."""
    mods = [m for m in ("ecg", "ppg") if beats.get(m)]
    fig = make_subplots(rows=1, cols=max(len(mods), 1),
                        subplot_titles=[f"{m.upper()} median ({beats[m]['n_windows']} windows, "
                                        f"{beats[m]['n_beats']} beats)" for m in mods])
    for c, m in enumerate(mods, start=1):
        b = beats[m]
        t = np.asarray(b["t_s"]) * 1000.0
        fig.add_trace(go.Scatter(x=np.r_[t, t[::-1]], y=np.r_[b["q75"], b["q25"][::-1]], fill="toself",
                                 line=dict(width=0), fillcolor="rgba(31,119,180,0.2)", name=f"{m.upper()} 25–75%",
                                 hoverinfo="skip"), row=1, col=c)
        fig.add_trace(go.Scatter(x=t, y=b["median"], mode="lines", name=f"{m.upper()} median",
                                 line=dict(width=2.5, color="#1f77b4")), row=1, col=c)
        fig.update_xaxes(title_text="ms from the R-peak" if m == "ecg" else "ms from the systolic peak", row=1, col=c)
        fig.update_yaxes(title_text="normalised units", row=1, col=c)
    fig.update_layout(height=320, margin=dict(l=40, r=10, t=40, b=40))
    return fig


def attributions_figure(att: dict[str, Any]) -> go.Figure:
    """Mean |attribution| per sample over the cohort's sampled windows, one line per modality."""
    fig = go.Figure()
    for m in ("ecg", "ppg"):
        y = att.get(f"{m}_mean_abs")
        if y is not None:
            fig.add_trace(go.Scatter(x=att["t_s"], y=y, mode="lines", name=f"{m.upper()} mean |attribution|"))
    fig.update_layout(height=280, margin=dict(l=40, r=10, t=30, b=40), xaxis_title="s in the window",
                      yaxis_title="mean |attribution|")
    return fig


def _cohort_makeup(meta, ids: np.ndarray) -> None:
    makeup = lib.label_makeup(meta, ids)
    if makeup.empty:
        st.caption("No label is known for these windows.")
        return
    shown = makeup.dropna(axis=1, how="all")
    st.dataframe(shown, hide_index=True, key="cohort_makeup",
                 column_config={c: st.column_config.NumberColumn(format="%.2f")
                                for c in ("cohort_share", "index_share", "enrichment", "cohort_mean",
                                          "cohort_sd", "index_mean", "index_sd") if c in shown})


def _cohort_attributions(model, idx, name: str, ids: np.ndarray) -> None:
    heads = list(getattr(model, "heads", {}) or {}) if model is not None else []
    if not heads:
        st.caption("Averaged attributions need the model and its heads.")
        return
    c1, c2 = st.columns([2, 1])
    head = c1.selectbox("Head to explain", heads, key="cohort_head")
    n = min(len(ids), ATTR_WINDOWS)
    results = st.session_state.setdefault(ATTR_KEY, {})
    if c2.button(f"Average attributions over {n} windows", key="cohort_attr",
                 help="Integrated gradients on a seeded sample of the cohort's windows: slow on a CPU."):
        with st.spinner(f"Explaining {n} windows…"):
            results[(name, head)] = lib.cohort_attributions(model, idx, ids, head, explain_fn=m2ae.explain,
                                                               max_windows=ATTR_WINDOWS)
    att = results.get((name, head))
    if att is None:
        return
    share = ", ".join(f"{m.upper()} {v:.0%}" for m, v in att["share"].items() if np.isfinite(v))
    st.caption(f"{plain(att['note'])}. Share of evidence: {share or 'n/a'}.")
    st.plotly_chart(attributions_figure(att), key="cohort_attr_chart")


def _downloads(idx, name: str, ids: np.ndarray) -> None:
    stem = "m2ae_cohort_" + "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)[:MAX_NAME]
    c = st.columns(3)
    c[0].download_button("CSV (metadata + fingerprints)", lambda: lib.cohort_csv(lib.cohort_frame(idx, ids)),
                         file_name=f"{stem}.csv", mime="text/csv", key="cohort_csv", on_click="ignore")
    c[1].download_button("Parquet (metadata + fingerprints)",
                         lambda: lib.cohort_parquet(lib.cohort_frame(idx, ids)), file_name=f"{stem}.parquet",
                         mime="application/octet-stream", key="cohort_parquet", on_click="ignore")
    c[2].download_button("WFDB zip (display waveforms, 62.5 Hz)", lambda: lib.cohort_wfdb_zip(idx, ids),
                         file_name=f"{stem}_wfdb.zip", mime="application/zip", key="cohort_wfdb",
                         on_click="ignore")


def cohort_section(idx, model) -> None:
    """Make cohorts from a ``--where`` filter, and show/export/delete the session's cohorts."""
    st.subheader("Cohorts")
    with st.form("cohort_where_form", border=False):
        c1, c2 = st.columns([3, 1])
        where = c1.text_input("Cohort from a metadata filter (`--where` language)", key="cohort_where",
                              placeholder='label.rhythm == "AF" and source contains "sim"')
        if c2.form_submit_button("Make cohort") and where.strip():
            ids = lib.select_cohort(idx, where=where)
            if not len(ids):
                st.warning("No indexed window matches this filter.")
            else:
                st.session_state["cohort_pick"] = add_cohort(f"where {where.strip()}", ids, f"filter: {where.strip()}")
    store = cohorts()
    if not store:
        st.caption("No cohort yet: select windows on the map and save them, or make one from a filter.")
        return
    if st.session_state.get("cohort_pick") not in store:
        st.session_state["cohort_pick"] = next(iter(store))
    name = st.selectbox("Cohort", list(store), key="cohort_pick")
    ids = store[name]["ids"]
    meta = idx.metadata
    n_rec = meta.iloc[ids]["record"].nunique() if "record" in meta else None
    st.markdown(f"**{plain(name)}** — {len(ids):,} windows"
                + (f" from {n_rec:,} records" if n_rec is not None else "") + f"; {plain(store[name]['how'])}")
    st.markdown("**Label make-up against the whole index** (share among windows carrying the label; "
                "enrichment = cohort share / index share)")
    _cohort_makeup(meta, ids)
    if "beats" not in store[name]:  # ~200 windows of peak finding: once per cohort, not every rerun
        store[name]["beats"] = lib.median_beats(idx, ids)
    beats = store[name]["beats"]
    if beats.get("ecg") or beats.get("ppg"):
        st.plotly_chart(beats_figure(beats), key="cohort_beats")
        st.caption(f"Median beats from {beats['windows_used']} of {beats['windows_in_cohort']} windows "
                   "(seeded sample) of the index's 62.5 Hz display waveforms, in normalised units.")
    _cohort_attributions(model, idx, name, ids)
    _downloads(idx, name, ids)
    if st.button("Delete this cohort", key="cohort_delete"):
        store.pop(name, None)
        st.session_state.pop("cohort_pick", None)
        st.rerun()
