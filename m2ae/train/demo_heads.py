"""The demo heads on simulated labels: rhythm, hypertension, sex, risk and age heads fitted on
subjects from ``m2ae.simulate`` (train/calibration/test seed roots in ``m2ae.simulate.splits``),
with a share of subjects drawn with faint or no P waves, and the refit of a checkpoint's demo heads.

    m2ae heads refit-demo --out m2ae/model/m2ae-demo.pt
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..model.heads import Head, default_head_specs
from .card_notes import is_p_wave_note, is_weak_head_note, p_wave_limitation, weak_head_notes
from .heads import Device, fit_heads
from .validation import pulse_arrival_card, validation_windows

if TYPE_CHECKING:
    from ..model.inference import M2AEModel

FAINT_P_SHARE = 0.25  # demo heads: a quarter of subjects with faint/no P waves (see faint_p_wave_scales)
DEMO_LABELS = ("rhythm", "hypertension", "sex", "risk", "age")
# The rhythm head also learns the ICU alarm rhythms (VT, VF, ASY, XB, XT): extra subjects drawn with
# them, this share of each split's subject count, labelled for the rhythm head only (a pulseless VF
# window says nothing about blood pressure or sex, so the other heads never see them).
ALARM_RHYTHM_SHARE = 0.5
ALARM_RHYTHM_SEED_OFFSET = 17  # their own subjects: seed + this, disjoint from the split's other subjects


def faint_p_wave_scales(n_subjects: int, seed: int, share: float) -> np.ndarray:
    """Per-subject P-wave amplitude factors: ``share`` of subjects get U(0, 0.3) (faint or absent P
    waves, as on many monitor leads), the rest 1. Its own random stream (``[seed, 7]``), so the
    subjects themselves are the same with or without it."""
    from ..simulate.subject import faint_p_wave_factors

    return faint_p_wave_factors(np.random.default_rng([seed, 7]), n_subjects, share)


def fit_demo_heads(model: M2AEModel, n_subjects: int = 600, windows_per_subject: int = 4, epochs: int = 40,
                   max_shift_s: float = 0.3, device: Device | None = None, faint_p_share: float = FAINT_P_SHARE
                   ) -> tuple[dict[str, Head], dict[str, dict[str, Any]]]:
    """Demo heads on simulated subjects: train/cal/test drawn from the seed roots in
    ``m2ae.simulate.splits`` (disjoint from pretraining and from ``EVAL_SEED``). ``faint_p_share``:
    share of subjects drawn with faint or no P waves (``faint_p_wave_scales``), so a rhythm head
    cannot equate "no P wave" with atrial fibrillation. ``max_shift_s``: ECG/PPG lag augmentation (s)."""
    from ..simulate.labelled import RISK_DEFINITION, subject_windows
    from ..simulate.splits import HEADS_CAL_SEED, HEADS_TEST_SEED, HEADS_TRAIN_SEED

    sizes = {"train": (HEADS_TRAIN_SEED, n_subjects), "cal": (HEADS_CAL_SEED, max(n_subjects // 4, 20)),
             "test": (HEADS_TEST_SEED, max(n_subjects // 4, 20))}
    from ..contract import ALARM_RHYTHM_CODES

    splits = {}
    for k, (seed, n) in sizes.items():
        d = subject_windows(n, windows_per_subject, seed, max_shift_s=max_shift_s,
                            p_wave_scale=faint_p_wave_scales(n, seed, faint_p_share))
        n_alarm = max(len(ALARM_RHYTHM_CODES), int(round(ALARM_RHYTHM_SHARE * n)))
        a = subject_windows(n_alarm, windows_per_subject, seed + ALARM_RHYTHM_SEED_OFFSET, max_shift_s=max_shift_s,
                            rhythms=ALARM_RHYTHM_CODES)
        none = np.full(len(a["rhythm"]), None, dtype=object)

        def extra(label: str, a: dict[str, np.ndarray] = a, none: np.ndarray = none) -> np.ndarray:
            return np.asarray(a[label], dtype=object) if label == "rhythm" else none

        splits[k] = {"ecg": np.concatenate([d["ecg"], a["ecg"]]), "ppg": np.concatenate([d["ppg"], a["ppg"]]),
                     "labels": {label: np.concatenate([np.asarray(d[label], dtype=object), extra(label)])
                                for label in DEMO_LABELS}}
    specs = default_head_specs(model.fingerprint_dim)
    specs["risk"]["definition"] = RISK_DEFINITION
    desc = (f"m2ae.simulate subjects: {sizes['train'][1]} train (seed {HEADS_TRAIN_SEED}), {sizes['cal'][1]} "
            f"calibration (seed {HEADS_CAL_SEED}), {sizes['test'][1]} test (seed {HEADS_TEST_SEED}); "
            f"{windows_per_subject} windows each; the rhythm head also on {ALARM_RHYTHM_SHARE:.0%} as many "
            f"subjects again with the ICU alarm rhythms (VT, VF, ASY, XB, XT; seeds + {ALARM_RHYTHM_SEED_OFFSET})"
            + (f"; {faint_p_share:.0%} of subjects with faint or no P waves" if faint_p_share else ""))
    heads, card = fit_heads(model, specs, splits, epochs=epochs, training_data=desc, device=device)
    for entry in card.values():
        entry["labels_source"] = "simulated"  # the card and app say which heads learnt from real labels
    return heads, card


def refit_demo_heads(model_path: str | Path | None, out: str | Path, n_subjects: int = 1500, epochs: int = 40,
                     faint_p_share: float = FAINT_P_SHARE) -> dict[str, Any]:
    """Refit the demo heads of checkpoint ``model_path`` (default: the shipped one; weights untouched,
    so indexes stay valid) and write checkpoint + card to ``out``; a card without a ``timing`` entry
    gets one measured on the validation windows, as ``m2ae train`` records it. Returns the new card."""
    from ..model import load_model
    from ..model.card import save_checkpoint_and_card
    from ..model.checkpoint import load_checkpoint

    m = load_model(model_path)
    heads, heads_card = fit_demo_heads(m, n_subjects=n_subjects, epochs=epochs, faint_p_share=faint_p_share)
    card = dict(load_checkpoint(m.path).get("card", {}))
    old_notes = [n for n in card.get("limitations", []) if not is_weak_head_note(n) and not is_p_wave_note(n)]
    # sim_faint_p_share and val_windows sit at the top of training.config in both the flat form
    # (cards before TrainConfig held one M2AEConfig) and the nested one (architecture under "model")
    train_config = card.get("training", {}).get("config", {})
    pretrain_share = float(train_config.get("sim_faint_p_share", 0.0))
    card.update(heads=heads_card,
                limitations=weak_head_notes(heads_card) + [p_wave_limitation(pretrain_share)] + old_notes)
    card.pop("eval", None)  # measured with the old heads: `m2ae eval --write-card` again
    card.pop("eval_date", None)
    if "timing" not in card:
        v = validation_windows(int(train_config.get("val_windows", 1024)))
        card["timing"] = pulse_arrival_card(v)
    # heads this refit does not make (the real-label alarm heads) stay, with their card entries
    kept = {k: h for k, h in m.heads.items() if k not in heads}
    card["heads"] = {**{k: v for k, v in (load_checkpoint(m.path).get("card", {}).get("heads") or {}).items()
                        if k in kept}, **heads_card}
    save_checkpoint_and_card(out, m.net.cpu(), {**kept, **heads}, card)
    return card
