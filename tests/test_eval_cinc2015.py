"""The real-corpus section of `m2ae eval` on a few CinC 2015 records (skips without the shared data):
every part is there, baselines come from the train split, the alarm models from train + validation,
and the test records are only scored; the headline and the table carry it; an absent corpus is a note."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from m2ae.eval import format_table, headline, run_eval
from m2ae.eval.alarm_section import alarm_section
from m2ae.eval.checkpoint_baseline import (FIGURES, SIMULATOR_ONLY, checkpoint_figures, compare_checkpoints,
                                           record_ranks, simulator_only_path)
from m2ae.eval.cinc2015 import cinc2015_section, cinc2015_set
from m2ae.io import cinc2015_records
from m2ae.model import M2AE, M2AEConfig, Head, M2AEModel
from m2ae.train.alarm import fit_alarm_heads
from m2ae.train.alarm_data import load_alarm_records

TINY = dict(dim=16, encoder_depth=1, bottleneck_depth=1, n_heads=2, decoder_dim=16, decoder_depth=1,
            decoder_heads=2, fingerprint_dim=16)


@pytest.fixture(scope="module")
def tiny_model() -> M2AEModel:
    torch.manual_seed(0)
    net = M2AE(M2AEConfig(**TINY))
    sex = Head({"name": "sex", "kind": "classification", "classes": ["F", "M"], "input_dim": 16, "hidden": 0})
    return M2AEModel(net, {"sex": sex}, card={"name": "tiny"}, device="cpu")


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cinc_cache")


NAMES = cinc2015_records("train")[:12] + cinc2015_records("validation")[:8] + cinc2015_records("test")[:6]


@pytest.fixture(scope="module")
def section(cinc_dir, tiny_model, cache):
    sec, info = cinc2015_section(tiny_model, cinc_dir, seed=0, n_candidates=100, cache_dir=cache, records=NAMES)
    return sec, info, NAMES


def test_section_parts_on_six_test_records(section):
    sec, info, names = section
    assert info["status"] == "ok" and info["records"]["test"]["records"] == 6
    assert info["records"]["train"]["records"] == 12 and info["records"]["validation"]["records"] == 8
    paired = sec["records"]
    assert 1 <= paired <= 6 and sec["windows"] >= paired  # the test records with ECG + PPG
    assert "train split" in info["baselines_fitted_on"]
    for task in ("ppg_to_ecg", "ecg_to_ppg"):
        cm = sec["cross_modal"][task]
        assert set(cm) >= {"model", "ridge", "mean_beat_template", "ci95_model_minus"}
        assert -1 <= cm["model"]["median_r_lagged"] <= 1
    assert sec["masked"]["ecg"]["linear_interpolation"] > 0
    assert set(sec["retrieval"]) == {"same_subject_top1", "ppg_to_paired_ecg_top1"}
    pm = sec["patient_matching"]["ppg_to_ecg_record_top1"]
    assert pm["records"] == paired and pm["chance"] == pytest.approx(1 / paired)
    assert 0 <= pm["model"] <= 1 and 0 <= pm["features"] <= 1
    centred = sec["patient_matching"]["ppg_to_ecg_record_top1_centred"]   # train-split means subtracted
    assert centred["metric"] == "top1" and centred["features"] == pm["features"] and 0 <= centred["model"] <= 1


def test_centring_each_input_removes_a_modality_gap():
    # each record's ECG-only and PPG-only fingerprints share its own direction, but each input adds a
    # large offset of its own: raw cosine matching is blind to the records, centred matching is not
    rng = np.random.default_rng(0)
    names = np.array([f"r{i:03d}" for i in range(30)])
    group = np.repeat(names, 3)
    own = np.repeat(rng.normal(size=(30, 16)), 3, axis=0)
    gap_e, gap_p = 20 * rng.normal(size=16), 20 * rng.normal(size=16)
    fps = {"ecg": own + gap_e + 0.1 * rng.normal(size=own.shape),
           "ppg": own + gap_p + 0.1 * rng.normal(size=own.shape)}
    centres = {"ecg": gap_e, "ppg": gap_p}           # what a train split of other records would give
    assert (record_ranks(fps, group, names, centres) == 0).mean() == 1.0
    assert (record_ranks(fps, group, names) == 0).mean() < 0.5


def test_alarm_part_fits_on_train_chooses_on_validation_scores_test(section):
    sec, _, _ = section
    alarm = sec["alarm"]
    assert "fitted in this run" in alarm["head_source"]
    for entry in alarm["heads"].values():  # the head was chosen without a look at the test records
        assert "validation" in entry["selection"]["by"]
    assert alarm["VT"]["model"]["n"] + alarm["other"]["model"]["n"] == alarm["records"]["test"]["records"] == 6
    for t in ("VT", "other"):
        e = alarm[t]
        n = e["model"]["n"]
        for who in ("model", "classical_logistic", "rule_checker"):
            m = e[who]
            assert m["tp"] + m["tn"] + m["fp"] + m["fn"] == n
            assert 0 <= m["challenge_score"] <= 100 or not np.isfinite(m["challenge_score"])
        assert "as_written" in e["rule_checker"] and set(e["model_by_input"]) == {"both", "ecg", "ppg"}
        assert set(e["ci95_model_minus"]) == {"classical_logistic", "rule_checker", SIMULATOR_ONLY}
        fused = e["head_plus_classical"]   # the head + classical late fusion, judged against classical
        assert fused["n"] == n and fused["weight_head"] in (0.25, 0.5, 0.75)
        assert set(fused["ci95_minus"]) == {"classical_logistic", "model"}
    assert alarm["all_types"]["model"]["n"] == alarm["all_types"]["head_plus_classical"]["n"] == 6
    assert "81.39" in alarm["anchor"]


def test_headline_and_table_carry_the_section(section, tiny_model):
    sec, info, _ = section
    res = {"model": {"name": "tiny", "version": tiny_model.version}, "wall_time_s": 1.0, "cinc2015": sec,
           "data": {"cinc2015": info}}
    rows = [r for r in headline(res) if r["data"] == "cinc2015"]
    tasks = {r["task"] for r in rows}
    assert {"ppg_to_ecg", "masked_50_complementary_ecg", "ppg_to_ecg_record_top1", "alarm_VT", "alarm_other",
            "alarm_all_types"} <= tasks
    assert {r["baseline"] for r in rows if r["task"] == "alarm_VT"} == {"classical_logistic", "rule_checker",
                                                                         SIMULATOR_ONLY}
    assert {r["baseline"] for r in rows if r["task"] == "alarm_VT_head_plus_classical"} == {"classical_logistic"}
    text = format_table(res)
    assert "== cinc2015" in text and "patient matching" in text and "81.39" in text


def test_absent_corpus_is_a_note_and_false_skips(tiny_model, tmp_path):
    sec, info = cinc2015_section(tiny_model, tmp_path / "missing")
    assert sec["status"].startswith("absent") and info["status"] == "absent"
    res = run_eval(tiny_model, data=[], sim_subjects=3, n_candidates=9, train_subjects=6, heads_subjects=4,
                   cinc2015=tmp_path / "missing")
    assert res["data"]["cinc2015"]["status"] == "absent" and res["cinc2015"]["status"].startswith("absent")
    assert "cinc2015" not in {r["data"] for r in res["headline"]}


def test_alarm_heads_from_the_checkpoint_are_used_as_they_are(section, cinc_dir, cache, tiny_model):
    records = load_alarm_records(cinc_dir, cache_dir=cache, records=NAMES)
    heads, card = fit_alarm_heads(tiny_model, records)
    with_heads = M2AEModel(tiny_model.net, {**tiny_model.heads, **heads}, card={"name": "tiny", "heads": card},
                           device="cpu")
    sec = alarm_section(with_heads, records)
    assert sec["head_source"].startswith("the checkpoint's alarm head(s)")
    fitted_in_run = section[0]["alarm"]
    for t in ("VT", "other"):  # the same protocol in the run and in `m2ae heads fit-alarm`
        assert sec[t]["model"]["auroc"] == pytest.approx(fitted_in_run[t]["model"]["auroc"], nan_ok=True)
        assert sec["thresholds"]["model"][t] == pytest.approx(fitted_in_run["thresholds"]["model"][t])


def test_alarm_heads_fitted_before_cross_validation_are_still_scored(section, cinc_dir, cache, tiny_model):
    records = load_alarm_records(cinc_dir, cache_dir=cache, records=NAMES)
    heads, card = fit_alarm_heads(tiny_model, records)
    for h in heads.values():  # as a checkpoint from before cross-validation carries them: no settings to refit
        h.spec.pop("cv")
    older = M2AEModel(tiny_model.net, {**tiny_model.heads, **heads}, card={"name": "tiny", "heads": card},
                      device="cpu")
    sec = alarm_section(older, records)
    fitted_in_run = section[0]["alarm"]
    for t in ("VT", "other"):  # the same heads and stored thresholds: the same test figures
        assert sec[t]["model"]["auroc"] == pytest.approx(fitted_in_run[t]["model"]["auroc"], nan_ok=True)
        assert sec["thresholds"]["model"][t] == pytest.approx(fitted_in_run["thresholds"]["model"][t])
        assert sec[t]["head_plus_classical"]["n"] == fitted_in_run[t]["head_plus_classical"]["n"]


def test_simulator_only_checkpoint_is_a_baseline_of_every_figure(section):
    sec, _, _ = section
    entry = sec["checkpoint_baselines"][SIMULATOR_ONLY]
    assert entry["version"] == "884e7d688147" and entry["checkpoint"] == str(simulator_only_path())
    figs = entry["figures"]
    assert {(f["task"], f["metric"]) for f in figs.values()} == set(FIGURES)
    # the model's side of each comparison is the figure the section reports for it
    cm = sec["cross_modal"]["ppg_to_ecg"]["model"]
    assert figs["ppg_to_ecg median_r_lagged"]["model"] == pytest.approx(cm["median_r_lagged"], nan_ok=True)
    assert figs["masked_50_complementary_ppg median_nmse_hidden"]["model"] == pytest.approx(sec["masked"]["ppg"]["model"])
    assert figs["same_subject_top1 top1"]["model"] == pytest.approx(sec["retrieval"]["same_subject_top1"]["model"])
    assert figs["ppg_to_paired_ecg_top1 top1"]["model"] == pytest.approx(sec["retrieval"]["ppg_to_paired_ecg_top1"]["model"])
    pm = sec["patient_matching"]
    assert figs["ppg_to_ecg_record_top5 top5"]["model"] == pytest.approx(pm["ppg_to_ecg_record_top5"]["model"])
    # a trained checkpoint and a random tiny model give different figures
    assert figs["masked_50_complementary_ppg median_nmse_hidden"]["checkpoint"] != figs[
        "masked_50_complementary_ppg median_nmse_hidden"]["model"]
    alarm = sec["alarm"]
    assert "fitted in this run" in alarm["checkpoints"][SIMULATOR_ONLY]["head_source"]
    assert alarm["all_types"][SIMULATOR_ONLY]["n"] == 6
    rows = [r for r in headline({"cinc2015": sec}) if r["baseline"] == SIMULATOR_ONLY]
    assert {r["task"] for r in rows} >= {"ppg_to_ecg", "ecg_to_ppg", "masked_50_complementary_ecg", "same_subject_top1",
                                         "ppg_to_ecg_record_top1", "alarm_VT", "alarm_other", "alarm_all_types"}
    assert all(len(r["ci95"]) == 2 for r in rows)
    text = format_table({"model": {"name": "tiny", "version": "x"}, "wall_time_s": 1.0, "cinc2015": sec})
    assert "baseline checkpoint simulator_only_checkpoint (884e7d688147)" in text


def test_a_checkpoint_compared_with_itself_ties_at_zero(section, cinc_dir, cache, tiny_model):
    test = cinc2015_set(load_alarm_records(cinc_dir, cache_dir=cache, records=NAMES), "test")
    mine = checkpoint_figures(tiny_model, test, seed=0, n_candidates=100)
    again = checkpoint_figures(tiny_model, test, seed=0, n_candidates=100)
    figs = compare_checkpoints(mine, again, test, 0, 100, tiny_model)["figures"]
    for f in figs.values():
        assert f["model"] == pytest.approx(f["checkpoint"], nan_ok=True)
        assert f["ci95_model_minus_checkpoint"] == pytest.approx([0.0, 0.0], nan_ok=True)
        assert f["verdict"] in ("tie", None)
