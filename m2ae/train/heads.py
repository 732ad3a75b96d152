"""Fitting task heads on frozen fingerprints, with held-out temperature calibration.

Each head is trained on the fingerprints of all three input modes (ECG + PPG, ECG only, PPG only)
of the same windows, so one head serves every mode; its card entry reports the held-out metric per
mode. Splits are by subject/record (never by window): train -> fit, calibration -> temperature
(classifiers) or interval width (regressors), test -> the metric in the card.

    m2ae heads fit --labels labels.csv --out my-heads.pt          # a researcher's own records
    python -m m2ae.train.heads --out m2ae/model/m2ae-demo.pt      # the demo heads (simulator)

Labels CSV: a ``path`` column (any file ``m2ae.load_record`` reads) and one column per label.
Known labels: ``rhythm`` (NSR/AF/SB/ST/PVC), ``hypertension`` / ``sex`` / ``risk`` (binary),
``age`` (years); any other column becomes a classifier (<= 10 distinct values) or a regressor.
"""
from __future__ import annotations

import datetime as _dt
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from ..model.heads import Head, default_head_specs, gaussian_nll
from ..model.inference import fingerprints_by_mode

MODES = ("both", "ecg", "ppg")
BINARY_TRUE = {"1", "true", "yes", "y", "t", "m", "male", "high", "hypertensive"}
BINARY_FALSE = {"0", "false", "no", "n", "f", "female", "low", "normotensive"}


def encode_labels(spec: dict, values) -> np.ndarray:
    """Class indices (int64, -1 = missing) or float targets (NaN = missing) for a head ``spec``."""
    values = np.asarray(values, dtype=object)
    if spec["kind"] == "regression":
        out = np.full(len(values), np.nan)
        for i, v in enumerate(values):
            try:
                out[i] = float(v)
            except (TypeError, ValueError):
                pass
        return out
    classes = [str(c) for c in spec["classes"]]
    lower = {c.lower(): i for i, c in enumerate(classes)}
    out = np.full(len(values), -1, dtype=np.int64)
    for i, v in enumerate(values):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            continue
        s = str(v).strip()
        if isinstance(v, (bool, np.bool_)) and len(classes) == 2:
            out[i] = int(bool(v))
        elif s.lower() in lower:
            out[i] = lower[s.lower()]
        elif len(classes) == 2 and s.lower() in BINARY_TRUE | BINARY_FALSE:
            # binary heads: classes are ordered (negative, positive)
            out[i] = int(s.lower() in BINARY_TRUE) if spec["name"] != "sex" else int(s.lower() in {"m", "male", "1"})
        elif s.lower().replace(".0", "") in {"0", "1"} and len(classes) == 2:
            out[i] = int(s.lower().replace(".0", ""))
        else:
            raise InputError(f"label {spec['name']}: value {s!r} is not one of {', '.join(classes)}")
    return out


def _train_head(spec: dict, X: np.ndarray, y: np.ndarray, epochs: int, seed: int, device) -> Head:
    torch.manual_seed(seed)
    head = Head(spec).to(device)
    Xt = torch.from_numpy(X).float().to(device)
    if head.is_classifier:
        yt = torch.from_numpy(y).long().to(device)
        counts = torch.bincount(yt, minlength=len(spec["classes"])).float()
        weight = (counts.sum() / (len(counts) * counts.clamp_min(1))).to(device)  # balanced classes
    else:
        yt = torch.from_numpy((y - spec["y_mean"]) / spec["y_std"]).float().to(device)
    l2 = float(spec.get("l2", 0.0))
    opt = torch.optim.AdamW(head.parameters(), lr=3e-3, weight_decay=0.0 if l2 else 1e-2)
    weights = [p for name, p in head.named_parameters() if name.endswith("weight")]
    n, bs = len(Xt), 256
    g = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        head.train()
        for idx in torch.randperm(n, generator=g).split(bs):
            idx = idx.to(device)
            raw = head.raw(Xt[idx])
            loss = F.cross_entropy(raw, yt[idx], weight=weight) if head.is_classifier else gaussian_nll(raw, yt[idx])
            if l2:
                loss = loss + l2 * sum((w ** 2).sum() for w in weights)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return head.eval()


# Head shapes tried for every label; the one with the best calibration-split score is kept. Weak
# labels (sex, age from ECG alone) overfit the MLP; strong ones (rhythm) need it.
HEAD_CANDIDATES: tuple[dict, ...] = (
    {"hidden": 64, "dropout": 0.1, "l2": 0.0},
    {"hidden": 0, "l2": 1e-4},
    {"hidden": 0, "l2": 1e-3},
    {"hidden": 0, "l2": 1e-2},
)


def describe_head_shape(spec: dict) -> str:
    return (f"MLP (hidden {spec.get('hidden')}, dropout {spec.get('dropout', 0.1)})" if int(spec.get("hidden", 0)) > 0
            else f"linear (L2 {spec.get('l2', 0.0):g})")


def _selection_score(head: Head, X: dict[str, np.ndarray], y: np.ndarray, device) -> float:
    """Mean over input modes of AUROC (classifiers) or minus MAE (regressors): higher is better."""
    scores = []
    ok = (y >= 0) if head.is_classifier else np.isfinite(y)
    for Xm in X.values():
        if ok.sum() >= 2:
            m = score_head(head, Xm[ok], y[ok], device)
            scores.append(m.get("auroc", np.nan) if head.is_classifier else -m["mae"])
    return float(np.nanmean(scores)) if scores and np.isfinite(scores).any() else float("-inf")


def select_head(spec: dict, Xtr: np.ndarray, ytr: np.ndarray, cal: dict[str, np.ndarray] | None, ycal: np.ndarray | None,
                epochs: int, seed: int, device) -> tuple[Head, list[dict]]:
    """Train every ``HEAD_CANDIDATES`` shape on the training split and keep the one that scores best
    on the calibration split (by subject, never the test split). Without a usable calibration split
    the first (MLP) is kept. Returns (head, [{"shape", "cal_score"} per candidate])."""
    tried, best, best_score = [], None, float("-inf")
    for cand in HEAD_CANDIDATES:
        cspec = {**spec, **cand}
        head = _train_head(cspec, Xtr, ytr, epochs, seed, device)
        score = _selection_score(head, cal, ycal, device) if cal else float("-inf")
        tried.append({"shape": describe_head_shape(cspec), "cal_score": round(score, 4) if np.isfinite(score) else None})
        if best is None or score > best_score:
            best, best_score = head, score
        if not cal:
            break
    return best, tried


def calibrate(head: Head, X: np.ndarray, y: np.ndarray, device) -> None:
    """Temperature scaling (classifiers) or interval scaling (regressors) on held-out data, in place."""
    Xt = torch.from_numpy(X).float().to(device)
    with torch.no_grad():
        raw = head.raw(Xt)
    if head.is_classifier:
        yt = torch.from_numpy(y).long().to(device)
        log_t = torch.zeros(1, device=device, requires_grad=True)
        opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=100)

        def closure():
            opt.zero_grad()
            loss = F.cross_entropy(raw / log_t.exp(), yt)
            loss.backward()
            return loss

        opt.step(closure)
        head.spec["temperature"] = float(np.clip(log_t.exp().item(), 0.05, 20.0))
    else:
        head.spec["interval_scale"] = 1.0
        with torch.no_grad():
            out = head(Xt).cpu().numpy()
        from statistics import NormalDist

        level = float(head.spec.get("interval_level", 0.9))
        z = NormalDist().inv_cdf(0.5 + level / 2)
        ratio = np.abs(y - out[:, 0]) / np.maximum(out[:, 1], 1e-6)
        head.spec["interval_scale"] = float(np.quantile(ratio, level) / z)


def expected_calibration_error(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """ECE of the top-class probability, equal-width bins."""
    conf, pred = p.max(1), p.argmax(1)
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (conf > lo) & (conf <= hi)
        if sel.any():
            ece += sel.mean() * abs((pred[sel] == y[sel]).mean() - conf[sel].mean())
    return float(ece)


def score_head(head: Head, X: np.ndarray, y: np.ndarray, device) -> dict:
    """Held-out metrics: AUROC (macro one-vs-rest for >2 classes), accuracy, ECE; or MAE and
    interval coverage for regressors."""
    from sklearn.metrics import roc_auc_score

    with torch.no_grad():
        out = head(torch.from_numpy(X).float().to(device)).cpu()
    res = head.present(out)
    if head.is_classifier:
        p = res["probabilities"]
        metrics = {"n": int(len(y)), "accuracy": float((p.argmax(1) == y).mean()), "ece": expected_calibration_error(p, y)}
        present = np.unique(y)
        if len(present) >= 2:
            if p.shape[1] == 2:
                metrics["auroc"] = float(roc_auc_score(y, p[:, 1]))
            else:
                keep = np.isin(np.arange(p.shape[1]), present)
                pp = p[:, keep] / p[:, keep].sum(1, keepdims=True)
                remap = {c: i for i, c in enumerate(np.flatnonzero(keep))}
                yy = np.array([remap[int(c)] for c in y])
                # only the classes present in the test split can be scored
                metrics["auroc"] = float(roc_auc_score(yy, pp[:, 1]) if pp.shape[1] == 2 else
                                         roc_auc_score(yy, pp, multi_class="ovr", average="macro"))
        return metrics
    v, iv = res["value"], res["interval"]
    return {"n": int(len(y)), "mae": float(np.abs(v - y).mean()),
            "interval_coverage": float(((y >= iv[:, 0]) & (y <= iv[:, 1])).mean()),
            "interval_level": res["interval_level"]}


def fit_heads(model, specs: dict[str, dict], splits: dict[str, dict], epochs: int = 40, seed: int = 0,
              training_data: str = "", device=None) -> tuple[dict[str, Head], dict[str, dict]]:
    """Fit, calibrate and score heads.

    splits : {"train"|"cal"|"test": {"ecg": [N,1250] | None, "ppg": ..., "labels": {name: values [N]}}}
    Returns (heads, card_entries); each card entry holds kind, classes, training data, per-mode
    held-out metrics and the date.
    """
    device = torch.device(device) if device is not None else model.device
    fps = {k: fingerprints_by_mode(model, s.get("ecg"), s.get("ppg")) for k, s in splits.items()}
    heads, card = {}, {}
    date = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d")
    for name, spec in specs.items():
        spec = dict(spec)
        ys = {k: encode_labels(spec, s["labels"][name]) for k, s in splits.items()}

        def stack(split):
            X = np.concatenate(list(fps[split].values()))
            y = np.concatenate([ys[split]] * len(fps[split]))
            ok = (y >= 0) if spec["kind"] == "classification" else np.isfinite(y)
            return X[ok], y[ok]

        Xtr, ytr = stack("train")
        if len(ytr) < 4:
            raise InputError(f"label {name}: too few labelled training windows ({len(ytr)})")
        if spec["kind"] == "regression":
            spec["y_mean"], spec["y_std"] = float(ytr.mean()), float(ytr.std() + 1e-6)
        elif len(np.unique(ytr)) < 2:
            raise InputError(f"label {name}: the training split holds only one class")
        Xc, yc = stack("cal")
        has_cal = len(yc) > 0 and (spec["kind"] == "regression" or len(np.unique(yc)) >= 2)
        head, tried = select_head(spec, Xtr, ytr, fps["cal"] if has_cal else None, ys["cal"] if has_cal else None,
                                  epochs, seed, device)
        if len(yc):
            calibrate(head, Xc, yc, device)
        metrics = {}
        for mode, X in fps["test"].items():
            y = ys["test"]
            ok = (y >= 0) if spec["kind"] == "classification" else np.isfinite(y)
            if ok.sum() >= 2:
                metrics[mode] = score_head(head, X[ok], y[ok], device)
        heads[name] = head.cpu()
        entry = {"kind": spec["kind"], "training_data": training_data, "date": date,
                 "inputs": "fingerprints of ECG+PPG, ECG only and PPG only (one head for all three)",
                 "calibration": ("temperature scaling on the calibration split (T = %.3f)" % head.spec["temperature"]
                                 if spec["kind"] == "classification" else
                                 "interval width scaled on the calibration split (x%.3f)" % head.spec.get("interval_scale", 1.0)),
                 "n_train_windows": int(len(ys["train"])), "metrics_test": metrics,
                 "shape": describe_head_shape(head.spec),
                 "selection": {"by": "calibration split, mean over input modes of " +
                                      ("AUROC" if spec["kind"] == "classification" else "-MAE"),
                               "candidates": tried},
                 "metrics": {f"{'auroc' if spec['kind'] == 'classification' else 'mae'}_{m}":
                             v.get("auroc", v.get("mae")) for m, v in metrics.items()}}
        if spec["kind"] == "classification":
            entry["classes"] = list(spec["classes"])
        else:
            entry["unit"] = spec.get("unit", "")
        if spec.get("definition"):
            entry["definition"] = spec["definition"]
        card[name] = entry
    return heads, card


FAINT_P_SHARE = 0.25  # demo heads: a quarter of subjects with faint/no P waves (see faint_p_wave_scales)


def faint_p_wave_scales(n_subjects: int, seed: int, share: float) -> np.ndarray:
    """Per-subject P-wave amplitude factors: ``share`` of subjects get U(0, 0.3) (faint or absent P
    waves, as on many monitor leads), the rest 1. Its own random stream (``[seed, 7]``), so the
    subjects themselves are the same with or without it."""
    from ..simulate.subject import faint_p_wave_factors

    return faint_p_wave_factors(np.random.default_rng([seed, 7]), n_subjects, share)


def fit_demo_heads(model, n_subjects: int = 600, windows_per_subject: int = 4, epochs: int = 40,
                   max_shift_s: float = 0.3, device=None, faint_p_share: float = FAINT_P_SHARE
                   ) -> tuple[dict[str, Head], dict[str, dict]]:
    """Demo heads on simulated subjects: train/cal/test drawn from the seed roots in
    ``m2ae.simulate.splits`` (disjoint from pretraining and from ``EVAL_SEED``). ``faint_p_share``:
    share of subjects drawn with faint or no P waves (``faint_p_wave_scales``), so a rhythm head
    cannot equate "no P wave" with atrial fibrillation."""
    from ..simulate.labelled import RISK_DEFINITION, subject_windows
    from ..simulate.splits import HEADS_CAL_SEED, HEADS_TEST_SEED, HEADS_TRAIN_SEED

    sizes = {"train": (HEADS_TRAIN_SEED, n_subjects), "cal": (HEADS_CAL_SEED, max(n_subjects // 4, 20)),
             "test": (HEADS_TEST_SEED, max(n_subjects // 4, 20))}
    splits = {}
    for k, (seed, n) in sizes.items():
        d = subject_windows(n, windows_per_subject, seed, max_shift_s=max_shift_s,
                              p_wave_scale=faint_p_wave_scales(n, seed, faint_p_share))
        splits[k] = {"ecg": d["ecg"], "ppg": d["ppg"],
                     "labels": {"rhythm": d["rhythm"], "hypertension": d["hypertension"], "sex": d["sex"],
                                "risk": d["risk"], "age": d["age"]}}
    specs = default_head_specs(model.fingerprint_dim)
    specs["risk"]["definition"] = RISK_DEFINITION
    desc = (f"m2ae.simulate subjects: {sizes['train'][1]} train (seed {HEADS_TRAIN_SEED}), {sizes['cal'][1]} "
            f"calibration (seed {HEADS_CAL_SEED}), {sizes['test'][1]} test (seed {HEADS_TEST_SEED}); "
            f"{windows_per_subject} windows each"
            + (f"; {faint_p_share:.0%} of subjects with faint or no P waves" if faint_p_share else ""))
    return fit_heads(model, specs, splits, epochs=epochs, training_data=desc, device=device)


def _infer_spec(name: str, values: np.ndarray, input_dim: int) -> dict:
    defaults = default_head_specs(input_dim)
    if name in defaults:
        return defaults[name]
    base = {"name": name, "input_dim": input_dim, "hidden": 64, "dropout": 0.1, "temperature": 1.0}
    vals = [v for v in values if not (v is None or (isinstance(v, float) and np.isnan(v)) or str(v).strip() == "")]
    try:
        nums = np.array([float(v) for v in vals])
        numeric = True
    except (TypeError, ValueError):
        numeric = False
    distinct = sorted({str(v).strip() for v in vals})
    if numeric and (len(np.unique(nums)) > 10 or not np.allclose(nums, np.round(nums))):
        return {**base, "kind": "regression", "unit": "", "y_mean": 0.0, "y_std": 1.0, "interval_level": 0.9,
                "interval_scale": 1.0}
    if len(distinct) < 2:
        raise InputError(f"label {name}: needs at least two distinct values, found {distinct}")
    return {**base, "kind": "classification", "classes": distinct, "class_names": distinct}


def fit_heads_from_cli(args) -> int:
    """``m2ae heads fit --labels CSV [--model CKPT] --out CKPT``: heads on a user's labelled records."""
    import pandas as pd

    from ..cli import emit
    from ..io import load_record
    from ..model import load_model
    from ..model.card import write_card
    from ..model.checkpoint import load_checkpoint, save_checkpoint
    from ..signal.filters import contract_windows_fast

    labels_path = Path(args.labels)
    if not labels_path.exists():
        raise InputError(f"{labels_path}: labels CSV not found")
    try:
        table = pd.read_csv(labels_path)
    except Exception as e:
        raise InputError(f"{labels_path}: not a readable CSV ({str(e).splitlines()[0]})")
    if "path" not in table.columns:
        raise InputError(f"{labels_path}: needs a 'path' column (columns: {', '.join(map(str, table.columns))})")
    label_cols = [c for c in table.columns if c != "path"]
    if not label_cols:
        raise InputError(f"{labels_path}: no label columns besides 'path'")
    if len(table) < 5:
        raise InputError(f"{labels_path}: needs at least 5 labelled records (train/calibration/test), got {len(table)}")
    model = load_model(args.model)
    per_record = []
    for i, row in table.iterrows():
        p = Path(str(row["path"]))
        if not p.is_absolute():
            p = labels_path.parent / p
        rec = load_record(p)
        win = contract_windows_fast(rec.ecg, rec.ppg, rec.fs)
        if len(win) == 0:
            raise InputError(f"{p}: shorter than one 10-s window")
        per_record.append((win, {c: row[c] for c in label_cols}))
    has_e = all(w.ecg is not None for w, _ in per_record)
    has_p = all(w.ppg is not None for w, _ in per_record)
    if not (has_e or has_p):
        raise InputError(f"{labels_path}: records mix ECG-only and PPG-only files; give one common modality")
    rng = np.random.default_rng(0)
    order = rng.permutation(len(per_record))
    n_test = max(1, round(0.2 * len(order)))
    n_cal = max(1, round(0.2 * len(order)))
    parts = {"test": order[:n_test], "cal": order[n_test:n_test + n_cal], "train": order[n_test + n_cal:]}
    splits = {}
    for k, idx in parts.items():
        wins = [per_record[i] for i in idx]
        splits[k] = {
            "ecg": np.concatenate([w.ecg for w, _ in wins]) if has_e else None,
            "ppg": np.concatenate([w.ppg for w, _ in wins]) if has_p else None,
            "labels": {c: np.concatenate([np.array([lab[c]] * len(w), dtype=object) for w, lab in wins])
                       for c in label_cols},
        }
    specs = {c: {**_infer_spec(c, table[c].to_numpy(dtype=object), model.fingerprint_dim), "name": c} for c in label_cols}
    desc = f"{labels_path.name}: {len(table)} records ({len(parts['train'])} train, {len(parts['cal'])} calibration, {len(parts['test'])} test)"
    heads, card_heads = fit_heads(model, specs, splits, training_data=desc)
    ckpt = load_checkpoint(model.path)
    from ..model.inference import model_from_checkpoint

    base = model_from_checkpoint(ckpt, device="cpu")
    all_heads = {**base.heads, **heads}
    card = dict(ckpt.get("card", {}))
    card["heads"] = {**card.get("heads", {}), **card_heads}
    save_checkpoint(args.out, base.net, all_heads, card)
    write_card(args.out, card)
    emit({"checkpoint": str(args.out), "heads": card_heads}, args.json,
         lambda r: "\n".join([f"wrote {args.out}"] + [f"  {k}: test {v['metrics']}" for k, v in r["heads"].items()]))
    return 0


def refit_demo_heads(model_path, out, n_subjects: int = 1500, epochs: int = 40,
                     faint_p_share: float = FAINT_P_SHARE) -> dict:
    """Refit the demo heads of checkpoint ``model_path`` (weights untouched, so indexes stay valid)
    and write checkpoint + card to ``out``; a card without a ``timing`` entry gets one measured on
    the validation windows, as ``m2ae train`` records it. Returns the new card."""
    from ..model import load_model
    from ..model.card import write_card
    from ..model.checkpoint import load_checkpoint, save_checkpoint
    from . import pulse_arrival_card, validation_windows
    from .demo import is_p_wave_note, p_wave_limitation, weak_head_notes

    m = load_model(model_path)
    heads, heads_card = fit_demo_heads(m, n_subjects=n_subjects, epochs=epochs, faint_p_share=faint_p_share)
    card = dict(load_checkpoint(m.path).get("card", {}))
    old_notes = [n for n in card.get("limitations", [])
                 if not n.startswith("Heads near chance") and not is_p_wave_note(n)]
    train_config = card.get("training", {}).get("config", {})
    pretrain_share = float(train_config.get("sim_faint_p_share", 0.0))
    card.update(heads=heads_card,
                limitations=weak_head_notes(heads_card) + [p_wave_limitation(pretrain_share)] + old_notes)
    card.pop("eval", None)  # measured with the old heads: `m2ae eval --write-card` again
    card.pop("eval_date", None)
    if "timing" not in card:
        v = validation_windows(int(train_config.get("val_windows", 1024)))
        card["timing"] = pulse_arrival_card(v)
    save_checkpoint(out, m.net.cpu(), heads, card)
    write_card(out, card)
    return card


if __name__ == "__main__":  # refit the demo heads on a checkpoint
    import argparse

    ap = argparse.ArgumentParser(description="fit the demo heads (simulator) on a checkpoint")
    ap.add_argument("--model", default=None)
    ap.add_argument("--out", required=True)
    ap.add_argument("--subjects", type=int, default=1500)
    a = ap.parse_args()
    for k, v in refit_demo_heads(a.model, a.out, a.subjects)["heads"].items():
        print(k, v["shape"], v["metrics"])
