"""Fingerprints and the model that makes them: which model, which inputs, which vectors the index takes.

- ``resolve_model``: a loaded model from None (the shipped checkpoint), a checkpoint path or a model;
  ``model_version_of`` / ``model_checkpoint_of``: what an index records about it;
- ``select_inputs``: the ECG/PPG windows an input mode ("both", "ecg", "ppg") uses;
- ``fingerprint_windows``: fingerprints [N, D] float32 of contract windows;
- ``normalise_fingerprints``: the checked, L2-normalised float32 [N, D] that FAISS searches;
- ``record_fingerprint``: one fingerprint [D] for a whole record.

The model is duck-typed: anything with ``fingerprint(ecg=, ppg=, batch_size=)`` and a ``version``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .files import display_path


def resolve_model(model: Any = None, device: Any = None) -> Any:
    """A loaded model from None (shipped checkpoint), a checkpoint path, or a loaded model."""
    if model is None or isinstance(model, (str, Path)):
        from ..model import load_model

        return load_model(model, device=device)
    if not hasattr(model, "fingerprint"):
        raise InputError(f"model: expected a checkpoint path or a loaded model, got {type(model).__name__}")
    return model


def model_version_of(model: Any) -> str | None:
    """The ``version`` string of a loaded model (or a plain string), None when unknown."""
    if model is None:
        return None
    if isinstance(model, str):
        return model
    v = getattr(model, "version", None)
    return None if v is None else str(v)


def model_checkpoint_of(model: Any) -> str | None:
    """The model's checkpoint path as a manifest records it (relative to the working directory when inside it)."""
    p = getattr(model, "path", None)
    return None if p is None else display_path(p)


def select_inputs(ecg: np.ndarray | None, ppg: np.ndarray | None,
                  use: str = "both") -> tuple[np.ndarray | None, np.ndarray | None]:
    """(ecg, ppg) windows for input mode ``use``: "both" keeps what is present, "ecg"/"ppg" one of them.
    Raises InputError when the mode leaves nothing."""
    if use not in ("both", "ecg", "ppg"):
        raise InputError(f"input mode must be one of both, ecg, ppg, got {use!r}")
    ecg = ecg if use in ("both", "ecg") else None
    ppg = ppg if use in ("both", "ppg") else None
    if ecg is None and ppg is None:
        raise InputError(f"this record has no {use.upper()} to use")
    return ecg, ppg


def fingerprint_windows(model: Any, ecg: np.ndarray | None, ppg: np.ndarray | None,
                        batch_size: int = 256) -> np.ndarray:
    """Fingerprints [N, D] float32 for contract windows [N, 1250] (either modality may be None)."""
    fp = model.fingerprint(ecg=ecg, ppg=ppg, batch_size=batch_size)
    if hasattr(fp, "detach"):
        fp = fp.detach().cpu().numpy()
    return np.asarray(fp, dtype=np.float32)


def normalise_fingerprints(fp: Any, dim: int | None = None, name: str = "fingerprints") -> np.ndarray:
    """Validate fingerprints as float32 [N, D] (a single [D] vector becomes [1, D]) and L2-normalise."""
    if hasattr(fp, "detach"):
        fp = fp.detach().cpu().numpy()
    x = np.asarray(fp)
    if not np.issubdtype(x.dtype, np.number):
        raise InputError(f"{name}: expected numbers, got dtype {x.dtype}")
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[0] == 0:
        raise InputError(f"{name}: expected shape [N, D] with N >= 1, got {tuple(x.shape)}")
    if dim is not None and x.shape[1] != dim:
        raise InputError(f"{name}: {x.shape[1]}-d fingerprints but the index holds {dim}-d ones")
    if not np.isfinite(x).all():
        raise InputError(f"{name}: contains NaN or inf")
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if (norms == 0).any():
        raise InputError(f"{name}: contains an all-zero fingerprint")
    return x / norms


def record_fingerprint(windows_fp: np.ndarray, low_quality: np.ndarray | None) -> np.ndarray:
    """One fingerprint [D] for a whole record: the normalised mean of its windows' fingerprints,
    over the windows that pass the quality threshold when there are any."""
    fp = np.asarray(windows_fp, dtype=np.float32)
    use = np.ones(len(fp), bool) if low_quality is None else ~np.asarray(low_quality, bool)
    if not use.any():
        use[:] = True
    mean = fp[use].mean(axis=0)
    norm = float(np.linalg.norm(mean))
    return mean / norm if norm > 0 else fp[0]
