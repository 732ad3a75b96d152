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


@pytest.mark.xfail(strict=True, reason=(
    "known regression (issue 11): since the index holds real ICU windows (artefacts included) and the "
    "model was fine-tuned on them, white noise and a square wave reach top-1 similarity 0.77-0.86, "
    "above the simulated reference's 1 % quantile (0.75), so they no longer read as unfamiliar; "
    "familiarity needs a reference calibrated on held-out real records"))
def test_unseen_simulated_is_familiar_and_foreign_signals_are_not(shipped):
    from m2ae.signal.filters import robust_normalise
    from m2ae.simulate import simulate_windows
    from m2ae.simulate.splits import EVAL_SEED

    model, idx = shipped
    sim = simulate_windows(8, seed=EVAL_SEED)  # subjects in neither the index nor the reference
    fam = familiarity(idx, model.fingerprint(ecg=sim["ecg"], ppg=sim["ppg"]), "both", model=model)
    assert fam["calibrated"] and not fam["record_unfamiliar"] and fam["share_unfamiliar"] <= 0.25
    assert warning_text(fam) is None
    rng = np.random.default_rng(0)
    t = np.arange(1250) / 125.0
    square = np.sign(np.sin(2 * np.pi * 1.3 * t))[None].repeat(4, 0) + 0.01 * rng.normal(size=(4, 1250))
    for foreign in (rng.normal(size=(4, 1250)), square):
        x = robust_normalise(foreign)[0].astype(np.float32)
        fam = familiarity(idx, model.fingerprint(ecg=x, ppg=x), "both", model=model)
        assert fam["record_unfamiliar"] and all(fam["unfamiliar"]), fam["top1"]
        assert all(p < 1.0 for p in fam["percentile"])
        assert warning_text(fam, 0).startswith("Unfamiliar signal: the nearest of")


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
