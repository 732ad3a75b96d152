"""Unit tests of what the app computes without a browser or Streamlit: uploads (m2ae.io.uploads), neighbour
votes and cohorts (m2ae.index.neighbours), reconstruction errors (m2ae.eval.metrics) and app/m2ae_ui's helpers."""
from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

from m2ae import InputError, Windows
from m2ae.eval.metrics import reconstruction_errors
from m2ae.index.neighbours import (cohort_table, index_fingerprints, is_numeric_label, knn_estimate, knn_vote,
                                   label_head_pairs, neighbour_filters, vote_columns)
from m2ae.io import uploads
from m2ae_ui.predictions import head_summary, rhythm_interval_warning
from m2ae_ui.reconstruction import masked_spans, timing_caption
from m2ae_ui.samples import load_manifest
from m2ae_ui.selection import selected_rows
from m2ae_ui.tables import find_entries, flatten, to_csv_bytes
from m2ae_ui.windows import quality_table, record_figures, window_view


def _csv_bytes(n=125 * 25, fs=125.0, header=("Time [s]", "II", "PLETH")):
    from m2ae.simulate import simulate_record

    rec = simulate_record("NSR", duration_s=n / fs, fs_hz=fs, seed=3)
    t = np.arange(rec.n_samples) / fs
    frame = pd.DataFrame({header[0]: t, header[1]: rec.ecg, header[2]: rec.ppg})
    return frame.to_csv(index=False).encode()


def test_content_key_is_stable_and_sensitive():
    a = uploads.content_key({"x.csv": b"1,2", "y.hea": b"h"}, 125.0, None)
    assert a == uploads.content_key({"y.hea": b"h", "x.csv": b"1,2"}, 125.0, None)  # order of files is irrelevant
    assert a != uploads.content_key({"x.csv": b"1,3", "y.hea": b"h"}, 125.0, None)
    assert a != uploads.content_key({"x.csv": b"1,2", "y.hea": b"h"}, 250.0, None)


def test_read_upload_csv_in_memory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rec = uploads.read_upload({"monitor.csv": _csv_bytes()})
    assert rec.modalities == ("ecg", "ppg")
    assert rec.fs == pytest.approx(125.0)
    assert rec.duration_s == pytest.approx(25.0, abs=0.1)
    assert list(tmp_path.iterdir()) == []  # nothing written to the working directory


def test_read_upload_bad_inputs_are_one_line_input_errors():
    cases = [
        {},
        {"empty.csv": b""},
        {"noise.csv": b"a,b\nfoo,bar\n"},
        {"weird.xyz": b"\x00\x01\x02"},
        {"pickle.npy": b"\x93NUMPY\x01\x00v\x00{'descr': '|O', 'fortran_order': False, 'shape': (2,), }" + b" " * 50 + b"\n"},
    ]
    for files in cases:
        with pytest.raises(InputError) as e:
            uploads.read_upload(files)
        msg = str(e.value)
        assert msg and "\n" not in msg, files


def test_list_channels_from_headers():
    assert uploads.list_channels({"a.csv": b"t;chan A;chan B\n0;1;2\n0.01;1;2\n"}) == ["t", "chan A", "chan B"]
    buf = io.BytesIO()
    np.savez(buf, sig1=np.zeros(10), sig2=np.ones(10), fs=np.array(100.0))
    assert uploads.list_channels({"x.npz": buf.getvalue()}) == ["sig1", "sig2"]
    hea = b"rec 2 250 1000\nrec.dat 16 200 12 0 0 0 0 II\nrec.dat 16 200 12 0 0 0 0 PLETH\n"
    assert uploads.list_channels({"rec.hea": hea, "rec.dat": b"\x00" * 8}) == ["II", "PLETH"]
    edf = bytearray(b" " * 256 + b" " * 32)
    edf[252:256] = b"2   "
    edf[256:272] = b"ECG II".ljust(16)
    edf[272:288] = b"Pleth".ljust(16)
    assert uploads.list_channels({"r.edf": bytes(edf)}) == ["ECG II", "Pleth"]
    assert uploads.list_channels({"r.npy": b"junk"}) == []


def test_mapping_override_reads_unrecognised_columns():
    data = _csv_bytes(header=("t", "chan_a", "chan_b")).replace(b"t,chan_a", b"x,chan_a")
    with pytest.raises(InputError):
        uploads.read_upload({"odd.csv": data}, fs=125.0)
    rec = uploads.read_upload({"odd.csv": data}, fs=125.0, ecg="chan_a", ppg="chan_b")
    assert rec.modalities == ("ecg", "ppg")


def test_load_manifest_formats(tmp_path):
    (tmp_path / "a.npz").write_bytes(b"x")
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"records": [{"name": "A", "path": "a.npz", "description": "one"}, {"name": "gone", "path": "missing.npz"}]}))
    entries = load_manifest(tmp_path)
    assert [e.name for e in entries] == ["A"] and entries[0].label == "A — one"
    (tmp_path / "manifest.json").write_text(json.dumps([{"file": "a.npz"}]))
    assert load_manifest(tmp_path)[0].name == "a"
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(InputError):
        load_manifest(tmp_path)
    assert load_manifest(tmp_path / "nowhere") == []


def _windows(n=3, with_ppg=True):
    rng = np.random.default_rng(0)
    T = 1250 * n
    clean = np.sin(np.arange(T) / 10.0)
    return Windows(
        ecg=rng.standard_normal((n, 1250)).astype(np.float32), ppg=None if not with_ppg else rng.standard_normal((n, 1250)).astype(np.float32),
        starts_s=np.arange(n) * 10.0, ecg_center=np.zeros(n, np.float32), ecg_scale=np.ones(n, np.float32),
        ecg_quality=np.array([0.9, 0.2, 0.8], np.float32)[:n], ppg_quality=np.full(n, np.nan, np.float32),
        low_quality=np.array([False, True, False])[:n], hr_ecg_bpm=np.array([60, 70, 80], np.float32)[:n],
        hr_ppg_bpm=np.full(n, np.nan, np.float32), pat_ms=np.full(n, np.nan, np.float32),
        ecg_clean=clean, r_peaks=np.array([10, 1300, 1400, 2600]), pulse_peaks=np.array([], np.int64),
        meta={"units": {"ecg": "mV"}})


def test_window_view_cuts_the_right_samples_and_peaks():
    win = _windows(with_ppg=False)
    v = window_view(win, 1)
    assert v.t_s[0] == pytest.approx(10.0) and len(v.t_s) == 1250
    np.testing.assert_allclose(v.ecg, win.ecg_clean[1250:2500])
    np.testing.assert_allclose(v.r_peaks_s, [1300 / 125, 1400 / 125])
    assert v.ppg is None and v.low_quality and v.hr_bpm == 70 and v.units["ecg"] == "mV"
    assert window_view(win, 99).index == 2  # clamped to the last window


def test_quality_table_and_record_figures():
    win = _windows()
    table = quality_table(win)
    assert list(table["low_quality"]) == [False, True, False]
    figs = record_figures(win)
    assert figs["hr_ecg_bpm"] == 70 and figs["n_low_quality"] == 1 and np.isnan(figs["pat_ms"])


def test_masked_spans_merge_patches():
    mask = np.zeros(50, bool)
    mask[[0, 1, 2, 10, 49]] = True
    spans = masked_spans(mask, offset_s=20.0)
    assert [(round(a, 3), round(b, 3)) for a, b in spans] == [(20.0, 20.6), (22.0, 22.2), (29.8, 30.0)]
    assert masked_spans(np.repeat(mask, 25)) == masked_spans(mask)  # per-sample masks too
    assert masked_spans(np.zeros(50, bool)) == []


def test_reconstruction_errors():
    x = np.sin(np.linspace(0, 20, 1250))
    perfect = reconstruction_errors(x, x)
    assert perfect["nmse"] == pytest.approx(0.0) and perfect["pearson_r"] == pytest.approx(1.0)
    mask = np.zeros(50, bool)
    mask[:10] = True
    y = x.copy()
    y[250:] = 0  # wrong only where visible: hidden spans still perfect
    err = reconstruction_errors(x, y, mask)
    assert err["nmse"] == pytest.approx(0.0) and err["n_samples"] == 250
    shifted = np.roll(x, 25)
    lagged = reconstruction_errors(x, shifted, max_lag_samples=125)
    assert lagged["pearson_r_lagged"] > 0.99 and lagged["lag_ms"] == pytest.approx(200.0)
    with pytest.raises(InputError):
        reconstruction_errors(x, x[:10])


def test_knn_vote_and_estimate():
    vote = knn_vote(["AF", "NSR", "AF", None, float("nan"), pd.NA, ""], [0.9, 0.95, 0.8, 0.99, 0.5, 0.9, 0.9])
    assert vote.iloc[0]["label"] == "AF" and vote.iloc[0]["count"] == 2
    assert vote["share"].sum() == pytest.approx(1.0) and vote["weighted_share"].sum() == pytest.approx(1.0)
    # similarity weighting can overturn a head count
    assert knn_vote(["a", "a", "b"], [0.1, 0.1, 0.9]).iloc[0]["label"] == "b"
    assert knn_vote([None]).empty
    assert list(knn_vote(pd.array([True, pd.NA, False, True], dtype="boolean"))["label"]) == ["True", "False"]
    with pytest.raises(InputError):
        knn_vote(["a"], [0.1, 0.2])
    est = knn_estimate([40, 60, np.nan], [1.0, 1.0, 1.0])
    assert est == {"mean": 50.0, "sd": 10.0, "n": 2}
    assert is_numeric_label(np.arange(30.0)) and not is_numeric_label([0.0, 1.0, 1.0])


def test_selected_rows_from_plotly_events():
    event = {"selection": {"points": [{"customdata": [5, "AF"]}, {"customdata": [2, "NSR"]},
                                      {"customdata": [5, "AF"]}, {"x": 1.0}], "box": [], "lasso": []}}
    assert selected_rows(event) == [2, 5]
    assert selected_rows({"selection": {"points": []}}) == []
    assert selected_rows(None) == []


def test_cohort_table_and_csv():
    meta = pd.DataFrame({"record": ["r1", "r2"], "label_rhythm": ["AF", "NSR"]})
    fp = np.eye(2, 4, dtype=np.float32)
    table = cohort_table(meta, fp)
    assert list(table.columns) == ["record", "label_rhythm", "fp_0", "fp_1", "fp_2", "fp_3"]
    assert "ecg_125hz" not in table  # no raw waveform unless asked
    with_wf = cohort_table(meta, fp, {"ecg": np.ones((2, 3)), "ppg": None})
    assert with_wf["ecg_125hz"].iloc[0] == "1;1;1"
    csv = to_csv_bytes(with_wf).decode()
    assert csv.splitlines()[0].startswith("record,label_rhythm,fp_0")
    with pytest.raises(InputError):
        cohort_table(meta, fp[:1])


def test_neighbour_filters():
    meta = pd.DataFrame({"ecg_quality": [0.9, 0.2, np.nan], "ppg_quality": [0.8, 0.9, 0.7],
                         "modalities": ["ecg+ppg", "ecg+ppg", "ppg"]})

    def allowed(filters):
        mask = np.ones(len(meta), bool)
        for col, f in filters.items():
            mask &= np.asarray(f(meta[col]), bool)
        return mask.tolist()

    assert allowed(neighbour_filters(meta.columns, 0.5)) == [True, False, True]
    assert allowed(neighbour_filters(meta.columns, 0.0, "ecg")) == [True, True, False]
    assert allowed(neighbour_filters(meta.columns, 0.0, "both")) == [True, True, False]
    assert neighbour_filters(meta.columns) == {}


def test_index_fingerprints_reads_back_flat_and_ivf():
    import faiss

    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 8)).astype(np.float32)
    flat = faiss.IndexFlatIP(8)
    flat.add(x)
    np.testing.assert_allclose(index_fingerprints(flat, [3, 7]), x[[3, 7]])
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(8), 8, 4, faiss.METRIC_INNER_PRODUCT)
    ivf.train(x)
    ivf.add(x)
    np.testing.assert_allclose(index_fingerprints(ivf, [3, 7]), x[[3, 7]])
    assert index_fingerprints(flat, []).shape == (0, 8)


def test_head_summary_and_label_pairs():
    cls = {"classes": ["NSR", "AF"], "class_names": ["sinus rhythm", "atrial fibrillation"],
           "probabilities": np.array([[0.3, 0.7], [0.9, 0.1]])}
    s = head_summary(cls, 0)
    assert s["kind"] == "class" and s["label"] == "atrial fibrillation" and s["probability"] == pytest.approx(0.7)
    assert s["table"].iloc[0]["class"] == "AF"
    reg = {"value": np.array([50.0]), "interval": np.array([[40.0, 60.0]]), "interval_level": 0.9, "unit": "years"}
    r = head_summary(reg, 0)
    assert (r["value"], r["low"], r["high"], r["unit"]) == (50.0, 40.0, 60.0, "years")
    assert label_head_pairs(["label_rhythm", "label_x", "record"], ["rhythm", "age"]) == {"label_rhythm": "rhythm"}
    assert label_head_pairs(["label_rhythm_name"], ["rhythm"]) == {"label_rhythm_name": "rhythm"}
    assert vote_columns(["label_rhythm", "label_rhythm_name", "label_age"]) == ["label_rhythm_name", "label_age"]


def test_flatten_and_find_entries():
    card = {"eval": {"privacy": {"reidentification_top1": 0.3}, "sim": {"auroc": 0.9}}, "name": "m"}
    assert ("eval.sim.auroc", 0.9) in flatten(card)
    assert find_entries(card, ("privacy",)) == [("eval.privacy.reidentification_top1", 0.3)]


def test_timing_caption_says_where_the_rebuilt_modality_was_placed():
    assert "pulse peaks come 352 ms after the ECG's R peaks" in timing_caption("ppg", "ecg", 0.352, 24.0)
    assert "moved +24 ms" in timing_caption("ppg", "ecg", 0.352, 24.0)
    assert "R peaks come 352 ms before the PPG's pulse peaks" in timing_caption("ecg", "ppg", 0.352, -8.0)
    assert "could not be found" in timing_caption("ecg", "ppg", 0.352, float("nan"))
    assert "records no typical pulse arrival" in timing_caption("ecg", "ppg", None, float("nan"))


def test_rhythm_interval_warning_on_a_real_regular_record(bidmc_csv):
    """BIDMC 01 window 1 has regular beats: an AF call gets the warning, a sinus call does not."""
    import m2ae

    win = m2ae.preprocess(m2ae.load_record(bidmc_csv))
    view = window_view(win, 0)
    classes = ["NSR", "AF", "SB", "ST", "PVC"]

    def call(code):
        p = np.full((len(win), 5), 0.01)
        p[:, classes.index(code)] = 0.96
        return {"classes": classes, "class_names": classes, "probabilities": p}

    assert "(R peaks) are regular" in rhythm_interval_warning(call("AF"), view)
    assert rhythm_interval_warning(call("NSR"), view) is None
    assert rhythm_interval_warning(None, view) is None
