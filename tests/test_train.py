"""Pretraining: config, data sources, tiny overfit, save/resume equality, DDP agreement, CLI."""
from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from m2ae.errors import InputError
from m2ae.record import Record
from m2ae.train import TrainConfig, load_config, lr_at, train
from m2ae.signal.crop import crop_pairs
from m2ae.train.data import SegmentSource, SegmentStore, SimulatorSource, StepBatches

ROOT = Path(__file__).resolve().parents[1]
TINY_TOML = ROOT / "configs" / "tiny.toml"


def tiny_cfg(**kw) -> TrainConfig:
    return load_config(str(TINY_TOML), [f"{k}={json.dumps(v)}" for k, v in kw.items()])


def test_config_file_and_overrides(tmp_path):
    cfg = load_config(str(TINY_TOML), ["max_steps=7", "lr=0.01", "device=cpu", "scenario_probs=[1,0,0,0,0]"])
    assert (cfg.dim, cfg.max_steps, cfg.lr, cfg.device) == (32, 7, 0.01, "cpu")
    assert cfg.scenario_probs == [1, 0, 0, 0, 0]
    j = tmp_path / "c.json"
    j.write_text(json.dumps({"dim": 48, "batch_size": 4}))
    assert load_config(str(j)).dim == 48
    with pytest.raises(InputError, match="unknown config field"):
        load_config(None, ["nonsense=1"])
    with pytest.raises(InputError, match="KEY=VALUE"):
        load_config(None, ["max_steps"])
    with pytest.raises(InputError, match="expected a number"):
        load_config(None, ["lr=fast"])
    with pytest.raises(InputError, match="not found"):
        load_config(str(tmp_path / "missing.toml"))
    bad = tmp_path / "bad.toml"
    bad.write_text("dim = = 3")
    with pytest.raises(InputError, match="not a valid toml"):
        load_config(str(bad))


def test_lr_schedule_warmup_then_cosine():
    cfg = TrainConfig(lr=1e-3, min_lr=1e-4, warmup_steps=10, max_steps=110)
    assert lr_at(0, cfg) == pytest.approx(1e-4)
    assert lr_at(9, cfg) == pytest.approx(1e-3)
    assert lr_at(60, cfg) == pytest.approx(0.5 * (1e-3 + 1e-4))
    assert lr_at(110, cfg) == pytest.approx(1e-4)


def test_crop_pairs_applies_the_drawn_lag():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 1250 + 2 * 38 + 50))
    out = crop_pairs(x, x.copy(), rng, max_shift_s=0.3, filtered=True)
    assert out["ecg"].shape == (16, 1250) and out["ecg"].dtype == np.float32
    shifts = out["shift_samples"]
    assert np.abs(shifts).max() <= 38 and len(set(shifts.tolist())) > 3
    for e, p, d in zip(out["ecg"], out["ppg"], shifts):
        # PPG crop starts d samples after the ECG crop: ppg[t] == ecg[t + d] up to normalisation
        a, b = (e[d:], p[:1250 - d]) if d >= 0 else (e[:1250 + d], p[-d:])
        assert np.corrcoef(a, b)[0, 1] > 0.9999


def test_simulator_batches_are_step_seeded():
    ds = StepBatches(SimulatorSource(max_shift_s=0.2), batch_size=4, seed=3, rank=0)
    a, b, c = ds[5], ds[5], ds[6]
    assert a["ecg"].shape == (4, 1250) and a["present_ecg"].all()
    assert torch.equal(a["ecg"], b["ecg"]) and not torch.equal(a["ecg"], c["ecg"])
    other_rank = StepBatches(SimulatorSource(max_shift_s=0.2), batch_size=4, seed=3, rank=1)[5]
    assert not torch.equal(a["ppg"], other_rank["ppg"])


def test_segment_store_single_and_paired_records(tmp_path):
    rng = np.random.default_rng(1)
    t = np.arange(0, 30, 1 / 250)
    paired = Record(np.sin(2 * np.pi * 1.2 * t) + 0.1 * rng.standard_normal(len(t)),
                    np.sin(2 * np.pi * 1.2 * t - 1.0), 250.0, {"record_id": "paired"})
    ecg_only = Record(np.sin(2 * np.pi * 1.0 * t[:5000]), None, 250.0, {"record_id": "ecg_only"})
    short = Record(None, np.zeros(500), 250.0, {"record_id": "short"})
    store = SegmentStore.from_records([paired, ecg_only, short], min_len=1250 + 76)
    assert store.segments[:, 2:].tolist() == [[1, 1], [1, 0]]  # the 2-s record is left out
    store.save(tmp_path / "cache")
    loaded = SegmentStore.load(tmp_path / "cache")
    np.testing.assert_array_equal(loaded.segments, store.segments)
    b = SegmentSource(loaded, max_shift_s=0.3).batch(np.random.default_rng(2), 64)
    assert b["ecg"].shape == (64, 1250) and b["present_ecg"].all()
    assert (~b["present_ppg"]).any() and b["present_ppg"].any()
    assert np.all(b["ppg"][~b["present_ppg"]] == 0)
    assert np.isfinite(b["ecg"]).all()


def test_tiny_overfit_one_batch():
    """Loss on one fixed batch with fixed masks must drop a lot within 100 steps."""
    torch.manual_seed(0)
    from m2ae.model import M2AE

    cfg = tiny_cfg()
    net = M2AE(cfg.model_config())
    b = StepBatches(SimulatorSource(), batch_size=8, seed=0)[0]
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(100):
        out = net(b["ecg"], b["ppg"], generator=torch.Generator().manual_seed(0))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["loss"].detach()))
    assert losses[-1] < 0.5 * losses[0], (losses[0], losses[-1])


def test_interrupted_and_resumed_run_equals_uninterrupted(tmp_path):
    from m2ae.model.checkpoint import load_checkpoint

    kw = dict(max_steps=6, log_every=3, val_windows=0, device="cpu")
    straight = train(tiny_cfg(**kw), tmp_path / "a.pt")
    train(tiny_cfg(**kw, stop_at_step=3), tmp_path / "b.pt")
    ck = load_checkpoint(tmp_path / "b.pt")
    assert ck["train_state"]["step"] == 3 and ck["train_state"]["optimizer"]["state"]
    resumed = train(tiny_cfg(**kw), tmp_path / "b.pt", resume=True)
    assert load_checkpoint(tmp_path / "b.pt")["train_state"]["step"] == 6
    assert resumed["weights_version"] == straight["weights_version"]
    assert load_checkpoint(tmp_path / "a.pt")["model"].keys() == load_checkpoint(tmp_path / "b.pt")["model"].keys()
    # the metrics log continues rather than restarting
    steps = [json.loads(x)["step"] for x in (tmp_path / "b.metrics.jsonl").read_text().splitlines()]
    assert steps == [3, 6]


def _ddp_worker(rank: int, world: int, port: int, out: str, q) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    cfg = tiny_cfg(max_steps=4, log_every=2, val_windows=0, device="cpu", batch_size=4)
    q.put(train(cfg, out))


def test_ddp_two_cpu_processes_agree(tmp_path):
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_ddp_worker, args=(r, 2, port, str(tmp_path / "ddp.pt"), q)) for r in range(2)]
    for p in procs:
        p.start()
    results = [q.get(timeout=240) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    by_rank = {r["rank"]: r for r in results}
    assert set(by_rank) == {0, 1}
    assert by_rank[0]["weights_version"] == by_rank[1]["weights_version"]
    assert "loss" in by_rank[0] and "loss" not in by_rank[1]  # rank 0 logs
    from m2ae.model import load_model

    m = load_model(tmp_path / "ddp.pt", device="cpu")
    assert m.version == by_rank[0]["weights_version"]
    assert m.card["hardware"]["processes"] == 2


def test_cli_train_writes_checkpoint_and_log(tmp_path, capsys):
    from m2ae.cli import main
    from m2ae.model import load_model

    out = tmp_path / "run" / "m.pt"
    rc = main(["train", "--config", str(TINY_TOML), "--out", str(out), "--set", "max_steps=2", "log_every=1",
               "val_windows=8", "--json"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    assert res["step"] == 2 and np.isfinite(res["loss"]) and "val_retrieval_top1" in res
    lines = (tmp_path / "run" / "m.metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2]
    trained = load_model(out, device="cpu")
    assert trained.card["training"]["steps"] == 2
    # the typical R → pulse delay of the validation windows, which reconstruct places rebuilt signals at
    assert 0.1 < trained.pulse_arrival_s < 0.8 and "validation" in trained.card["timing"]["measured_on"]


def test_cli_train_bad_inputs(tmp_path, capsys):
    from m2ae.cli import main

    assert main(["train", "--out", str(tmp_path / "m.pt"), "--set", "bogus=1"]) == 2
    assert "unknown config field" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "m.pt"), "--data", str(tmp_path / "nope")]) == 2
    assert "training data not found" in capsys.readouterr().err
    (tmp_path / "export.pt").write_bytes(b"")
    from m2ae.model import M2AE
    from m2ae.model.checkpoint import save_checkpoint

    save_checkpoint(tmp_path / "export.pt", M2AE(tiny_cfg().model_config()))
    assert main(["train", "--config", str(TINY_TOML), "--out", str(tmp_path / "export.pt"), "--resume"]) == 2
    assert "no training state" in capsys.readouterr().err


def test_cli_train_on_corpus_folder_mixes_simulator(tmp_path, capsys):
    """`m2ae train --data DIR`: records are read once into a segment cache, then mixed 50/50."""
    from m2ae.cli import main

    corpus = [ROOT / "sample_data" / "nsr_wfdb", ROOT / "sample_data" / "ppg_only_csv"]
    if not all(c.is_dir() for c in corpus):
        pytest.skip("sample_data/ is absent")
    out = tmp_path / "m.pt"
    rc = main(["train", "--config", str(TINY_TOML), "--data", *map(str, corpus), "--out", str(out),
               "--set", "max_steps=2", "val_windows=0", "--json"])
    assert rc == 0
    store = SegmentStore.load(Path(str(out) + ".cache"))
    assert len(store.names) == 2
    assert store.segments[:, 2].any() and store.segments[:, 3].all()   # paired + PPG-only records
    assert (store.segments[:, 2] != store.segments[:, 3]).any()         # single-modality records kept
    from m2ae.model import load_model

    card = load_model(out, device="cpu").card
    assert card["data"]["corpora"] == list(map(str, corpus)) and card["data"]["sim_fraction"] == 0.5


def test_init_from_checkpoint_starts_from_its_weights(tmp_path):
    from m2ae.model import M2AE
    from m2ae.model.checkpoint import save_checkpoint, weights_version

    torch.manual_seed(123)
    base = M2AE(tiny_cfg().model_config())
    save_checkpoint(tmp_path / "base.pt", base, card={"name": "base", "training": {"steps": 77, "wall_time_s": 9.5},
                                                     "hardware": {"device": "cuda", "gpu": "NVIDIA H100"}})
    res = train(tiny_cfg(max_steps=1, lr=0.0, min_lr=0.0, val_windows=0, device="cpu",
                         init_from=str(tmp_path / "base.pt")), tmp_path / "ft.pt")
    assert res["weights_version"] == weights_version(base.state_dict())
    # the card keeps the lineage: a fine-tune never hides the compute behind its starting weights
    from m2ae.model.checkpoint import load_checkpoint

    parent = load_checkpoint(tmp_path / "ft.pt")["card"]["training"]["initialised_from"]
    assert parent["weights_version"] == weights_version(base.state_dict()) and parent["name"] == "base"
    assert parent["steps"] == 77 and parent["hardware"]["gpu"] == "NVIDIA H100"
    with pytest.raises(InputError, match="subject_views"):
        tiny_cfg(subject_views="some")


def test_sources_group_windows_and_mix_registry_recordings():
    from m2ae.train import build_source

    sim = SimulatorSource(windows_per_subject=2)
    b = sim.batch(np.random.default_rng(0), 8)
    assert b["group"].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert (b["labels"]["age"][::2] == b["labels"]["age"][1::2]).all()      # same subject, same labels
    assert not np.allclose(b["ecg"][0], b["ecg"][1])                       # but different windows
    src = build_source(tiny_cfg(registry_fraction=0.3), Path("unused.pt"))
    mixed = src.batch(np.random.default_rng(1), 64)
    single = mixed["present_ecg"] != mixed["present_ppg"]
    assert 5 <= single.sum() <= 40                                          # real single-modality rows
    assert len(np.unique(mixed["group"])) == len(mixed["group"])            # groups never collide


def _p_wave_prominence(batch) -> float:
    """Median over sinus-rhythm windows of the ECG's peak 80-250 ms before each R peak, relative to
    the window's median (normalised units): how visible the P waves are."""
    from m2ae.signal.peaks import detect_r_peaks

    values = []
    for ecg, rhythm in zip(batch["ecg"], batch["labels"]["rhythm"]):
        if rhythm == "AF":
            continue
        r = detect_r_peaks(ecg, 125)
        r = r[r > 32]
        if len(r):
            values.append(np.median([ecg[p - 31:p - 10].max() for p in r]) - np.median(ecg))
    return float(np.median(values))


def test_simulator_source_draws_faint_p_waves_when_asked():
    """sim_faint_p_share: a share of simulated subjects loses its P waves, so pretraining no longer
    teaches "no P wave = AF"; at 0 the batches are exactly the ones the shipped demo trained on."""
    default = SimulatorSource().batch(np.random.default_rng(5), 16)
    zero = SimulatorSource(faint_p_share=0.0).batch(np.random.default_rng(5), 16)
    assert all(np.array_equal(default[k], zero[k]) for k in ("ecg", "ppg", "group"))
    clear = _p_wave_prominence(SimulatorSource(noise=False).batch(np.random.default_rng(6), 96))
    faint = _p_wave_prominence(SimulatorSource(noise=False, faint_p_share=1.0).batch(np.random.default_rng(6), 96))
    assert faint < 0.5 * clear
    from m2ae.train import build_source

    assert build_source(tiny_cfg(sim_faint_p_share=0.25), Path("unused.pt")).faint_p_share == 0.25  # simulator only
    with pytest.raises(InputError, match="sim_faint_p_share"):
        tiny_cfg(sim_faint_p_share=1.5)


def test_card_p_wave_note_follows_the_pretraining_config():
    from m2ae.train.card_notes import P_WAVE_LIMITATION, is_p_wave_note, p_wave_limitation

    assert p_wave_limitation(0.0) == P_WAVE_LIMITATION  # the shipped demo: every non-AF subject had P waves
    note = p_wave_limitation(0.25)
    assert note.startswith("Training drew 25% of simulated subjects with faint or no P waves")
    assert is_p_wave_note(note) and is_p_wave_note(P_WAVE_LIMITATION) and not is_p_wave_note("10-s windows")
