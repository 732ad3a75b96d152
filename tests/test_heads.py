"""Task heads: label encoding, fitting + calibration on planted signal, `m2ae heads fit` CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from m2ae.errors import InputError
from m2ae.model import M2AE, M2AEConfig, Head, load_model, save_checkpoint
from m2ae.model.heads import default_head_specs
from m2ae.train.heads import encode_labels, expected_calibration_error, fit_heads

TINY = M2AEConfig(dim=32, encoder_depth=1, bottleneck_depth=1, n_heads=2, decoder_dim=32, decoder_depth=1,
                  decoder_heads=2, fingerprint_dim=16)


class PlantedModel:
    """Stands in for M2AEModel: the 'fingerprint' is the first 16 samples of the window, where the
    test plants its labels, so fitting quality is known in advance."""

    device = torch.device("cpu")
    fingerprint_dim = 16

    def fingerprint(self, ecg=None, ppg=None, batch_size=256):
        x = ecg if ecg is not None else ppg
        f = x[:, :16].astype(np.float32)
        return f / np.linalg.norm(f, axis=1, keepdims=True)


def planted_split(n, rng):
    rhythm = rng.integers(0, 5, n)
    age = rng.uniform(20, 80, n)
    x = rng.normal(0, 0.3, (n, 1250)).astype(np.float32)
    x[np.arange(n), rhythm] += 3.0                # class k -> bump in feature k
    x[:, 8] += (age - 50) / 10.0                   # age readable from feature 8
    x[:, 9] += 2.0                                 # keeps the norm away from zero
    codes = np.array(["NSR", "AF", "SB", "ST", "PVC"])[rhythm]
    return {"ecg": x, "ppg": x.copy(), "labels": {"rhythm": codes, "age": age}}


def test_encode_labels():
    specs = default_head_specs(16)
    np.testing.assert_array_equal(encode_labels(specs["rhythm"], ["AF", "nsr", None]), [1, 0, -1])
    np.testing.assert_array_equal(encode_labels(specs["hypertension"], [True, "no", "1", 0, "yes"]), [1, 0, 1, 0, 1])
    np.testing.assert_array_equal(encode_labels(specs["sex"], ["M", "f", "female", "male"]), [1, 0, 0, 1])
    np.testing.assert_array_equal(encode_labels(specs["risk"], [False, True, "high"]), [0, 1, 1])
    got = encode_labels(specs["age"], [40, "55.5", "n/a"])
    assert got[:2].tolist() == [40.0, 55.5] and np.isnan(got[2])
    with pytest.raises(InputError, match="not one of"):
        encode_labels(specs["rhythm"], ["torsades"])
    assert encode_labels(specs["rhythm"], ["VT", "asy"]).tolist() == [5, 7]  # the ICU alarm rhythms are classes


def test_ece_is_zero_for_perfect_confident_predictions():
    p = np.eye(3)[[0, 1, 2, 1]]
    assert expected_calibration_error(p, np.array([0, 1, 2, 1])) == 0.0
    assert expected_calibration_error(p, np.array([1, 1, 2, 1])) == pytest.approx(0.25)


def test_fit_heads_learns_planted_labels_and_calibrates():
    rng = np.random.default_rng(0)
    splits = {k: planted_split(n, rng) for k, n in (("train", 400), ("cal", 150), ("test", 150))}
    specs = default_head_specs(16)
    specs = {"rhythm": specs["rhythm"], "age": specs["age"]}
    heads, card = fit_heads(PlantedModel(), specs, splits, epochs=30, training_data="planted")
    assert set(card["rhythm"]["metrics_test"]) == {"both", "ecg", "ppg"}
    assert card["rhythm"]["metrics"]["auroc_both"] > 0.95
    assert card["rhythm"]["metrics_test"]["both"]["ece"] < 0.15
    assert 0.05 <= heads["rhythm"].spec["temperature"] <= 20
    age_std = splits["test"]["labels"]["age"].std()
    assert card["age"]["metrics"]["mae_both"] < 0.5 * age_std
    cov = card["age"]["metrics_test"]["both"]["interval_coverage"]
    assert 0.75 <= cov <= 1.0  # 90 % interval calibrated on a held-out split
    assert card["rhythm"]["training_data"] == "planted" and card["rhythm"]["date"]


def test_fit_heads_refuses_single_class():
    rng = np.random.default_rng(1)
    splits = {k: planted_split(30, rng) for k in ("train", "cal", "test")}
    splits["train"]["labels"]["rhythm"][:] = "NSR"
    with pytest.raises(InputError, match="only one class"):
        fit_heads(PlantedModel(), {"rhythm": default_head_specs(16)["rhythm"]}, splits, epochs=1)


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("heads") / "tiny.pt"
    save_checkpoint(path, M2AE(TINY), {"rhythm": Head(default_head_specs(16)["rhythm"])}, {"name": "tiny"})
    return path


@pytest.fixture(scope="module")
def labelled_records(tmp_path_factory):
    from m2ae.io import write_record
    from m2ae.simulate import simulate_record

    folder = tmp_path_factory.mktemp("records")
    rows = []
    for i in range(8):
        rec = simulate_record(["NSR", "AF"][i % 2], duration_s=20.0, seed=i)
        path = write_record(rec, folder / f"r{i}.npz")
        rows.append({"path": path.name, "af": "yes" if i % 2 else "no", "score": float(i * 3.3 + 1)})
    import pandas as pd

    csv = folder / "labels.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    return csv


def test_cli_heads_fit_adds_heads(tiny_ckpt, labelled_records, tmp_path, capsys):
    from m2ae.cli import main

    out = tmp_path / "with_heads.pt"
    rc = main(["heads", "fit", "--labels", str(labelled_records), "--model", str(tiny_ckpt), "--out", str(out),
               "--json"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    assert set(res["heads"]) == {"af", "score"}
    assert res["heads"]["af"]["kind"] == "classification" and res["heads"]["score"]["kind"] == "regression"
    m = load_model(out, device="cpu")
    assert set(m.heads) == {"rhythm", "af", "score"}        # existing heads kept, new ones added
    assert m.card["heads"]["af"]["training_data"].startswith("labels.csv: 8 records")
    pred = m.predict(ecg=np.zeros((2, 1250), np.float32) + np.linspace(-1, 1, 1250, dtype=np.float32))
    assert pred["af"]["classes"] == ["no", "yes"] and pred["score"]["interval"].shape == (2, 2)
    assert out.with_suffix(".card.json").exists()


def test_cli_heads_fit_bad_inputs(tiny_ckpt, tmp_path, capsys):
    from m2ae.cli import main

    bad = tmp_path / "bad.csv"
    bad.write_text("file,label\na.npz,1\n")
    assert main(["heads", "fit", "--labels", str(bad), "--model", str(tiny_ckpt), "--out", str(tmp_path / "o.pt")]) == 2
    assert "needs a 'path' column" in capsys.readouterr().err
    assert main(["heads", "fit", "--labels", str(tmp_path / "none.csv"), "--out", str(tmp_path / "o.pt")]) == 2
    assert "not found" in capsys.readouterr().err
    few = tmp_path / "few.csv"
    few.write_text("path,label\na.npz,1\nb.npz,0\n")
    assert main(["heads", "fit", "--labels", str(few), "--model", str(tiny_ckpt), "--out", str(tmp_path / "o.pt")]) == 2
    assert "at least 5" in capsys.readouterr().err


def test_head_shape_is_selected_on_the_calibration_split():
    """Every candidate shape is tried; the kept one has the best calibration score, and the card says so."""
    from m2ae.train.heads import HEAD_CANDIDATES

    rng = np.random.default_rng(2)
    splits = {k: planted_split(n, rng) for k, n in (("train", 300), ("cal", 120), ("test", 120))}
    heads, card = fit_heads(PlantedModel(), {"age": default_head_specs(16)["age"]}, splits, epochs=15)
    tried = card["age"]["selection"]["candidates"]
    assert len(tried) == len(HEAD_CANDIDATES)
    best = max(tried, key=lambda c: c["cal_score"])
    assert card["age"]["shape"] == best["shape"]
    assert (heads["age"].spec["hidden"] > 0) == best["shape"].startswith("MLP")


def test_faint_p_wave_scales_share_and_independence():
    from m2ae.train.demo_heads import faint_p_wave_scales

    s = faint_p_wave_scales(4000, 1_000_003, 0.25)
    faint = s < 1.0
    assert abs(faint.mean() - 0.25) < 0.03 and s[faint].max() <= 0.3 and s.min() >= 0.0
    np.testing.assert_array_equal(s, faint_p_wave_scales(4000, 1_000_003, 0.25))   # seeded
    assert (faint_p_wave_scales(50, 7, 0.0) == 1.0).all()


def test_demo_heads_learn_the_alarm_rhythms_without_feeding_them_to_the_other_heads():
    """The demo rhythm head has every rhythm class; the extra alarm-rhythm subjects carry a rhythm label
    only (hypertension, sex, risk and age of a pulseless VF window are not shown to those heads)."""
    from m2ae.contract import ALL_RHYTHM_CODES
    from m2ae.train.demo_heads import fit_demo_heads

    heads, card = fit_demo_heads(PlantedModel(), n_subjects=20, windows_per_subject=1, epochs=1)
    assert heads["rhythm"].spec["classes"] == list(ALL_RHYTHM_CODES)
    assert "ICU alarm rhythms" in card["rhythm"]["training_data"]
    # 20 train subjects + 10 alarm-rhythm subjects, one window each: rhythm sees all, the others 20
    assert card["rhythm"]["n_train_windows"] == card["sex"]["n_train_windows"] == 30
    assert card["age"]["metrics_test"]["both"]["n"] == 20 and card["rhythm"]["metrics_test"]["both"]["n"] == 30
    assert heads["age"].spec["label_range"][0] >= 18 and heads["age"].spec["label_range"][1] <= 90
