"""Familiarity (out-of-distribution gate): calibration file, flags, version check, CLI, app warning."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from m2ae.index import build_index, open_index
from m2ae.index.calibration import calibrate_familiarity
from m2ae.index.familiarity import MODES, QUANTILES_PCT, familiarity, warning_text
from m2ae.index.files import FAMILIARITY_FILE
from m2ae.index.files import write_familiarity as write_reference
from m2ae.index.mapping import MapConfig

ROOT = Path(__file__).resolve().parents[1]
PCA = MapConfig(method="pca")


class SpectralModel:
    """Stand-in for the M2AE (fast): a fixed random projection of each window's log spectrum."""

    version = "stand-in-fam"
    path = None

    def __init__(self):
        self.w = np.random.default_rng(0).normal(size=(128, 32)).astype(np.float32)

    def fingerprint(self, ecg=None, ppg=None, batch_size=256):
        n = len(ecg if ecg is not None else ppg)
        feats = [np.zeros((n, 64), np.float32) if x is None else
                 np.log1p(np.abs(np.fft.rfft(x, axis=1))[:, 1:257]).reshape(n, 64, -1).mean(axis=2) for x in (ecg, ppg)]
        fp = np.concatenate(feats, axis=1) @ self.w
        return (fp / np.linalg.norm(fp, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("fam") / "idx"
    model = SpectralModel()
    build_index([], out, model=model, simulate=6, seed=5, duration_s=30.0, map_config=PCA, progress=False)
    return out, model


def test_build_calibrates_and_open_loads_the_reference(tiny):
    out, model = tiny
    assert (out / FAMILIARITY_FILE).exists()
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temp file left behind
    ref = json.loads((out / FAMILIARITY_FILE).read_text())
    assert ref["model_version"] == "stand-in-fam" and ref["n"] == 600 and set(ref["modes"]) == set(MODES)
    for mode in MODES:
        q = [ref["modes"][mode]["window_quantiles"][str(p)] for p in QUANTILES_PCT]
        assert q == sorted(q) and len(ref["modes"][mode]["window_top1_sorted"]) == 600
    idx = open_index(out, model=model)
    assert idx.familiarity_reference == ref
    # Recalibrating replaces the file atomically with the new numbers (other seed, fewer windows).
    new = calibrate_familiarity(idx, model, n_windows=60, seed=77)
    assert json.loads((out / FAMILIARITY_FILE).read_text())["n"] == new["n"] == 60
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
    # save() of the index keeps the reference.
    idx.save(out)
    assert open_index(out).familiarity_reference["seed"] == 77


def test_not_calibrated_absent_corrupt_or_other_model(tiny, tmp_path):
    out, model = tiny
    idx = open_index(out, model=model)
    fp = model.fingerprint(ecg=np.random.default_rng(1).normal(size=(3, 1250)).astype(np.float32),
                           ppg=np.random.default_rng(2).normal(size=(3, 1250)).astype(np.float32))
    assert familiarity(idx, fp, "both", model=model)["calibrated"] is True
    ref = dict(idx.familiarity_reference, model_version="some-other-model")
    idx.familiarity_reference = ref
    res = familiarity(idx, fp, "both", model=model)
    assert res["calibrated"] is False and "some-other-model" in res["note"] and len(res["top1"]) == 3
    assert warning_text(res, 0) is None
    copy = tmp_path / "copy"
    idx.save(copy)
    write_reference(copy, ref)
    assert familiarity(open_index(copy), fp, "both")["calibrated"] is False
    (copy / FAMILIARITY_FILE).write_text("{not json")
    broken = open_index(copy)
    assert broken.familiarity_reference is None
    assert familiarity(broken, fp, "both")["calibrated"] is False
    (copy / FAMILIARITY_FILE).unlink()
    res = familiarity(open_index(copy), fp, "ecg")
    assert res["calibrated"] is False and "m2ae index calibrate" in res["note"]


@pytest.fixture(scope="module")
def shipped():
    import m2ae

    model = m2ae.load_model()
    try:
        idx = m2ae.open_index(model=model)
    except m2ae.InputError:
        pytest.skip("no shipped index for this model")
    if idx.familiarity_reference is None:
        pytest.skip("shipped index is not calibrated")
    return model, idx


def foreign_windows(kind: str, n: int = 4, seed: int = 0) -> np.ndarray:
    """Robust-normalised windows [n, 1250] of a signal that is neither ECG nor PPG."""
    from m2ae.signal.filters import robust_normalise

    rng = np.random.default_rng(seed)
    t = np.arange(1250) / 125.0
    if kind == "white noise":
        x = rng.normal(size=(n, 1250))
    elif kind == "square wave":
        x = np.sign(np.sin(2 * np.pi * 1.3 * t))[None].repeat(n, 0) + 0.01 * rng.normal(size=(n, 1250))
    elif kind == "sine":
        x = np.stack([np.sin(2 * np.pi * 1.1 * t + rng.uniform(0, 6)) for _ in range(n)])
    elif kind == "random walk":
        x = np.cumsum(rng.normal(size=(n, 1250)), axis=1)
    else:  # flat line with a few spikes
        x = 0.001 * rng.normal(size=(n, 1250))
        for row in x:
            row[rng.choice(1250, 6, replace=False)] += 10.0
    return robust_normalise(x)[0].astype(np.float32)


FOREIGN = ("white noise", "square wave", "sine", "random walk", "flat line with spikes")


def test_unseen_simulated_is_familiar_and_foreign_signals_are_not(shipped):
    from m2ae.simulate import simulate_windows
    from m2ae.simulate.splits import EVAL_SEED

    model, idx = shipped
    sim = simulate_windows(8, seed=EVAL_SEED)  # subjects in neither the index nor the reference
    fam = familiarity(idx, model.fingerprint(ecg=sim["ecg"], ppg=sim["ppg"]), "both", model=model,
                      ecg=sim["ecg"], ppg=sim["ppg"])
    assert fam["calibrated"] and fam["note"] is None and not fam["record_unfamiliar"], fam["record_reasons"]
    assert fam["share_unfamiliar"] <= 0.25 and warning_text(fam) is None
    for kind in FOREIGN:
        x = foreign_windows(kind)
        for mode, (e, p) in {"both": (x, x), "ecg": (x, None), "ppg": (None, x)}.items():
            fam = familiarity(idx, model.fingerprint(ecg=e, ppg=p), mode, model=model, ecg=e, ppg=p)
            assert fam["record_unfamiliar"], (kind, mode, fam["median_shape_distance"], fam["median_top1"])
            if mode == "both":  # ECG and PPG together: every window is flagged
                assert all(fam["unfamiliar"]), (kind, fam["shape_distance"])
                assert fam["median_shape_distance"] > fam["record_shape_threshold"]
                assert warning_text(fam, 0).startswith("Unfamiliar signal: this window's nearest of")
    # Without the windows only the fingerprint neighbourhood is judged, and the verdict says so.
    x = foreign_windows("white noise")
    fam = familiarity(idx, model.fingerprint(ecg=x, ppg=x), "both", model=model)
    assert fam["calibrated"] and fam["shape_distance"] is None and "signal shape not checked" in fam["note"]


def test_held_out_real_validation_records_are_familiar(shipped, cinc_dir):
    from m2ae.index.calibration import calibration_half
    from m2ae.train.alarm_data import load_alarm_records

    model, idx = shipped
    ref = idx.familiarity_reference
    if not ref.get("real_records"):
        pytest.skip("the shipped index's familiarity is calibrated without real records")
    recs = load_alarm_records(cinc_dir, splits=("validation",))
    held_out = [r for r in recs if r.name not in set(calibration_half([r.name for r in recs]))]
    verdicts = []
    for r in held_out[::3]:  # a third of the records that did not calibrate (time)
        mode = "both" if r.ecg is not None and r.ppg is not None else "ecg" if r.ecg is not None else "ppg"
        e, p = (r.ecg if mode != "ppg" else None), (r.ppg if mode != "ecg" else None)
        fam = familiarity(idx, model.fingerprint(ecg=e, ppg=p), mode, model=model, exclude_subject=r.name, ecg=e, ppg=p)
        verdicts.append(fam["record_unfamiliar"])
    assert len(verdicts) >= 15 and np.mean(verdicts) <= 0.15, verdicts


def test_calibration_with_real_records_keeps_both_sources(tiny):
    from m2ae.simulate.labelled import subject_windows

    out, model = tiny
    idx = open_index(out, model=model)
    sim = subject_windows(6, 4, seed=321)
    real = [{"record": f"real-{i}", "subject": f"real-{i}", "ecg": sim["ecg"][4 * i:4 * i + 4],
             "ppg": None if i == 0 else sim["ppg"][4 * i:4 * i + 4]} for i in range(6)]
    ref = calibrate_familiarity(idx, model, n_windows=60, seed=78, save=False, real=real, real_data="six test records")
    assert ref["real_records"] == {"both": 5, "ecg": 6, "ppg": 5} and "six test records" in ref["data"]
    for mode in MODES:
        r = ref["modes"][mode]
        assert r["sources"]["simulated"] == {"windows": 60, "groups": 10}
        assert r["sources"]["real"]["groups"] == ref["real_records"][mode]
        assert len(r["window_top1_sorted"]) == 60 + 4 * ref["real_records"][mode]
        assert len(r["shape"]["mean"]) == (12 if mode == "both" else 6) and r["shape"]["threshold"] > 0
    # each source keeps >= 97.5 % of its windows inside the limits it set
    fp = model.fingerprint(ecg=sim["ecg"], ppg=sim["ppg"])
    fam = familiarity(idx, fp, "both", model=model, ecg=sim["ecg"], ppg=sim["ppg"])
    assert fam["calibrated"] and fam["shape_threshold"] == pytest.approx(ref["modes"]["both"]["shape"]["threshold"], abs=0.01)


def test_cli_calibrate_and_query_report_familiarity(shipped, tmp_path, capsys, bidmc_csv):
    from m2ae.cli import main

    model, _ = shipped
    out = tmp_path / "idx"
    build_index([], out, model=model, simulate=4, seed=5, duration_s=30.0, map_config=PCA, progress=False)
    (out / FAMILIARITY_FILE).unlink()
    assert main(["index", "query", str(bidmc_csv), "--index", str(out), "--k", "3", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["familiarity"]["calibrated"] is False
    assert main(["index", "calibrate", "--index", str(out), "--windows", "60", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n"] == 60 and set(summary["window_quantiles"]) == set(MODES)
    assert (out / FAMILIARITY_FILE).exists()
    assert main(["index", "query", str(bidmc_csv), "--index", str(out), "--k", "3", "--json"]) == 0
    fam = json.loads(capsys.readouterr().out)["familiarity"]
    assert fam["calibrated"] is True and fam["mode"] == "both" and fam["n_windows"] == 48
    assert 0.0 <= fam["share_unfamiliar"] <= 1.0 and -1.0 <= fam["median_top1"] <= 1.0
    assert main(["index", "calibrate", "--index", str(tmp_path / "nope")]) == 2


def test_predictions_page_warns_on_the_real_bidmc_record(shipped, bidmc_csv):
    AppTest = pytest.importorskip("streamlit.testing.v1").AppTest
    saved = os.environ.pop("M2AE_INDEX", None)  # the shipped, calibrated index
    try:
        at = AppTest.from_file(str(ROOT / "app" / "streamlit_app.py"), default_timeout=240)
        at.run()
        at.file_uploader(key="upload").set_value((bidmc_csv.name, bidmc_csv.read_bytes(), "text/csv")).run()
        assert not at.exception, [e.value for e in at.exception]
        assert any("Unfamiliar record" in w.value for w in at.warning), [w.value for w in at.warning]
        at.switch_page("views/predictions.py").run()
        assert not at.exception, [e.value for e in at.exception]
        texts = [w.value for w in at.warning]
        assert any("Unfamiliar signal" in t and "treat these predictions as unreliable" in t for t in texts), texts
        at.switch_page("views/similar_patients.py").run()
        assert not at.exception, [e.value for e in at.exception]
        assert any("Unfamiliar signal" in w.value for w in at.warning), [w.value for w in at.warning]
    finally:
        if saved is not None:
            os.environ["M2AE_INDEX"] = saved
