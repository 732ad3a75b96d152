"""Alarm heads on real labels: true vs false CinC 2015 ICU alarm from the frozen fingerprint of the
window(s) that end at the alarm.

One protocol for every alarm model here and in ``m2ae eval`` (the heads, and the classical baseline
that ``m2ae.eval.alarm_baselines`` fits the same way):

- learn from the **train and validation** splits of the fixed record split (``m2ae.io.cinc2015_split``):
  the validation split alone (111 records, 13 of them true VT alarms) is too small to choose on: it once
  rated a head's VT AUROC 0.94 that scored 0.68 on test, so choices are made by cross-validation;
- choose by ``CV_FOLDS``-fold cross-validation over those records (``m2ae.train.alarm_selection``:
  ``dev_folds``, stratified by alarm type × label, seeded): the regularisation C, one model for both
  alarm types or one per type, and (heads) whether the 280–290 s window is used beside 290–300 s and how
  a record's score is read (``RECORD_SCORES``); the choice maximises the mean over the two alarm types
  (VT, other) of the out-of-fold AUROC, one score per record; the chosen model is then refitted on all
  of them;
- calibrate (temperature) and set each type's decision threshold on the out-of-fold scores: the
  threshold maximises the Challenge score (TP+TN)/(TP+TN+FP+5·FN) (``m2ae.train.alarm_scores``);
- the **test** split is only ever scored, never used to choose anything.

A head is logistic regression (class-balanced, sklearn) on the fingerprint, stored as the project's
linear ``Head`` (hidden 0, classes false/true), so the checkpoint carries it like every other head and
``M2AEModel.predict`` serves it. It is trained on the fingerprints of every input mode (ECG+PPG, ECG
only, PPG only) of the chosen windows; a record's score is the mean logit over its windows, in the
best mode it has (ECG+PPG, else ECG only, else PPG only) or over every mode it has, as
cross-validation chose. A record without any usable window cannot be scored and is called a true
alarm (an alarm is never silenced unseen).

    m2ae heads fit-alarm --data ../shared/data/cinc2015 --model CKPT --out CKPT
"""
from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..model.heads import Head
from .alarm_data import AlarmRecord, load_alarm_records, split_counts
from .alarm_scores import best_threshold
from .alarm_selection import (ALARM_TYPES, CV_FOLDS, CV_SEED, CV_WORDS, DEV_SPLITS, Choice, Linear, Rows,
                              choose_logistic, dev_folds, fit_without_fold, out_of_fold_logit)

if TYPE_CHECKING:
    from ..model.inference import M2AEModel

MODES = ("both", "ecg", "ppg")
# windows back from the alarm: 0 = the last one (290-300 s), 1 = the one before it (280-290 s)
WINDOW_OPTIONS: tuple[tuple[int, ...], ...] = ((0,), (0, 1))
# how a record's score is read off its rows (in_mode): its best input mode, or every mode it has
RECORD_SCORES = {"best_mode": "available", "all_modes": "all"}
RECORD_SCORE_WORDS = {"best_mode": "in the record's best input (ECG+PPG, else ECG only, else PPG only)",
                      "all_modes": "over every input the record allows (ECG+PPG, ECG only, PPG only)"}
HEAD_TASK = "cinc2015_alarm"
ALARM_DEFINITION = ("P(true alarm): the probability that a CinC 2015 ICU arrhythmia alarm sounding at the end of "
                    "this window is real (the arrhythmia happened) rather than false, as the Challenge's expert "
                    "annotators judged; meaningful only on the 10 s before such an alarm")


# --- rows: fingerprints of the alarm windows ----------------------------------------------------

def window_words(backs: Sequence[int]) -> str:
    """Plain words for windows counted back from the alarm: (0,) → "the last 10-s window before the alarm"."""
    return ("the last 10-s window before the alarm (290-300 s)" if tuple(backs) == (0,) else
            f"the last {len(backs)} 10-s windows before the alarm ({300 - 10 * len(backs)}-300 s)")


def available_mode(r: AlarmRecord) -> str | None:
    """The best input a record offers: "both" (ECG+PPG), else "ecg", else "ppg"; None when refused."""
    mods = r.modalities
    return "both" if len(mods) == 2 else (mods[0] if mods else None)


def fingerprint_rows(model: M2AEModel, records: Sequence[AlarmRecord], backs: Sequence[int] = (0, 1)) -> Rows:
    """Fingerprints of every (record, window ``backs`` windows before the alarm, input mode the record allows)."""
    X, rec, st, mode = [], [], [], []
    for m in MODES:
        ecg: list[np.ndarray | None] = []
        ppg: list[np.ndarray | None] = []
        who = []
        for k, r in enumerate(records):
            for s in backs:
                e, p = r.window(s)
                if (m in ("both", "ecg") and e is None) or (m in ("both", "ppg") and p is None):
                    continue
                ecg.append(e)
                ppg.append(p)
                who.append((k, s))
        if not who:
            continue
        fp = model.fingerprint(ecg=np.stack([e for e in ecg if e is not None]) if m != "ppg" else None,
                               ppg=np.stack([p for p in ppg if p is not None]) if m != "ecg" else None)
        X.append(fp)
        rec += [k for k, _ in who]
        st += [s for _, s in who]
        mode += [m] * len(who)
    if not X:
        return Rows(np.zeros((0, model.fingerprint_dim), np.float32), np.zeros(0, int), np.zeros(0, int),
                    np.zeros(0, str))
    return Rows(np.concatenate(X), np.asarray(rec), np.asarray(st, np.int64), np.asarray(mode))


def in_mode(rows: Rows, records: Sequence[AlarmRecord], mode: str) -> np.ndarray:
    """Bool [R]: rows in ``mode`` ("both", "ecg", "ppg"; "available" = each record's best mode; "all")."""
    if mode == "all":
        return np.ones(len(rows.mode), bool)
    if mode != "available":
        return rows.mode == mode
    best = np.array([available_mode(r) or "" for r in records], dtype=object)
    return rows.mode == best[rows.record].astype(str) if len(rows.record) else np.zeros(0, bool)


# --- heads --------------------------------------------------------------------------------------

def linear_head(name: str, model: Linear, input_dim: int, extra: dict[str, Any]) -> Head:
    """The project's linear ``Head`` (classes false/true) whose true-vs-false logit is ``model``'s."""
    spec = {"name": name, "kind": "classification", "classes": ["false", "true"],
            "class_names": ["false alarm", "true alarm"], "input_dim": int(input_dim), "hidden": 0,
            "temperature": 1.0, "task": HEAD_TASK, "definition": ALARM_DEFINITION, **extra}
    head = Head(spec)
    lin = head.net
    assert isinstance(lin, torch.nn.Linear)
    with torch.no_grad():  # softmax([0, z]) = sigmoid(z): class 0 fixed at 0, class 1 carries the logit
        lin.weight.zero_()
        lin.bias.zero_()
        lin.weight[1] = torch.from_numpy(model.w).float()
        lin.bias[1] = float(model.b)
    return head.eval()


TEMPERATURES = np.exp(np.linspace(np.log(0.02), np.log(50.0), 401))


def fit_temperature(logit: np.ndarray, y: np.ndarray) -> float:
    """The temperature T (0.02–50) minimising the log loss of sigmoid(logit / T) on held-out labels.

    A grid, not an optimiser: strongly regularised probes give logits of ±0.05 whose best T is far
    below 1, where a gradient method on log T can run off; 1.0 when either class is missing."""
    z, y = np.asarray(logit, np.float64), np.asarray(y, bool)
    ok = np.isfinite(z)
    z, y = z[ok], y[ok]
    if len(np.unique(y)) < 2:
        return 1.0
    zz = z[None, :] / TEMPERATURES[:, None]
    # log loss of sigmoid(zz) without overflow: log(1 + exp(-zz)) for positives, log(1 + exp(zz)) else
    loss = np.logaddexp(0.0, np.where(y[None, :], -zz, zz)).mean(axis=1)
    return float(TEMPERATURES[int(np.argmin(loss))])


def head_logit(head: Head, X: np.ndarray) -> np.ndarray:
    """Calibrated logit of P(true alarm) per fingerprint row (temperature applied)."""
    with torch.inference_mode():
        out = head(torch.from_numpy(np.asarray(X, np.float32)).to(next(head.parameters()).device))
    return (out[:, 1] - out[:, 0]).float().cpu().numpy().astype(np.float64)


def alarm_heads_of(model: M2AEModel) -> dict[str, Head]:
    """{alarm type: head} for the alarm heads a checkpoint carries (spec task ``HEAD_TASK``)."""
    out: dict[str, Head] = {}
    for h in model.heads.values():
        if h.spec.get("task") == HEAD_TASK:
            for t in h.spec.get("alarm_types", ALARM_TYPES):
                out[t] = h
    return out


def _labels(records: Sequence[AlarmRecord]) -> tuple[np.ndarray, np.ndarray]:
    return np.array([r.true_alarm for r in records], bool), np.array([r.alarm_type for r in records])


def fit_alarm_heads(model: M2AEModel, records: Sequence[AlarmRecord], rows: Rows | None = None
                    ) -> tuple[dict[str, Head], dict[str, dict[str, Any]]]:
    """Alarm heads on ``model``'s frozen fingerprints, chosen by cross-validation over the train and
    validation records (``dev_folds``), fitted on all of them, calibrated and thresholded on their
    out-of-fold scores (the test records, if given, are not looked at).

    rows : ``fingerprint_rows(model, records)`` when already computed.
    Returns (heads, card entries): one head "alarm" (joint) or "alarm_vt" and "alarm_other" (separate).
    """
    records = list(records)
    rows = fingerprint_rows(model, records) if rows is None else rows
    y, types = _labels(records)
    folds = dev_folds(records)
    on_dev = folds[rows.record] >= 0 if len(rows.record) else np.zeros(0, bool)
    best: tuple[float, tuple[int, ...], str, Choice] | None = None
    tried = []
    for backs in WINDOW_OPTIONS:
        use = np.isin(rows.back, backs) & on_dev
        fits: dict[tuple[int, str, float], Linear | None] = {}  # the same fit rows for both record scores
        for record_score, mode in RECORD_SCORES.items():
            ch = choose_logistic(rows.take(use), rows.take(use & in_mode(rows, records, mode)), y, types, folds,
                                 fits=fits)
            score = float(np.nanmean(list(ch.cv_auroc.values())))
            tried.append({"windows": window_words(backs), "record_score": record_score, "scheme": ch.scheme,
                          "cv_auroc": ch.cv_auroc, "candidates": ch.tried})
            if best is None or score > best[0] + 1e-9:
                best = (score, backs, record_score, ch)
    assert best is not None
    _, backs, record_score, choice = best
    counts = split_counts(records)
    n_dev = sum(counts.get(s, {}).get("records", 0) for s in DEV_SPLITS)
    groups = {"alarm": list(ALARM_TYPES)} if choice.scheme == "joint" else {
        f"alarm_{t.lower()}": [t] for t in ALARM_TYPES}
    date = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d")
    heads, card = {}, {}
    for name, its_types in groups.items():
        lin = choice.models[its_types[0]]
        head = linear_head(name, lin, rows.X.shape[1], {"alarm_types": its_types, "windows_back": list(backs),
                                                         "record_score": record_score, "C": lin.C,
                                                         "cv": {"folds": CV_FOLDS, "seed": CV_SEED}})
        # temperature and thresholds on the out-of-fold record scores (mean logit over the windows)
        mine = (folds >= 0) & np.isin(types, its_types) & np.isfinite(choice.oof)
        head.spec["temperature"] = fit_temperature(choice.oof[mine], y[mine])
        oof_p = 1 / (1 + np.exp(-choice.oof / head.spec["temperature"]))
        thresholds = {}
        for t in its_types:
            keep = np.flatnonzero((folds >= 0) & (types == t))
            thresholds[t] = best_threshold(y[keep], np.nan_to_num(oof_p[keep], nan=1.0))
        head.spec["threshold"] = thresholds
        heads[name] = head
        card[name] = {
            "kind": "classification", "classes": ["false", "true"], "labels_source": "real",
            "training_data": f"real labels: cinc2015 train and validation splits ({n_dev} records)",
            "date": date, "alarm_types": its_types, "definition": ALARM_DEFINITION,
            "inputs": (f"fingerprints of ECG+PPG, ECG only and PPG only of {window_words(backs)}; the alarm "
                       "sounds at 300 s. A record's score: the mean logit over those windows, "
                       + RECORD_SCORE_WORDS[record_score]),
            "shape": f"logistic regression (class-balanced, C {lin.C:g}) as a linear head",
            "calibration": f"temperature scaling on the out-of-fold scores (T = {head.spec['temperature']:.3f})",
            "threshold": {t: (None if not np.isfinite(v) else round(v, 4)) for t, v in thresholds.items()},
            "selection": {"by": CV_WORDS, "chosen": {"scheme": choice.scheme, "windows": window_words(backs),
                                                     "record_score": record_score, "C": lin.C},
                          "candidates": [{k: v for k, v in t.items() if k != "candidates"} for t in tried]},
            "metrics": {f"cv_auroc_{t}": choice.cv_auroc[t] for t in its_types},
            "records": {s: c for s, c in counts.items() if s in DEV_SPLITS},
        }
    return heads, card


def head_oof_logit(head: Head, records: Sequence[AlarmRecord], rows: Rows) -> np.ndarray | None:
    """Per-record out-of-fold logit of P(true alarm) (temperature applied) of a head that ``fit_alarm_heads``
    made: its settings (windows, record score, types, C) refitted fold by fold, so every train and
    validation record is scored by a model that never saw it (NaN elsewhere). None for a head fitted
    before cross-validation (its spec has no ``cv``)."""
    spec = head.spec
    if "cv" not in spec or "C" not in spec:
        return None
    records = list(records)
    y, types = _labels(records)
    folds = dev_folds(records, spec["cv"]["folds"], spec["cv"]["seed"])
    its_types = list(spec.get("alarm_types", ALARM_TYPES))
    use = np.isin(rows.back, spec.get("windows_back", [0])) & (folds[rows.record] >= 0)
    use &= np.isin(types[rows.record], its_types)
    score = use & in_mode(rows, records, RECORD_SCORES.get(spec.get("record_score", "best_mode"), "available"))
    fit_rows = rows.take(use)
    oof = out_of_fold_logit(rows.take(score), folds, len(records),
                            lambda f: fit_without_fold(fit_rows, y, folds, f, spec["C"]))
    return oof / float(spec.get("temperature", 1.0))


def fit_alarm_checkpoint(data_dir: str | Path, model_path: str | Path | None, out: str | Path,
                         cache_dir: str | Path | None = None, quiet: bool = True, rhythm: bool = True
                         ) -> dict[str, Any]:
    """``m2ae heads fit-alarm``: the alarm heads of ``fit_alarm_heads`` on checkpoint ``model_path``
    (default: the shipped one), written to ``out`` beside its other heads (weights untouched, so
    indexes stay valid), card JSON + Markdown beside it. Only train and validation records are read.
    ``rhythm``: also refit the rhythm head on the real alarm labels + the simulator
    (``m2ae.train.rhythm_head``), replacing the checkpoint's one.
    Returns {"checkpoint", "heads": the new heads' card entries}."""
    from ..model import load_model
    from ..model.card import save_checkpoint_and_card
    from ..model.checkpoint import load_checkpoint
    from ..model.inference import model_from_checkpoint

    fitted_on = load_model(model_path, device="cpu")
    records = load_alarm_records(data_dir, splits=("train", "validation"), cache_dir=cache_dir, quiet=quiet)
    rows = fingerprint_rows(fitted_on, records)
    heads, card_heads = fit_alarm_heads(fitted_on, records, rows)
    if rhythm:
        from .rhythm_head import fit_rhythm_head

        heads["rhythm"], card_heads["rhythm"] = fit_rhythm_head(fitted_on, records, rows)
    ckpt = load_checkpoint(fitted_on.path)
    base = model_from_checkpoint(ckpt, device="cpu")
    old = {k: h for k, h in base.heads.items() if h.spec.get("task") != HEAD_TASK and k not in heads}  # replaced
    card = dict(ckpt.get("card", {}))
    card["heads"] = {**{k: card_heads.get(k, v) for k, v in card.get("heads", {}).items()
                        if k in old or k in card_heads}, **card_heads}
    card.pop("eval", None)  # measured without these heads: `m2ae eval --write-card` again
    card.pop("eval_date", None)
    # replaced heads keep their place (the app lists heads in checkpoint order: rhythm first)
    ordered = {k: heads.get(k, h) for k, h in base.heads.items() if k in old or k in heads}
    save_checkpoint_and_card(out, base.net, {**ordered, **heads}, card)
    return {"checkpoint": str(out), "heads": card_heads}
