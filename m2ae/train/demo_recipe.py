"""The recipe that made the shipped demo checkpoint: pretrain, fit the demo heads, check CUDA == CPU,
write the card.

    m2ae recipe demo --config configs/demo.toml --out runs/demo [--set max_steps=...]

Writes into ``out``: ``m2ae-demo.pt`` (weights + heads + card, no optimizer state),
``model_card.json``, ``MODEL_CARD.md``, ``train.metrics.jsonl``, the weights alone
``m2ae-pretrained.pt`` and the full training checkpoint ``train.pt`` (with optimizer state, for
resuming). Copy the first three into ``m2ae/model/``.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..simulate.labelled import RISK_DEFINITION, subject_windows
from ..simulate.splits import EVAL_SEED, HEADS_CAL_SEED, HEADS_TEST_SEED, HEADS_TRAIN_SEED, PRETRAIN_SEED, VAL_SEED
from .card_notes import p_wave_limitation, weak_head_notes
from .config import load_config
from .demo_heads import fit_demo_heads
from .loop import train

RECIPE_COMMAND = "m2ae recipe demo"


def equivalence_check(path: str | Path, n: int = 256) -> dict[str, Any]:
    """Max |CUDA - CPU| of fingerprints, reconstructions and head outputs on ``n`` simulated
    validation windows (fp32 on both; TF32 off). Empty when no GPU is present."""
    from ..model import load_model

    if not torch.cuda.is_available():
        return {}
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    v = subject_windows(n, 1, VAL_SEED + 1, max_shift_s=0.0)
    res: dict[str, Any] = {"windows": n, "data": f"simulated validation subjects (seed {VAL_SEED + 1})"}
    outs = {}
    for dev in ("cuda", "cpu"):
        m = load_model(path, device=dev)
        r = m.reconstruct(ecg=v["ecg"], ppg=v["ppg"], mode="complementary", seed=0)
        x = m.reconstruct(ppg=v["ppg"], mode="ecg_from_ppg")
        p = m.predict(ecg=v["ecg"], ppg=v["ppg"])
        outs[dev] = {"fingerprint_both": m.fingerprint(ecg=v["ecg"], ppg=v["ppg"]),
                     "fingerprint_ecg": m.fingerprint(ecg=v["ecg"]), "fingerprint_ppg": m.fingerprint(ppg=v["ppg"]),
                     "masked50_ecg": r["ecg"]["prediction"], "masked50_ppg": r["ppg"]["prediction"],
                     "ecg_from_ppg": x["ecg"]["prediction"],
                     **{f"head_{k}": (o.get("probabilities", o.get("value"))) for k, o in p.items()}}
    for k in outs["cpu"]:
        res[f"max_abs_diff_{k}"] = float(np.abs(outs["cuda"][k] - outs["cpu"][k]).max())
    res["device"] = torch.cuda.get_device_name(0)
    return res


def run_demo_recipe(config: str | Path, out: str | Path, overrides: list[str] | None = None,
                    head_subjects: int = 1500, head_epochs: int = 40, train_ckpt: str | Path | None = None,
                    log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the demo recipe into folder ``out`` (see the module docstring) and return the final card.

    ``config``/``overrides``: the ``TrainConfig`` file and ``key=value`` settings; ``head_subjects``:
    simulated subjects of the heads' training split; ``train_ckpt``: where the training checkpoint
    goes (default ``out/train.pt``). ``log`` receives one line per finished stage."""
    from ..model import load_model
    from ..model.card import NOT_FOR_CLINICAL_USE, render_markdown
    from ..model.checkpoint import load_checkpoint, save_checkpoint

    overrides = list(overrides or [])
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = load_config(str(config), overrides)
    t0 = time.time()
    train_ckpt = Path(train_ckpt) if train_ckpt else out / "train.pt"
    metrics = train(cfg, train_ckpt)
    t_train = time.time() - t0
    log("train: " + json.dumps(metrics))
    metrics_log = Path(str(train_ckpt.with_suffix("")) + ".metrics.jsonl")
    if metrics_log.exists() and metrics_log.parent.resolve() != out.resolve():
        (out / "train.metrics.jsonl").write_text(metrics_log.read_text())

    ckpt = load_checkpoint(train_ckpt)
    model = load_model(train_ckpt)
    # weights alone first, so a failure in the steps below never loses the pretraining
    save_checkpoint(out / "m2ae-pretrained.pt", model.net, None, ckpt["card"])
    t1 = time.time()
    heads, heads_card = fit_demo_heads(model, n_subjects=head_subjects, epochs=head_epochs,
                                       max_shift_s=cfg.max_shift_s)
    t_heads = time.time() - t1
    for k, v in heads_card.items():
        log(f"head {k} {v['metrics']}")
    card = dict(ckpt["card"])
    card["name"] = "m2ae-demo"
    card["disclaimer"] = NOT_FOR_CLINICAL_USE
    card["summary"] = ("Demo M2AE checkpoint pretrained on the project's coupled ECG+PPG simulator only "
                       "(no real recordings were used for training or selection). Real paired records in "
                       "../shared/data/real are held out for `m2ae eval`.")
    card["data"]["splits"] = {"pretrain_seed_root": PRETRAIN_SEED, "heads_train_seed": HEADS_TRAIN_SEED,
                              "heads_cal_seed": HEADS_CAL_SEED, "heads_test_seed": HEADS_TEST_SEED,
                              "validation_seed": VAL_SEED, "eval_seed (held out)": EVAL_SEED,
                              "module": "m2ae.simulate.splits"}
    card["data"]["real_records_used"] = "none"
    card["heads"] = heads_card
    card["training"]["heads_fit_s"] = round(t_heads, 1)
    card["training"]["pretrain_wall_s_incl_startup"] = round(t_train, 1)
    card["recipe"] = (f"{RECIPE_COMMAND} --config {config} --out DIR"
                      + (" --set " + " ".join(overrides) if overrides else ""))
    card["limitations"] = weak_head_notes(heads_card) + [
        "Pretrained on simulated signals only; real-record performance is whatever `m2ae eval` reports.",
        "Heads are fitted on simulator labels; " + RISK_DEFINITION + ".",
        p_wave_limitation(cfg.sim_faint_p_share),
        "10-s windows at 125 Hz, one ECG lead (II preferred) and one PPG channel, normalised per window.",
    ]
    final = out / "m2ae-demo.pt"
    save_checkpoint(final, model.net.cpu(), heads, card)
    card["equivalence"] = equivalence_check(final)
    log("equivalence: " + json.dumps(card["equivalence"]))
    version = save_checkpoint(final, model.net.cpu(), heads, card)
    card["version"] = version
    (out / "model_card.json").write_text(json.dumps(card, indent=2) + "\n")
    (out / "MODEL_CARD.md").write_text(render_markdown(card))
    log(f"wrote {final} ({final.stat().st_size / 1e6:.1f} MB, version {version})")
    return card
