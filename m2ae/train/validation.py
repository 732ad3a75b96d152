"""Validation during pretraining: the fixed simulated validation batch, the fixed real one
(validation-split corpus records, ``corpus_data.real_validation_windows``) and what is measured on them.

``validate`` scores a model on a batch (masked and cross-modal reconstruction, fingerprint
retrieval); ``pulse_arrival_card`` records the typical R -> pulse-peak delay of the same windows,
which the model card keeps as the ``timing`` entry.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..model.m2ae import M2AE


@torch.no_grad()
def validate(net: M2AE, batch: dict[str, torch.Tensor], device: torch.device | str,
             seed: int = 0, prefix: str = "val") -> dict[str, float]:
    """Fixed-batch validation: complementary-50 % masked MSE, cross-modal MSE both ways,
    ECG->PPG fingerprint retrieval top-1 (chance = 1/N), and with ``batch["subject"]`` whether the
    nearest other window comes from the same subject (or record). Units: normalised signal, MSE.
    Keys start with ``prefix`` ("val" simulated, "val_real" real records)."""
    net.eval()
    ecg, ppg = batch["ecg"].to(device), batch["ppg"].to(device)
    n, L = ecg.shape[0], net.config.n_patches
    g = torch.Generator(device="cpu").manual_seed(seed)
    he, hp = net.complementary_masking(n, 0.5, g, torch.device("cpu"))
    res = {}
    P = net.config.patch_samples
    all_hidden, none_hidden = torch.ones(n, L, dtype=torch.bool), torch.zeros(n, L, dtype=torch.bool)
    for name, hidden in (("masked50", {"ecg": he, "ppg": hp}),
                         ("ecg_from_ppg", {"ecg": all_hidden, "ppg": none_hidden}),
                         ("ppg_from_ecg", {"ecg": none_hidden, "ppg": all_hidden})):
        hidden = {k: v.to(device) for k, v in hidden.items()}
        pred = net.reconstruct({"ecg": ecg, "ppg": ppg}, hidden)
        for m, x in (("ecg", ecg), ("ppg", ppg)):
            h = hidden[m].repeat_interleave(P, dim=1)
            if h.any():
                res[f"{prefix}_{name}_mse_{m}"] = float(((pred[m].float() - x) ** 2)[h].mean())
            if hidden[m].all():
                res[f"{prefix}_{name}_lagmse_{m}"] = float(net.lag_tolerant_mse(pred[m], x).mean())
    fe, fp = net.embed(ecg=ecg), net.embed(ppg=ppg)
    res[f"{prefix}_retrieval_top1"] = float((fe @ fp.t()).argmax(1).eq(torch.arange(n, device=device)).float().mean())
    if "subject" in batch:  # nearest other window (ECG+PPG fingerprint) from the same subject?
        fb = net.embed(ecg=ecg, ppg=ppg)
        sim = (fb @ fb.t()).fill_diagonal_(-2.0)
        subj = batch["subject"].to(device)
        res[f"{prefix}_same_subject_top1"] = float(subj[sim.argmax(1)].eq(subj).float().mean())
    net.train()
    return res


def validation_windows(n_windows: int, noise: bool = True) -> dict[str, Any]:
    """The fixed validation batch (``splits.VAL_SEED``, 2 windows per subject, no device shift)."""
    from ..simulate.labelled import subject_windows
    from ..simulate.splits import VAL_SEED

    return subject_windows(max(1, n_windows // 2), 2, VAL_SEED, max_shift_s=0.0, noise=noise)


def validation_batch(windows: dict[str, Any]) -> dict[str, torch.Tensor]:
    """``validation_windows`` as the tensors ``validate`` takes (subjects numbered 0..K-1)."""
    batch = {k: torch.from_numpy(windows[k]) for k in ("ecg", "ppg")}
    batch["subject"] = torch.from_numpy(np.unique(windows["subject_id"], return_inverse=True)[1])
    return batch


def real_validation_batch(windows: dict[str, Any]) -> dict[str, torch.Tensor]:
    """``corpus_data.real_validation_windows`` as the tensors ``validate`` takes (records as subjects)."""
    return {"ecg": torch.from_numpy(windows["ecg"]), "ppg": torch.from_numpy(windows["ppg"]),
            "subject": torch.from_numpy(windows["record"])}


def pulse_arrival_card(val: dict[str, Any]) -> dict[str, Any]:
    """The model card's ``timing`` entry: the typical R → pulse-peak delay (s) of the validation
    windows (``validation_windows``), which ``reconstruct`` uses to place a modality rebuilt from the other."""
    from ..signal.timing import typical_pulse_arrival_s
    from ..simulate.splits import VAL_SEED

    return {"pulse_arrival_s": round(typical_pulse_arrival_s(val["ecg"], val["ppg"]), 4),
            "measured_on": f"{len(val['ecg'])} simulated validation windows (seed {VAL_SEED}, no device shift), "
                           "median R-peak -> next pulse-peak delay"}
