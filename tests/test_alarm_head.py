"""Alarm heads on real labels: logistic regression on a planted feature, the linear Head that carries
it, the cross-validation protocol, the checkpoint round trip, and `m2ae heads fit-alarm` end to end on
a tiny corpus in the CinC 2015 layout made of simulated records (no shared data needed)."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from m2ae.io import cinc2015_records
from m2ae.model import M2AE, M2AEConfig, Head, save_checkpoint
from m2ae.model.card import head_labels_source, read_card
from m2ae.model.inference import load_model
from m2ae.train.alarm import (RECORD_SCORES, alarm_heads_of, fingerprint_rows, fit_alarm_heads, head_logit, head_oof_logit,
                              in_mode, linear_head)
from m2ae.train.alarm_selection import Rows, choose_logistic, dev_folds, fit_logistic
from m2ae.train.alarm_scores import auroc
from m2ae.train.alarm_data import AlarmRecord, load_alarm_records

TINY = dict(dim=16, encoder_depth=1, bottleneck_depth=1, n_heads=2, decoder_dim=16, decoder_depth=1,
            decoder_heads=2, fingerprint_dim=16)


class PlantedFingerprints:
    """A stand-in model whose 'fingerprint' is the window's mean (the planted signal) plus fixed noise."""

    fingerprint_dim = 16

    def fingerprint(self, ecg=None, ppg=None, batch_size=256):
        x = np.asarray(ecg if ecg is not None else ppg, np.float64)
        rng = np.random.default_rng(int(abs(x[:, :4].sum()) * 1000) % 2**32)
        out = rng.standard_normal((len(x), self.fingerprint_dim))
        out[:, 0] = 4 * x.mean(1)
        return out.astype(np.float32)


def planted_records(n_per_split: dict[str, int], seed: int = 0) -> list[AlarmRecord]:
    """Records whose windows' mean is +0.25 for a true alarm and -0.25 for a false one (plus noise)."""
    rng = np.random.default_rng(seed)
    out = []
    for split, n in n_per_split.items():
        for k in range(n):
            true, kind = bool(k % 2), ("VT", "other")[(k // 2) % 2]
            shift = 0.25 if true else -0.25
            ecg, ppg = (rng.standard_normal((2, 2, 1250)) + shift + 0.3 * rng.standard_normal((2, 2, 1))).astype(np.float32)
            out.append(AlarmRecord(name=f"{split}{k}", split=split, alarm_type=kind, true_alarm=true, ecg=ecg,
                                   ppg=ppg if k % 3 else None, starts_s=np.array([280.0, 290.0]),
                                   low_quality=np.zeros(2, bool)))
    return out


def test_logistic_on_a_planted_feature_and_its_linear_head():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 16))
    y = X[:, 0] + 0.3 * rng.standard_normal(400) > 0
    lin = fit_logistic(X[:300], y[:300], C=1.0)
    assert auroc(y[300:], lin.logit(X[300:])) > 0.95
    head = linear_head("alarm", lin, 16, {"alarm_types": ["VT", "other"]})
    assert head.spec["hidden"] == 0 and head.spec["classes"] == ["false", "true"]
    np.testing.assert_allclose(head_logit(head, X[300:]), lin.logit(X[300:]), rtol=1e-4, atol=1e-4)
    # softmax over (false, true) = sigmoid of that logit: the head is the regression, nothing added
    with torch.no_grad():
        p = head.present(head(torch.from_numpy(X[300:].astype(np.float32))))["probabilities"][:, 1]
    np.testing.assert_allclose(p, 1 / (1 + np.exp(-lin.logit(X[300:]))), atol=1e-5)


def test_cross_validation_chooses_one_model_per_type_when_the_types_disagree():
    rng = np.random.default_rng(1)
    n = 400
    X = rng.standard_normal((n, 4))
    types = np.where(np.arange(n) % 2, "VT", "other")
    y = np.where(types == "VT", X[:, 0] > 0, X[:, 0] < 0)  # the same feature, opposite meaning
    folds = np.where(np.arange(n) < 300, np.arange(n) % 5, -1)  # the last 100 records are never used
    dev = np.flatnonzero(folds >= 0)
    rows = Rows(X[dev], dev, np.zeros(len(dev), int), np.full(len(dev), "f"))
    ch = choose_logistic(rows, rows, y, types, folds)
    assert ch.scheme == "separate" and min(ch.cv_auroc.values()) > 0.9
    assert any(t["scheme"] == "joint" for t in ch.tried)  # the joint model was tried and lost
    assert np.isfinite(ch.oof[:300]).all() and np.isnan(ch.oof[300:]).all()  # out-of-fold: dev records only
    for t in ("VT", "other"):  # the refitted models carry over to the records no fold held
        held = (folds < 0) & (types == t)
        assert auroc(y[held], ch.models[t].logit(X[held])) > 0.9


def test_out_of_fold_scores_come_from_models_that_never_saw_the_record():
    rng = np.random.default_rng(2)
    n = 200
    X = rng.standard_normal((n, 60))  # pure noise: a model scoring its own training records looks good
    y = rng.random(n) < 0.5
    types = np.where(np.arange(n) % 2, "VT", "other")
    folds = np.arange(n) % 5
    rows = Rows(X, np.arange(n), np.zeros(n, int), np.full(n, "f"))
    ch = choose_logistic(rows, rows, y, types, folds, c_grid=(10.0,))
    in_sample = {t: auroc(y[types == t], ch.models[t].logit(X[types == t])) for t in ("VT", "other")}
    assert min(in_sample.values()) > 0.85
    assert max(abs(v - 0.5) for v in ch.cv_auroc.values()) < 0.2


def test_fit_alarm_heads_protocol_and_card():
    recs = planted_records({"train": 80, "validation": 40, "test": 40})
    heads, card = fit_alarm_heads(PlantedFingerprints(), recs)  # type: ignore[arg-type]
    by_type = {t: h for h in heads.values() for t in h.spec["alarm_types"]}
    assert set(by_type) == {"VT", "other"}
    for entry in card.values():
        assert entry["labels_source"] == "real" and head_labels_source(entry) == "real"
        assert entry["training_data"] == "real labels: cinc2015 train and validation splits (120 records)"
        assert set(entry["records"]) == {"train", "validation"}  # test records are never read
        assert all(0.0 <= v <= 1.0 for v in entry["threshold"].values() if v is not None)
        assert entry["selection"]["chosen"]["C"] > 0
    # the planted signal carries over to the untouched test records
    test = [r for r in recs if r.split == "test"]
    fp = PlantedFingerprints()
    for t, head in by_type.items():
        mine = [r for r in test if r.alarm_type == t]
        X = fp.fingerprint(ecg=np.stack([r.ecg[-1] for r in mine]))
        assert auroc(np.array([r.true_alarm for r in mine]), head_logit(head, X)) > 0.8


def test_alarm_heads_survive_the_checkpoint(tmp_path):
    torch.manual_seed(0)
    net = M2AE(M2AEConfig(**TINY))
    heads, card = fit_alarm_heads(PlantedFingerprints(), planted_records({"train": 40, "validation": 20}))  # type: ignore[arg-type]
    demo = Head({"name": "sex", "kind": "classification", "classes": ["F", "M"], "input_dim": 16, "hidden": 0})
    path = tmp_path / "alarm.pt"
    save_checkpoint(path, net, {"sex": demo, **heads}, {"heads": card})
    m = load_model(path, device="cpu")
    assert set(alarm_heads_of(m)) == {"VT", "other"}
    got = alarm_heads_of(m)["VT"]
    assert got.spec["threshold"] == heads[got.name].spec["threshold"]
    preds = m.predict(ecg=np.zeros((2, 1250), np.float32))
    assert preds[got.name]["probabilities"].shape == (2, 2) and "sex" in preds


def _write_tiny_corpus(root, n_train=8, n_val=4):
    """A corpus in the CinC 2015 layout: simulated 300-s records named after real split members."""
    from m2ae.io.writers import write_record
    from m2ae.simulate import simulate_record

    (root / "records").mkdir(parents=True)
    names = cinc2015_records("train")[:n_train] + cinc2015_records("validation")[:n_val] + cinc2015_records("test")[:2]
    with open(root / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["record", "alarm_type", "true_alarm"])
        for k, name in enumerate(names):
            rec = simulate_record("PVC" if k % 2 else "NSR", duration_s=300.0, fs_hz=125.0, seed=k)
            write_record(rec, root / "records" / name, "wfdb")
            w.writerow([name, ("VT", "other")[(k // 2) % 2], k % 2])
    return names


def test_cli_fit_alarm_writes_heads_beside_the_old_ones(tmp_path, capsys):
    from m2ae.cli import main

    corpus = tmp_path / "cinc2015"
    names = _write_tiny_corpus(corpus)
    torch.manual_seed(0)
    net = M2AE(M2AEConfig(**TINY))
    demo = Head({"name": "sex", "kind": "classification", "classes": ["F", "M"], "input_dim": 16, "hidden": 0})
    src = tmp_path / "tiny.pt"
    save_checkpoint(src, net, {"sex": demo}, {"name": "tiny", "heads": {"sex": {
        "training_data": "m2ae.simulate subjects: 10 train"}}})
    out = tmp_path / "with_alarm.pt"
    cache = tmp_path / "cache"
    assert main(["heads", "fit-alarm", "--data", str(corpus), "--model", str(src), "--out", str(out),
                 "--cache", str(cache), "--no-rhythm", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    m = load_model(out, device="cpu")
    assert "sex" in m.heads and set(alarm_heads_of(m)) == {"VT", "other"}
    card = read_card(out)
    assert card["version"] == m.version  # the key indexes and the app check the weights by
    assert head_labels_source(card["heads"]["sex"]) == "simulated"
    for name in res["heads"]:
        assert card["heads"][name]["labels_source"] == "real"
        assert card["heads"][name]["training_data"] == "real labels: cinc2015 train and validation splits (12 records)"
    assert "real" in (out.with_suffix(".card.md")).read_text()
    # only train and validation records were preprocessed and cached; the test ones never opened
    cached = {p.stem for p in cache.rglob("*.npz")}
    assert cached == set(names[:12])
    recs = load_alarm_records(corpus, cache_dir=cache, splits=("train",))
    assert len(recs) == 8 and all(r.ecg is not None and r.ecg.shape[1] == 1250 for r in recs)
    assert all(r.starts_s.min() >= 240 and r.starts_s.max() <= 290 for r in recs)


def test_no_training_records_is_an_error():
    with pytest.raises(ValueError, match="hold no alarm type with both"):
        fit_alarm_heads(PlantedFingerprints(), planted_records({"test": 10}))  # type: ignore[arg-type]


def test_head_out_of_fold_scores_cover_train_and_validation_only():
    recs = planted_records({"train": 80, "validation": 40, "test": 40})
    fp = PlantedFingerprints()
    rows = fingerprint_rows(fp, recs)  # type: ignore[arg-type]
    heads, _ = fit_alarm_heads(fp, recs, rows)  # type: ignore[arg-type]
    split = np.array([r.split for r in recs])
    y = np.array([r.true_alarm for r in recs])
    types = np.array([r.alarm_type for r in recs])
    for head in heads.values():
        oof = head_oof_logit(head, recs, rows)
        assert oof is not None
        mine = np.isin(types, head.spec["alarm_types"])
        assert np.isfinite(oof[mine & (split != "test")]).all() and np.isnan(oof[split == "test"]).all()
        assert auroc(y[mine & (split != "test")], oof[mine & (split != "test")]) > 0.8  # the planted signal, held out
        # the same out-of-fold scores that chose, calibrated and thresholded the head
        spec, folds = head.spec, dev_folds(recs)
        use = np.isin(rows.back, spec["windows_back"]) & (folds[rows.record] >= 0)
        score = use & in_mode(rows, recs, RECORD_SCORES[spec["record_score"]])
        chosen = choose_logistic(rows.take(use), rows.take(score), y, types, folds, c_grid=(spec["C"],))
        assert chosen.scheme == ("joint" if len(spec["alarm_types"]) == 2 else "separate")
        np.testing.assert_allclose(oof[mine] * spec["temperature"], chosen.oof[mine], atol=1e-9)
        old = Head({k: v for k, v in head.spec.items() if k != "cv"})
        assert head_oof_logit(old, recs, rows) is None  # fitted before cross-validation: no settings to refit
