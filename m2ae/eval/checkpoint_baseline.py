"""Another checkpoint as a baseline in the CinC 2015 section of ``m2ae eval``: by default the
simulator-only checkpoint, i.e. the shipped model's starting point before its real-data fine-tune
(``m2ae/model/baselines/m2ae-simulator-only.pt``, version 884e7d688147, the same bytes as the shipped
checkpoint of commit da99f12).

``checkpoint_figures`` scores one checkpoint on the test windows, keeping every figure's per-window
(or per-record) values; ``compare_checkpoints`` sets the evaluated model's figures beside another
checkpoint's, each with the 95 % CI of model − checkpoint from resampling test records and a verdict.
The figures are the ones the section reports for the model (same names as its headline rows):
PPG→ECG / ECG→PPG lagged r, lagged NMSE and plain r (medians over windows), masked reconstruction
(median NMSE on hidden patches), same-record top-1, PPG→paired-ECG top-1 (fingerprints only) and
record-level PPG→ECG patient matching top-1 / top-5. The alarm heads are compared in
``m2ae.eval.alarm_section`` (a checkpoint without alarm heads gets them fitted with the same protocol).

>>> figs = checkpoint_figures(model, test_set, seed=0, n_candidates=1000)      # doctest: +SKIP
"""
from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..contract import FS_HZ
from . import metrics as M
from .datasets import EvalSet
from .reconstruction import CROSS_MODAL_TASKS, MAX_LAG_S, RECONSTRUCTION_SCORES, model_reconstructions

if TYPE_CHECKING:
    from ..model import M2AEModel

SIMULATOR_ONLY = "simulator_only_checkpoint"
SIMULATOR_ONLY_FILE = "m2ae-simulator-only.pt"
# (task, metric) -> (higher is better, how the per-row values reduce to the figure, rows are "windows" or "records")
FIGURES: dict[tuple[str, str], tuple[bool, str, str]] = {
    **{(task, metric): ("nmse" not in metric, "median", "windows")
       for task in ("ppg_to_ecg", "ecg_to_ppg") for metric in RECONSTRUCTION_SCORES},
    ("masked_50_complementary_ecg", "median_nmse_hidden"): (False, "median", "windows"),
    ("masked_50_complementary_ppg", "median_nmse_hidden"): (False, "median", "windows"),
    ("same_subject_top1", "top1"): (True, "mean", "windows"),
    ("ppg_to_paired_ecg_top1", "top1"): (True, "mean", "queries"),
    ("ppg_to_ecg_record_top1", "top1"): (True, "mean", "records"),
    ("ppg_to_ecg_record_top5", "top5"): (True, "mean", "records"),
}
REDUCE: dict[str, Callable[[np.ndarray], Any]] = {"median": np.nanmedian, "mean": np.nanmean}


def simulator_only_path() -> Path:
    """The shipped simulator-only checkpoint (package data; may be absent in a trimmed install)."""
    return Path(str(resources.files("m2ae") / "model" / "baselines" / SIMULATOR_ONLY_FILE))


def default_checkpoints(model: M2AEModel) -> dict[str, M2AEModel]:
    """{SIMULATOR_ONLY: the loaded checkpoint} when it is shipped and is not ``model`` itself, else {}."""
    from ..model import load_model

    path = simulator_only_path()
    if not path.is_file():
        return {}
    other = load_model(path, device=model.device)
    return {} if other.version == model.version else {SIMULATOR_ONLY: other}


def true_rank(score: np.ndarray) -> np.ndarray:
    """Per query row i of a square score matrix [Q, Q]: how many candidates score strictly higher than
    candidate i, the query's own (0 = its own is first).

    >>> true_rank(np.array([[0.9, 0.1], [0.8, 0.3]])).tolist()
    [0, 1]
    """
    score = np.asarray(score)
    return (score > np.diag(score)[:, None]).sum(axis=1)


def record_ranks(fps: dict[str, np.ndarray], group: np.ndarray, names: np.ndarray,
                 centres: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Per record in ``names``: how many records' ECG-only fingerprints (mean over windows, L2-normalised)
    are more cosine-similar to its PPG-only fingerprint than its own (0 = its own is first).

    centres : {"ecg", "ppg": mean fingerprint [D]} subtracted from each input's fingerprints first (the
        train split's means, as the feature baseline is z-scored on it): the two inputs' fingerprints sit
        in different regions of the sphere, a gap that cosine similarity otherwise reads as dissimilarity."""
    def mean_rows(x: np.ndarray, centre: np.ndarray | None) -> np.ndarray:
        m = np.stack([x[group == g].mean(axis=0) for g in names])
        m = m - centre if centre is not None else m
        return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), M.EPS)

    c = centres or {}
    score = mean_rows(fps["ppg"], c.get("ppg")) @ mean_rows(fps["ecg"], c.get("ecg")).T
    return true_rank(score)


def paired_queries(n_windows: int, n_candidates: int, seed: int) -> np.ndarray:
    """The windows PPG→paired-ECG retrieval scores (``retrieval_section``'s draw: same seed, same rows)."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_windows, size=min(n_candidates, n_windows), replace=False))


def checkpoint_figures(model: M2AEModel, s: EvalSet, seed: int, n_candidates: int,
                       fps: dict[str, np.ndarray] | None = None,
                       recon: dict[str, Any] | None = None) -> dict[tuple[str, str], np.ndarray]:
    """Per-row values [rows] of every ``FIGURES`` entry for ``model`` on ``s`` (the reconstructions are
    ``model_reconstructions``, as ``cross_modal_section`` / ``masked_section`` score them, so the figures
    are the same). fps / recon : ``fingerprints_by_mode(model, s.ecg, s.ppg)`` and
    ``model_reconstructions(model, s, seed)`` when the caller has them."""
    from ..model.inference import fingerprints_by_mode

    fps = fingerprints_by_mode(model, s.ecg, s.ppg) if fps is None else fps
    recon = model_reconstructions(model, s, seed) if recon is None else recon
    out: dict[tuple[str, str], np.ndarray] = {}
    max_lag = int(MAX_LAG_S * FS_HZ)
    for target, source, _ in CROSS_MODAL_TASKS:
        scores = M.reconstruction_scores(recon[f"{source}_to_{target}"], getattr(s, target), s.group, max_lag)
        for metric, key in RECONSTRUCTION_SCORES.items():
            out[(f"{source}_to_{target}", metric)] = scores[key]
    rec = recon["masked"]
    for m in ("ecg", "ppg"):
        out[(f"masked_50_complementary_{m}", "median_nmse_hidden")] = M.nmse(rec[m]["prediction"], getattr(s, m),
                                                                              rec[m]["mask"])
    out[("same_subject_top1", "top1")] = M.same_subject_hits(fps["both"], s.group)
    idx = paired_queries(len(s), n_candidates, seed)
    out[("ppg_to_paired_ecg_top1", "top1")] = M.paired_hits(fps["ppg"][idx], fps["ecg"][idx])
    ranks = record_ranks(fps, s.group, np.unique(s.group))
    out[("ppg_to_ecg_record_top1", "top1")] = (ranks < 1).astype(float)
    out[("ppg_to_ecg_record_top5", "top5")] = (ranks < 5).astype(float)
    return out


def _row_groups(s: EvalSet, rows: str, seed: int, n_candidates: int) -> np.ndarray:
    """The record of each row of a figure (what the bootstrap resamples)."""
    if rows == "records":
        return np.unique(s.group)
    if rows == "queries":
        return s.group[paired_queries(len(s), n_candidates, seed)]
    return s.group


def compare_checkpoints(mine: dict[tuple[str, str], np.ndarray], theirs: dict[tuple[str, str], np.ndarray],
                        s: EvalSet, seed: int, n_candidates: int, other: M2AEModel) -> dict[str, Any]:
    """{"checkpoint", "version", "how", "figures": {"task metric": {"task", "metric", "higher_is_better",
    "model", "checkpoint", "ci95_model_minus_checkpoint", "verdict"}}} for the test set ``s``."""
    figures: dict[str, Any] = {}
    for (task, metric), (hib, reduce, rows) in FIGURES.items():
        a, b = mine[(task, metric)], theirs[(task, metric)]
        ci = M.difference_ci(a, b, _row_groups(s, rows, seed, n_candidates), REDUCE[reduce], seed)
        figures[f"{task} {metric}"] = {"task": task, "metric": metric, "higher_is_better": hib,
                                       "model": float(REDUCE[reduce](a)), "checkpoint": float(REDUCE[reduce](b)),
                                       "ci95_model_minus_checkpoint": ci, "verdict": M.verdict(ci, hib)}
    return {"checkpoint": str(other.path), "version": other.version, "name": other.card.get("name"),
            "how": "the same figures of this checkpoint on the same test windows (its fingerprints, its "
                   "reconstructions); 95 % CI of model - checkpoint from resampling test records",
            "figures": figures}


def checkpoint_rows(entries: dict[str, Any], add: Any) -> None:
    """Headline rows (``report.headline``'s row maker ``add``) of the checkpoint baselines."""
    for name, entry in entries.items():
        for f in (entry.get("figures") or {}).values():
            add("cinc2015", f["task"], f["metric"], f["higher_is_better"], f["model"], name, f["checkpoint"],
                f["ci95_model_minus_checkpoint"])


def checkpoint_lines(entries: dict[str, Any]) -> list[str]:
    """Text-table lines: each figure, model vs the checkpoint, CI and verdict."""
    lines: list[str] = []
    for name, entry in entries.items():
        if "figures" not in entry:
            continue
        lines.append(f"baseline checkpoint {name} ({entry['version']}), same test windows")
        for key, f in entry["figures"].items():
            ci = f["ci95_model_minus_checkpoint"]
            ci_text = f"[{ci[0]:+.3f}, {ci[1]:+.3f}]" if all(np.isfinite(ci)) else "n/a"
            lines.append(f"  {key:44s} model {f['model']:6.3f}   checkpoint {f['checkpoint']:6.3f}   "
                         f"{ci_text:18s} {f['verdict'] or 'n/a'}")
    return lines
