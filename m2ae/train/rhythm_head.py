"""The rhythm head for ICU alarms: every rhythm class (sinus, AF, SB, ST, PVCs and the alarm rhythms VT,
VF / flutter, asystole, extreme brady- and tachycardia) on the frozen fingerprint, from real CinC 2015
alarm labels where the corpus has them plus the simulator's classes; calibrated and told when to abstain.

Labels (``m2ae heads fit-alarm`` fits it beside the alarm heads):

- **real**: the CinC 2015 **train** split's *true* alarms, the window that ends at the alarm (290–300 s).
  A true VT alarm's window is ventricular tachycardia; a true "other" alarm's window is one of VF,
  asystole, extreme bradycardia or extreme tachycardia — the corpus does not say which, so that window's
  label is the *set* of the four and the loss is −log P(set) (a partial label, not a guess at one class).
  False alarms carry no rhythm truth and are never trained on;
- **simulated**: subjects of all ten classes from ``m2ae.simulate`` (heads' train seed), with a share of
  faint P waves as the demo heads have.

Held out for choices: the **validation** split's true alarms (same partial labels) and simulated
calibration-seed subjects. On them: the head shape (as ``m2ae.train.heads.HEAD_CANDIDATES``), the
temperature, and the two abstention rules the head carries (``m2ae.model.heads``):

- *outside what this head knows*: the fingerprint's nearest training prototype (``N_PROTOTYPES``
  training fingerprints kept in the head) is less similar than ``INSIDE_SHARE`` of held-out known
  windows are;
- *uncertain*: the top calibrated probability is below ``min_top_p``, the lowest level at which the
  held-out calls above it are right at least ``CONFIDENT_PRECISION`` of the time (real and simulated
  each), so a confident call is rarely a wrong one.

The test split is never read.
"""
from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..contract import ALL_RHYTHM_CODES, RHYTHM_NAMES
from ..model.heads import Head, default_head_specs
from .heads import HEAD_CANDIDATES, describe_head_shape

if TYPE_CHECKING:
    from ..model.inference import M2AEModel
    from .alarm_data import AlarmRecord

# ``rows`` below are ``m2ae.train.alarm_selection.Rows`` (X, record, back, mode, take); typed loosely because
# m2ae.train.alarm calls into this module (no import cycle)
Rows = Any

# the rhythms a true alarm of each CinC 2015 type stands for (the corpus does not tell "other" apart)
ALARM_RHYTHMS: dict[str, tuple[str, ...]] = {"VT": ("VT",), "other": ("VF", "ASY", "XB", "XT")}
REAL_WEIGHT = 5.0            # a real window counts this many simulated ones in the loss (few, and real)
SIM_SUBJECTS = {"train": 400, "cal": 150}   # simulated subjects per split, all ten classes, 2 windows each
SIM_WINDOWS = 2
FAINT_P_SHARE = 0.25
N_PROTOTYPES = 1024
INSIDE_SHARE = 0.98          # of held-out known windows lie inside (2 % false "outside")
CONFIDENT_PRECISION = 0.9    # held-out calls at or above min_top_p are right this often (each data kind)
MIN_TOP_P_GRID = tuple(np.round(np.arange(0.30, 0.96, 0.05), 2))
EPOCHS = 60
OUTSIDE_PROTOTYPE_SEED = 0


@dataclass
class LabelledRows:
    """Fingerprints X [R, D] with their allowed classes (bool [R, C]), loss weight [R], and origin
    ("real" / "simulated") per row; ``record`` indexes the real record (-1 for simulated rows)."""

    X: np.ndarray
    allowed: np.ndarray
    weight: np.ndarray
    origin: np.ndarray
    record: np.ndarray

    @staticmethod
    def concat(parts: Sequence[LabelledRows]) -> LabelledRows:
        return LabelledRows(*(np.concatenate([getattr(p, k) for p in parts])
                              for k in ("X", "allowed", "weight", "origin", "record")))


def allowed_mask(codes: Sequence[str | tuple[str, ...]]) -> np.ndarray:
    """bool [N, C]: the classes (``ALL_RHYTHM_CODES`` order) each label allows (a code or a set of codes)."""
    out = np.zeros((len(codes), len(ALL_RHYTHM_CODES)), bool)
    for i, c in enumerate(codes):
        for code in ((c,) if isinstance(c, str) else c):
            out[i, ALL_RHYTHM_CODES.index(code)] = True
    return out


def simulated_rows(model: M2AEModel, seed: int, n_subjects: int) -> LabelledRows:
    """Fingerprints (ECG+PPG, ECG only, PPG only) of simulated subjects of all ten rhythm classes."""
    from ..model.inference import fingerprints_by_mode
    from ..simulate.labelled import subject_windows
    from .demo_heads import faint_p_wave_scales

    d = subject_windows(n_subjects, SIM_WINDOWS, seed, max_shift_s=0.3, rhythms=ALL_RHYTHM_CODES,
                        p_wave_scale=faint_p_wave_scales(n_subjects, seed, FAINT_P_SHARE))
    fps = fingerprints_by_mode(model, d["ecg"], d["ppg"])
    X = np.concatenate(list(fps.values()))
    allowed = np.tile(allowed_mask(list(d["rhythm"])), (len(fps), 1))
    r = len(X)
    return LabelledRows(X, allowed, np.ones(r), np.full(r, "simulated"), np.full(r, -1))


def real_rows(records: Sequence[AlarmRecord], rows: Rows, split: str) -> LabelledRows:
    """The ``split`` records' true alarms, window 290–300 s (``back`` 0), every input mode they have,
    labelled with their alarm type's rhythm set; false alarms are left out (no rhythm truth)."""
    keep = np.array([records[k].split == split and records[k].true_alarm and records[k].alarm_type in ALARM_RHYTHMS
                     for k in rows.record], bool) & (rows.back == 0) if len(rows.record) else np.zeros(0, bool)
    sub = rows.take(keep)
    allowed = allowed_mask([ALARM_RHYTHMS[records[k].alarm_type] for k in sub.record])
    r = len(sub.X)
    return LabelledRows(sub.X.astype(np.float32), allowed.reshape(r, len(ALL_RHYTHM_CODES)), np.full(r, REAL_WEIGHT),
                        np.full(r, "real"), sub.record)


def set_nll(logits: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """−log P(label set) per row: −(logsumexp over the allowed classes − logsumexp over all)."""
    masked = logits.masked_fill(~allowed, float("-inf"))
    return torch.logsumexp(logits, dim=1) - torch.logsumexp(masked, dim=1)


def _train(spec: dict[str, Any], d: LabelledRows, seed: int) -> Head:
    torch.manual_seed(seed)
    head = Head(spec)
    X, A = torch.from_numpy(d.X).float(), torch.from_numpy(d.allowed)
    W = torch.from_numpy(d.weight).float()
    l2 = float(spec.get("l2", 0.0))
    opt = torch.optim.AdamW(head.net.parameters(), lr=3e-3, weight_decay=0.0 if l2 else 1e-2)
    weights = [p for name, p in head.net.named_parameters() if name.endswith("weight")]
    g = torch.Generator().manual_seed(seed)
    for _ in range(EPOCHS):
        head.train()
        for idx in torch.randperm(len(X), generator=g).split(256):
            loss = (set_nll(head.raw(X[idx]), A[idx]) * W[idx]).sum() / W[idx].sum()
            if l2:
                loss = loss + l2 * sum((w ** 2).sum() for w in weights)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return head.eval()


def _raw(head: Head, X: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return head.raw(torch.from_numpy(np.asarray(X, np.float32))).numpy().astype(np.float64)


def _weighted_nll(logits: np.ndarray, d: LabelledRows) -> float:
    nll = set_nll(torch.from_numpy(logits), torch.from_numpy(d.allowed)).numpy()
    return float((nll * d.weight).sum() / d.weight.sum())


TEMPERATURES = np.exp(np.linspace(np.log(0.05), np.log(20.0), 241))


def fit_set_temperature(raw: np.ndarray, d: LabelledRows) -> float:
    """The temperature (0.05–20, a grid) minimising the weighted −log P(label set) on held-out rows."""
    losses = [_weighted_nll(raw / t, d) for t in TEMPERATURES]
    return float(TEMPERATURES[int(np.argmin(losses))])


def nearest_prototype_cos(X: np.ndarray, prototypes: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of X to its nearest prototype."""
    a = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    b = prototypes / np.maximum(np.linalg.norm(prototypes, axis=1, keepdims=True), 1e-12)
    return (a @ b.T).max(axis=1)


def choose_min_top_p(p: np.ndarray, d: LabelledRows) -> tuple[float, dict[str, Any]]:
    """Lowest ``MIN_TOP_P_GRID`` level at which held-out calls (top p ≥ level) are right (their class in
    the label set) at least ``CONFIDENT_PRECISION`` of the time, on real and on simulated rows alike
    (an origin with under 5 calls at that level does not veto). Returns (level, {level: precisions})."""
    top, call = p.max(1), p.argmax(1)
    right = d.allowed[np.arange(len(call)), call]
    table: dict[str, Any] = {}
    chosen = None
    for level in MIN_TOP_P_GRID:
        row: dict[str, dict[str, Any]] = {}
        ok = True
        for origin in ("real", "simulated"):
            sel = (top >= level) & (d.origin == origin)
            precision = float(right[sel].mean()) if sel.any() else float("nan")
            row[origin] = {"calls": int(sel.sum()), "precision": precision if sel.any() else None}
            ok &= bool(sel.sum() < 5 or precision >= CONFIDENT_PRECISION)
        table[f"{level:.2f}"] = row
        if chosen is None and ok:
            chosen = float(level)
    return (chosen if chosen is not None else float(MIN_TOP_P_GRID[-1])), table


def fit_rhythm_head(model: M2AEModel, records: Sequence[AlarmRecord], rows: Rows, seed: int = 0
                    ) -> tuple[Head, dict[str, Any]]:
    """The rhythm head (see the module docstring) on ``model``'s frozen fingerprints.

    records, rows : the CinC 2015 train + validation records and their ``fingerprint_rows`` (window
        ``back`` 0 is used). Returns (head, card entry).
    """
    from ..simulate.splits import HEADS_CAL_SEED, HEADS_TRAIN_SEED

    train = LabelledRows.concat([simulated_rows(model, HEADS_TRAIN_SEED, SIM_SUBJECTS["train"]),
                                 real_rows(records, rows, "train")])
    held = LabelledRows.concat([simulated_rows(model, HEADS_CAL_SEED, SIM_SUBJECTS["cal"]),
                                real_rows(records, rows, "validation")])
    spec = {**default_head_specs(model.fingerprint_dim)["rhythm"], "task": "rhythm_icu"}
    best: tuple[float, Head] | None = None
    tried = []
    for cand in HEAD_CANDIDATES:
        head = _train({**spec, **cand}, train, seed)
        loss = _weighted_nll(_raw(head, held.X), held)
        tried.append({"shape": describe_head_shape(head.spec), "val_set_nll": round(loss, 4)})
        if best is None or loss < best[0]:
            best = (loss, head)
    assert best is not None
    head = best[1]
    raw_held = _raw(head, held.X)
    temperature = fit_set_temperature(raw_held, held)
    z = raw_held / temperature
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    min_top_p, precision_table = choose_min_top_p(p, held)
    pick = np.random.default_rng(OUTSIDE_PROTOTYPE_SEED).permutation(len(train.X))[:N_PROTOTYPES]
    prototypes = train.X[pick]
    min_cos = float(np.quantile(nearest_prototype_cos(held.X, prototypes), 1.0 - INSIDE_SHARE))
    final = Head({**head.spec, "temperature": temperature, "min_top_p": min_top_p,
                  "n_prototypes": len(prototypes), "outside_min_cos": min_cos})
    final.net.load_state_dict(head.net.state_dict())
    assert final.prototypes is not None
    with torch.no_grad():
        final.prototypes.copy_(torch.from_numpy(prototypes).float())
    final.eval()
    n_real = {s: int(len({records[k].name for k in d.record[d.origin == "real"]})) for s, d in
              (("train", train), ("validation", held))}
    sim_n = {k: v for k, v in SIM_SUBJECTS.items()}
    card = {
        "kind": "classification", "classes": list(ALL_RHYTHM_CODES),
        "class_names": [RHYTHM_NAMES[c] for c in ALL_RHYTHM_CODES],
        "labels_source": "real+simulated",
        "training_data": (f"real labels: the cinc2015 train split's true alarms ({n_real['train']} records; the "
                          "290-300 s window; VT alarm = VT, other alarm = one of VF / asystole / extreme "
                          "bradycardia / extreme tachycardia, a set label) + m2ae.simulate subjects of all ten "
                          f"classes ({sim_n['train']} x {SIM_WINDOWS} windows, seed {HEADS_TRAIN_SEED}); "
                          "false alarms not used as any class"),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d"),
        "inputs": "fingerprints of ECG+PPG, ECG only and PPG only (one head for all three)",
        "shape": describe_head_shape(final.spec),
        "calibration": (f"temperature scaling on the validation split's true alarms ({n_real['validation']} "
                        f"records) + {sim_n['cal']} simulated calibration subjects (T = {temperature:.3f})"),
        "abstention": {"outside": f"nearest of {len(prototypes)} training fingerprints below cosine {min_cos:.3f} "
                                  f"({INSIDE_SHARE:.0%} of held-out known windows lie above)",
                       "uncertain": f"top calibrated probability below {final.min_top_probability():.2f} (held-out "
                                    f"calls above it right >= {CONFIDENT_PRECISION:.0%} of the time)",
                       "precision_by_level": precision_table},
        "selection": {"by": "validation (true alarms) + simulated calibration subjects: weighted -log P(label set)",
                      "candidates": tried},
        "metrics": {"val_set_nll": round(best[0], 4)},
        "weights": f"a real window counts {REAL_WEIGHT:g} simulated ones",
    }
    return final, card
