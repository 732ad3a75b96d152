"""The recipe that made the shipped demo checkpoint: pretrain, fit heads, check CUDA == CPU, write the card.

    python -m m2ae.train.demo --config configs/demo.toml --out runs/demo [--set max_steps=...]

Writes into ``--out``: ``m2ae-demo.pt`` (weights + heads + card, no optimizer state),
``model_card.json``, ``MODEL_CARD.md``, ``train.metrics.jsonl`` and the full training checkpoint
``train.pt`` (with optimizer state, for resuming). Copy the first three into ``m2ae/model/``.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from . import load_config, train
from ..simulate.labelled import RISK_DEFINITION, subject_windows
from .heads import fit_demo_heads
from ..simulate.splits import EVAL_SEED, HEADS_CAL_SEED, HEADS_TEST_SEED, HEADS_TRAIN_SEED, PRETRAIN_SEED, VAL_SEED


P_WAVE_LIMITATION = ("The pretraining simulator draws every non-AF subject with clear P waves and every AF subject "
                     "with none, so the fingerprint separates them by P waves as much as by beat irregularity. The "
                     "demo heads are fitted with a quarter of subjects drawn with faint or no P waves to counter it; "
                     "the eval's rhythm_without_p_waves stress test measures what remains, and the app checks each "
                     "rhythm call against the measured beat intervals.")
FAINT_P_NOTE_PREFIX = "Training drew "


def p_wave_limitation(pretrain_faint_p_share: float) -> str:
    """The card's note on P waves, as the pretraining config (``sim_faint_p_share``) made it true."""
    if not pretrain_faint_p_share:
        return P_WAVE_LIMITATION
    return (f"{FAINT_P_NOTE_PREFIX}{pretrain_faint_p_share:.0%} of simulated subjects with faint or no P waves "
            "(sim_faint_p_share; in a fine-tune, its steps only: see training.initialised_from), so a missing P "
            "wave alone no longer marks atrial fibrillation; the eval's "
            "rhythm_without_p_waves stress test measures how often sinus rhythm without P waves is still called "
            "AF, and the app checks each rhythm call against the measured beat intervals.")


def is_p_wave_note(note: str) -> bool:
    return note == P_WAVE_LIMITATION or note.startswith(FAINT_P_NOTE_PREFIX)


def weak_head_notes(heads_card: dict) -> list[str]:
    """Say plainly which heads score near chance on their held-out simulated test split."""
    weak = [f"{k} (AUROC {v['metrics'].get('auroc_both', float('nan')):.2f})" for k, v in heads_card.items()
            if v["kind"] == "classification" and v["metrics"].get("auroc_both", 1.0) < 0.65]
    if not weak:
        return []
    return ["Heads near chance on held-out simulated subjects: " + ", ".join(weak)
            + "; the simulator encodes little of these labels in the signals (e.g. sex only shifts R amplitude, QTc and path length slightly)."]


def equivalence_check(path: Path, n: int = 256) -> dict:
    """Max |CUDA - CPU| of fingerprints, reconstructions and head outputs on simulated validation
    windows (fp32 on both; TF32 off). Empty when no GPU is present."""
    from ..model import load_model

    if not torch.cuda.is_available():
        return {}
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    v = subject_windows(n, 1, VAL_SEED + 1, max_shift_s=0.0)
    res = {"windows": n, "data": f"simulated validation subjects (seed {VAL_SEED + 1})"}
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/demo.toml")
    ap.add_argument("--out", required=True)
    ap.add_argument("--set", nargs="*", default=[])
    ap.add_argument("--head-subjects", type=int, default=1500)
    ap.add_argument("--head-epochs", type=int, default=40)
    ap.add_argument("--train-ckpt", default=None, help="training checkpoint (default: OUT/train.pt)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = load_config(args.config, args.set)
    t0 = time.time()
    train_ckpt = Path(args.train_ckpt) if args.train_ckpt else out / "train.pt"
    metrics = train(cfg, train_ckpt)
    t_train = time.time() - t0
    print("train:", json.dumps(metrics))
    log = Path(str(train_ckpt.with_suffix("")) + ".metrics.jsonl")
    if log.exists() and log.parent.resolve() != out.resolve():
        (out / "train.metrics.jsonl").write_text(log.read_text())

    from ..model import load_model
    from ..model.card import NOT_FOR_CLINICAL_USE, render_markdown
    from ..model.checkpoint import load_checkpoint, save_checkpoint

    ckpt = load_checkpoint(train_ckpt)
    model = load_model(train_ckpt)
    # weights alone first, so a failure in the steps below never loses the pretraining
    save_checkpoint(out / "m2ae-pretrained.pt", model.net, None, ckpt["card"])
    t1 = time.time()
    heads, heads_card = fit_demo_heads(model, n_subjects=args.head_subjects, epochs=args.head_epochs,
                                       max_shift_s=cfg.max_shift_s)
    t_heads = time.time() - t1
    for k, v in heads_card.items():
        print("head", k, v["metrics"])
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
    card["recipe"] = (f"python -m m2ae.train.demo --config {args.config} --out DIR"
                      + (" --set " + " ".join(args.set) if args.set else ""))
    card["limitations"] = weak_head_notes(heads_card) + [
        "Pretrained on simulated signals only; real-record performance is whatever `m2ae eval` reports.",
        "Heads are fitted on simulator labels; " + RISK_DEFINITION + ".",
        p_wave_limitation(cfg.sim_faint_p_share),
        "10-s windows at 125 Hz, one ECG lead (II preferred) and one PPG channel, normalised per window.",
    ]
    final = out / "m2ae-demo.pt"
    save_checkpoint(final, model.net.cpu(), heads, card)
    card["equivalence"] = equivalence_check(final)
    print("equivalence:", json.dumps(card["equivalence"]))
    version = save_checkpoint(final, model.net.cpu(), heads, card)
    card["version"] = version
    (out / "model_card.json").write_text(json.dumps(card, indent=2) + "\n")
    (out / "MODEL_CARD.md").write_text(render_markdown(card))
    print(f"wrote {final} ({final.stat().st_size / 1e6:.1f} MB, version {version})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
