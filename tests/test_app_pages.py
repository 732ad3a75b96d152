"""Every app page driven with streamlit.testing.v1.AppTest: samples, uploads, settings, bad input.

The app reads sample_data/ and the shipped index (m2ae/index/default) when they exist; otherwise these
tests point it (M2AE_SAMPLE_DIR / M2AE_INDEX) at small simulated stand-ins built here, so the pages
are exercised either way.
"""
from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from m2ae_ui.samples import load_manifest
from m2ae_ui.text import unplain  # file names are shown escaped (Markdown): compare what a reader sees

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app" / "streamlit_app.py"
PAGES = ["views/record.py", "views/reconstruction.py", "views/fingerprint_map.py",
         "views/similar_patients.py", "views/predictions.py", "views/model_card.py"]
TIMEOUT_S = 240  # first runs load torch, the model and neurokit2 on 2 busy cores

AppTest = pytest.importorskip("streamlit.testing.v1").AppTest


# --- fixtures -----------------------------------------------------------------------------------

def _npz_bytes(ecg=None, ppg=None, fs=125.0) -> bytes:
    buf = io.BytesIO()
    arrays = {"fs": np.array(fs)}
    if ecg is not None:
        arrays["ecg"] = ecg
    if ppg is not None:
        arrays["ppg"] = ppg
    np.savez(buf, **arrays)
    return buf.getvalue()


@pytest.fixture(scope="session")
def sim_records():
    from m2ae.simulate import simulate_record

    return {code: simulate_record(code, duration_s=30.0, fs_hz=125.0, seed=i)
            for i, code in enumerate(("NSR", "AF"))}


@pytest.fixture(scope="session")
def app_env(tmp_path_factory, sim_records):
    """Point the app at sample records and an index that exist, whatever has been built yet."""
    import m2ae

    saved = {k: os.environ.get(k) for k in ("M2AE_SAMPLE_DIR", "M2AE_INDEX")}
    tmp = tmp_path_factory.mktemp("app_env")
    if not load_manifest(ROOT / "sample_data"):
        rows = []
        for code, rec in sim_records.items():
            (tmp / f"{code}.npz").write_bytes(_npz_bytes(rec.ecg, rec.ppg, rec.fs))
            rows.append({"name": f"sim_{code}", "path": f"{code}.npz", "description": f"simulated {code}"})
        rec = sim_records["NSR"]
        (tmp / "ecg_only.npz").write_bytes(_npz_bytes(ecg=rec.ecg, fs=rec.fs))
        (tmp / "ppg_only.npz").write_bytes(_npz_bytes(ppg=rec.ppg, fs=rec.fs))
        rows += [{"name": "ecg_only", "path": "ecg_only.npz", "description": "ECG only"},
                 {"name": "ppg_only", "path": "ppg_only.npz", "description": "PPG only"}]
        (tmp / "manifest.json").write_text(json.dumps({"records": rows}))
        os.environ["M2AE_SAMPLE_DIR"] = str(tmp)
    model = m2ae.load_model()
    try:
        m2ae.open_index(model=model.version)
    except m2ae.InputError:  # no shipped index yet, or one from another model version
        from m2ae.index import MapConfig
        from m2ae.index.build import build_index

        out = tmp / "index"
        build_index([], out, model=model, simulate=12, duration_s=30.0, map_config=MapConfig(method="pca"),
                    progress=False)
        os.environ["M2AE_INDEX"] = str(out)
    yield {"samples": load_manifest(os.environ.get("M2AE_SAMPLE_DIR") or ROOT / "sample_data")}
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def new_app() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S)
    at.run()
    return at


def assert_ok(at: AppTest, errors_allowed: bool = False) -> None:
    assert not at.exception, [e.value for e in at.exception]
    if not errors_allowed:
        assert not at.error or all("not for clinical use" in e.value for e in at.error), [e.value for e in at.error]


def charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def trace_names(at: AppTest) -> list[str]:
    return [str(t.get("name")) for spec in charts(at) for t in spec["data"]]


def array(value) -> np.ndarray:
    """A plotly JSON array: a list, or plotly's typed array {"dtype", "bdata" (base64)}."""
    if isinstance(value, dict) and "bdata" in value:
        import base64

        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
    return np.asarray(value)


def metric(at: AppTest, label: str) -> str:
    values = [m.value for m in at.metric if m.label == label]
    assert values, f"no metric {label!r} among {[m.label for m in at.metric]}"
    return values[0]


def goto(at: AppTest, page: str) -> AppTest:
    at.switch_page(page).run()
    assert_ok(at)
    return at


# --- Record -------------------------------------------------------------------------------------

def test_record_page_opens_every_sample(app_env):
    at = new_app()
    assert_ok(at)
    assert "not for clinical use" in " ".join(w.value for w in at.sidebar.warning)
    for entry in app_env["samples"]:
        at.selectbox(key="sample_choice").set_value(entry.label).run()
        assert_ok(at)
        assert unplain(at.subheader[0].value) == entry.name
        assert any(entry.name in unplain(m.value) for m in at.sidebar.markdown)
        assert metric(at, "Duration").endswith(" s")
        names = trace_names(at)
        assert any(n.startswith("ECG") for n in names) and any(n.startswith("PPG") for n in names), names
        wave = charts(at)[0]
        measured = [t for t in wave["data"] if "reconstructed" not in str(t.get("name"))]
        recon = [t for t in wave["data"] if "reconstructed" in str(t.get("name"))]
        assert measured, "a measured trace is always shown"
        assert all(t["line"]["dash"] == "dash" for t in recon), "reconstructions are dashed"
        if recon:  # a single-modality sample: the page says the other one is the model's, not measured
            assert any("no ECG" in i.value or "no PPG" in i.value for i in at.info)


def test_window_selector_is_shared_by_pages(app_env):
    at = new_app()
    n = len(at.sidebar.selectbox(key="window").options)
    target = min(2, n - 1)
    at.sidebar.selectbox(key="window").set_value(target).run()
    assert_ok(at)
    assert any(f"Window {target + 1} of {n}" in m.value for m in at.markdown)
    goto(at, "views/reconstruction.py")
    assert at.sidebar.selectbox(key="window").value == target
    x0 = array(charts(at)[0]["data"][0]["x"])[0]
    assert x0 == pytest.approx(10.0 * target, abs=0.01)


def test_upload_real_csv(app_env, bidmc_csv):
    at = new_app()
    at.file_uploader(key="upload").set_value((bidmc_csv.name, bidmc_csv.read_bytes(), "text/csv")).run()
    assert_ok(at)
    assert unplain(at.subheader[0].value) == bidmc_csv.name
    hr_ecg = float(metric(at, "Heart rate (ECG)").split()[0])
    hr_ppg = float(metric(at, "Heart rate (PPG)").split()[0])
    assert 60 < hr_ecg < 130 and abs(hr_ecg - hr_ppg) < 5
    assert metric(at, "Duration") == "480 s"


def test_upload_wfdb_pair(app_env, a103l_hea):
    at = new_app()
    files = [(p.name, p.read_bytes(), "application/octet-stream") for p in (a103l_hea, a103l_hea.with_suffix(".mat"))]
    at.file_uploader(key="upload").set_value(files).run()
    assert_ok(at)
    assert unplain(at.subheader[0].value) == "a103l.hea"
    assert "ECG" in at.sidebar.caption[0].value and "PPG" in at.sidebar.caption[0].value


def test_bad_uploads_clear_the_previous_record(app_env):
    """A refused upload leaves no page showing the record that was open before (issue 15)."""
    at = new_app()
    before = at.subheader[0].value
    bad = [("garbage.csv", b"name,comment\nfoo,bar\n", "text/csv"),
           ("empty.npz", b"", "application/octet-stream"),
           ("random.edf", b"0" * 300, "application/octet-stream"),
           ("lonely.hea", b"lonely 2 250 5000\nlonely.dat 16 200 12 0 0 0 0 II\nlonely.dat 16 200 12 0 0 0 0 PLETH\n",
            "text/plain")]
    for upload in bad:
        at.file_uploader(key="upload").set_value(upload).run()
        assert not at.exception
        assert at.error, upload[0]
        message = at.error[0].value
        assert "\n" not in message and "Traceback" not in message
        assert not at.subheader and not charts(at), "the previous record is still shown"
        assert any("No record yet" in x.value for x in at.sidebar.info)
    at.file_uploader(key="upload").set_value(None).run()  # removing the upload clears its error
    assert_ok(at)
    assert not at.subheader and not charts(at)
    next(b for b in at.button if b.label == "Open the selected sample").click().run()
    assert_ok(at)
    assert at.subheader[0].value == before


def test_mapping_form_reads_unrecognised_columns(app_env, sim_records):
    rec = sim_records["NSR"]
    data = pd.DataFrame({"chan_a": rec.ecg, "chan_b": rec.ppg}).to_csv(index=False).encode()
    at = new_app()
    at.file_uploader(key="upload").set_value(("device_export.csv", data, "text/csv")).run()
    assert at.error and "device_export.csv" in unplain(at.error[0].value)
    assert at.selectbox(key="map_ecg").options[2:] == ["chan_a", "chan_b"]
    at.selectbox(key="map_ecg").set_value("chan_a")
    at.selectbox(key="map_ppg").set_value("chan_b")
    at.number_input(key="map_fs").set_value(125.0)
    at.button[-1].click().run()  # the form's submit button
    assert_ok(at)
    assert unplain(at.subheader[0].value) == "device_export.csv"
    assert metric(at, "Duration") == "30 s"


# --- single-modality records on every page ---------------------------------------------------------

@pytest.mark.parametrize("present", ["ecg", "ppg"])
def test_single_modality_upload_works_on_every_page(app_env, sim_records, present):
    rec = sim_records["NSR"]
    data = _npz_bytes(**{present: getattr(rec, present)}, fs=rec.fs)
    at = new_app()
    at.file_uploader(key="upload").set_value((f"{present}_only.npz", data, "application/octet-stream")).run()
    assert_ok(at)
    missing = "PPG" if present == "ecg" else "ECG"
    assert any(f"{missing} reconstructed from {present.upper()}" == n for n in trace_names(at)), trace_names(at)
    for page in PAGES[1:]:
        goto(at, page)
    goto(at, "views/reconstruction.py")
    assert any(f"{missing} — not recorded" in t.get("text", "") for spec in charts(at)
               for t in spec["layout"].get("annotations", []))


def test_dead_channel_is_dropped_and_said_on_the_record_page(app_env, sim_records):
    """A flat PPG (all zeros, as real monitors record a clip that fell off) beside a good ECG: the
    Record page says the PPG was dropped and why, and every page treats the record as ECG only."""
    rec = sim_records["NSR"]
    data = _npz_bytes(ecg=rec.ecg, ppg=np.zeros_like(rec.ppg), fs=rec.fs)
    at = new_app()
    at.file_uploader(key="upload").set_value(("flat_ppg.npz", data, "application/octet-stream")).run()
    assert_ok(at)
    said = [w.value.replace("\\", "") for w in at.warning]
    assert "PPG dropped: flat line (every sample = 0); the record goes on as ECG only" in said, said
    assert any("PPG reconstructed from ECG" == n for n in trace_names(at)), trace_names(at)
    for page in PAGES[1:]:
        goto(at, page)


# --- Reconstruction --------------------------------------------------------------------------------

def test_reconstruction_mask_ratio_and_patterns(app_env):
    at = goto(new_app(), "views/reconstruction.py")
    assert "reconstructed" in trace_names(at)
    recon = [t for t in charts(at)[0]["data"] if t.get("name") == "reconstructed"]
    assert all(t["line"]["dash"] == "dash" for t in recon)
    nmse_half = metric(at, "ECG NMSE (hidden spans)")
    shapes_half = len(charts(at)[0]["layout"].get("shapes", []))
    at.slider(key="recon_ratio").set_value(0.2).run()
    assert_ok(at)
    assert metric(at, "ECG NMSE (hidden spans)") != nmse_half or len(charts(at)[0]["layout"].get("shapes", [])) != shapes_half
    for label in at.selectbox(key="recon_pattern").options:
        at.selectbox(key="recon_pattern").set_value(label).run()
        assert_ok(at)
        assert len(charts(at)) == 3  # overlay + PPG→ECG + ECG→PPG
    float(metric(at, "r after best lag"))  # a number, computed by m2ae.eval.metrics
    # the setting survives a visit to another page
    goto(at, "views/model_card.py")
    goto(at, "views/reconstruction.py")
    assert at.slider(key="recon_ratio").value == pytest.approx(0.2)


# --- Fingerprint map -------------------------------------------------------------------------------

def test_fingerprint_map_colour_selection_and_export(app_env):
    at = goto(new_app(), "views/fingerprint_map.py")
    spec = charts(at)[0]
    assert spec["layout"]["dragmode"] == "select"
    assert any(t.get("name") == "this record" for t in spec["data"])
    colours = at.selectbox(key="map_color").options
    assert "label_rhythm" in colours
    at.selectbox(key="map_color").set_value("label_rhythm").run()
    assert_ok(at)
    values = at.multiselect(key="map_values").options
    at.multiselect(key="map_values").set_value(values[:1]).run()
    assert_ok(at)
    assert any(s.value.startswith("Selection:") for s in at.subheader)
    assert at.dataframe and len(charts(at)) == 2  # map + selection waveforms
    assert at.get("download_button")
    at.checkbox(key="map_waveforms").check().run()
    assert_ok(at)
    assert "with waveforms" in at.get("download_button")[0].proto.label


# --- Similar patients ----------------------------------------------------------------------------

def test_similar_patients_neighbours_and_filters(app_env):
    at = goto(new_app(), "views/similar_patients.py")
    table = at.dataframe[0].value
    assert len(table) == 10 and table["similarity"].is_monotonic_decreasing
    assert any("kNN vote" in m.value for m in at.markdown)
    assert any(c.value.startswith("Head prediction:") for c in at.caption)  # vote beside the head's output
    n_traces = len(charts(at)[0]["data"])
    at.slider(key="sim_k").set_value(5).run()
    assert_ok(at)
    assert len(at.dataframe[0].value) == 5
    at.multiselect(key="sim_show").set_value(["#1", "#2", "#3", "#4", "#5"]).run()
    assert_ok(at)
    assert len(charts(at)[0]["data"]) > n_traces
    at.selectbox(key="sim_use").set_value("PPG only").run()
    assert_ok(at)
    at.slider(key="sim_quality").set_value(0.5).run()
    assert_ok(at)
    at.selectbox(key="sim_require").set_value("both recorded").run()
    assert_ok(at)
    assert at.get("download_button")


# --- Predictions & explanations ----------------------------------------------------------------------

def test_predictions_switch_heads_and_methods(app_env):
    at = goto(new_app(), "views/predictions.py")
    heads = at.selectbox(key="pred_head").options
    assert heads
    for head in heads:
        at.selectbox(key="pred_head").set_value(head).run()
        assert_ok(at)
        share_ecg = metric(at, "Share of evidence: ECG")
        share_ppg = metric(at, "Share of evidence: PPG")
        assert share_ecg.endswith("%") and share_ppg.endswith("%")
        assert abs(int(share_ecg[:-1]) + int(share_ppg[:-1]) - 100) <= 1
        assert any(t.get("type") == "heatmap" for t in charts(at)[0]["data"])
    at.selectbox(key="pred_method").set_value("Occlusion (0.2-s patches)").run()
    assert_ok(at)
    cls_boxes = [s for s in at.selectbox if s.key and s.key.startswith("pred_class_")]
    if cls_boxes:
        cls_boxes[0].set_value(cls_boxes[0].options[-1]).run()
        assert_ok(at)


# --- Model card ----------------------------------------------------------------------------------

def test_model_card_reads_the_checkpoint_card(app_env):
    import m2ae

    at = goto(new_app(), "views/model_card.py")
    model = m2ae.load_model()
    assert metric(at, "Weights version") == model.version
    assert any("not for clinical use" in e.value for e in at.error)
    if model.card.get("eval"):
        assert not any("not been evaluated" in w.value for w in at.warning)
    else:
        assert any("not been evaluated" in w.value for w in at.warning)


# --- missing artefacts ---------------------------------------------------------------------------

def test_pages_render_without_model_or_index(app_env, tmp_path, monkeypatch):
    monkeypatch.setenv("M2AE_MODEL", str(tmp_path / "no_such_checkpoint.pt"))
    monkeypatch.setenv("M2AE_INDEX", str(tmp_path / "no_such_index"))
    at = new_app()
    assert_ok(at)
    assert charts(at), "the Record page needs neither model nor index"
    for page in PAGES[1:]:
        goto(at, page)
        warnings = " ".join(w.value for w in at.warning)
        assert "not available" in warnings, (page, warnings)


def test_model_card_shows_eval_results_from_the_card(app_env):
    """Whatever `m2ae eval --write-card` stored is shown: the headline table, summary and privacy rows."""
    at = new_app()
    from m2ae_ui import state  # importable once the app has put app/ on sys.path

    model = state.get_model()[0]
    saved = model.card.get("eval")
    model.card["eval"] = {
        "headline": [{"data": "real", "task": "PPG→ECG", "metric": "r (lagged)", "higher_is_better": True,
                      "model": 0.71, "baseline": "mean_beat_template", "baseline_value": 0.62, "model_better": True,
                      "ci95": [0.04, 0.13], "verdict": "better"},
                     {"data": "real", "task": "ECG→PPG", "metric": "r", "higher_is_better": True,
                      "model": 0.50, "baseline": "ridge", "baseline_value": 0.49, "model_better": True,
                      "ci95": [-0.05, 0.07], "verdict": "tie"}],
        "summary": {"real": {"comparisons": 2, "model_better": 2, "better": 1, "tie": 1, "worse": 0},
                    "simulated_heldout": {"comparisons": 1, "model_better": 1}},  # a card from before verdicts
        "simulated_heldout": {"privacy": {"reidentification_top1": 0.213}},
    }
    try:
        goto(at, "views/model_card.py")
        texts = [m.value for m in at.markdown]
        assert any("better in 1, tied in 1 and worse in 0" in t for t in texts)
        assert any("1 of 1 comparisons" in t for t in texts)
        tables = [d.value for d in at.dataframe]
        headline = next(t for t in tables if "verdict" in t.columns)
        assert headline["model"].iloc[0] == 0.71 and headline["baseline value"].iloc[0] == 0.62
        assert headline["model − baseline, 95 % CI"].tolist() == ["[+0.040, +0.130]", "[-0.050, +0.070]"]
        assert headline["verdict"].tolist() == ["better", "tie"]
        assert any((t.astype(str) == "0.213").any().any() for t in tables)  # the privacy figure, as stored
        assert not any("not been evaluated" in w.value or "No privacy" in w.value for w in at.warning)
    finally:
        if saved is None:
            model.card.pop("eval", None)
        else:
            model.card["eval"] = saved


def test_predictions_check_the_rhythm_call_against_beat_intervals(app_env, bidmc_csv):
    """BIDMC 01 is a regular sinus rhythm; whenever the rhythm head calls AF on it, the page says the
    measured intervals disagree (and says nothing when the call is a sinus rhythm)."""
    at = new_app()
    at.file_uploader(key="upload").set_value((bidmc_csv.name, bidmc_csv.read_bytes(), "text/csv")).run()
    at = goto(at, "views/predictions.py")
    for use in ("ECG + PPG", "ECG only", "PPG only"):
        at.radio(key="pred_use").set_value(use).run()
        assert_ok(at)
        rhythm_call = next(m.value for m in at.markdown if m.value.startswith("**")).strip("*")  # first card
        interval_warnings = [w.value for w in at.warning if "beat intervals" in w.value]
        if rhythm_call == "atrial fibrillation":
            assert interval_warnings and "regular" in interval_warnings[0], use
        else:
            assert not interval_warnings, (use, rhythm_call)
