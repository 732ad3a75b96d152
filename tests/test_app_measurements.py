"""Issue 13 items 1–3 in the app: interval measurements on the Record page, calipers (pure helpers and the
page's typed-time fallback), the sidebar's PDF report. AppTest runs on the first sample record (simulated
sinus rhythm, 60 s; or the simulated stand-in test_app_pages.app_env writes when sample_data/ is absent).
"""
from __future__ import annotations

import io
import re

import numpy as np
import pytest

from m2ae_ui import calipers
from m2ae_ui.calipers import CaliperPoint, caliper_reading
from m2ae_ui.report import report_file_name
from test_app_pages import app_env, assert_ok, charts, new_app, sim_records, trace_names  # noqa: F401

pytest.importorskip("streamlit.testing.v1")


# --- pure helpers ----------------------------------------------------------------------------------

def test_caliper_reading_gives_ms_bpm_and_amplitude():
    r = caliper_reading(CaliperPoint(12.8, 0.1, "ecg"), CaliperPoint(12.0, 1.1, "ecg"), {"ecg": "mV"})
    assert r.dt_ms == pytest.approx(800.0) and r.rate_bpm == pytest.approx(75.0)
    assert r.d_value == pytest.approx(-1.0) and r.units == "mV"   # later minus earlier
    assert r.sentence() == "Δt 800 ms · rate 75 bpm · Δ amplitude -1 mV"
    mixed = caliper_reading(CaliperPoint(1.0, 0.5, "ecg"), CaliperPoint(1.25, 3.0, "ppg"))
    assert mixed.dt_ms == pytest.approx(250.0) and mixed.rate_bpm == pytest.approx(240.0)
    assert np.isnan(mixed.d_value) and "different channels" in mixed.sentence()
    same = caliper_reading(CaliperPoint(2.0, 0.0, "ppg"), CaliperPoint(2.0, 1.0, "ppg"))
    assert same.dt_ms == 0 and np.isnan(same.rate_bpm)


def test_caliper_points_from_times_clicks_and_session():
    t = np.arange(1250) / 125.0 + 20.0
    y = np.sin(t)
    pts = calipers.points_at_times([21.0, 99.0], "ppg", t, y)
    assert pts[0].value == pytest.approx(np.sin(21.0), abs=1e-3) and pts[1].t_s == pytest.approx(t[-1])
    with pytest.raises(ValueError):
        calipers.points_at_times([21.0], "eeg", t, y)
    event = {"selection": {"points": [{"curve_number": 7, "point_index": 3, "x": 20.024, "y": 0.5},
                                      {"curve_number": 2, "point_index": 9, "x": 20.1, "y": 9.0},
                                      {"curve_number": 8, "point_index": 3, "x": 20.024, "y": 70.0}]}}
    clicked = calipers.points_from_selection(event, {7: "ecg", 8: "ppg"})
    # the trace without a channel is ignored; one click reports one point even under a unified hover
    assert clicked == [CaliperPoint(20.024, 0.5, "ecg")]
    assert calipers.points_from_selection(None, {7: "ecg"}) == []
    assert calipers.selection_signature(event) != calipers.selection_signature({"selection": {"points": []}})
    kept = calipers.add_clicks(pts, clicked)
    assert kept == [pts[1], clicked[0]]                            # the two most recent
    session: dict = {}
    calipers.store_points(session, "rec-a", kept)
    calipers.store_points(session, "rec-b", pts[:1])
    assert calipers.stored_points(session, "rec-a") == kept and calipers.stored_points(session, "rec-c") == []
    assert calipers.in_window(kept, 20.0, 29.99) == [clicked[0]]   # the clipped 29.992 s lies outside
    assert report_file_name("../x y/r289.hea", 0) == "m2ae_report_r289.hea_w1.pdf"


# --- the app -------------------------------------------------------------------------------------

def _ms(value: str) -> float:
    m = re.match(r"(\d+) \(IQR", value)
    assert m, value
    return float(m.group(1))


def test_record_page_lists_measurements_draws_markers_and_sets_calipers(app_env):  # noqa: F811
    at = new_app()
    assert_ok(at)
    assert at.table, "no measurements table on the Record page"
    frame = at.table[0].value
    rows = dict(zip(frame["measurement"], frame["median (IQR)"], strict=True))
    beats = dict(zip(frame["measurement"], frame["beats / why not measured"], strict=True))
    assert 80 <= _ms(rows["PR"]) <= 300, rows
    assert 50 <= _ms(rows["QRS"]) <= 160, rows
    assert 250 <= _ms(rows["QT"]) <= 550, rows
    assert 300 <= _ms(rows["QTc Bazett"]) <= 550 and 300 <= _ms(rows["QTc Fridericia"]) <= 550, rows
    assert 30 <= _ms(rows["PPG rise time"]) <= 500, rows
    assert re.fullmatch(r"\d+ beats", beats["QT"]), beats
    names = trace_names(at)
    for marker in ("P onset", "QRS onset", "QRS offset", "T end"):
        assert marker in names, names

    t0 = float(at.number_input(key="caliper_t1").value) - 1.0     # its default: 1 s into the window
    at.number_input(key="caliper_t1").set_value(t0 + 1.0)
    at.number_input(key="caliper_t2").set_value(t0 + 1.8)
    at.button(key="caliper_set").click().run()
    assert_ok(at)
    said = " ".join(m.value for m in at.markdown)
    assert "Δt 800 ms · rate 75 bpm" in said, said
    assert any(n == "caliper (ecg)" for n in trace_names(at))
    # drawn at the ECG's samples: the caliper trace's y equals the ECG trace at those times
    spec = next(s for s in charts(at) if any(t.get("name") == "caliper (ecg)" for t in s["data"]))
    drawn = next(t for t in spec["data"] if t.get("name") == "caliper (ecg)")
    assert [round(x, 3) for x in drawn["x"]] == [round(t0 + 1.0, 3), round(t0 + 1.8, 3)]

    # set through the session state (what two clicks store), kept for the record while the window changes
    key = next(iter(at.session_state[calipers.CALIPER_KEY]))
    at.session_state[calipers.CALIPER_KEY] = {key: [{"t_s": t0 + 2.0, "value": 0.0, "channel": "ppg"},
                                                     {"t_s": t0 + 2.5, "value": 1.5, "channel": "ppg"}]}
    at.run()
    said = " ".join(m.value for m in at.markdown)
    assert "Δt 500 ms · rate 120 bpm · Δ amplitude +1.5" in said, said
    at.sidebar.selectbox(key="window").set_value(1).run()
    assert_ok(at)
    said = " ".join(m.value for m in at.markdown)
    assert "Δt 500 ms · rate 120 bpm" in said and not any(n.startswith("caliper (") for n in trace_names(at))
    at.button(key="caliper_clear").click().run()
    assert not any("Δt 500 ms" in m.value for m in at.markdown)


def test_sidebar_report_button_yields_a_pdf(app_env):  # noqa: F811
    at = new_app()
    assert_ok(at)
    at.sidebar.button(key="report_prepare").click().run()
    assert_ok(at)
    pdfs = list(at.session_state["_report_pdf"].values())
    assert len(pdfs) == 1 and pdfs[0][:4] == b"%PDF", pdfs[0][:20] if pdfs else None
    # the report's re-identification risk is the Similar patients page's: same call, same subject
    import m2ae
    from m2ae.index.linkability import record_linkability
    from m2ae.signal import preprocess

    pypdf = pytest.importorskip("pypdf")
    text = " ".join(" ".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdfs[0])).pages).split())
    entry = app_env["samples"][0]
    rec = m2ae.load_record(str(entry.path))
    win = preprocess(rec)
    model = m2ae.load_model()
    risk = record_linkability(m2ae.open_index(model=model), model.fingerprint(
        ecg=win.ecg, ppg=win.ppg), subject_id=rec.meta.get("subject_id") or entry.info.get("subject_id"),
        record=rec.meta.get("record_id") or None)
    assert f"Linkability score: {risk['score']:.0%} Risk level: {risk['level']}" in text
    assert f"Median margin (cosine): {risk['margin_median']:+.3f}" in text
    at.run()  # the next run offers the download (kept per record + window) instead of building it again
    assert_ok(at)
    assert not [b for b in at.sidebar.button if b.key == "report_prepare"]
