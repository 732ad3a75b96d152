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
"""
from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


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

    def present(self, out: torch.Tensor) -> dict[str, Any]:
        """Turn ``forward`` outputs into the user-facing prediction dict (numpy arrays).

        Classifiers: classes, class_names, probabilities [N, C]; regressors: value [N] and interval
        [N, 2] in the label's ``unit`` (e.g. years), interval_level (e.g. 0.9).
        """
        if self.is_classifier:
            return {"classes": list(self.spec["classes"]),
                    "class_names": list(self.spec.get("class_names", self.spec["classes"])),
                    "probabilities": torch.softmax(out.float(), dim=1).cpu().numpy()}
        level = float(self.spec.get("interval_level", 0.9))
        z = NormalDist().inv_cdf(0.5 + level / 2)
        mean, sd = out[:, 0].float().cpu().numpy(), out[:, 1].float().cpu().numpy()
        return {"value": mean, "interval": np.stack([mean - z * sd, mean + z * sd], axis=1),
                "interval_level": level, "unit": self.spec.get("unit", "")}


def gaussian_nll(raw: torch.Tensor, y_std_units: torch.Tensor) -> torch.Tensor:
    """Gaussian negative log-likelihood of standardised targets given raw (mean, pre-softplus sd)."""
    sd = F.softplus(raw[:, 1]) + 1e-3
    return (torch.log(sd) + 0.5 * ((y_std_units - raw[:, 0]) / sd) ** 2 + 0.5 * math.log(2 * math.pi)).mean()


def default_head_specs(input_dim: int = 256) -> dict[str, dict[str, Any]]:
    """The five demo heads (their labels are defined on the simulator; see m2ae.train.demo_heads)."""
    from ..contract import RHYTHM_CODES, RHYTHM_NAMES

    base = {"input_dim": input_dim, "hidden": 64, "dropout": 0.1, "temperature": 1.0}
    return {
        "rhythm": {**base, "name": "rhythm", "kind": "classification", "classes": list(RHYTHM_CODES),
                   "class_names": [RHYTHM_NAMES[c] for c in RHYTHM_CODES]},
        "hypertension": {**base, "name": "hypertension", "kind": "classification", "classes": ["no", "yes"],
                         "class_names": ["normotensive", "hypertensive"]},
        "sex": {**base, "name": "sex", "kind": "classification", "classes": ["F", "M"],
                "class_names": ["female", "male"]},
        "risk": {**base, "name": "risk", "kind": "classification", "classes": ["low", "high"],
                 "class_names": ["lower cardiovascular risk", "higher cardiovascular risk"]},
        "age": {**base, "name": "age", "kind": "regression", "unit": "years", "y_mean": 50.0, "y_std": 15.0,
                "interval_level": 0.9, "interval_scale": 1.0},
    }
