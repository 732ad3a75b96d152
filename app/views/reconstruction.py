"""Reconstruction: masked and cross-modal reconstructions of the current window, with error figures."""
from __future__ import annotations

import numpy as np
import streamlit as st

from m2ae.contract import FS_HZ
from m2ae.eval.metrics import reconstruction_errors
from m2ae_ui import figures, review, state
from m2ae_ui.guard import page_guard
from m2ae_ui.reconstruction import masked_spans, timing_caption
from m2ae_ui.text import plain_html

PATTERNS = {
    "Complementary (ECG and PPG hide different patches)": "complementary",
    "Random patches": "random",
    "Contiguous block (same gap in both)": "block",
    "Whole ECG hidden (rebuilt from PPG)": "ecg_from_ppg",
    "Whole PPG hidden (rebuilt from ECG)": "ppg_from_ecg",
}
LAG_SAMPLES = int(FS_HZ)  # cross-modal r is also shown after one best lag within ±1 s


def _fmt(v, digits=2):
    return f"{v:.{digits}f}" if v is not None and np.isfinite(v) else "—"


def _rows(out, win, i, lead=None):
    """Per-modality overlay rows (record units where known) and error figures (normalised units); ``lead``
    names the model's ECG input lead."""
    rows, errors = [], {}
    for m in ("ecg", "ppg"):
        e = out[m]
        mask = np.asarray(e["mask"][0], bool)
        if not mask.any() and e["original"] is None:
            continue
        pred = np.asarray(e["prediction"][0])
        orig = None if e["original"] is None else np.asarray(e["original"][0])
        present = orig is not None
        to_units = (lambda x, m=m: win.to_original_units(m, x[None], slice(i, i + 1))[0]) if present else (lambda x: x)
        if present:
            title = f"{mask.mean():.0%} hidden from the model"
        else:
            placed = np.isfinite(e["timing_shift_samples"][0])
            title = "not recorded: rebuilt from the other modality" + (
                ", placed at the typical pulse arrival" if placed else "")
        name = f"ECG lead {plain_html(lead)} (model input)" if m == "ecg" and lead and present else m.upper()
        rows.append({
            "title": f"{name} — {title}",
            "original": None if orig is None else to_units(orig),
            "visible": ~mask,
            "reconstructed": np.where(mask, to_units(pred), np.nan),
            "spans": masked_spans(mask, offset_s=float(win.starts_s[i])),
            "units": plain_html((win.meta.get("units") or {}).get(m, "a.u.")) if present else "normalised",
        })
        if present and mask.any():
            errors[m] = reconstruction_errors(orig, pred, mask)
    return rows, errors


@st.cache_data(max_entries=64, show_spinner=False)
def _cross_modal(key: str, version: str, i: int, target: str, source: str, _model, _win):
    """Figure and error figures of ``target`` rebuilt from ``source`` alone (independent of the mask
    settings, so cached per window: a mask change does not redo it)."""
    xo = state.reconstruction(key, version, i, 1.0, f"{target}_from_{source}", 0, _model, _win)
    pred = np.asarray(xo[target]["prediction"][0])
    orig = xo[target]["original"]
    t = np.arange(len(pred)) / FS_HZ + float(_win.starts_s[i])
    # no in-figure title: the column header names the direction, and a title would sit under the legend
    row = {"title": "", "visible": np.zeros_like(pred, bool),
           "reconstructed": pred, "spans": [], "units": "normalised",
           "original": None if orig is None else np.asarray(orig[0])}
    err = None if orig is None else reconstruction_errors(np.asarray(orig[0]), pred, max_lag_samples=LAG_SAMPLES)
    moved_ms = 1000.0 * float(xo[target]["timing_shift_samples"][0]) / FS_HZ
    return figures.overlay_figure(t, [row], height_per_row=260), err, moved_ms


st.title("Reconstruction")
with page_guard("Reconstruction"):
    src, rec, win, i = state.require_record()
    model = state.require_model()
    if model is None:
        st.stop()
    version = state.model_version(model)
    events = review.events(src, rec)
    here = review.window_events(win, events, i)
    review.model_output_warnings(src, rec, win, i, "both" if len(rec.modalities) == 2 else rec.modalities[0])
    review.event_note(win, events, i)
    state.keep(recon_pattern=next(iter(PATTERNS)), recon_ratio=0.5, recon_seed=0)
    c1, c2, c3 = st.columns([2, 2, 1])
    label = c1.selectbox("Masking pattern", list(PATTERNS), key="recon_pattern")
    mode = PATTERNS[label]
    whole = mode in ("ecg_from_ppg", "ppg_from_ecg")
    ratio = c2.slider("Mask ratio (share of 0.2-s patches hidden)", 0.1, 0.9, step=0.05, key="recon_ratio",
                      disabled=whole, help="Ignored when a whole modality is hidden.")
    seed = c3.number_input("Mask seed", min_value=0, max_value=9999, step=1, key="recon_seed")
    needs = {"ecg_from_ppg": "ppg", "ppg_from_ecg": "ecg"}.get(mode)
    if needs and needs not in rec.modalities:
        st.error(f"This record has no {needs.upper()}, so this pattern cannot be run. Pick another pattern.")
        st.stop()

    t = np.arange(win.ecg.shape[1] if win.ecg is not None else win.ppg.shape[1]) / FS_HZ + float(win.starts_s[i])
    out = state.reconstruction(src.key, version, i, 1.0 if whole else float(ratio), mode, int(seed), model, win)
    lead = review.model_lead(rec, win)
    rows, errors = _rows(out, win, i, lead)
    shown = review.lead_switch(rec, win, i, "recon_lead") if "ecg" in rec.modalities else None
    units = plain_html((win.meta.get("units") or {}).get("ecg", "a.u."))
    # other leads beside the reconstruction, as recorded: the model reads only its input lead
    rows += [{"title": f"ECG lead {plain_html(name)} — recorded, not given to the model", "original": y,
              "reference": True, "name": f"ECG {plain_html(name)} (recorded, not model input)", "units": units}
             for name, y in (shown or []) if name != lead]
    st.plotly_chart(figures.overlay_figure(t, rows, events=here), key="recon_overlay")
    st.caption("Grey: the recording. Solid: what the model was shown. Dashed orange: the model's reconstruction "
               "of the shaded (hidden) spans — a reconstruction, not a measurement.")
    if errors:
        cols = st.columns(2 * len(errors))
        for k, (m, err) in enumerate(errors.items()):
            cols[2 * k].metric(f"{m.upper()} NMSE (hidden spans)", _fmt(err["nmse"], 3),
                               help="Mean squared error on hidden samples / variance of the window; 0 is perfect, "
                                    "1 is no better than the window's mean.")
            cols[2 * k + 1].metric(f"{m.upper()} Pearson r (hidden spans)", _fmt(err["pearson_r"]))

    st.subheader("Cross-modal: one modality rebuilt from the other alone")
    left, right = st.columns(2)
    for col, target, source in ((left, "ecg", "ppg"), (right, "ppg", "ecg")):
        with col:
            st.markdown(f"**{source.upper()} → {target.upper()}**")
            if source not in rec.modalities:
                st.info(f"No {source.upper()} in this record.")
                continue
            fig, err, moved_ms = _cross_modal(src.key, version, i, target, source, model, win)
            st.plotly_chart(figures.mark_events(fig, here, [1]), key=f"cross_{target}")
            st.caption(timing_caption(target, source, model.pulse_arrival_s, moved_ms))
            if err is None:
                st.caption(f"No recorded {target.upper()} to compare with: the dashed trace is the model's estimate.")
            else:
                m1, m2, m3 = st.columns(3)
                m1.metric("NMSE", _fmt(err["nmse"], 3))
                m2.metric("Pearson r", _fmt(err["pearson_r"]))
                m3.metric("r after best lag", _fmt(err["pearson_r_lagged"]),
                          help=f"One lag within ±1 s (here {err['lag_ms']:.0f} ms): a constant ECG→PPG device "
                               "delay is not the model's error.")
