"""Alarm heads on real labels: true vs false CinC 2015 ICU alarm from the frozen fingerprint of the
window(s) that end at the alarm.

One protocol for every alarm model here and in ``m2ae eval`` (the heads, and the classical baseline
that ``m2ae.eval.alarm_baselines`` fits the same way):

- fit on the **train** split of the fixed record split (``m2ae.io.cinc2015_split``);
- choose on the **validation** split: the regularisation C, one model for both alarm types or one per
  type, and (heads) whether the 280–290 s window is used beside 290–300 s and how a record's score is
  read (``RECORD_SCORES``); the choice maximises the mean over the two alarm types (VT, other) of the
  validation AUROC, one score per record;
- calibrate (temperature) and set each type's decision threshold on the validation split: the
  threshold maximises the Challenge score (TP+TN)/(TP+TN+FP+5·FN) (``m2ae.train.alarm_scores``);
- the **test** split is only ever scored, never used to choose anything.

A head is logistic regression (class-balanced, sklearn) on the fingerprint, stored as the project's
linear ``Head`` (hidden 0, classes false/true), so the checkpoint carries it like every other head and
``M2AEModel.predict`` serves it. It is trained on the fingerprints of every input mode (ECG+PPG, ECG
only, PPG only) of the chosen windows; a record's score is the mean logit over its windows, in the
best mode it has (ECG+PPG, else ECG only, else PPG only) or over every mode it has, as validation
chose. A record without any usable window cannot be scored and is called a true alarm (an alarm is
never silenced unseen).

    m2ae heads fit-alarm --data ../shared/data/cinc2015 --model CKPT --out CKPT
"""
from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..model.heads import Head
from .alarm_data import AlarmRecord, load_alarm_records, split_counts
from .alarm_scores import auroc, best_threshold

if TYPE_CHECKING:
    from ..model.inference import M2AEModel

ALARM_TYPES = ("VT", "other")
MODES = ("both", "ecg", "ppg")
C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0)
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

@dataclass
class Rows:
    """Feature rows of records: X [R, D], with the record index, window (``back``: 0 = the last window
    before the alarm, 1 = the one before) and input mode of each row."""

    X: np.ndarray
    record: np.ndarray
    back: np.ndarray
    mode: np.ndarray

    def take(self, keep: np.ndarray) -> Rows:
        """The rows where ``keep`` (bool [R]) is True."""
        return Rows(self.X[keep], self.record[keep], self.back[keep], self.mode[keep])


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


def per_record(values: np.ndarray, rows: Rows, n_records: int) -> np.ndarray:
    """Mean of a per-row value over each record's rows → [n_records] (NaN for a record without rows)."""
    total, count = np.zeros(n_records), np.zeros(n_records)
    np.add.at(total, rows.record, values)
    np.add.at(count, rows.record, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


# --- logistic regression, chosen on validation --------------------------------------------------

@dataclass
class Linear:
    """logit = X @ w + b (raw feature space; the training standardisation is folded in)."""

    w: np.ndarray
    b: float
    C: float

    def logit(self, X: np.ndarray) -> np.ndarray:
        """Logit of P(true alarm) per row of X [R, D]."""
        return np.nan_to_num(np.asarray(X, np.float64)) @ self.w + self.b


def fit_logistic(X: np.ndarray, y: np.ndarray, C: float) -> Linear:
    """Class-balanced L2 logistic regression on z-scored columns, folded back to raw columns."""
    from sklearn.linear_model import LogisticRegression

    X = np.nan_to_num(np.asarray(X, np.float64))
    mu, sd = X.mean(0), X.std(0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    lr = LogisticRegression(C=C, class_weight="balanced", max_iter=5000).fit((X - mu) / sd, np.asarray(y, bool))
    w = lr.coef_[0] / sd
    return Linear(w=w, b=float(lr.intercept_[0] - (mu * w).sum()), C=float(C))


@dataclass
class Choice:
    """What validation chose: one ``Linear`` per alarm type (the same object when joint)."""

    scheme: str
    models: dict[str, Linear]
    val_auroc: dict[str, float]
    tried: list[dict[str, Any]] = field(default_factory=list)


def choose_logistic(train: Rows, y_train: np.ndarray, type_train: np.ndarray,
                    val_scores: Callable[[Linear], np.ndarray], y_val: np.ndarray, type_val: np.ndarray,
                    c_grid: Sequence[float] = C_GRID, types: Sequence[str] = ALARM_TYPES,
                    fits: dict[tuple[str, float], Linear] | None = None) -> Choice:
    """Fit on the train rows (labels ``y_train``/types ``type_train`` per row) with every C, jointly
    and per type; keep the scheme whose mean over ``types`` of the validation AUROC is highest (ties:
    joint, the simpler). ``val_scores(model)`` gives one score per validation record (``y_val``,
    ``type_val``). Returns the ``Choice`` with every candidate's validation AUROC in ``tried``.
    ``fits``: models already fitted on these same train rows, {(type or "all", C): model}, reused and filled."""
    tried: list[dict[str, Any]] = []
    fits = {} if fits is None else fits

    def val_auc(m: Linear, t: str) -> float:
        s, keep = val_scores(m), type_val == t
        return auroc(y_val[keep], s[keep])

    best: dict[str, tuple[float, Linear]] = {}
    for scheme in ("joint", "separate"):
        for t in types if scheme == "separate" else ("all",):
            rows = np.ones(len(y_train), bool) if t == "all" else type_train == t
            if len(np.unique(y_train[rows])) < 2:
                continue
            for C in c_grid:
                if (t, C) not in fits:
                    fits[(t, C)] = fit_logistic(train.X[rows], y_train[rows], C)
                m = fits[(t, C)]
                aucs = {tt: val_auc(m, tt) for tt in (types if t == "all" else (t,))}
                score = float(np.nanmean(list(aucs.values()))) if np.isfinite(list(aucs.values())).any() else -1.0
                tried.append({"scheme": scheme, "fitted_on": t, "C": C, "val_auroc": aucs})
                if score > best.get(f"{scheme}:{t}", (-np.inf, m))[0]:
                    best[f"{scheme}:{t}"] = (score, m)
    if not best:
        raise ValueError("alarm: no split holds both true and false alarms to fit on")
    joint = best.get("joint:all")
    sep = {t: best[f"separate:{t}"] for t in types if f"separate:{t}" in best}
    sep_score = float(np.mean([v[0] for v in sep.values()])) if len(sep) == len(types) else -np.inf
    if joint is not None and joint[0] >= sep_score:
        models = {t: joint[1] for t in types}
        return Choice("joint", models, {t: val_auc(joint[1], t) for t in types}, tried)
    models = {t: sep[t][1] for t in types}
    return Choice("separate", models, {t: val_auc(models[t], t) for t in types}, tried)


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
    """Alarm heads on ``model``'s frozen fingerprints: fitted on the train records, chosen, calibrated
    and thresholded on the validation records (the test records, if given, are not looked at).

    rows : ``fingerprint_rows(model, records)`` when already computed.
    Returns (heads, card entries): one head "alarm" (joint) or "alarm_vt" and "alarm_other" (separate).
    """
    records = list(records)
    rows = fingerprint_rows(model, records) if rows is None else rows
    y, types = _labels(records)
    split = np.array([r.split for r in records])
    on = {s: np.isin(rows.record, np.flatnonzero(split == s)) for s in ("train", "validation")}
    val_idx = np.flatnonzero(split == "validation")
    best: tuple[float, tuple[int, ...], str, Choice] | None = None
    tried = []
    for backs in WINDOW_OPTIONS:
        use = np.isin(rows.back, backs)
        tr = rows.take(on["train"] & use)
        fits: dict[tuple[str, float], Linear] = {}  # the same train rows for both record scores
        for record_score, mode in RECORD_SCORES.items():
            va = rows.take(in_mode(rows, records, mode) & on["validation"] & use)

            def val_scores(m: Linear, va: Rows = va) -> np.ndarray:
                return per_record(m.logit(va.X), va, len(records))[val_idx]

            ch = choose_logistic(tr, y[tr.record], types[tr.record], val_scores, y[val_idx], types[val_idx],
                                 fits=fits)
            score = float(np.nanmean(list(ch.val_auroc.values())))
            tried.append({"windows": window_words(backs), "record_score": record_score, "scheme": ch.scheme,
                          "val_auroc": ch.val_auroc, "candidates": ch.tried})
            if best is None or score > best[0] + 1e-9:
                best = (score, backs, record_score, ch)
    assert best is not None
    _, backs, record_score, choice = best
    val_rows = in_mode(rows, records, RECORD_SCORES[record_score]) & on["validation"]
    counts = split_counts(records)
    n_train = counts.get("train", {}).get("records", 0)
    groups = {"alarm": list(ALARM_TYPES)} if choice.scheme == "joint" else {
        f"alarm_{t.lower()}": [t] for t in ALARM_TYPES}
    date = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d")
    heads, card = {}, {}
    use = np.isin(rows.back, backs)
    for name, its_types in groups.items():
        lin = choice.models[its_types[0]]
        head = linear_head(name, lin, rows.X.shape[1], {"alarm_types": its_types, "windows_back": list(backs),
                                                         "record_score": record_score})
        cal = rows.take(val_rows & use & np.isin(types[rows.record], its_types))
        # temperature on the records' scores as they are used (mean logit over the windows)
        val_logit = per_record(head_logit(head, cal.X), cal, len(records))
        keep = np.flatnonzero(np.isfinite(val_logit))
        head.spec["temperature"] = fit_temperature(val_logit[keep], y[keep])
        val_p = 1 / (1 + np.exp(-val_logit / head.spec["temperature"]))
        thresholds = {}
        for t in its_types:
            keep = np.flatnonzero((split == "validation") & (types == t))
            thresholds[t] = best_threshold(y[keep], np.nan_to_num(val_p[keep], nan=1.0))
        head.spec["threshold"] = thresholds
        heads[name] = head
        card[name] = {
            "kind": "classification", "classes": ["false", "true"], "labels_source": "real",
            "training_data": f"real labels: cinc2015 train split ({n_train} records)",
            "date": date, "alarm_types": its_types, "definition": ALARM_DEFINITION,
            "inputs": (f"fingerprints of ECG+PPG, ECG only and PPG only of {window_words(backs)}; the alarm "
                       "sounds at 300 s. A record's score: the mean logit over those windows, "
                       + RECORD_SCORE_WORDS[record_score]),
            "shape": f"logistic regression (class-balanced, C {lin.C:g}) as a linear head",
            "calibration": f"temperature scaling on the validation split (T = {head.spec['temperature']:.3f})",
            "threshold": {t: (None if not np.isfinite(v) else round(v, 4)) for t, v in thresholds.items()},
            "selection": {"by": "validation split: mean over alarm types of the per-record AUROC; threshold "
                                "maximises the Challenge score on validation", "chosen": {
                                    "scheme": choice.scheme, "windows": window_words(backs),
                                    "record_score": record_score, "C": lin.C},
                          "candidates": [{k: v for k, v in t.items() if k != "candidates"} for t in tried]},
            "metrics": {f"val_auroc_{t}": choice.val_auroc[t] for t in its_types},
            "records": {s: c for s, c in counts.items() if s in ("train", "validation")},
        }
    return heads, card


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
    from ..model.card import write_card
    from ..model.checkpoint import load_checkpoint, save_checkpoint
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
    save_checkpoint(out, base.net, {**ordered, **heads}, card)
    write_card(out, card)
    return {"checkpoint": str(out), "heads": card_heads}
