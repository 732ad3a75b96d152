"""m2ae eval end to end: a tiny random model, few subjects (fast), the CLI, and real records when present."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from m2ae.cli import main
from m2ae.errors import InputError
from m2ae.eval import format_table, real_set, run_eval
from m2ae.model import M2AE, M2AEConfig, Head, M2AEModel, save_checkpoint
from m2ae.model.card import read_card

TINY = dict(dim=16, encoder_depth=1, bottleneck_depth=1, n_heads=2, decoder_dim=16, decoder_depth=1,
            decoder_heads=2, fingerprint_dim=16)


def _tiny_parts():
    torch.manual_seed(0)
    net = M2AE(M2AEConfig(**TINY))
    heads = {
        "rhythm": Head({"name": "rhythm", "kind": "classification", "classes": ["NSR", "AF", "SB", "ST", "PVC"],
                        "input_dim": 16, "hidden": 0}),
        "sex": Head({"name": "sex", "kind": "classification", "classes": ["F", "M"], "input_dim": 16, "hidden": 0}),
        "age": Head({"name": "age", "kind": "regression", "y_mean": 50.0, "y_std": 15.0, "input_dim": 16,
                     "hidden": 0}),
    }
    return net, heads


@pytest.fixture(scope="module")
def tiny_model():
    net, heads = _tiny_parts()
    return M2AEModel(net, heads, card={"name": "tiny"}, device="cpu")


def _finite_or_none(x):
    return x is None or np.isfinite(x)


def test_run_eval_smoke(tiny_model):
    res = run_eval(tiny_model, data=[], sim_subjects=6, n_candidates=30, train_subjects=10,
                   train_windows_per_subject=2, heads_subjects=12, cinc2015=False)
    assert res["real"] == {"status": "absent"} and res["data"]["real"]["status"] == "absent"
    held = res["simulated_heldout"]
    assert res["data"]["simulated_heldout"]["windows"] == 30 == held["windows"]
    for task in ("ppg_to_ecg", "ecg_to_ppg"):
        assert set(held["cross_modal"][task]) == {"model", "ridge", "mean_beat_template", "ci95_model_minus"}
        for who in ("model", "ridge", "mean_beat_template"):
            scores = held["cross_modal"][task][who]
            assert -1 <= scores["median_r"] <= 1 and scores["median_nmse"] >= 0
            assert abs(scores["median_lag_ms"]) <= 1000  # searched within ±1 s
    for m in ("ecg", "ppg"):
        assert held["masked"][m]["model"] > 0 and held["masked"][m]["linear_interpolation"] > 0
    pair = held["retrieval"]["ppg_to_paired_ecg_top1"]
    assert pair["candidates"] == 30 and pair["chance"] == pytest.approx(1 / 30)
    assert 0 <= pair["model"] <= 1 and 0 <= pair["features"] <= 1
    assert held["heads"]["rhythm"]["metric"] == "auroc" and held["heads"]["age"]["metric"] == "mae"
    heads_data = res["data"]["simulated_heads_heldout"]  # the heads' own, larger held-out subjects
    assert heads_data["subjects"] == 12 and heads_data["seed"] not in (
        res["data"]["simulated_heldout"]["seed"], res["data"]["simulated_train"]["seed"])
    assert held["heads"]["data"].startswith("simulated: 12 subjects")
    for inp in ("both", "ecg", "ppg"):
        row = held["heads"]["rhythm"][inp]
        assert 0 <= row["model"] <= 1 and "baseline_logistic_hrv_pat" in row
        assert held["heads"]["age"][inp]["model"] >= 0
    assert held["privacy"]["reidentification_top1"]["chance"] == pytest.approx(1 / 6, abs=0.1)
    assert held["privacy"]["fingerprint_decoder_nmse"]["ecg"] > 0
    # the held-out and baseline-training subjects come from different seeds
    assert res["data"]["simulated_heldout"]["seed"] != res["data"]["simulated_train"]["seed"]
    rows = res["headline"]
    assert {r["data"] for r in rows} == {"simulated_heldout"}
    assert {"ppg_to_ecg", "ecg_to_ppg", "ppg_to_paired_ecg_top1", "head_rhythm_ppg"} <= {r["task"] for r in rows}
    for r in rows:
        if r["model_better"] is not None:
            assert r["model_better"] == (r["model"] > r["baseline_value"] if r["higher_is_better"]
                                         else r["model"] < r["baseline_value"])
            # every comparison carries its uncertainty; a verdict follows the CI of model - baseline
            lo, hi = r["ci95"]
            if r["verdict"] is not None:
                assert lo <= hi
                signed = (lo, hi) if r["higher_is_better"] else (-hi, -lo)
                assert r["verdict"] == ("better" if signed[0] > 0 else "worse" if signed[1] < 0 else "tie")
    summary = res["summary"]["simulated_heldout"]
    assert summary["better"] + summary["tie"] + summary["worse"] <= summary["comparisons"] == len(
        [r for r in rows if r["model_better"] is not None])
    stress = held["rhythm_without_p_waves"]
    assert stress["seed"] != res["data"]["simulated_heldout"]["seed"] and stress["rhythm"] == "NSR"
    for variant in ("with_p_waves", "without_p_waves"):
        for inp in ("both", "ecg", "ppg"):
            row = stress[variant][inp]
            assert 0 <= row["model"] <= 1 and 0 <= row["baseline_logistic_hrv_pat"] <= 1
    text = format_table(res)
    assert "ppg_to_ecg mean_beat_template" in text and "re-identification" in text
    assert "sinus rhythm called AF" in text


def test_cli_eval_json_and_card(tmp_path):
    net, heads = _tiny_parts()
    ckpt = tmp_path / "tiny.pt"
    save_checkpoint(ckpt, net, heads, card={"name": "tiny"})
    rc = main(["eval", "--model", str(ckpt), "--data", str(tmp_path / "missing"), "--sim-subjects", "4",
               "--candidates", "12", "--heads-subjects", "8", "--no-cinc2015", "--write-card", "--json"])
    assert rc == 0
    card = read_card(ckpt)
    assert card["eval"]["real"]["status"] == "absent"
    assert card["eval"]["simulated_heldout"]["retrieval"]["ppg_to_paired_ecg_top1"]["candidates"] == 12


def test_cli_eval_prints_json(tmp_path, capsys):
    net, heads = _tiny_parts()
    ckpt = tmp_path / "tiny.pt"
    save_checkpoint(ckpt, net, heads)
    assert main(["eval", "--model", str(ckpt), "--data", "--sim-subjects", "3", "--candidates", "9",
                 "--heads-subjects", "6", "--no-cinc2015", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["simulated_heldout"]["windows"] == 9 and res["real"]["status"] == "absent"


def test_bad_inputs(tiny_model, tmp_path, capsys):
    with pytest.raises(InputError, match="sim-subjects"):
        run_eval(tiny_model, data=[], sim_subjects=1)
    with pytest.raises(InputError, match="heads-subjects"):
        run_eval(tiny_model, data=[], sim_subjects=3, heads_subjects=1)
    with pytest.raises(InputError, match="head fitting split"):
        run_eval(tiny_model, data=[], sim_subjects=3, seed=1_000_003)
    assert main(["eval", "--model", str(tmp_path / "nope.pt"), "--json"]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


def test_real_records_windows_and_peaks(bidmc_csv):
    s, info = real_set([bidmc_csv])
    assert info["status"] == "ok" and info["records"][0]["windows"] == len(s) == 48
    assert s.ecg.shape == s.ppg.shape == (48, 1250)
    rp, pp = s.peaks()
    # 91.5 bpm over 10 s: about 15 beats in every window, positions inside the window
    counts = np.array([len(p) for p in rp])
    assert 12 <= np.median(counts) <= 17
    assert all(((p >= 0) & (p < 1250)).all() for p in rp + pp)


def test_run_eval_on_real_records(tiny_model, real_dir):
    res = run_eval(tiny_model, data=[real_dir], sim_subjects=3, n_candidates=9, train_subjects=10,
                   train_windows_per_subject=2, heads_subjects=6, cinc2015=False)
    real = res["real"]
    assert res["data"]["real"]["status"] == "ok"
    assert real["windows"] == sum(r["windows"] for r in res["data"]["real"]["records"]) >= 48
    by_record = real["cross_modal"]["ppg_to_ecg"]["by_record"]
    assert "bidmc_01_Signals" in by_record
    # BIDMC 01's device delay (~0.64 s) is far from the simulator's median: only after the per-record
    # lag search does the template line up with the real ECG
    tpl = by_record["bidmc_01_Signals"]["mean_beat_template"]
    assert tpl["median_r_lagged"] > tpl["median_r"] + 0.2
    assert real["retrieval"]["ppg_to_paired_ecg_top1"]["candidates"] == 9  # n_candidates caps it
    assert real["heads"] == {"status": "no labels in this data"}
    assert {r["data"] for r in res["headline"]} == {"simulated_heldout", "real"}
    assert "bidmc_01_Signals: r@lag model" in format_table(res)


def test_shipped_card_matches_a_fresh_eval(real_dir):
    """Issue contract: `m2ae eval` from a fresh clone reproduces the card's headline (same data,
    same seeds): every figure within float noise and every model-vs-baseline verdict the same."""
    import m2ae

    card = m2ae.load_model().card
    fresh = run_eval(data=[str(real_dir)])
    want = {(h["data"], h["task"], h["metric"], h["baseline"]): h for h in card["eval"]["headline"]}
    got = {(h["data"], h["task"], h["metric"], h["baseline"]): h for h in fresh["headline"]}
    assert set(got) == set(want)
    for key, h in got.items():
        assert h["model"] == pytest.approx(want[key]["model"], abs=0.01), key
        assert h["baseline_value"] == pytest.approx(want[key]["baseline_value"], abs=0.01), key
        assert h["model_better"] == want[key]["model_better"], key
        assert h["verdict"] == want[key]["verdict"], key


def test_readme_eval_table_is_the_cards():
    """docs/RESULTS.md's results table (linked from the README) is rendered from the shipped card, not typed in."""
    from pathlib import Path

    from m2ae.model.card import README_TABLE_END, README_TABLE_START, render_headline_table

    readme = (Path(__file__).resolve().parents[1] / "docs" / "RESULTS.md").read_text()
    block = readme.split(README_TABLE_START, 1)[1].split(README_TABLE_END, 1)[0].strip()
    assert block == render_headline_table(read_card()).strip()
    assert "| simulated |" in block and "comparisons the model is better in" in block
