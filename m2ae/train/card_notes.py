"""The model card's limitation notes about the demo heads: the P-wave note, as the pretraining
config made it true, and the plain word on heads that score near chance."""
from __future__ import annotations

from typing import Any

P_WAVE_LIMITATION = ("The pretraining simulator draws every non-AF subject with clear P waves and every AF subject "
                     "with none, so the fingerprint separates them by P waves as much as by beat irregularity. The "
                     "demo heads are fitted with a quarter of subjects drawn with faint or no P waves to counter it; "
                     "the eval's rhythm_without_p_waves stress test measures what remains, and the app checks each "
                     "rhythm call against the measured beat intervals.")
FAINT_P_NOTE_PREFIX = "Training drew "
WEAK_HEAD_NOTE_PREFIX = "Heads near chance"
WEAK_HEAD_AUROC = 0.65  # below this held-out AUROC (ECG+PPG) a classifier head is called near chance


def p_wave_limitation(pretrain_faint_p_share: float) -> str:
    """The card's note on P waves, as the pretraining config (``sim_faint_p_share``) made it true."""
    if not pretrain_faint_p_share:
        return P_WAVE_LIMITATION
    return (f"{FAINT_P_NOTE_PREFIX}{pretrain_faint_p_share:.0%} of simulated subjects with faint or no P waves "
            "(sim_faint_p_share; in a fine-tune, its steps only: see training.initialised_from), so a missing P "
            "wave alone no longer marks atrial fibrillation; the eval's "
            "rhythm_without_p_waves stress test measures how often sinus rhythm without P waves is still called "
            "AF, and the app checks each rhythm call against the measured beat intervals.")


def is_p_wave_note(note: str) -> bool:
    """Whether a card limitation is a P-wave note (either form), so a refit can replace it."""
    return note == P_WAVE_LIMITATION or note.startswith(FAINT_P_NOTE_PREFIX)


def is_weak_head_note(note: str) -> bool:
    """Whether a card limitation is the ``weak_head_notes`` note, so a refit can replace it."""
    return note.startswith(WEAK_HEAD_NOTE_PREFIX)


def weak_head_notes(heads_card: dict[str, dict[str, Any]]) -> list[str]:
    """Say plainly which heads score near chance on their held-out simulated test split."""
    weak = [f"{k} (AUROC {v['metrics'].get('auroc_both', float('nan')):.2f})" for k, v in heads_card.items()
            if v["kind"] == "classification" and v["metrics"].get("auroc_both", 1.0) < WEAK_HEAD_AUROC]
    if not weak:
        return []
    return [f"{WEAK_HEAD_NOTE_PREFIX} on held-out simulated subjects: " + ", ".join(weak)
            + "; the simulator encodes little of these labels in the signals (e.g. sex only shifts R amplitude, "
              "QTc and path length slightly)."]
