"""Fitting task heads on frozen fingerprints: shape selection, held-out calibration, scoring.

Each head is trained on the fingerprints of all three input modes (ECG + PPG, ECG only, PPG only)
of the same windows, so one head serves every mode; its card entry reports the held-out metric per
mode. Splits are by subject/record (never by window): train -> fit, calibration -> temperature
(classifiers) or interval width (regressors), test -> the metric in the card.

    m2ae heads fit --labels labels.csv --out my-heads.pt               # a researcher's own records
    m2ae heads refit-demo --out m2ae/model/m2ae-demo.pt                # the demo heads (simulator)

``fit_heads`` takes the splits as arrays; ``m2ae.train.labels`` builds them from a labels CSV and
``m2ae.train.demo_heads`` from simulated subjects.
"""
from __future__ import annotations

import datetime as _dt
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from ..model.heads import Head, gaussian_nll
from ..model.inference import fingerprints_by_mode

if TYPE_CHECKING:
    from ..model.inference import M2AEModel

Device = torch.device | str

MODES = ("both", "ecg", "ppg")
BINARY_TRUE = {"1", "true", "yes", "y", "t", "m", "male", "high", "hypertensive"}
BINARY_FALSE = {"0", "false", "no", "n", "f", "female", "low", "normotensive"}


def encode_labels(spec: dict[str, Any], values: Any) -> np.ndarray:
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


def _train_head(spec: dict[str, Any], X: np.ndarray, y: np.ndarray, epochs: int, seed: int, device: Device) -> Head:
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
    for _ in range(epochs):
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


def describe_head_shape(spec: dict[str, Any]) -> str:
    return (f"MLP (hidden {spec.get('hidden')}, dropout {spec.get('dropout', 0.1)})" if int(spec.get("hidden", 0)) > 0
            else f"linear (L2 {spec.get('l2', 0.0):g})")


def _labelled(y: np.ndarray, classifier: bool) -> np.ndarray:
    """Rows that carry a label: class index >= 0 (classifiers) or a finite target (regressors)."""
    return (y >= 0) if classifier else np.isfinite(y)


def _stack_modes(fps: dict[str, np.ndarray], y: np.ndarray, classifier: bool) -> tuple[np.ndarray, np.ndarray]:
    """The fingerprints of every input mode stacked, each row with its window's label; unlabelled rows dropped."""
    X = np.concatenate(list(fps.values()))
    yy = np.concatenate([y] * len(fps))
    ok = _labelled(yy, classifier)
    return X[ok], yy[ok]


def _selection_score(head: Head, X: dict[str, np.ndarray], y: np.ndarray, device: Device) -> float:
    """Mean over input modes of AUROC (classifiers) or minus MAE (regressors): higher is better."""
    scores = []
    ok = _labelled(y, head.is_classifier)
    for Xm in X.values():
        if ok.sum() >= 2:
            m = score_head(head, Xm[ok], y[ok], device)
            scores.append(m.get("auroc", np.nan) if head.is_classifier else -m["mae"])
    return float(np.nanmean(scores)) if scores and np.isfinite(scores).any() else float("-inf")


def select_head(spec: dict[str, Any], Xtr: np.ndarray, ytr: np.ndarray, cal: dict[str, np.ndarray] | None,
                ycal: np.ndarray | None, epochs: int, seed: int, device: Device) -> tuple[Head, list[dict[str, Any]]]:
    """Train every ``HEAD_CANDIDATES`` shape on the training split and keep the one that scores best
    on the calibration split (by subject, never the test split). Without a usable calibration split
    the first (MLP) is kept. Returns (head, [{"shape", "cal_score"} per candidate])."""
    tried, best, best_score = [], None, float("-inf")
    for cand in HEAD_CANDIDATES:
        cspec = {**spec, **cand}
        head = _train_head(cspec, Xtr, ytr, epochs, seed, device)
        score = _selection_score(head, cal, ycal, device) if cal and ycal is not None else float("-inf")
        tried.append({"shape": describe_head_shape(cspec),
                      "cal_score": round(score, 4) if np.isfinite(score) else None})
        if best is None or score > best_score:
            best, best_score = head, score
        if not cal:
            break
    assert best is not None  # HEAD_CANDIDATES is never empty
    return best, tried


def calibrate(head: Head, X: np.ndarray, y: np.ndarray, device: Device) -> None:
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


def score_head(head: Head, X: np.ndarray, y: np.ndarray, device: Device) -> dict[str, Any]:
    """Held-out metrics: AUROC (macro one-vs-rest for >2 classes), accuracy, ECE; or MAE and
    interval coverage for regressors."""
    from sklearn.metrics import roc_auc_score

    with torch.no_grad():
        out = head(torch.from_numpy(X).float().to(device)).cpu()
    res = head.present(out)
    if head.is_classifier:
        p = res["probabilities"]
        metrics = {"n": int(len(y)), "accuracy": float((p.argmax(1) == y).mean()),
                   "ece": expected_calibration_error(p, y)}
        present = np.unique(y)
        if len(present) >= 2:
            if p.shape[1] == 2:
                metrics["auroc"] = float(roc_auc_score(y, p[:, 1]))
            else:
                keep = np.isin(np.arange(p.shape[1]), present)
                pp = p[:, keep] / p[:, keep].sum(1, keepdims=True)
                remap = {int(c): i for i, c in enumerate(np.flatnonzero(keep))}
                yy = np.array([remap[int(c)] for c in y])
                # only the classes present in the test split can be scored
                metrics["auroc"] = float(roc_auc_score(yy, pp[:, 1]) if pp.shape[1] == 2 else
                                         roc_auc_score(yy, pp, multi_class="ovr", average="macro"))
        return metrics
    v, iv = res["value"], res["interval"]
    return {"n": int(len(y)), "mae": float(np.abs(v - y).mean()),
            "interval_coverage": float(((y >= iv[:, 0]) & (y <= iv[:, 1])).mean()),
            "interval_level": res["interval_level"]}


def fit_heads(model: M2AEModel, specs: dict[str, dict[str, Any]], splits: dict[str, dict[str, Any]], epochs: int = 40,
              seed: int = 0, training_data: str = "", device: Device | None = None
              ) -> tuple[dict[str, Head], dict[str, dict[str, Any]]]:
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
        classifier = spec["kind"] == "classification"
        Xtr, ytr = _stack_modes(fps["train"], ys["train"], classifier)
        if len(ytr) < 4:
            raise InputError(f"label {name}: too few labelled training windows ({len(ytr)})")
        if spec["kind"] == "regression":
            spec["y_mean"], spec["y_std"] = float(ytr.mean()), float(ytr.std() + 1e-6)
            spec["label_range"] = [float(ytr.min()), float(ytr.max())]  # "uncertain" = interval wide against it
        elif len(np.unique(ytr)) < 2:
            raise InputError(f"label {name}: the training split holds only one class")
        Xc, yc = _stack_modes(fps["cal"], ys["cal"], classifier)
        has_cal = len(yc) > 0 and (spec["kind"] == "regression" or len(np.unique(yc)) >= 2)
        head, tried = select_head(spec, Xtr, ytr, fps["cal"] if has_cal else None, ys["cal"] if has_cal else None,
                                  epochs, seed, device)
        if len(yc):
            calibrate(head, Xc, yc, device)
        metrics = {}
        for mode, X in fps["test"].items():
            y = ys["test"]
            ok = _labelled(y, classifier)
            if ok.sum() >= 2:
                metrics[mode] = score_head(head, X[ok], y[ok], device)
        heads[name] = head.cpu()
        entry = {"kind": spec["kind"], "training_data": training_data, "date": date,
                 "inputs": "fingerprints of ECG+PPG, ECG only and PPG only (one head for all three)",
                 "calibration": (f"temperature scaling on the calibration split (T = {head.spec['temperature']:.3f})"
                                 if classifier else "interval width scaled on the calibration split "
                                                    f"(x{head.spec.get('interval_scale', 1.0):.3f})"),
                 "n_train_windows": int(len(ys["train"])), "metrics_test": metrics,
                 "shape": describe_head_shape(head.spec),
                 "selection": {"by": "calibration split, mean over input modes of "
                                     + ("AUROC" if classifier else "-MAE"), "candidates": tried},
                 "metrics": {f"{'auroc' if classifier else 'mae'}_{m}": v.get("auroc", v.get("mae"))
                             for m, v in metrics.items()}}
        if classifier:
            entry["classes"] = list(spec["classes"])
        else:
            entry["unit"] = spec.get("unit", "")
        if spec.get("definition"):
            entry["definition"] = spec["definition"]
        card[name] = entry
    return heads, card
