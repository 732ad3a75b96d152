"""Task heads: small probes on frozen, L2-normalised fingerprints.

A head is fully described by a plain ``spec`` dict (stored beside its ``state_dict`` in the
checkpoint, so ``torch.load(weights_only=True)`` suffices):

    {"name": "rhythm", "kind": "classification", "classes": ["NSR", ...], "class_names": [...],
     "input_dim": 256, "hidden": 64, "temperature": 1.3, ...}
    {"name": "age", "kind": "regression", "unit": "years", "y_mean": 55.0, "y_std": 15.0,
     "interval_level": 0.9, "interval_scale": 1.1, ...}

Classification heads return temperature-scaled logits [N, C] (softmax = calibrated probabilities);
regression heads return [N, 2] = (mean, standard deviation) in the label's units, the deviation
already multiplied by the held-out calibration factor ``interval_scale``.

Every presented output says whether it is **uncertain** (shown as "uncertain", not as a class or a
value): a classifier whose top calibrated probability is below 1/C + ``UNCERTAIN_BAND`` (or the head's
own stricter ``min_top_p``, chosen on held-out data), a regressor whose interval is wider than
``UNCERTAIN_INTERVAL_SHARE`` of the label's range (``label_range``, else ±2 training SDs). A head with
**prototypes** (the rhythm head: fingerprints of its training windows, stored as a buffer) also says
whether an input lies **outside** what it knows: its nearest prototype has a cosine similarity below
``outside_min_cos`` (set on held-out windows the head does know).
"""
from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# A class call within this much of chance (1/C) is "uncertain": 0.65 for a binary head, 0.25 for ten classes.
UNCERTAIN_BAND = 0.15
# An interval wider than this share of the label's range says little (age 11.9-99.4 y: 87 of ~83 y).
UNCERTAIN_INTERVAL_SHARE = 0.5
OUTSIDE_NOTE = "outside what this head knows"


class Head(nn.Module):
    """One task head built from its ``spec`` dict: an MLP (``hidden`` > 0) or a linear probe on fingerprints."""

    def __init__(self, spec: dict[str, Any]):
        super().__init__()
        self.spec: dict[str, Any] = dict(spec)
        d_in, hidden = int(spec["input_dim"]), int(spec.get("hidden", 64))
        d_out = len(spec["classes"]) if self.is_classifier else 2
        self.net: nn.Module
        if hidden > 0:
            self.net = nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Dropout(float(spec.get("dropout", 0.1))),
                                     nn.Linear(hidden, d_out))
        else:
            self.net = nn.Linear(d_in, d_out)
        self.prototypes: torch.Tensor | None
        if int(spec.get("n_prototypes", 0)) > 0:  # filled by the fit, loaded with the state dict
            self.register_buffer("prototypes", torch.zeros(int(spec["n_prototypes"]), d_in))
        else:
            self.prototypes = None

    @property
    def name(self) -> str:
        """The head's name (the task: "rhythm", "age", ...)."""
        return self.spec["name"]

    @property
    def is_classifier(self) -> bool:
        """True for classification heads (logits out), False for regression heads ((mean, sd) out)."""
        return self.spec["kind"] == "classification"

    def raw(self, fp: torch.Tensor) -> torch.Tensor:
        """Uncalibrated outputs: logits [N, C], or (standardised mean, log sd) [N, 2]."""
        return self.net(fp)

    def forward(self, fp: torch.Tensor) -> torch.Tensor:
        """fp: [N, D] fingerprints -> calibrated logits [N, C] or (mean, sd) [N, 2] in label units."""
        out = self.raw(fp)
        if self.is_classifier:
            return out / float(self.spec.get("temperature", 1.0))
        mean = out[:, 0] * float(self.spec["y_std"]) + float(self.spec["y_mean"])
        sd = F.softplus(out[:, 1]) * float(self.spec["y_std"]) * float(self.spec.get("interval_scale", 1.0))
        return torch.stack([mean, sd], dim=1)

    def target_output(self, fp: torch.Tensor) -> torch.Tensor:
        """What attributions explain: logits [N, C] for classifiers, the predicted value [N, 1] else."""
        out = self.forward(fp)
        return out if self.is_classifier else out[:, :1]

    def min_top_probability(self) -> float:
        """Top calibrated probability below which a class call is "uncertain": 1/C + ``UNCERTAIN_BAND``,
        or the head's own ``min_top_p`` when that is stricter."""
        return max(1.0 / len(self.spec["classes"]) + UNCERTAIN_BAND, float(self.spec.get("min_top_p", 0.0)))

    def max_interval_width(self) -> float:
        """Interval width (label units) above which a value is "uncertain": ``UNCERTAIN_INTERVAL_SHARE``
        of ``label_range`` (the training labels' span), else of ±2 training SDs."""
        lo_hi = self.spec.get("label_range")
        span = float(lo_hi[1]) - float(lo_hi[0]) if lo_hi else 4.0 * float(self.spec["y_std"])
        return UNCERTAIN_INTERVAL_SHARE * span

    def outside(self, fp: torch.Tensor) -> np.ndarray:
        """bool [N]: fingerprints unlike every training prototype (nearest cosine < ``outside_min_cos``);
        all False for a head without prototypes."""
        if self.prototypes is None:
            return np.zeros(len(fp), bool)
        sim = F.normalize(fp.float(), dim=1) @ F.normalize(self.prototypes.float(), dim=1).T
        return (sim.max(dim=1).values < float(self.spec.get("outside_min_cos", -1.0))).detach().cpu().numpy()

    def present(self, out: torch.Tensor, fp: torch.Tensor | None = None) -> dict[str, Any]:
        """Turn ``forward`` outputs into the user-facing prediction dict (numpy arrays).

        Classifiers: classes, class_names, probabilities [N, C]; regressors: value [N] and interval
        [N, 2] in the label's ``unit`` (e.g. years), interval_level (e.g. 0.9). Both: uncertain bool [N]
        (see the module docstring) with ``uncertain_rule`` saying why. Heads with prototypes, given the
        fingerprints ``fp``: outside bool [N] and outside_note ("outside what this head knows").
        """
        if self.is_classifier:
            p = torch.softmax(out.detach().float(), dim=1).cpu().numpy()
            floor = self.min_top_probability()
            res: dict[str, Any] = {
                "classes": list(self.spec["classes"]),
                "class_names": list(self.spec.get("class_names", self.spec["classes"])),
                "probabilities": p, "uncertain": p.max(axis=1) < floor,
                "uncertain_rule": f"top calibrated probability below {floor:.2f}"}
        else:
            level = float(self.spec.get("interval_level", 0.9))
            z = NormalDist().inv_cdf(0.5 + level / 2)
            mean, sd = out[:, 0].detach().float().cpu().numpy(), out[:, 1].detach().float().cpu().numpy()
            width = self.max_interval_width()
            res = {"value": mean, "interval": np.stack([mean - z * sd, mean + z * sd], axis=1),
                   "interval_level": level, "unit": self.spec.get("unit", ""),
                   "uncertain": 2 * z * sd > width,
                   "uncertain_rule": f"interval wider than {width:.1f} {self.spec.get('unit', '')}".rstrip()}
        if self.prototypes is not None and fp is not None:  # without fingerprints it cannot be judged: no key
            res["outside"] = self.outside(fp)
            res["outside_note"] = OUTSIDE_NOTE
        return res


def gaussian_nll(raw: torch.Tensor, y_std_units: torch.Tensor) -> torch.Tensor:
    """Gaussian negative log-likelihood of standardised targets given raw (mean, pre-softplus sd)."""
    sd = F.softplus(raw[:, 1]) + 1e-3
    return (torch.log(sd) + 0.5 * ((y_std_units - raw[:, 0]) / sd) ** 2 + 0.5 * math.log(2 * math.pi)).mean()


def default_head_specs(input_dim: int = 256) -> dict[str, dict[str, Any]]:
    """The five demo heads (their labels are defined on the simulator; see m2ae.train.demo_heads). The
    rhythm head has every rhythm class, the ICU alarm rhythms included (``m2ae.contract.ALL_RHYTHM_CODES``)."""
    from ..contract import ALL_RHYTHM_CODES, RHYTHM_NAMES

    base = {"input_dim": input_dim, "hidden": 64, "dropout": 0.1, "temperature": 1.0}
    return {
        "rhythm": {**base, "name": "rhythm", "kind": "classification", "classes": list(ALL_RHYTHM_CODES),
                   "class_names": [RHYTHM_NAMES[c] for c in ALL_RHYTHM_CODES]},
        "hypertension": {**base, "name": "hypertension", "kind": "classification", "classes": ["no", "yes"],
                         "class_names": ["normotensive", "hypertensive"]},
        "sex": {**base, "name": "sex", "kind": "classification", "classes": ["F", "M"],
                "class_names": ["female", "male"]},
        "risk": {**base, "name": "risk", "kind": "classification", "classes": ["low", "high"],
                 "class_names": ["lower cardiovascular risk", "higher cardiovascular risk"]},
        "age": {**base, "name": "age", "kind": "regression", "unit": "years", "y_mean": 50.0, "y_std": 15.0,
                "interval_level": 0.9, "interval_scale": 1.0},
    }
