"""``M2AEModel``: the numpy-in / numpy-out wrapper every other part of m2ae uses."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import torch

from ..contract import MODALITIES
from ..errors import InputError
from ..record import Windows, check_window_batch
from ..signal.timing import align_pulse_arrival
from .checkpoint import DEFAULT_CHECKPOINT, load_checkpoint, weights_version
from .heads import Head
from .m2ae import M2AE, M2AEConfig

RECONSTRUCT_MODES = ("complementary", "random", "block", "ecg_from_ppg", "ppg_from_ecg")
# Windows per CPU forward pass of ``fingerprint``: 64 pairs keep each block's [64 * 100, 512] hidden
# layer (13 MB) within L3 and below glibc's 32 MB mmap ceiling (bigger buffers are mapped afresh, and
# page-faulted, on every call). On 2 cores 32-128 timed alike; 256 and 16 ran ~10 % slower
# (bench/bench_model.py --sweep).
CPU_BATCH_WINDOWS = 64

# What the wrapper accepts as a device, and as a batch of windows (numpy, torch, nested lists; None = absent).
Device = torch.device | str | None
WindowBatch = npt.ArrayLike | torch.Tensor | None


class Fingerprinter(Protocol):
    """Anything that fingerprints contract windows the way ``M2AEModel.fingerprint`` does."""

    def fingerprint(self, ecg: WindowBatch = None, ppg: WindowBatch = None, batch_size: int = 256) -> np.ndarray:
        """Fingerprints [N, D] of ECG, PPG or both windows [N, 1250]."""
        ...


def _pick_device(device: Device) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class M2AEModel:
    """A loaded M2AE with its heads. Inputs are contract windows (float [N, 1250] or [1250],
    normalised as ``m2ae.preprocess`` makes them); either modality may be None.

    Attributes: ``net`` (the ``M2AE`` module), ``heads`` (name -> ``Head``), ``config`` (dict),
    ``card`` (dict), ``version`` (12-hex hash of the weights), ``device``, ``path``.
    """

    def __init__(self, net: M2AE, heads: dict[str, Head] | None = None, card: dict[str, Any] | None = None,
                 device: Device = None, path: str | Path | None = None, version: str | None = None):
        self.device = _pick_device(device)
        self.net = net.to(self.device).eval()
        self.heads = {k: h.to(self.device).eval() for k, h in (heads or {}).items()}
        self.card = dict(card or {})
        self.config = net.config.to_dict()
        self.version = version or weights_version(net.state_dict())
        self.path = str(path) if path is not None else None

    @property
    def fingerprint_dim(self) -> int:
        """Length D of a fingerprint (256 for the shipped model)."""
        return self.net.config.fingerprint_dim

    # ---------------------------------------------------------------- input handling
    def _inputs(self, ecg: WindowBatch, ppg: WindowBatch) -> tuple[np.ndarray | None, np.ndarray | None, int]:
        ecg = check_window_batch(ecg, "ecg")
        ppg = check_window_batch(ppg, "ppg")
        ref = ecg if ecg is not None else ppg
        if ref is None:
            raise InputError("model input: give ecg, ppg or both (both are None)")
        if ecg is not None and ppg is not None and len(ecg) != len(ppg):
            raise InputError(f"model input: ecg has {len(ecg)} windows but ppg has {len(ppg)}")
        return ecg, ppg, len(ref)

    def _t(self, x: np.ndarray | None, sl: slice) -> torch.Tensor | None:
        return None if x is None else torch.from_numpy(np.ascontiguousarray(x[sl])).to(self.device)

    # ---------------------------------------------------------------- public API
    def fingerprint(self, ecg: WindowBatch = None, ppg: WindowBatch = None, batch_size: int = 256) -> np.ndarray:
        """Fingerprints [N, D] float32, L2-normalised, from ECG, PPG or both windows [N, 1250].

        ``batch_size`` windows go through the network at once; on CPU at most ``CPU_BATCH_WINDOWS``,
        whose activations stay cache- and allocator-friendly (bigger batches are slower there).
        """
        ecg, ppg, n = self._inputs(ecg, ppg)
        out = np.empty((n, self.fingerprint_dim), dtype=np.float32)
        if self.device.type == "cpu":
            batch_size = min(batch_size, CPU_BATCH_WINDOWS)
        with torch.inference_mode():
            for i in range(0, n, batch_size):
                sl = slice(i, i + batch_size)
                out[sl] = self.net.embed(self._t(ecg, sl), self._t(ppg, sl)).float().cpu().numpy()
        return out

    def masks(self, n: int, mode: str, mask_ratio: float, seed: int,
              present: tuple[bool, bool]) -> dict[str, torch.Tensor]:
        """Hidden-patch masks [n, 50] (True = hidden) for a reconstruction ``mode``; reproducible by seed.

        complementary: ECG hides ``mask_ratio`` of its patches, PPG exactly the others.
        random: each modality hides an independent ``mask_ratio`` of patches.
        block: one contiguous gap of ``mask_ratio`` * 10 s hidden in both modalities.
        ecg_from_ppg / ppg_from_ecg: the target hidden entirely, the source fully visible.
        A modality absent from the input is always hidden entirely (rebuilt from the other); the
        present one then hides ``mask_ratio`` at random (mode complementary/random) or as a block.
        """
        if mode not in RECONSTRUCT_MODES:
            raise InputError(f"reconstruct: unknown mode {mode!r} (choose from {', '.join(RECONSTRUCT_MODES)})")
        if not (0.0 <= float(mask_ratio) <= 1.0):
            raise InputError(f"reconstruct: mask_ratio must be within [0, 1], got {mask_ratio}")
        has_e, has_p = present
        if mode == "ecg_from_ppg" and not has_p:
            raise InputError("reconstruct: mode 'ecg_from_ppg' needs a PPG input")
        if mode == "ppg_from_ecg" and not has_e:
            raise InputError("reconstruct: mode 'ppg_from_ecg' needs an ECG input")
        g = torch.Generator().manual_seed(int(seed))
        net, cpu = self.net, torch.device("cpu")
        L = net.config.n_patches
        all_h = torch.ones(n, L, dtype=torch.bool)
        none_h = torch.zeros(n, L, dtype=torch.bool)
        if mode == "ecg_from_ppg":
            hidden = {"ecg": all_h, "ppg": none_h}
        elif mode == "ppg_from_ecg":
            hidden = {"ecg": none_h, "ppg": all_h}
        elif mode == "block":
            b = net.block_masking(n, mask_ratio, g, cpu)
            hidden = {"ecg": b, "ppg": b.clone()}
        elif mode == "complementary" and has_e and has_p:
            e, p = net.complementary_masking(n, mask_ratio, g, cpu)
            hidden = {"ecg": e, "ppg": p}
        else:
            hidden = {"ecg": net.random_masking(n, mask_ratio, g, cpu),
                      "ppg": net.random_masking(n, mask_ratio, g, cpu)}
        if not has_e:
            hidden["ecg"] = all_h
        if not has_p:
            hidden["ppg"] = all_h
        both_hidden = hidden["ecg"].all(1) & hidden["ppg"].all(1)
        if bool(both_hidden.any()):
            raise InputError("reconstruct: this mask hides every patch of both modalities; lower mask_ratio")
        return hidden

    @property
    def pulse_arrival_s(self) -> float | None:
        """Typical R-peak → pulse-peak delay (s) measured on this model's training data (model card
        ``timing``), used to place a modality rebuilt from the other; None for checkpoints without it."""
        value = (self.card.get("timing") or {}).get("pulse_arrival_s")
        return None if value is None else float(value)

    def reconstruct(self, ecg: WindowBatch = None, ppg: WindowBatch = None, mask_ratio: float = 0.5,
                    mode: str = "complementary", seed: int = 0, windows: Windows | None = None, batch_size: int = 256,
                    align_timing: bool = True,
                    timing_groups: np.ndarray | Sequence[Any] | None = None) -> dict[str, Any]:
        """Masked / cross-modal reconstruction of contract windows.

        Returns {"mode", "mask_ratio", "ecg": {...}, "ppg": {...}} where each modality has
        ``original`` [N, 1250] float32 (None when absent), ``mask`` bool [N, 1250] (True = hidden
        from the model), ``prediction`` (decoder output everywhere) and ``reconstruction`` (original
        where visible, prediction where hidden), all in normalised units; with ``windows`` also
        ``original_units`` / ``reconstruction_units`` via ``Windows.to_original_units``.

        A modality rebuilt from the other alone (cross-modal modes, or absent from the input) comes
        out of the decoder with the right beats at an arbitrary offset (its loss forgives any constant
        device delay up to ±1 s). With ``align_timing`` (and a model card that records
        ``pulse_arrival_s``) each such window is moved so that its beats sit the typical R → pulse
        delay from the given modality's beats (``m2ae.signal.timing.align_pulse_arrival``); the move
        is returned per window as ``timing_shift_samples`` (float [N], NaN = not moved, beats not
        found; positive = later). ``timing_groups`` [N] (record of each window) makes the windows of
        one record share one move.
        """
        ecg, ppg, n = self._inputs(ecg, ppg)
        if timing_groups is not None and len(timing_groups) != n:
            raise InputError(f"reconstruct: timing_groups has {len(timing_groups)} entries but the input has "
                             f"{n} windows")
        hidden = self.masks(n, mode, mask_ratio, seed, (ecg is not None, ppg is not None))
        P = self.net.config.patch_samples
        pred = {m: np.empty((n, P * self.net.config.n_patches), dtype=np.float32) for m in MODALITIES}
        with torch.inference_mode():
            for i in range(0, n, batch_size):
                sl = slice(i, i + batch_size)
                x = {"ecg": self._t(ecg, sl), "ppg": self._t(ppg, sl)}
                h = {m: hidden[m][sl].to(self.device) for m in MODALITIES}
                out = self.net.reconstruct(x, h)
                for m in MODALITIES:
                    pred[m][sl] = out[m].float().cpu().numpy()
        given = {"ecg": ecg, "ppg": ppg}
        shifts = {m: np.full(n, np.nan) for m in MODALITIES}
        if align_timing and self.pulse_arrival_s is not None:
            for m, other in (("ecg", "ppg"), ("ppg", "ecg")):
                # every window whose ``m`` the model never saw, placed against the recorded other
                # modality (only its beat times are read, to compute one move per window/record)
                source = given[other]
                if source is None:
                    continue
                rows = np.flatnonzero(hidden[m].all(1).numpy())
                if len(rows):
                    groups = None if timing_groups is None else np.asarray(timing_groups)[rows]
                    pred[m][rows], shifts[m][rows] = align_pulse_arrival(pred[m][rows], source[rows], m,
                                                                         self.pulse_arrival_s, groups=groups)
        result: dict[str, Any] = {"mode": mode, "mask_ratio": float(mask_ratio)}
        for m, orig in zip(MODALITIES, (ecg, ppg)):
            mask = np.repeat(hidden[m].numpy(), P, axis=1)                        # [N, 1250]
            recon = pred[m] if orig is None else np.where(mask, pred[m], orig)
            entry = {"original": orig, "mask": mask, "prediction": pred[m], "reconstruction": recon,
                     "timing_shift_samples": shifts[m]}
            if windows is not None:
                if len(windows) != n:
                    raise InputError(f"reconstruct: windows has {len(windows)} windows but the input has {n}")
                entry["original_units"] = None if orig is None else windows.to_original_units(m, orig)
                entry["reconstruction_units"] = windows.to_original_units(m, recon)
            result[m] = entry
        return result

    def predict(self, ecg: WindowBatch = None, ppg: WindowBatch = None, batch_size: int = 256) -> dict[str, Any]:
        """Every head's output. Classifiers: {"classes", "class_names", "probabilities" [N, C]};
        regressors: {"value" [N], "interval" [N, 2], "interval_level", "unit"}."""
        if not self.heads:
            return {}
        fp = torch.from_numpy(self.fingerprint(ecg, ppg, batch_size)).to(self.device)
        with torch.inference_mode():
            return {name: h.present(h(fp), fp) for name, h in self.heads.items()}

    def head_logits(self, head: str, ecg: torch.Tensor | None = None, ppg: torch.Tensor | None = None) -> torch.Tensor:
        """Differentiable head output from raw windows (for attributions, e.g. Captum).

        ecg, ppg: float tensors [N, 1250] (either may be None). Returns calibrated logits [N, C]
        for classification heads or the predicted value [N, 1] for regression heads.
        """
        if head not in self.heads:
            raise InputError(f"unknown head {head!r} (this model has: {', '.join(self.heads) or 'none'})")
        if ecg is None and ppg is None:
            raise InputError("head_logits: give ecg, ppg or both")
        window_samples = self.net.config.n_patches * self.net.config.patch_samples
        for name, x in (("ecg", ecg), ("ppg", ppg)):
            if x is not None and (x.ndim != 2 or x.shape[1] != window_samples):
                raise InputError(f"head_logits: {name} must be [N, 1250], got {tuple(x.shape)}")
        ecg = None if ecg is None else ecg.to(self.device, torch.float32)
        ppg = None if ppg is None else ppg.to(self.device, torch.float32)
        return self.heads[head].target_output(self.net.embed(ecg, ppg))

    def to(self, device: Device) -> M2AEModel:
        """Move the network and heads to ``device`` (None: CUDA if available, else CPU); returns self."""
        self.device = _pick_device(device)
        self.net.to(self.device)
        for h in self.heads.values():
            h.to(self.device)
        return self

    def __repr__(self) -> str:
        n = sum(p.numel() for p in self.net.parameters())
        return f"M2AEModel(version={self.version}, params={n:,}, heads={list(self.heads)}, device={self.device})"


def model_from_checkpoint(ckpt: dict[str, Any], device: Device = None, path: str | Path | None = None) -> M2AEModel:
    """An ``M2AEModel`` from a checkpoint dict (``load_checkpoint``); ``path`` only names it in errors
    and in ``model.path``. Weights that do not fit the stored config -> InputError."""
    net = M2AE(M2AEConfig.from_dict(ckpt["config"]))
    try:
        net.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise InputError(f"{path or 'checkpoint'}: weights do not match its config "
                         f"({str(e).splitlines()[0][:160]})") from e
    heads = {}
    for name, h in ckpt.get("heads", {}).items():
        head = Head(h["spec"])
        head.load_state_dict(h["state"])
        heads[name] = head
    return M2AEModel(net, heads, ckpt.get("card", {}), device=device, path=path,
                     version=weights_version(ckpt["model"]))


def fingerprints_by_mode(model: Fingerprinter, ecg: np.ndarray | None, ppg: np.ndarray | None,
                         batch_size: int = 512) -> dict[str, np.ndarray]:
    """{mode: [N, D] fingerprints} for every input mode the data allow: "both" (needs both
    modalities), "ecg" (ECG alone), "ppg" (PPG alone). ``model`` is anything with
    ``fingerprint(ecg=, ppg=, batch_size=)``."""
    out = {}
    if ecg is not None and ppg is not None:
        out["both"] = model.fingerprint(ecg=ecg, ppg=ppg, batch_size=batch_size)
    if ecg is not None:
        out["ecg"] = model.fingerprint(ecg=ecg, batch_size=batch_size)
    if ppg is not None:
        out["ppg"] = model.fingerprint(ppg=ppg, batch_size=batch_size)
    return out


def load_model(path: str | Path | None = None, device: Device = None) -> M2AEModel:
    """Load a checkpoint (default: the shipped demo ``m2ae/model/m2ae-demo.pt``) on ``device``
    (default: CUDA if available, else CPU). Raises InputError for a missing or foreign file.

    >>> model = load_model()                       # doctest: +SKIP
    >>> model.fingerprint(ppg=np.zeros((2, 1250), np.float32)).shape   # doctest: +SKIP
    (2, 256)
    """
    from .card import read_card

    path = Path(path) if path is not None else DEFAULT_CHECKPOINT
    model = model_from_checkpoint(load_checkpoint(path), device=device, path=path)
    model.card.update(read_card(path))  # evaluation results written beside the checkpoint
    return model
