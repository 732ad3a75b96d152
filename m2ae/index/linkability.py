"""Re-identification risk of a record against an index: do its windows find each other first?

For each window of the record: ``own`` = cosine similarity to the most similar *other* window of the
same record, ``other`` = similarity to the most similar indexed window of another subject/record
(FAISS search with the record's subject and record excluded). A window is *linked* when
``own > other``: given the index and one of its windows, the nearest neighbour picks out this record.
The share of linked windows is the record's own re-identification rate, the same quantity the
evaluation reports over many subjects (``m2ae.eval.privacy``: nearest other window's subject), so it
reads directly against those figures, which ``calibration_figures`` collects: the eval's simulated
rate and chance (docs/RESULTS.md, privacy section) and the shipped model card's validation rates.

>>> risk = record_linkability(idx, fps, subject_id="sim000007")   # doctest: +SKIP
>>> risk["score"], risk["level"], risk["sentence"]                  # doctest: +SKIP
"""
from __future__ import annotations

import json
from importlib import resources
from typing import Any

import numpy as np

from ..errors import InputError
from .fingerprints import normalise_fingerprints
from .neighbours import index_fingerprints

# The eval's privacy row (m2ae eval, 2026-11-30T13:40:49Z; docs/RESULTS.md): nearest other window's
# subject from ECG+PPG fingerprints of 60 simulated evaluation subjects.
EVAL_REIDENTIFICATION = {"simulated_top1": 1.00, "chance": 0.017, "subjects": 60,
                         "source": "m2ae eval privacy section (docs/RESULTS.md), simulated subjects"}
LEVELS = ((0.5, "high"), (0.1, "moderate"), (0.0, "low"))  # share of windows linked → level


def calibration_figures() -> dict[str, Any]:
    """The re-identification rates a record's score is read against: the eval's simulated figure and
    chance, and the shipped model card's validation rates (simulated and real), where present."""
    figs: dict[str, Any] = {"eval": dict(EVAL_REIDENTIFICATION)}
    try:
        card = json.loads((resources.files("m2ae.model") / "model_card.json").read_text())
        final = card.get("training", {}).get("final_metrics", {})
        figs["model_card"] = {"version": card.get("version"),
                              "val_same_subject_top1": final.get("val_same_subject_top1"),
                              "val_real_same_subject_top1": final.get("val_real_same_subject_top1")}
    except (OSError, ValueError, AttributeError):
        figs["model_card"] = None  # a bare checkout without the card: the eval figure still stands
    return figs


def within_record_similarity(fps: np.ndarray) -> np.ndarray:
    """Per window of one record: cosine similarity to its most similar other window ([n]; NaN when n < 2).
    ``fps`` are L2-normalised [n, D]."""
    n = len(fps)
    if n < 2:
        return np.full(n, np.nan)
    sim = fps @ fps.T
    np.fill_diagonal(sim, -np.inf)
    return sim.max(axis=1).astype(float)


def level_of(share: float) -> str:
    for bound, name in LEVELS:
        if share >= bound:
            return name
    return "low"


def record_linkability(index: Any, fingerprints: Any, subject_id: str | None = None,
                       record: str | None = None) -> dict[str, Any]:
    """How identifying a record's fingerprints are against ``index`` (a ``FingerprintIndex``).

    fingerprints : [n, D] the record's window fingerprints (n ≥ 2). subject_id / record : excluded from
    the "other" search, so a record that is itself indexed is compared with other subjects only (give
    at least one when the record may be in the index, else its own copies count as "others").
    Returns {"score": share of windows linked (0–1, None for n < 2), "level": "high" / "moderate" / "low",
    "windows", "linked", "margin_median" / "margin_q10" / "margin_q90" (own − other, cosine),
    "own_median", "other_median", "sentence": one plain sentence, "calibration": ``calibration_figures()``}.
    """
    fps = normalise_fingerprints(fingerprints, index.dims, "record fingerprints")
    figs = calibration_figures()
    n = len(fps)
    base: dict[str, Any] = {"windows": int(n), "calibration": figs, "subject_id": subject_id, "record": record}
    if n < 2:
        return {**base, "score": None, "level": None, "linked": None, "margin_median": None,
                "sentence": "Re-identification risk needs at least two windows of the record (it compares "
                            "the record's windows with each other); this record has "
                            f"{n}."}
    own = within_record_similarity(fps)
    hits = index.search(fps, k=1, exclude_subject=subject_id, exclude_record=record)
    other = np.array([float(h["score"].iloc[0]) if len(h) else -1.0 for h in hits])
    margin = own - other
    linked = int((margin > 0).sum())
    share = linked / n
    level = level_of(share)
    ref = (figs.get("model_card") or {}).get("val_real_same_subject_top1")
    ref_txt = f"{ref:.0%} on real validation records, " if isinstance(ref, (int, float)) else ""
    ev = figs["eval"]
    sentence = (f"{linked} of {n} windows ({share:.0%}) are closer to another window of this record than to any "
                f"other subject's window in the index (median margin {np.median(margin):+.3f} in cosine "
                f"similarity): {level} re-identification risk. For comparison, the model re-identifies "
                f"{ref_txt}{ev['simulated_top1']:.0%} on simulated subjects (chance {ev['chance']:.1%}).")
    return {**base, "score": float(share), "level": level, "linked": linked,
            "margin_median": float(np.median(margin)), "margin_q10": float(np.quantile(margin, 0.1)),
            "margin_q90": float(np.quantile(margin, 0.9)), "own_median": float(np.median(own)),
            "other_median": float(np.median(other)), "sentence": sentence}


def indexed_record_linkability(index: Any, record: str) -> dict[str, Any]:
    """``record_linkability`` of a record already in the index, from its stored fingerprints; its subject
    and the record itself are excluded from the "other" search."""
    meta = index.metadata
    rows = np.flatnonzero(meta["record"].astype(str).to_numpy() == str(record))
    if not len(rows):
        raise InputError(f"linkability: record {record!r} is not in the index")
    subject = str(meta["subject_id"].iloc[rows[0]]) if "subject_id" in meta.columns else None
    return record_linkability(index, index_fingerprints(index, rows), subject_id=subject, record=str(record))
