"""Attributions for M2AE heads (Captum): which samples of the ECG and PPG drove a prediction.

``explain(model, head, ecg=..., ppg=...)`` returns per-sample attributions aligned with the input
windows and the share of evidence carried by each modality.

Methods
- ``"integrated_gradients"`` (default): Captum IntegratedGradients along the straight path from a
  baseline of zeros to the input. Zero in the contract's normalised units is the window's median
  (robust z-score), i.e. "a flat line at the signal's resting level", so an attribution says how
  much a deviation from rest moved the output. Completeness holds: attributions over both signals
  sum to output(input) − output(baseline), up to ``convergence_delta``.
- ``"occlusion"``: Captum Occlusion over the contract's 25-sample (0.2 s) patches, each replaced by
  the same zero baseline, one patch at a time. Cheaper (100 forward passes, no gradients) and
  coarser. Each sample of a patch gets the output drop divided by the patch length, so a patch's
  attributions sum to the drop its occlusion caused, on the same scale as IG.

What is explained: for a classification head the logit (pre-softmax score) of ``target``; for a
head with one output (regression such as age, or a one-logit binary head) that value.

>>> import m2ae
>>> model = m2ae.load_model()                                   # doctest: +SKIP
>>> att = m2ae.explain(model, "rhythm", ecg=win.ecg, ppg=win.ppg)  # doctest: +SKIP
>>> att.ecg.shape, att.share["ecg"]                               # doctest: +SKIP
((6, 1250), array([0.71, ...]))
"""
from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

from ..contract import PATCH_SAMPLES
from ..errors import InputError
from ..record import check_window_batch

if TYPE_CHECKING:  # torch is imported when ``explain`` runs, not with this module
    import torch

METHODS = ("integrated_gradients", "occlusion")


class ExplainableModel(Protocol):
    """What ``explain`` needs of a model (``M2AEModel`` has it): a differentiable head output."""

    def head_logits(self, head: str, ecg: torch.Tensor | None = None,
                    ppg: torch.Tensor | None = None) -> torch.Tensor:
        """Head ``head``'s logits [N, C] or value [N, 1] from windows [N, 1250] (either may be None)."""
        ...


@dataclass
class Attribution:
    """Attributions of one head's output to the input samples.

    ecg, ppg : float32 [N, 1250] per-sample attributions (same units as the explained output,
        logit or value), aligned with the input windows; None for an absent modality.
    share : {"ecg": [N], "ppg": [N]} share of absolute evidence per modality per window
        (sum |attr| of one modality / sum over both); the two add up to 1.
    convergence_delta : float [N] for IG: sum of attributions − (output − baseline output); None
        for occlusion.
    target : int [N] class index explained per window, or None for a one-output head.
    method : "integrated_gradients" or "occlusion".
    head : the head's name.
    output, baseline_output : float [N] the explained output at the input and at the zero baseline.
    classes : the head's class names when known (index ``target`` into it).
    """

    ecg: np.ndarray | None
    ppg: np.ndarray | None
    share: dict[str, np.ndarray]
    convergence_delta: np.ndarray | None
    target: np.ndarray | None
    method: str
    head: str
    output: np.ndarray
    baseline_output: np.ndarray
    classes: list[str] | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def _head_names(model: object) -> list[str]:
    names = getattr(model, "head_names", None)
    if callable(names):
        names = names()
    if names is None:
        heads = getattr(model, "heads", None)
        names = list(heads) if heads is not None else []
    return list(names)


def _head_classes(model: object, head: str) -> list[str] | None:
    getter = getattr(model, "head_classes", None)
    if callable(getter):
        classes = getter(head)
        return list(classes) if classes is not None else None
    heads = getattr(model, "heads", None)
    spec = getattr(heads.get(head), "spec", None) if isinstance(heads, dict) else None
    if spec and spec.get("classes") is not None:
        return list(spec["classes"])
    return None


def _model_device(model: object) -> torch.device:
    import torch

    device = getattr(model, "device", None)
    if device is not None:
        return torch.device(device)
    params = getattr(model, "parameters", None)
    if callable(params):
        for p in params():
            return p.device
    return torch.device("cpu")


def _resolve_target(target: str | npt.ArrayLike, classes: list[str] | None, n: int) -> np.ndarray:
    if isinstance(target, str):
        if not classes or target not in classes:
            raise InputError(f"target: unknown class {target!r} (classes: {', '.join(classes or [])})")
        return np.full(n, classes.index(target), dtype=np.int64)
    t = np.asarray(target).astype(np.int64).reshape(-1)
    if len(t) == 1:
        t = np.repeat(t, n)
    if len(t) != n:
        raise InputError(f"target: expected one class or one per window ({n}), got {len(t)}")
    return t


def explain(model: ExplainableModel, head: str, ecg: npt.ArrayLike | None = None, ppg: npt.ArrayLike | None = None,
            target: str | npt.ArrayLike | None = None, method: str = "integrated_gradients",
            n_steps: int = 32, batch_size: int = 16) -> Attribution:
    """Attribute head ``head``'s output to every input sample of ECG and/or PPG.

    model : an M2AE model (``m2ae.load_model()``); needs ``head_logits(head, ecg, ppg)``.
    head : one of the model's heads (e.g. "rhythm", "hypertension", "age", "sex", "risk").
    ecg, ppg : normalised contract windows [N, 1250] or [1250] (numpy or torch); either may be None.
    target : class to explain (index or class name, one or one per window); None = the predicted
        class per window. Ignored for one-output heads (regression).
    method : "integrated_gradients" (default) or "occlusion" (25-sample patches).
    n_steps : IG integration steps (Gauss–Legendre); more steps → smaller convergence_delta.
    batch_size : windows per Captum call (bounds memory: IG runs batch_size × n_steps rows).
    Raises InputError for an unknown head/method/class or malformed windows.
    """
    import torch
    from captum.attr import IntegratedGradients, Occlusion

    if method not in METHODS:
        raise InputError(f"method: unknown attribution method {method!r} (choose {', '.join(METHODS)})")
    names = _head_names(model)
    if head not in names:
        raise InputError(f"head: unknown head {head!r} (model has: {', '.join(names) or 'no heads'})")
    ecg = check_window_batch(ecg, "ecg")
    ppg = check_window_batch(ppg, "ppg")
    if ecg is None and ppg is None:
        raise InputError("explain: give ecg and/or ppg windows")
    if ecg is not None and ppg is not None and len(ecg) != len(ppg):
        raise InputError(f"explain: ecg has {len(ecg)} windows but ppg has {len(ppg)}")
    if int(n_steps) < 2:
        raise InputError(f"n_steps: need at least 2 integration steps, got {n_steps}")

    given = {m: x for m, x in (("ecg", ecg), ("ppg", ppg)) if x is not None}
    present = list(given)
    device = _model_device(model)
    classes = _head_classes(model, head)

    def forward(*xs):
        kw = {"ecg": None, "ppg": None}
        kw.update(zip(present, xs))
        return model.head_logits(head, kw["ecg"], kw["ppg"])  # [B, C] or [B] / [B, 1]

    def scalar_view(out):
        return out.reshape(-1) if out.ndim == 1 or out.shape[-1] == 1 else None

    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    n = len(next(iter(given.values())))
    attrs = {m: np.zeros((n, x.shape[1]), np.float32) for m, x in given.items()}
    out_all, base_all, delta_all = np.zeros(n), np.zeros(n), np.zeros(n)
    target_all: np.ndarray | None = None
    try:
        for lo in range(0, n, batch_size):
            hi = min(n, lo + batch_size)
            inputs = tuple(torch.as_tensor(given[m][lo:hi], device=device) for m in present)
            baselines = tuple(torch.zeros_like(x) for x in inputs)
            with torch.no_grad():
                out = forward(*inputs)
                base = forward(*baselines)
            one_output = scalar_view(out) is not None
            if one_output:
                tgt = None
                fwd = lambda *xs: scalar_view(forward(*xs))  # noqa: E731  (Captum wants [B] for no target)
                out_v, base_v = scalar_view(out), scalar_view(base)
            else:
                if target is None:
                    tgt_np = out.argmax(dim=1).cpu().numpy()
                else:
                    tgt_np = _resolve_target(target, classes, n)[lo:hi]
                    if tgt_np.min() < 0 or tgt_np.max() >= out.shape[1]:
                        raise InputError(f"target: class index out of range for head {head!r} ({out.shape[1]} classes)")
                if target_all is None:
                    target_all = np.zeros(n, np.int64)
                target_all[lo:hi] = tgt_np
                tgt = torch.as_tensor(tgt_np, device=device)
                fwd = forward
                out_v = out.gather(1, tgt[:, None]).reshape(-1)
                base_v = base.gather(1, tgt[:, None]).reshape(-1)
            out_all[lo:hi] = out_v.detach().cpu().numpy()
            base_all[lo:hi] = base_v.detach().cpu().numpy()

            if method == "integrated_gradients":
                ig = IntegratedGradients(fwd)
                result, delta = ig.attribute(inputs, baselines=baselines, target=tgt, n_steps=int(n_steps),
                                             return_convergence_delta=True)
                delta_all[lo:hi] = delta.detach().cpu().numpy().reshape(-1)
            else:
                occ = Occlusion(fwd)
                shapes = tuple((PATCH_SAMPLES,) for _ in inputs)
                result = occ.attribute(inputs, sliding_window_shapes=shapes, strides=shapes, baselines=baselines,
                                       target=tgt, perturbations_per_eval=10)
                result = tuple(r / PATCH_SAMPLES for r in result)
            for m, r in zip(present, result):
                attrs[m][lo:hi] = r.detach().cpu().numpy().astype(np.float32)
    finally:
        if was_training and hasattr(model, "train"):
            model.train()

    mass = {m: np.abs(attrs[m]).sum(axis=1) if m in attrs else np.zeros(n) for m in ("ecg", "ppg")}
    total = mass["ecg"] + mass["ppg"]
    with np.errstate(invalid="ignore", divide="ignore"):
        ecg_share = np.where(total > 0, mass["ecg"] / np.where(total > 0, total, 1.0),
                             1.0 if present == ["ecg"] else (0.0 if present == ["ppg"] else 0.5))
    share = {"ecg": ecg_share, "ppg": 1.0 - ecg_share}
    return Attribution(
        ecg=attrs.get("ecg"), ppg=attrs.get("ppg"), share=share,
        convergence_delta=delta_all if method == "integrated_gradients" else None,
        target=target_all, method=method, head=head, output=out_all, baseline_output=base_all,
        classes=classes, meta={"n_steps": int(n_steps) if method == "integrated_gradients" else None,
                               "baseline": "zeros (normalised units = window median)",
                               "patch_samples": PATCH_SAMPLES if method == "occlusion" else None},
    )


__all__ = ["explain", "Attribution", "METHODS"]


class _CallableModule(types.ModuleType):
    """``m2ae.explain`` is both this subpackage and the API function ``m2ae.explain(model, …)``.

    Importing a subpackage rebinds the parent's attribute to the module, which would shadow the lazy
    function depending on import order; making the module callable keeps the contract either way.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Attribution:
        """``m2ae.explain(model, head, ...)``: see :func:`explain`."""
        return explain(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
