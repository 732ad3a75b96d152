"""Checkpoint files: plain dicts of tensors and JSON-able values, loadable with ``weights_only=True``.

Layout (format ``m2ae-checkpoint-1``)::

    {"format": "m2ae-checkpoint-1",
     "config": {...M2AEConfig...},
     "model": state_dict,
     "heads": {name: {"spec": {...}, "state": state_dict}},
     "card": {...model card...},
     "train_state": {"step", "optimizer", "scheduler", "train_config", ...}   # only in training checkpoints
    }
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..errors import InputError

if TYPE_CHECKING:  # annotations only: the network classes are not needed to read or write files
    from .heads import Head
    from .m2ae import M2AE

FORMAT = "m2ae-checkpoint-1"
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "m2ae-demo.pt"


def _json_default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


def weights_version(state_dict: dict[str, torch.Tensor]) -> str:
    """Short hash (12 hex) of the model weights: indexes and heads refuse other versions."""
    h = hashlib.sha256()
    for k in sorted(state_dict):
        t = state_dict[k].detach().cpu().contiguous()
        h.update(k.encode())
        h.update(str(t.dtype).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:12]


def save_checkpoint(path: str | Path, net: M2AE, heads: dict[str, Head] | None = None,
                    card: dict[str, Any] | None = None, train_state: dict[str, Any] | None = None) -> str:
    """Write ``net`` (an M2AE), its heads (name -> Head), card and optional training state atomically.

    Returns the weights version. A randomly initialised model is a valid checkpoint (tests, API work).

    >>> from m2ae.model import M2AE, M2AEConfig
    >>> save_checkpoint("/tmp/m2ae-random.pt", M2AE(M2AEConfig()))   # doctest: +SKIP
    """
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    ckpt = {
        "format": FORMAT,
        "config": net.config.to_dict(),
        "model": state,
        "heads": {name: {"spec": dict(h.spec), "state": {k: v.detach().cpu() for k, v in h.state_dict().items()}}
                  for name, h in (heads or {}).items()},
        # JSON round trip: the card must hold plain values only (weights_only loading refuses others)
        "card": json.loads(json.dumps(card or {}, default=_json_default)),
    }
    if train_state is not None:
        ckpt["train_state"] = train_state
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(ckpt, tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; checkpoints are shared artefacts
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return weights_version(state)


def load_checkpoint(path: str | Path | None = None, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint dict (never unpickles arbitrary objects). Bad file -> InputError."""
    path = Path(path) if path is not None else DEFAULT_CHECKPOINT
    if not path.exists():
        raise InputError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated file, not a torch file, pickled objects
        raise InputError(f"{path}: not a readable m2ae checkpoint "
                         f"({type(e).__name__}: {str(e).splitlines()[0][:120]})") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT or "model" not in ckpt:
        raise InputError(f"{path}: not an m2ae checkpoint (expected format {FORMAT!r})")
    return ckpt
