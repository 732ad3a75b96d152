"""Every ECG lead a file carries reaches ``Record.ecg_leads`` in mV; WFDB annotations become events."""
from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest

from m2ae.io import limits, load_record
from m2ae.record import record_events

ROOT = Path(__file__).resolve().parents[1]
R289 = ROOT / "sample_data" / "cinc2015_r289"


def _beats(n: int, fs: float, phase: float = 0.0) -> np.ndarray:
    t = np.arange(n) / fs
    return np.exp(-0.5 * (((t * 1.2 + phase) % 1.0 - 0.3) / 0.02) ** 2)


def test_sample_r289_has_both_ecg_leads_with_ii_as_input():
    rec = load_record(R289 / "r289.hea")
    assert rec.meta["lead"] == "II" and set(rec.ecg_leads) == {"II", "V"}
    assert rec.ecg_leads["II"] is rec.ecg  # the model's input lead is one of them, not a copy
    assert all(len(x) == rec.n_samples == 75000 for x in rec.ecg_leads.values())
    # both in mV: QRS amplitudes of a few mV at most, not µV counts
    assert all(0.01 < np.nanpercentile(np.abs(x), 99) < 10 for x in rec.ecg_leads.values())
    assert not np.allclose(rec.ecg_leads["V"], rec.ecg)


def test_flac_record_from_the_corpus(cinc_dir):
    hea = cinc_dir / "records" / "r001.hea"
    if not hea.exists():
        pytest.skip(f"{hea} is absent")
    header = hea.read_text().splitlines()
    assert " 516 " in header[1]  # FLAC-compressed (WFDB format 516)
    leads = [ln.split()[-1] for ln in header[1:] if ln.split() and ln.split()[-1] != "PLETH"]
    rec = load_record(hea)
    assert rec.fs == 250.0 and list(rec.ecg_leads) == leads and rec.meta["lead"] == leads[0]
    assert rec.ppg is not None and all(np.isfinite(x).mean() > 0.5 for x in rec.ecg_leads.values())


def test_single_lead_gives_none():
    data = "time,II,PLETH\n" + "".join(f"{i / 100},{i % 7},{i % 5}\n" for i in range(300))
    assert load_record(io.BytesIO(data.encode()), name="one.csv").ecg_leads is None


def test_csv_leads_each_in_mv():
    n, fs = 3000, 250.0
    ii, v, avl = _beats(n, fs), 0.5 * _beats(n, fs, 0.01), -0.3 * _beats(n, fs, 0.02)
    rows = "".join(f"{i / fs:.4f},{a:.5f},{b * 1000:.2f},{c:.5f},{i % 9}\n" for i, (a, b, c) in enumerate(zip(ii, v, avl)))
    rec = load_record(io.BytesIO(("time,II,V [uV],aVL,PLETH\n" + rows).encode()), name="leads.csv")
    assert list(rec.ecg_leads) == ["II", "V", "aVL"] and rec.meta["lead"] == "II"
    np.testing.assert_allclose(rec.ecg_leads["V"], v, atol=1e-5)  # µV column scaled to mV
    np.testing.assert_allclose(rec.ecg_leads["aVL"], avl, atol=1e-5)
    assert any("converted to mV: V (uV)" in n for n in rec.meta["notes"])


def test_csv_leads_follow_the_gap_grid():
    fs = 100.0
    t = [i / fs for i in range(200)] + [i / fs for i in range(400, 700)]
    rows = "".join(f"{s:.2f},{k % 7},{k % 3},{k % 5}\n" for k, s in enumerate(t))
    rec = load_record(io.BytesIO(("time,II,V1,PLETH\n" + rows).encode()), name="gap.csv")
    assert rec.n_samples == 700 and np.isnan(rec.ecg_leads["V1"][200:400]).all()
    assert np.array_equal(np.isnan(rec.ecg_leads["V1"]), np.isnan(rec.ecg))


def test_npz_with_several_ecg_keys(tmp_path):
    n = 2000
    p = tmp_path / "leads.npz"
    np.savez(p, ecg=_beats(n, 200), V5=_beats(n, 200, 0.05), ppg=np.cos(np.arange(n) / 30), fs=200.0)
    rec = load_record(p)
    assert set(rec.ecg_leads) == {"ecg", "V5"} and rec.ecg_leads["ecg"] is rec.ecg


def test_edf_leads_at_different_rates_share_the_record_rate(tmp_path):
    from pyedflib import highlevel

    heads = [highlevel.make_signal_header("ECG II", "mV", 500, -2, 2),
             highlevel.make_signal_header("ECG V5", "uV", 250, -2000, 2000),
             highlevel.make_signal_header("Pleth", "", 125, -2, 2)]
    sigs = [_beats(5000, 500), 1000 * _beats(2500, 250), np.cos(np.arange(1250) / 5)]
    highlevel.write_edf(str(tmp_path / "m.edf"), sigs, heads)
    rec = load_record(tmp_path / "m.edf")
    assert rec.fs == 500.0 and set(rec.ecg_leads) == {"II", "V5"}
    assert len(rec.ecg_leads["V5"]) == rec.n_samples == 5000
    assert 0.5 < np.max(rec.ecg_leads["V5"]) < 1.5  # µV -> mV, resampled 250 -> 500 Hz


def test_multisegment_wfdb_leads(tmp_path):
    import wfdb

    fs, n = 125, 1250
    for k in (1, 2):
        sig = np.column_stack([_beats(n, fs, k / 10), 0.4 * _beats(n, fs, k / 10 + 0.02), np.cos(np.arange(n) / 9)])
        wfdb.wrsamp(f"seg{k}", fs=fs, units=["mV", "mV", "NU"], sig_name=["II", "V", "PLETH"], p_signal=sig,
                    fmt=["16"] * 3, write_dir=str(tmp_path))
    (tmp_path / "multi.hea").write_text(f"multi/2 3 {fs} {2 * n}\nseg1 {n}\nseg2 {n}\n")
    rec = load_record(tmp_path / "multi.hea")
    assert rec.n_samples == 2 * n and set(rec.ecg_leads) == {"II", "V"}
    assert np.isfinite(rec.ecg_leads["V"]).all() and 0.3 < np.max(rec.ecg_leads["V"]) < 0.5


def _annotated_copy(tmp_path: Path) -> Path:
    import wfdb

    for f in ("r289.hea", "r289.dat"):
        shutil.copy(R289 / f, tmp_path / f)
    wfdb.wrann("r289", "atr", np.array([100, 500, 2500, 2600, 60000]), np.array(["N", "+", "N", '"', "~"]),
               aux_note=["", "(VT", "", "ALARM: VTach", ""], write_dir=str(tmp_path), fs=250)
    return tmp_path / "r289.hea"


def test_wfdb_annotations_become_events(tmp_path):
    rec = load_record(_annotated_copy(tmp_path))
    events = record_events(rec.meta)
    assert [(e["time_s"], e["label"]) for e in events] == [
        (2.0, "rhythm change: (VT"), (10.4, "comment: ALARM: VTach"), (240.0, "signal quality change")]
    # uploaded together with the header and data, the annotation file counts the same
    files = {f.name: f.read_bytes() for f in tmp_path.iterdir()}
    assert record_events(load_record(files).meta) == events


def test_wfdb_events_are_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_EVENTS", 2)
    rec = load_record(_annotated_copy(tmp_path))
    assert len(rec.meta["events"]) == 2
    assert any("1 annotations beyond the first 2 left out" in n for n in rec.meta["notes"])


def test_unreadable_known_annotator_is_noted(tmp_path):
    hea = _annotated_copy(tmp_path)
    (tmp_path / "r289.atr").write_bytes(b"\xff" * 7)
    rec = load_record(hea)
    assert "events" not in rec.meta or rec.meta["events"] == []
    assert any("r289.atr could not be read" in n for n in rec.meta["notes"])
