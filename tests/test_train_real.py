"""Training on a real corpus with a split: only train-split records train, dead channels are dropped,
validation-split records are scored, test records are never opened, and the card says what was used.

The corpus here is tiny and made in tmp_path in the CinC 2015 layout from simulated records; its record
names are real ones from the committed split (``m2ae.io.cinc2015_records``), so their sides are known.
The check against the real corpus skips with a reason when ``../shared/data/cinc2015`` is absent.
"""
from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from m2ae.errors import InputError
from m2ae.io import cinc2015_records
from m2ae.simulate.record import simulate_record
from m2ae.train import load_config
from m2ae.train.corpus_data import corpus_store, names_sha256, real_validation_windows

ROOT = Path(__file__).resolve().parents[1]
TINY_TOML = ROOT / "configs" / "tiny.toml"
TRAIN = cinc2015_records("train")[:3]
VALIDATION = cinc2015_records("validation")[:2]
TEST = cinc2015_records("test")[:1]
FLAT_PPG = TRAIN[1]   # this train record's PPG clip "fell off": all zeros
SECONDS = 25.0        # two 10-s validation windows, and segments long enough for lagged crops
MIN_LEN = 1250 + 2 * 38


def _write_record(folder: Path, name: str, seed: int, flat_ppg: bool = False) -> None:
    import wfdb

    rec = simulate_record("NSR", duration_s=SECONDS, fs_hz=125.0, seed=seed)
    ppg = np.zeros_like(rec.ppg) if flat_ppg else rec.ppg
    sig = np.column_stack([rec.ecg, ppg])
    wfdb.wrsamp(name, fs=125, units=["mV", "NU"], sig_name=["II", "PLETH"], p_signal=sig, fmt=["16", "16"],
                adc_gain=[2000.0, 2000.0], baseline=[0, 0], write_dir=str(folder))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """labels.csv + records/ for 3 train, 2 validation and 1 test record; the test record's signal file
    is missing, so opening it would log a skip."""
    root = tmp_path_factory.mktemp("cinc")
    (root / "records").mkdir()
    names = TRAIN + VALIDATION + TEST
    with open(root / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["record", "alarm_type", "true_alarm", "original_name", "channels", "has_ppg", "seconds"])
        for i, name in enumerate(names):
            w.writerow([name, "VT" if i % 2 else "other", i % 2, "", "II PLETH", 1, SECONDS])
    for i, name in enumerate(names):
        _write_record(root / "records", name, seed=i, flat_ppg=name == FLAT_PPG)
    (root / "records" / f"{TEST[0]}.dat").unlink()
    return root


def _cfg(corpus: Path, **kw):
    sets = [f"data={json.dumps([str(corpus)])}", "sim_fraction=0.5", "progress=false"]
    return load_config(str(TINY_TOML), sets + [f"{k}={json.dumps(v)}" for k, v in kw.items()])


def test_store_holds_only_train_records_and_drops_the_flat_ppg(corpus, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="m2ae.io")
    store, card = corpus_store(_cfg(corpus), tmp_path / "cache", MIN_LEN)
    assert store.names == TRAIN
    assert card["records"] == 3 and card["record_names"] == TRAIN and card["layouts"] == {"cinc2015": 3}
    assert card["record_names_sha256"] == names_sha256(TRAIN)
    assert card["record_hours"] == pytest.approx(3 * SECONDS / 3600, abs=1e-3)
    assert card["channels_dropped"] == {"ecg": 0, "ppg": 1}
    assert "flat line" in card["dropped_channels"][FLAT_PPG]["ppg"]
    assert card["split"] == "train" and card["split_file"]["path"].endswith("cinc2015_split.csv")
    # one segment per record; the flat-PPG record trains as ECG only
    assert store.segments[:, 2].all() and store.segments[:, 3].tolist() == [1, 0, 1]
    assert not any(TEST[0] in r.getMessage() for r in caplog.records)  # the test record was never opened
    # a cache built from another split is rebuilt, not reused
    store2, card2 = corpus_store(_cfg(corpus, data_split=""), tmp_path / "cache", MIN_LEN)
    assert card2["records"] == 5 and set(store2.names) == set(TRAIN + VALIDATION)


def test_real_validation_windows_come_from_validation_records(corpus, tmp_path):
    v = real_validation_windows(_cfg(corpus, val_real_records=1, val_real_windows=2), tmp_path)
    assert v is not None and v["ecg"].shape == v["ppg"].shape == (2, 1250) and v["record"].tolist() == [0, 0]
    assert v["card"]["records"] == 1 and v["card"]["record_names"][0] in VALIDATION
    assert v["card"]["records_read"] == 2 and v["card"]["windows"] == 2
    # robust-normalised like training windows: median 0, 1-99 % range about 4.65
    assert np.abs(np.median(v["ecg"], axis=1)).max() < 1e-5
    again = real_validation_windows(_cfg(corpus, val_real_records=1, val_real_windows=2), tmp_path)
    assert again is not None and np.array_equal(again["ecg"], v["ecg"])  # seeded choice, cached


def test_cli_train_on_split_corpus_writes_what_it_used(corpus, tmp_path, capsys):
    from m2ae.cli import main
    from m2ae.model.checkpoint import load_checkpoint

    out = tmp_path / "m.pt"
    args = ["train", "--config", str(TINY_TOML), "--data", str(corpus), "--out", str(out), "--set", "max_steps=2",
            "log_every=1", "val_windows=8", "val_real_records=2", "val_real_windows=2"]
    assert main(args + ["stop_at_step=1"]) == 0
    assert main(args + ["--resume", "--json"]) == 0  # windows per source carry across a resume
    printed = capsys.readouterr().out
    assert json.loads(printed[printed.index("{"):])["step"] == 2
    card = load_checkpoint(out)["card"]
    data = card["data"]
    assert data["data_split"] == "train" and data["sim_fraction"] == 0.5
    assert data["real_data"]["record_names"] == TRAIN and data["real_data"]["channels_dropped"]["ppg"] == 1
    seen = data["windows_by_source"]
    assert set(seen) == {"simulator", "corpus"} and sum(seen.values()) == 2 * 16 == data["windows_seen"]
    assert seen["corpus"] > 0 and seen["simulator"] > 0
    assert data["real_validation"]["records"] == 2 and set(data["real_validation"]["record_names"]) == set(VALIDATION)
    assert card["recipe"].startswith(f"m2ae train --config {TINY_TOML} --data {corpus} --out {out}")
    logged = [json.loads(line) for line in (tmp_path / "m.metrics.jsonl").read_text().splitlines()]
    assert {"val_real_masked50_mse_ecg", "val_real_ecg_from_ppg_mse_ecg", "val_masked50_mse_ecg"} <= set(logged[-1])
    # a fine-tune logs its starting weights' validation scores first (step 0), for model selection
    ft = [a if a != str(out) else str(tmp_path / "ft.pt") for a in args if a != "max_steps=2"]
    assert main(ft + ["max_steps=1", f"init_from={out}"]) == 0
    first = json.loads((tmp_path / "ft.metrics.jsonl").read_text().splitlines()[0])
    assert first["step"] == 0 and first["init_from"] == str(out) and "val_real_ecg_from_ppg_mse_ecg" in first


def test_the_test_split_is_never_trained_on(corpus):
    with pytest.raises(InputError, match="held out"):
        _cfg(corpus, data_split="test")
    assert _cfg(corpus, data_split=None).data_split == ""


def test_cinc2015_config_fine_tunes_the_shipped_weights():
    cfg = load_config(str(ROOT / "configs" / "cinc2015.toml"))
    card = json.loads((ROOT / "m2ae" / "model" / "model_card.json").read_text())
    shipped = card["training"]["config"]
    assert cfg.init_from == "m2ae/model/m2ae-demo.pt" and cfg.data_split == "train"
    assert cfg.sim_fraction == 0.5 and cfg.sim_faint_p_share == shipped["sim_faint_p_share"]
    assert cfg.batch_size == 64 and cfg.lr == shipped["lr"]
    assert cfg.model.to_dict() == card["model"]["config"]  # the shipped weights fit this architecture


def test_real_corpus_train_split_is_read_without_held_out_records(tmp_path, cinc_dir):
    """On the real corpus: the first train-split records only, none of validation or test."""
    from itertools import islice

    from m2ae.io import iter_corpus

    names = [r.meta["record_id"] for r in islice(iter_corpus(cinc_dir, split="train"), 5)]
    assert names == cinc2015_records("train")[:5]
