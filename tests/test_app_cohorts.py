"""Issue 13 items 4–7 in the app: aligned beats and re-identification risk (Similar patients); map
search, density contours and cohorts (Fingerprint map). Helpers are tested directly; each new
control is driven with streamlit.testing.v1.AppTest (fixtures shared with test_app_pages).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import m2ae
from m2ae_ui import beats, cohorts
from m2ae_ui.text import unplain
from test_app_pages import APP, TIMEOUT_S, app_env, assert_ok, charts, goto, sim_records  # noqa: F401

AppTest = pytest.importorskip("streamlit.testing.v1").AppTest


class _OneWindowIndex:
    """An index holding the given display waveforms (what ``median_beats`` asks of an index)."""

    def __init__(self, ecg: np.ndarray, ppg: np.ndarray):
        self._w = {"ecg": ecg, "ppg": ppg}

    def waveforms(self, ids):
        ids = np.asarray(ids, dtype=np.int64)
        return {m: self._w[m][ids] for m in ("ecg", "ppg")}


# --- helpers ---------------------------------------------------------------------------------------

def test_aligned_beats_peak_at_zero_and_neighbours_at_the_query_scale(sim_records):  # noqa: F811
    win = m2ae.preprocess(sim_records["NSR"])
    # the neighbour is the query's own window in normalised display form: at the query's scale it must
    # land on the query's beat, which is in record units (norm · scale + centre)
    from scipy.signal import resample_poly

    disp = {m: resample_poly(getattr(win, m)[:1].astype(np.float64), 1, 2, axis=1) for m in ("ecg", "ppg")}
    out = beats.aligned_beats(win, 0, _OneWindowIndex(disp["ecg"], disp["ppg"]), [0])
    assert set(out) == {"ecg", "ppg"}
    for m in ("ecg", "ppg"):
        b = out[m]
        assert b["scale"] == pytest.approx(float(getattr(win, f"{m}_scale")[0]))
        q = b["query"]
        assert abs(b["t_s"][int(np.argmax(q))]) <= 0.05  # aligned on the R-peak / systolic peak (±3 samples)
        (nid, nb), = b["neighbours"]
        assert nid == 0 and np.allclose(nb, q, atol=1e-6 + 1e-6 * np.abs(q).max())
    # the query is in record units: its R-peak height matches the filtered record's (mV), not z-scores
    clean = np.asarray(win.ecg_clean[:1250], float)
    r_height = np.percentile(clean, 99.5) - np.median(clean)
    q = out["ecg"]["query"]
    assert q.max() - np.median(q) == pytest.approx(r_height, rel=0.35)
    fig = beats.beats_figure(out, {"ecg": "mV"}, {0: "#1"})
    names = [t.name for t in fig.data]
    assert "ECG query" in names and "PPG #1" in names


def _meta(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"map_x": rng.normal(size=n), "map_y": rng.normal(size=n),
                         "record": [f"r{k % 50:03d}" for k in range(n)], "subject_id": "s", "source": "sim"})


def test_map_gets_density_contours_only_over_ten_thousand_points():
    import plotly.graph_objects as go

    big = cohorts.decorate_map(go.Figure(), _meta(10_001), None)
    small = cohorts.decorate_map(go.Figure(), _meta(10_000), None)
    assert [t.type for t in big.data] == ["contour"]
    assert not small.data


def test_map_search_rings_matches_and_zooms_to_them():
    import plotly.graph_objects as go

    meta = _meta(500)
    found = cohorts.search_map(meta, "record:r007")
    assert found["n"] == 10
    fig = cohorts.decorate_map(go.Figure(), meta, found)
    ring = [t for t in fig.data if t.name == "search: 10 found"]
    assert ring and len(ring[0].x) == 10
    x0, x1 = fig.layout.xaxis.range
    xs = meta.loc[meta["record"] == "r007", "map_x"]
    assert x0 < xs.min() and x1 > xs.max() and (x1 - x0) < np.ptp(meta["map_x"])  # zoomed in
    assert cohorts.search_map(meta, "   ") is None


# --- app: Similar patients --------------------------------------------------------------------------

def test_similar_patients_aligned_beats_and_reidentification_risk(app_env):  # noqa: F811
    at = goto(AppTest.from_file(str(APP), default_timeout=TIMEOUT_S), "views/similar_patients.py")
    spec = next(s for s in charts(at) if any(str(t.get("name")).endswith("query") for t in s["data"]))
    names = [str(t.get("name")) for t in spec["data"]]
    assert "ECG query" in names and any(n.startswith("ECG #") for n in names)
    assert any("aligned at t = 0 on the R-peak" in c.value for c in at.caption)
    labels = {m.label: m.value for m in at.metric}
    assert labels["Risk level"] in {"high", "moderate", "low"}
    assert labels["Linkability score"].endswith("%")
    assert any("re-identification risk" in unplain(m.value) for m in at.markdown)
    assert any(unplain(c.value).startswith("Calibrated on: m2ae eval privacy section of model card") for c in at.caption)
    # fewer neighbours shown → fewer beats overlaid
    at.multiselect(key="sim_show").set_value(["#1"]).run()
    assert_ok(at)
    spec = next(s for s in charts(at) if any(str(t.get("name")).endswith("query") for t in s["data"]))
    assert {str(t.get("name")) for t in spec["data"]} <= {"ECG query", "PPG query", "ECG #1", "PPG #1"}


# --- app: Fingerprint map -----------------------------------------------------------------------------

def _map_app():
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S)
    at.run()
    return goto(at, "views/fingerprint_map.py")


def test_map_search_box_highlights_and_zooms(app_env):  # noqa: F811
    at = _map_app()
    at.text_input(key="map_search").input("label:__nothing__").run()
    assert_ok(at)
    assert any(c.value.startswith("Search: 0 matching") for c in at.caption)
    at.text_input(key="map_search").input('"').run()  # no term: a warning, the map still shows
    assert_ok(at)
    assert any(unplain(w.value).startswith("search: type") for w in at.warning) and charts(at)
    at.selectbox(key="map_color").set_value("label_rhythm").run()
    value = at.multiselect(key="map_values").options[0]
    at.text_input(key="map_search").input(f"label:{value}").run()
    assert_ok(at)
    spec = charts(at)[0]
    ring = [t for t in spec["data"] if str(t.get("name", "")).startswith("search: ")]
    assert ring and spec["layout"]["xaxis"]["range"]


def test_cohorts_from_a_filter_and_a_selection(app_env, monkeypatch):  # noqa: F811
    monkeypatch.setattr(cohorts, "ATTR_WINDOWS", 2)
    at = _map_app()
    assert any(s.value == "Cohorts" for s in at.subheader)
    at.selectbox(key="map_color").set_value("label_rhythm").run()
    value = at.multiselect(key="map_values").options[0]
    # 1) a metadata filter in the --where language
    at.text_input(key="cohort_where").input(f'label.rhythm == "{value}"')
    next(b for b in at.button if b.label == "Make cohort").click().run()
    assert_ok(at)
    assert at.selectbox(key="cohort_pick").value == f'where label.rhythm == "{value}"'
    makeup = next(d.value for d in at.dataframe if "enrichment" in d.value.columns)
    rhythm = makeup[makeup["column"].str.startswith("label_rhythm")]  # by code or by name
    assert len(rhythm) == 1 and rhythm["cohort_share"].iloc[0] == pytest.approx(1.0)
    assert rhythm["index_share"].iloc[0] < 1.0 and rhythm["enrichment"].iloc[0] > 1.0
    beats_spec = [s for s in charts(at) if any("median" in str(t.get("name")) for t in s["data"])]
    assert beats_spec
    labels = [b.proto.label for b in at.get("download_button")]
    assert any(lab.startswith("CSV") for lab in labels) and any(lab.startswith("Parquet") for lab in labels)
    assert any(lab.startswith("WFDB zip") for lab in labels)
    # 2) the map's selection by value, saved under a name: a second cohort
    at.multiselect(key="map_values").set_value([value]).run()
    at.text_input(key="cohort_name").input("my AF").run()
    at.button(key="cohort_save").click().run()
    assert_ok(at)
    assert at.selectbox(key="cohort_pick").options == [f'where label.rhythm == "{value}"', "my AF"]
    assert at.selectbox(key="cohort_pick").value == "my AF"
    n_sel = int(next(s.value for s in at.subheader if s.value.startswith("Selection:")).split()[1].replace(",", ""))
    assert any(f"{n_sel:,} windows" in m.value for m in at.markdown if "my AF" in m.value)
    # 3) averaged attributions (bounded sample) on the button
    assert at.selectbox(key="cohort_head").options  # the shipped model has heads
    at.button(key="cohort_attr").click().run()
    assert_ok(at)
    assert any("mean |attribution|" in str(t.get("name")) for s in charts(at) for t in s["data"])
    assert any(c.value.startswith("2 of ") and "Share of evidence" in c.value for c in at.caption)
    # 4) delete
    at.button(key="cohort_delete").click().run()
    assert_ok(at)
    assert at.selectbox(key="cohort_pick").options == [f'where label.rhythm == "{value}"']
