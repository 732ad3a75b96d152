"""Clinical review in the app (issue 15 items 4–6), driven with streamlit.testing.v1.AppTest: a real
ICU alarm record opens on its alarm window and marks the alarm on every page's plots; every ECG lead can
be shown (a lead switch, a stacked view) with the model's input lead named; every page with model output
warns about a low-quality window; a coin-flip output is shown as an "uncertain" card, never as a class.
"""
from __future__ import annotations

import numpy as np
import pytest

from m2ae.record import Windows
from m2ae_ui.predictions import CHANCE_BAND, head_summary, headline
from m2ae.record import event_window
from m2ae_ui.windows import pat_context, review_events
from test_app_pages import (APP, TIMEOUT_S, _npz_bytes, app_env, assert_ok, charts, goto,  # noqa: F401
                            sim_records, trace_names)

AppTest = pytest.importorskip("streamlit.testing.v1").AppTest

MODEL_PAGES = ["views/reconstruction.py", "views/fingerprint_map.py", "views/similar_patients.py",
               "views/predictions.py"]
ALARM_SAMPLE = "cinc2015_r289"  # a true VT alarm at 300 s, ECG leads II and V + PPG (sample_data/manifest.json)


# --- pure helpers ----------------------------------------------------------------------------------

def _windows(starts) -> Windows:
    n = len(starts)
    return Windows(ecg=np.zeros((n, 1250), np.float32), ppg=None, starts_s=np.asarray(starts, float))


def test_event_window_is_the_window_ending_at_the_alarm():
    win = _windows(np.arange(30) * 10.0)  # 0–300 s
    alarm = review_events({"labels": {"alarm_time_s": 300, "alarm_type": "VT", "true_alarm": True}})
    assert alarm == [{"time_s": 300.0, "label": "alarm: VT (true)"}]
    assert event_window(win, alarm) == 29                      # 290–300 s: it ends at the alarm
    assert event_window(win, [{"time_s": 295.0, "label": "x"}]) == 29
    assert event_window(win, [{"time_s": 290.0, "label": "x"}]) == 28   # 280–290 s ends at 290 s
    assert event_window(win, [{"time_s": 400.0, "label": "x"}]) == 29   # after the record: its last window
    assert event_window(win, []) == 0
    # overlapping windows: the earliest-ending one that holds the event
    assert event_window(_windows([0.0, 5.0, 10.0]), [{"time_s": 12.0, "label": "x"}]) == 1


def test_review_starts_at_the_first_alarm_before_earlier_annotations():
    from m2ae_ui.review import first_event, marked_windows

    evs = [{"time_s": 12.0, "label": "annotation: V"}, {"time_s": 300.0, "label": "alarm: VT (true)"}]
    assert first_event(evs)["time_s"] == 300.0
    assert first_event(evs[:1])["time_s"] == 12.0 and first_event([]) is None
    assert marked_windows(_windows(np.arange(30) * 10.0), evs) == {1: "event", 29: "alarm"}


def test_events_come_from_the_sample_manifest_when_the_file_has_none():
    info = {"labels": {"alarm_type": "VT", "true_alarm": False, "alarm_time_s": 300.0}}
    assert review_events({}, info) == [{"time_s": 300.0, "label": "alarm: VT (false)"}]
    own = {"events": [{"time_s": 12.5, "label": "annotation V"}]}
    assert review_events(own, info) == [{"time_s": 12.5, "label": "annotation V"}]


def test_head_summary_says_uncertain_for_a_coin_flip_and_a_useless_interval():
    sex = {"classes": ["F", "M"], "class_names": ["female", "male"],
           "probabilities": np.array([[0.5, 0.5], [0.1, 0.9], [0.5 + CHANCE_BAND + 0.01, 0.5 - CHANCE_BAND - 0.01]])}
    assert head_summary(sex, 0)["uncertain"] and headline(head_summary(sex, 0)) == "uncertain"
    assert not head_summary(sex, 1)["uncertain"] and headline(head_summary(sex, 1)) == "male"
    assert not head_summary(sex, 2)["uncertain"]
    # the head's own flag wins over the app's band
    assert not head_summary({**sex, "uncertain": np.array([False, False, False])}, 0)["uncertain"]
    assert head_summary({**sex, "uncertain": np.array([False, True, False])}, 1)["uncertain"]
    age = {"value": np.array([55.0, 61.0]), "interval": np.array([[11.9, 99.4], [41.0, 81.0]]),
           "interval_level": 0.9, "unit": "years"}
    assert head_summary(age, 0)["uncertain"] and "11.9–99.4 years" in head_summary(age, 0)["why"]
    assert headline(head_summary(age, 1)) == "61.0 years"
    rhythm = {"classes": ["NSR", "PVC"], "probabilities": np.array([[0.01, 0.99]]),
              "outside": np.array([True]), "outside_note": "outside what this head knows"}
    h = head_summary(rhythm, 0)
    assert h["outside"] and h["uncertain"] and headline(h) == "outside what this head knows"


def test_pat_context_names_a_device_delay():
    assert "device delay" in pat_context(650.0, 95.0)        # about one beat interval (632 ms)
    assert "device delay" in pat_context(614.0, 70.0)
    assert "plausible" in pat_context(250.0, 70.0) and "device" not in pat_context(250.0, 70.0)
    assert pat_context(float("nan"), 70.0) is None


# --- the app -------------------------------------------------------------------------------------

@pytest.fixture
def alarm_app(app_env):  # noqa: F811
    entries = [e for e in app_env["samples"] if e.name == ALARM_SAMPLE]
    if not entries:
        pytest.skip(f"sample_data has no {ALARM_SAMPLE} (the real CinC 2015 samples are not in this checkout)")
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S)
    at.run()
    at.selectbox(key="sample_choice").set_value(entries[0].label).run()
    assert_ok(at)
    return at


def _event_lines(spec: dict) -> list[float]:
    return [s["x0"] for s in spec["layout"].get("shapes", []) if s.get("type") == "line" and s["x0"] == s.get("x1")]


def test_alarm_record_opens_on_the_alarm_window_and_marks_it_on_every_page(alarm_app):
    at = alarm_app
    box = at.sidebar.selectbox(key="window")
    assert box.value == 29, "the 290–300 s window, which ends at the 300-s alarm"
    assert box.options[29].startswith("290–300 s · alarm") and len(box.options[29]) <= 30, box.options[29]
    assert "alarm" not in box.options[0]
    assert any("Window 30 of 30" in m.value for m in at.markdown)
    wave = charts(at)[0]
    assert 300.0 in _event_lines(wave), "a vertical line at the alarm"
    assert any("alarm: VT (true)" in a.get("text", "") for a in wave["layout"]["annotations"])
    quality = charts(at)[1]
    assert any("alarm" in a.get("text", "") for a in quality["layout"]["annotations"])
    goto(at, "views/reconstruction.py")
    assert all(300.0 in _event_lines(spec) for spec in charts(at)), "overlay and both cross-modal panels"
    goto(at, "views/predictions.py")
    assert 300.0 in _event_lines(charts(at)[0])  # over the attribution waveforms
    goto(at, "views/similar_patients.py")
    assert 10.0 in _event_lines(charts(at)[0])   # the query row's x axis is s within the window
    goto(at, "views/fingerprint_map.py")
    assert any(t.get("name") == "this record: alarm window" for t in charts(at)[0]["data"])
    # the user moves away: pages keep that window; a button goes back to the alarm
    at.sidebar.selectbox(key="window").set_value(3).run()
    goto(at, "views/record.py")
    assert at.sidebar.selectbox(key="window").value == 3
    assert not _event_lines(charts(at)[0])
    at.sidebar.button(key="go_to_event").click().run()
    assert_ok(at)
    assert at.sidebar.selectbox(key="window").value == 29


def test_lead_switch_shows_every_ecg_lead_and_names_the_model_input(alarm_app):
    at = alarm_app
    radios = [r for r in at.radio if r.key == "record_lead"]
    assert radios, "r289 carries ECG leads II and V: the Record page offers a lead switch"
    switch = radios[0]
    assert switch.options[:2] == ["II", "V"] and switch.value == "II"
    assert any(c.value.startswith("Model input: II") for c in at.caption)
    assert "ECG II" in trace_names(at) and "ECG V" not in trace_names(at)
    switch.set_value("V").run()
    assert_ok(at)
    names = trace_names(at)
    assert "ECG V" in names and "ECG II" not in names
    titles = [a.get("text", "") for a in charts(at)[0]["layout"]["annotations"]]
    assert any("lead V" in t and "not the model's input" in t for t in titles), titles
    at.radio(key="record_lead").set_value("All leads (stacked)").run()
    assert_ok(at)
    assert {"ECG II", "ECG V", "PPG"} <= set(trace_names(at))
    # the choice carries to the Reconstruction page: the other lead is drawn as recorded, not reconstructed
    goto(at, "views/reconstruction.py")
    assert at.radio(key="recon_lead").value == "All leads (stacked)"
    overlay = charts(at)[0]
    assert any(t.get("name") == "ECG V (recorded, not model input)" for t in overlay["data"])
    assert any("ECG lead II (model input)" in a.get("text", "") for a in overlay["layout"]["annotations"])


def test_every_model_page_warns_about_a_low_quality_window(app_env, sim_records):  # noqa: F811
    rec = sim_records["NSR"]
    ecg, ppg = rec.ecg.copy(), rec.ppg.copy()
    rng = np.random.default_rng(1)
    n = int(10 * rec.fs)  # window 2 (10–20 s) is white noise in both channels
    ecg[n:2 * n] = rng.standard_normal(n) * np.std(rec.ecg) * 2
    ppg[n:2 * n] = rng.standard_normal(n) * np.std(rec.ppg) * 2
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S)
    at.run()
    at.file_uploader(key="upload").set_value(("noisy_window.npz", _npz_bytes(ecg, ppg, rec.fs),
                                              "application/octet-stream")).run()
    assert_ok(at)
    assert "⚠" in at.sidebar.selectbox(key="window").options[1]
    at.sidebar.selectbox(key="window").set_value(1).run()
    for page in MODEL_PAGES:
        goto(at, page)
        said = [w.value for w in at.warning]
        assert any("Window 2 is below the quality threshold" in w for w in said), (page, said)
    at.sidebar.selectbox(key="window").set_value(0).run()
    for page in MODEL_PAGES:
        goto(at, page)
        assert not any("below the quality threshold" in w.value for w in at.warning), page


@pytest.fixture
def coin_flip_model(monkeypatch):
    """The shipped model, its predictions edited: sex at p 0.5/0.5 and age with a 10–100-year interval.
    The app caches predictions per weights version (in its record store): clear the caches before and after."""
    import streamlit as st
    from m2ae_ui import state

    import m2ae

    cls = type(m2ae.load_model(device="cpu"))
    predict = cls.predict

    def coin_flip(self, *args, **kwargs):
        out = predict(self, *args, **kwargs)
        for name, p in out.items():
            if "probabilities" in p and list(p.get("classes") or []) == ["F", "M"]:
                p = {k: v for k, v in p.items() if k != "uncertain"}  # the app's own band must catch it
                p["probabilities"] = np.full_like(np.asarray(p["probabilities"], float), 0.5)
                out[name] = p
            elif "value" in p and p.get("unit") == "years":
                p = {k: v for k, v in p.items() if k != "uncertain"}
                p["interval"] = np.tile([10.0, 100.0], (len(np.asarray(p["value"])), 1))
                out[name] = p
        return out

    st.cache_data.clear()
    state.STORE.clear()
    monkeypatch.setattr(cls, "predict", coin_flip)
    yield
    st.cache_data.clear()
    state.STORE.clear()


def test_coin_flip_outputs_are_uncertain_cards(app_env, coin_flip_model):  # noqa: F811
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S)
    at.run()
    at = goto(at, "views/predictions.py")
    cards = [m.value.strip("*") for m in at.markdown if m.value.startswith("**") and not m.value.startswith("**Rec")]
    assert cards.count("uncertain") >= 2, cards            # sex and age
    assert not {"male", "female"} & set(cards) and not any(c.endswith("years") for c in cards), cards
    why = [c.value for c in at.caption if "not shown as an answer" in c.value]
    assert any("0.50" in c and "chance" in c for c in why) and any("10.0–100.0 years" in c for c in why), why
    goto(at, "views/similar_patients.py")
    heads = [c.value for c in at.caption if c.value.startswith("Head prediction:")]
    assert not any("male" in c for c in heads), heads
