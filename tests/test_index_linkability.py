"""Re-identification risk of a record against the shipped index (m2ae.index.linkability)."""
from __future__ import annotations

import copy
import json
from importlib import resources

import numpy as np
import pytest

from m2ae.errors import InputError
from m2ae.index import open_index
from m2ae.index.linkability import (FALLBACK_REIDENTIFICATION, calibration_figures, calibration_note,
                                    card_reidentification, indexed_record_linkability, level_of, record_linkability,
                                    risk_metrics, within_record_similarity)


@pytest.fixture(scope="module")
def idx():
    return open_index()


def test_within_record_similarity_is_the_best_other_window():
    fps = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    assert within_record_similarity(fps).tolist() == pytest.approx([0.6, 0.8, 0.8])
    assert np.isnan(within_record_similarity(fps[:1])).all()
    assert [level_of(s) for s in (1.0, 0.5, 0.2, 0.0)] == ["high", "high", "moderate", "low"]


def test_calibration_figures_are_read_from_the_shipped_card():
    card = json.loads((resources.files("m2ae.model") / "model_card.json").read_text())
    row = card["eval"]["simulated_heldout"]["privacy"]["reidentification_top1"]
    figs = calibration_figures()
    assert figs["eval"]["simulated_top1"] == row["model"] and figs["eval"]["chance"] == row["chance"]
    assert figs["eval"]["subjects"] == row["subjects"] and card["version"] in figs["eval"]["source"]
    assert figs["model_card"]["val_same_subject_top1"] == card["training"]["final_metrics"]["val_same_subject_top1"]
    # a new eval in the card moves the figure and its wording: nothing is a copy
    newer = copy.deepcopy(card)
    newer["eval"]["simulated_heldout"]["privacy"]["reidentification_top1"].update(model=0.42, chance=0.125)
    note = calibration_note(calibration_figures(newer))
    assert "top-1 42%" in note and "chance 12.5%" in note and "Levels: high from 50%" in note


def test_calibration_falls_back_without_the_eval_section():
    bare = calibration_figures({"version": "v0", "training": {}})
    assert bare["eval"] == FALLBACK_REIDENTIFICATION and bare["model_card"]["version"] == "v0"
    assert card_reidentification({"eval": {"simulated_heldout": {"privacy": {"reidentification_top1": {
        "model": "n/a", "chance": 0.5}}}}}) is None
    assert "validation top-1" not in calibration_note(bare) and "docs/RESULTS.md" in calibration_note(bare)


def test_simulated_subjects_link_and_random_fingerprints_do_not(idx):
    sims = idx.metadata.loc[idx.metadata["source"] == "m2ae.simulate", "record"].unique()[:3]
    for rec in sims:
        risk = indexed_record_linkability(idx, rec)
        assert risk["score"] >= 0.8 and risk["level"] == "high", (rec, risk["sentence"])
        assert risk["margin_median"] > 0 and risk["own_median"] > risk["other_median"]
        assert f"of {risk['windows']} windows" in risk["sentence"] and "1.7%" in risk["sentence"]
    rng = np.random.default_rng(0)
    noise = record_linkability(idx, rng.normal(size=(8, idx.dims)))
    assert noise["score"] <= 0.2 and noise["level"] == "low" and noise["margin_median"] < 0
    assert dict(risk_metrics(noise)) == {"Linkability score": f"{noise['score']:.0%}", "Risk level": "low",
                                         "Median margin (cosine)": f"{noise['margin_median']:+.3f}"}


def test_record_in_the_index_must_exclude_itself(idx):
    rec = "r001"
    rows = np.flatnonzero(idx.metadata["record"].to_numpy() == rec)
    from m2ae.index.neighbours import index_fingerprints

    fps = index_fingerprints(idx, rows)
    itself = record_linkability(idx, fps)  # its own copies are in the index: every window ties at 1.0
    assert itself["other_median"] == pytest.approx(1.0, abs=1e-4)
    assert indexed_record_linkability(idx, rec)["other_median"] < 0.999
    one = record_linkability(idx, fps[:1], record=rec)
    assert one["score"] is None and "at least two windows" in one["sentence"] and risk_metrics(one) == []
    with pytest.raises(InputError, match="not in the index"):
        indexed_record_linkability(idx, "no-such-record")
