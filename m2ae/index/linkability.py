"""Re-identification risk of a record against an index: do its windows find each other first?

For each window of the record: ``own`` = cosine similarity to the most similar *other* window of the
same record, ``other`` = similarity to the most similar indexed window of another subject/record
(FAISS search with the record's subject and record excluded). A window is *linked* when
``own > other``: given the index and one of its windows, the nearest neighbour picks out this record.
The share of linked windows is the record's own re-identification rate, the same quantity the
evaluation reports over many subjects (``m2ae.eval.privacy``: nearest other window's subject), so it
reads directly against those figures, which ``calibration_figures`` collects from the shipped model
card: the eval's privacy section (simulated held-out subjects: rate and chance) and the training's
validation rates. ``risk_metrics`` and ``calibration_note`` word the result for the app and the report.

>>> risk = record_linkability(idx, fps, subject_id="sim000007")   # doctest: +SKIP
>>> risk["score"], risk["level"], risk["sentence"]                  # doctest: +SKIP
"""
from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

import numpy as np

from ..errors import InputError
from .fingerprints import normalise_fingerprints
from .neighbours import index_fingerprints

# Where ``m2ae eval --write-card`` puts the re-identification rate in the model card.
CARD_REIDENTIFICATION = ("eval", "simulated_heldout", "privacy", "reidentification_top1")
# Only for a card without that section (a bare checkout, a card written before the eval): the eval of
# 2026-11-30 (docs/RESULTS.md), nearest other window's subject over 60 simulated subjects.
FALLBACK_REIDENTIFICATION = {"simulated_top1": 1.00, "chance": 0.017, "subjects": 60,
                             "source": "m2ae eval privacy section (docs/RESULTS.md), simulated subjects"}
LEVELS = ((0.5, "high"), (0.1, "moderate"), (0.0, "low"))  # share of windows linked → level
CARD_VALIDATION = {"val_same_subject_top1": "simulated", "val_real_same_subject_top1": "real records"}
SCORE_MEANING = ("Share of this record's windows whose nearest window is another window of this record rather "
                 "than another subject's.")


@functools.lru_cache(maxsize=1)
def _shipped_card() -> dict[str, Any] | None:
    try:
        card = json.loads((resources.files("m2ae.model") / "model_card.json").read_text())
    except (OSError, ValueError):
        return None
    return card if isinstance(card, dict) else None


def card_reidentification(card: dict[str, Any] | None) -> dict[str, Any] | None:
    """The eval's re-identification figure from a model card ({"simulated_top1", "chance", "subjects",
    "source"}), or None when the card has no eval privacy section with numbers."""
    if not isinstance(card, dict):
        return None
    row: Any = card
    for key in CARD_REIDENTIFICATION:
        row = row.get(key) if isinstance(row, dict) else None
    if not isinstance(row, dict) or not all(isinstance(row.get(k), (int, float)) for k in ("model", "chance")):
        return None
    return {"simulated_top1": float(row["model"]), "chance": float(row["chance"]), "subjects": row.get("subjects"),
            "source": f"m2ae eval privacy section of model card {card.get('version', '?')} "
                      f"(eval {card.get('eval_date', 'date unknown')}), simulated held-out subjects"}


def calibration_figures(card: dict[str, Any] | None = None) -> dict[str, Any]:
    """The re-identification rates a record's score is read against, from ``card`` (default: the shipped
    model card): the eval's simulated figure and chance ("eval"; ``FALLBACK_REIDENTIFICATION`` when the
    card lacks it) and the training's validation rates, simulated and real ("model_card", or None)."""
    card = _shipped_card() if card is None else card  # read only: the cached card is shared
    figs: dict[str, Any] = {"eval": card_reidentification(card) or dict(FALLBACK_REIDENTIFICATION)}
    if card is None:
        figs["model_card"] = None  # a bare checkout without the card: the eval figure still stands
        return figs
    final = (card.get("training") or {}).get("final_metrics") or {}
    figs["model_card"] = {"version": card.get("version"),
                          "val_same_subject_top1": final.get("val_same_subject_top1"),
                          "val_real_same_subject_top1": final.get("val_real_same_subject_top1")}
    return figs


def calibration_note(figs: dict[str, Any]) -> str:
    """One line on what a score is read against (``calibration_figures()``) and where the levels start;
    the Similar patients page and the PDF report both show it."""
    card = figs.get("model_card") or {}
    ev = figs["eval"]
    subjects = f" over {ev['subjects']} subjects" if ev.get("subjects") else ""
    val = [f"{what} {card[k]:.0%}" for k, what in CARD_VALIDATION.items() if isinstance(card.get(k), (int, float))]
    return (f"Calibrated on: {ev['source']}: top-1 {ev['simulated_top1']:.0%}{subjects} (chance {ev['chance']:.1%})"
            + (f"; model card {card.get('version')} validation top-1: {', '.join(val)}" if val else "")
            + ". Levels: " + ", ".join(f"{name} from {bound:.0%}" for bound, name in LEVELS) + ".")


def risk_metrics(risk: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) of a ``record_linkability`` result's headline numbers, as the page and the report
    show them; empty when there was no score (fewer than two windows)."""
    if risk.get("score") is None:
        return []
    return [("Linkability score", f"{risk['score']:.0%}"), ("Risk level", str(risk["level"])),
            ("Median margin (cosine)", f"{risk['margin_median']:+.3f}")]


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
