"""M2AE model, checkpoints and the inference wrapper ``load_model``.

>>> import m2ae
>>> model = m2ae.load_model()                               # shipped demo checkpoint, CUDA if available
>>> fp = model.fingerprint(ecg=win.ecg, ppg=win.ppg)        # doctest: +SKIP  [N, 256] float32, unit norm
>>> out = model.reconstruct(ppg=win.ppg, mode="ecg_from_ppg")  # doctest: +SKIP
>>> model.predict(ecg=win.ecg)["rhythm"]["probabilities"]     # doctest: +SKIP
"""
from __future__ import annotations

from .checkpoint import DEFAULT_CHECKPOINT, load_checkpoint, save_checkpoint, weights_version
from .heads import Head
from .inference import RECONSTRUCT_MODES, M2AEModel, fingerprints_by_mode, load_model
from .m2ae import M2AE, M2AEConfig

__all__ = ["M2AE", "M2AEConfig", "M2AEModel", "Head", "load_model", "save_checkpoint", "load_checkpoint",
           "weights_version", "DEFAULT_CHECKPOINT", "RECONSTRUCT_MODES", "fingerprints_by_mode"]
