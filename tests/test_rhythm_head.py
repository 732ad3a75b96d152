"""The rhythm head for ICU alarms (m2ae.train.rhythm_head) and the "uncertain" / "outside" outputs every
head presents (m2ae.model.heads): set-valued (partial) labels, held-out temperature and abstention levels,
prototypes that survive the checkpoint, the eval section on the CinC 2015 validation split."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from m2ae.contract import ALL_RHYTHM_CODES
from m2ae.model import M2AE, M2AEConfig, Head, save_checkpoint
from m2ae.model.heads import OUTSIDE_NOTE, UNCERTAIN_BAND, default_head_specs
from m2ae.model.inference import load_model
from m2ae.train import rhythm_head as RH
from m2ae.train.alarm_data import AlarmRecord

TINY = dict(dim=16, encoder_depth=1, bottleneck_depth=1, n_heads=2, decoder_dim=16, decoder_depth=1,
            decoder_heads=2, fingerprint_dim=16)


def _binary_head(bias: float) -> Head:
    h = Head({"name": "sex", "kind": "classification", "classes": ["F", "M"], "input_dim": 4, "hidden": 0})
    with torch.no_grad():
        h.net.weight.zero_()
        h.net.bias.copy_(torch.tensor([0.0, bias]))
    return h


def test_classifier_is_uncertain_within_the_band_of_chance():
    fp = torch.zeros(3, 4)
    near = _binary_head(0.2).present(_binary_head(0.2)(fp))      # p(M) = 0.55 < 0.5 + band
    far = _binary_head(2.0).present(_binary_head(2.0)(fp))       # p(M) = 0.88
    assert near["uncertain"].tolist() == [True] * 3 and far["uncertain"].tolist() == [False] * 3
    assert "0.65" in near["uncertain_rule"] and UNCERTAIN_BAND == 0.15
    assert set(near) >= {"classes", "class_names", "probabilities"} and "outside" not in near  # old keys kept


def test_age_interval_of_88_years_is_uncertain():
    spec = {**default_head_specs(4)["age"], "hidden": 0, "y_mean": 55.0, "y_std": 20.8, "label_range": [18.0, 90.0]}
    h = Head(spec)
    # (mean, sd) in years: 11.9-99.4 at the 90 % level is sd 26.6; 50-60 is sd 3
    res = h.present(torch.tensor([[55.65, 26.6], [55.0, 3.0]]))
    np.testing.assert_allclose(res["interval"][0], [11.9, 99.4], atol=0.1)
    assert res["uncertain"].tolist() == [True, False] and res["unit"] == "years"
    # without a stored range: +-2 training SDs stand in for it (a head fitted before label_range existed)
    old = Head({**spec, "label_range": None})
    assert old.present(torch.tensor([[55.65, 26.6]]))["uncertain"].tolist() == [True]


def test_outside_from_prototypes_survives_the_checkpoint(tmp_path):
    spec = {**default_head_specs(16)["rhythm"], "hidden": 0, "n_prototypes": 2, "outside_min_cos": 0.9}
    h = Head(spec)
    with torch.no_grad():
        h.prototypes.copy_(torch.eye(16)[:2])
    path = tmp_path / "p.pt"
    save_checkpoint(path, M2AE(M2AEConfig(**TINY)), {"rhythm": h}, {})
    got = load_model(path, device="cpu").heads["rhythm"]
    fp = torch.stack([torch.eye(16)[0], torch.eye(16)[5]])
    res = got.present(got(fp), fp)
    assert res["outside"].tolist() == [False, True] and res["outside_note"] == OUTSIDE_NOTE == \
        "outside what this head knows"
    assert res["classes"] == list(ALL_RHYTHM_CODES) and res["probabilities"].shape == (2, 10)
    # the model's predict passes the fingerprints, so the key is there
    pred = load_model(path, device="cpu").predict(ecg=np.zeros((2, 1250), np.float32))
    assert pred["rhythm"]["outside"].shape == (2,) and pred["rhythm"]["uncertain"].shape == (2,)


def test_set_label_loss_and_masks():
    m = RH.allowed_mask(["VT", ("VF", "ASY", "XB", "XT")])
    assert m.sum(1).tolist() == [1, 4] and m[0, ALL_RHYTHM_CODES.index("VT")]
    logits = torch.zeros(2, 10)
    nll = RH.set_nll(logits, torch.from_numpy(m)).numpy()
    np.testing.assert_allclose(nll, [np.log(10), np.log(10 / 4)], rtol=1e-6)


def _planted(n: int, seed: int, origin: str = "simulated") -> RH.LabelledRows:
    """Class k -> a bump in feature k; 'real' rows carry the set label of their alarm type instead."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    X = rng.standard_normal((n, 16)).astype(np.float32) * 0.5
    X[np.arange(n), y] += 3.0
    codes = [ALL_RHYTHM_CODES[k] for k in y]
    if origin == "real":
        codes = [c if c == "VT" else RH.ALARM_RHYTHMS["other"] if c in RH.ALARM_RHYTHMS["other"] else c for c in codes]
    return RH.LabelledRows(X, RH.allowed_mask(codes), np.ones(n), np.full(n, origin), np.full(n, -1))


def test_training_on_set_labels_learns_the_planted_classes_and_abstains_when_unsure(monkeypatch):
    monkeypatch.setattr(RH, "EPOCHS", 40)
    tr, va = _planted(2000, 0), _planted(600, 1)
    spec = {**default_head_specs(16)["rhythm"], "hidden": 0, "l2": 1e-4}
    head = RH._train(spec, tr, seed=0)
    raw = RH._raw(head, va.X)
    T = RH.fit_set_temperature(raw, va)
    assert 0.05 <= T <= 20
    p = np.exp(raw / T)
    p /= p.sum(1, keepdims=True)
    assert (va.allowed[np.arange(len(p)), p.argmax(1)]).mean() > 0.95
    level, table = RH.choose_min_top_p(p, va)
    assert level in RH.MIN_TOP_P_GRID and table[f"{level:.2f}"]["simulated"]["precision"] >= RH.CONFIDENT_PRECISION
    # noise-only labels: no level reaches the precision, the strictest is kept
    noisy = RH.LabelledRows(va.X, np.roll(va.allowed, 3, axis=1), va.weight, va.origin, va.record)
    assert RH.choose_min_top_p(p, noisy)[0] == RH.MIN_TOP_P_GRID[-1]


def _records(n_per_split: dict[str, int]) -> list[AlarmRecord]:
    rng = np.random.default_rng(0)
    out = []
    for split, n in n_per_split.items():
        for k in range(n):
            e, p = rng.standard_normal((2, 2, 1250)).astype(np.float32)
            out.append(AlarmRecord(name=f"{split}{k}", split=split, alarm_type=("VT", "other")[k % 2],
                                   true_alarm=bool((k // 2) % 2), ecg=e, ppg=p, starts_s=np.array([280.0, 290.0]),
                                   low_quality=np.zeros(2, bool)))
    return out


def test_fit_rhythm_head_end_to_end_on_a_tiny_model(monkeypatch):
    from m2ae.train.alarm import fingerprint_rows

    monkeypatch.setattr(RH, "SIM_SUBJECTS", {"train": 20, "cal": 10})
    monkeypatch.setattr(RH, "EPOCHS", 3)
    torch.manual_seed(0)
    model = load_model_from_net(M2AE(M2AEConfig(**TINY)))
    recs = _records({"train": 12, "validation": 8, "test": 6})
    rows = fingerprint_rows(model, recs)
    head, card = RH.fit_rhythm_head(model, recs, rows)
    assert head.spec["classes"] == list(ALL_RHYTHM_CODES) and head.prototypes is not None
    assert head.spec["min_top_p"] >= 0.3 and -1.0 <= head.spec["outside_min_cos"] <= 1.0
    assert card["labels_source"] == "real+simulated" and "false alarms not used" in card["training_data"]
    # 12 train records, half of them true alarms; the test records never enter
    assert "(6 records" in card["training_data"] and "(4 records)" in card["calibration"]
    real = RH.real_rows(recs, rows, "train")
    assert len(real.X) == 6 * 3  # six true alarms x (ECG+PPG, ECG only, PPG only), the 290-300 s window only
    assert {recs[k].true_alarm for k in real.record} == {True} and real.allowed.sum(1).tolist().count(1) == 3 * 3


def load_model_from_net(net):
    from m2ae.model.inference import M2AEModel

    return M2AEModel(net, {}, {}, device="cpu", path=None, version="tiny")


def test_rhythm_section_on_the_validation_split(cinc_dir):
    """The eval section on a few real validation records: counts add up, the rule checker sits beside it."""
    from m2ae.eval.rhythm_section import rhythm_lines, rhythm_rows, rhythm_section
    from m2ae.io import cinc2015_split

    model = load_model(device="cpu")
    if "VT" not in model.heads["rhythm"].spec["classes"]:
        pytest.skip("the shipped checkpoint's rhythm head predates the ICU alarm rhythms")
    names = [f"r{k:03d}" for k in range(1, 120) if cinc2015_split(f"r{k:03d}") == "validation"][:12]
    sec = rhythm_section(model, cinc_dir, records=names)
    assert sec["caveat"].startswith("validation split") and "test split" in sec["caveat"]
    e = sec["by_type"]["all"]
    t = e["true_alarms"]
    n_true = t["head_agrees"]["n"]
    assert t["head_agrees"]["count"] + t["head_abstains"]["count"] + t["head_wrong_class"]["count"] == n_true
    assert n_true + e["false_alarms"]["head_confirms"]["n"] == len(names)
    assert sum(sec["calls_on_true_alarms"].values()) == n_true
    rows = []
    rhythm_rows(sec, lambda *a: rows.append(a))
    assert [r[1] for r in rows] == ["rhythm_true_alarm_agreement", "rhythm_false_alarm_confirmed"]
    assert any("rule checker" in line for line in rhythm_lines(sec))


def test_rhythm_section_skips_cleanly(tmp_path):
    from m2ae.eval.rhythm_section import rhythm_lines, rhythm_section

    model = load_model(device="cpu")
    sec = rhythm_section(model, tmp_path / "nowhere")
    assert list(sec) == ["status"]
    assert rhythm_lines(sec)[-1].endswith(sec["status"])
