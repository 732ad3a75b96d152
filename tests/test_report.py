"""`m2ae report` and m2ae.report: the PDF opened with pypdf, its text and page count checked."""
from __future__ import annotations

import json

import io

import numpy as np
import pytest

from m2ae.cli import main
from m2ae.errors import InputError
from m2ae.record import Record
from m2ae.report import choose_window, pdf_text, record_report_pdf
from m2ae.signal import preprocess
from m2ae.simulate.record import simulate_record

pypdf = pytest.importorskip("pypdf", reason="pypdf (test extra) reads the PDF back")


def _pdf_text(data: bytes) -> tuple[int, str]:
    reader = pypdf.PdfReader(io.BytesIO(data))
    return len(reader.pages), "\n".join(p.extract_text() for p in reader.pages)


@pytest.fixture(scope="module")
def sim():
    rec = simulate_record("NSR", duration_s=20, seed=5)
    rec.meta["record_id"] = "sim-report\x1b[2J<b>\u2192"
    rec.meta["events"] = [{"time_s": 14.0, "label": "alarm: test"}]
    return rec, preprocess(rec)


@pytest.fixture(scope="module")
def model_and_index():
    from m2ae.index.store import open_index
    from m2ae.model.inference import load_model

    model = load_model()
    return model, open_index(None, model=model)


def test_report_with_model_and_index_has_every_part(sim, model_and_index):
    rec, win = sim
    model, index = model_and_index
    pages, text = _pdf_text(record_report_pdf(rec, win, model=model, index=index))
    assert pages == 3
    low = text.lower()
    assert low.count("not for clinical use") == pages            # on every page
    assert "sim-report\\x1b[2J<b>->" in text                      # file-derived name shown escaped
    assert model.version in text
    assert "QTc Bazett" in text and "QTc Fridericia" in text
    qtc = [line for line in text.splitlines() if line.startswith("QTc Bazett")][0]
    value = float(qtc.split()[2])
    assert 300 < value < 520, qtc
    assert "window 1" in low and "alarm: test" in text              # the event's window was chosen
    assert "Nearest neighbours" in text and "Familiarity:" in text and "rhythm" in text
    # the re-identification risk is the library's figure for the same record, with the page's wording
    from m2ae.index.linkability import calibration_note, record_linkability

    record_id = rec.meta["record_id"]
    risk = record_linkability(index, model.fingerprint(ecg=win.ecg, ppg=win.ppg),
                              subject_id=str(win.meta.get("subject_id") or record_id), record=record_id)
    flat = " ".join(text.split())
    assert "Re-identification risk of this record" in flat
    assert f"Linkability score: {risk['score']:.0%} Risk level: {risk['level']}" in flat
    assert f"Median margin (cosine): {risk['margin_median']:+.3f}" in flat
    assert " ".join(risk["sentence"].split()) in flat
    assert " ".join(calibration_note(risk["calibration"]).split()) in flat


def test_report_without_model_still_measures(sim):
    rec, win = sim
    pages, text = _pdf_text(record_report_pdf(rec, win, window=0))
    assert pages == 3 and "no model" in text.lower() and "QT " in text
    assert text.lower().count("not for clinical use") == 3
    assert "Re-identification risk not computed: no model and no index given" in " ".join(text.split())


def test_report_says_why_re_identification_is_missing(model_and_index):
    model, index = model_and_index
    rec = simulate_record("NSR", duration_s=12, seed=3)
    win = preprocess(rec)
    assert len(win) == 1  # one window: nothing of the record's own to compare with
    _, text = _pdf_text(record_report_pdf(rec, win, model=model, index=index))
    flat = " ".join(text.split())
    assert "needs at least two windows of the record" in flat and "Linkability score" not in flat
    _, text = _pdf_text(record_report_pdf(rec, win, model=model))
    assert "Re-identification risk not computed: no index given" in " ".join(text.split())


def test_choose_window_prefers_event_then_quality(sim):
    rec, win = sim
    assert choose_window(win) == (1, "ends at or holds the event 'alarm: test' at 14.0 s")
    at_end = preprocess(Record(ecg=rec.ecg, ppg=rec.ppg, fs=rec.fs, meta={"events": [{"time_s": 20.0, "label": "a"}]}))
    assert choose_window(at_end)[0] == 1  # an alarm at 20 s is judged on the 10-20 s window that ends at it
    assert choose_window(win, 0) == (0, "asked for")
    with pytest.raises(InputError, match="window 5 outside 0-1"):
        choose_window(win, 5)
    plain = preprocess(Record(ecg=rec.ecg, ppg=rec.ppg, fs=rec.fs, meta={}))
    i, why = choose_window(plain)
    assert why == "best signal quality" and i in (0, 1)


def test_pdf_text_is_printable_latin1():
    s = pdf_text("a\nb\x1b[31m \u2192 \u2713 " + "x" * 400, limit=50)
    assert "\n" not in s and "\x1b" not in s and s.endswith("...") and len(s) == 50
    s.encode("latin-1")


def test_cli_report_writes_a_pdf(tmp_path, capsys):
    rec = simulate_record("NSR", duration_s=12, seed=2)
    src = tmp_path / "r.npz"
    np.savez(src, ecg=rec.ecg, ppg=rec.ppg, fs=rec.fs)
    out = tmp_path / "report.pdf"
    assert main(["report", str(src), "--out", str(out), "--no-model"]) == 0
    pages, text = _pdf_text(out.read_bytes())
    assert pages == 3 and "not for clinical use" in text.lower()


def test_cli_report_reads_labels_from_a_nearby_manifest(tmp_path):
    # as the app and `m2ae index query` do: the manifest's alarm time chooses the window the report opens on
    rec = simulate_record("NSR", duration_s=30, seed=3)
    np.savez(tmp_path / "r.npz", ecg=rec.ecg, ppg=rec.ppg, fs=rec.fs)
    (tmp_path / "manifest.json").write_text(json.dumps({"records": [
        {"path": "r.npz", "subject_id": "s1", "labels": {"alarm_type": "VT", "true_alarm": True, "alarm_time_s": 20.0}}]}))
    out = tmp_path / "report.pdf"
    assert main(["report", str(tmp_path / "r.npz"), "--out", str(out), "--no-model"]) == 0
    flat = " ".join(_pdf_text(out.read_bytes())[1].split())
    assert "Event: alarm: VT (true) at 20.0 s" in flat and "Window 1 (10-20 s; ends at or holds the event" in flat, flat[:600]


@pytest.mark.parametrize("argv, message", [
    (["report", "missing.hea", "--out", "x.pdf"], "missing.hea"),
    (["report", "missing.hea", "--out", "x.txt"], "--out must name a .pdf file"),
    (["report", "missing.hea", "--out", "/no/such/dir/x.pdf"], "does not exist"),
])
def test_cli_report_bad_input_exits_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
