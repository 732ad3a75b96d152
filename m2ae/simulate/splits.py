"""Seed roots that keep simulated training, head-fitting, validation and evaluation subjects apart.

Every simulated subject is drawn from ``np.random.default_rng([ROOT, ...])``; different roots give
independent ``SeedSequence`` streams, so subjects of one split never reappear in another (their
parameters are continuous draws; subject ids also carry the split's prefix).

- ``PRETRAIN_SEED``: pretraining batches, ``rng([PRETRAIN_SEED + config.seed, rank, step])``.
- ``HEADS_TRAIN_SEED`` / ``HEADS_CAL_SEED`` / ``HEADS_TEST_SEED``: subjects the demo heads are
  fitted on / temperature-calibrated on / scored on for the model card.
- ``VAL_SEED``: the fixed validation batch logged during pretraining.
- ``EVAL_SEED``: held-out subjects for ``m2ae eval`` (never used by training, heads or selection).
"""
from __future__ import annotations

PRETRAIN_SEED = 0
HEADS_TRAIN_SEED = 1_000_003
HEADS_CAL_SEED = 2_000_003
HEADS_TEST_SEED = 3_000_003
VAL_SEED = 4_000_003
EVAL_SEED = 9_000_001

ID_PREFIX = {
    PRETRAIN_SEED: "pre",
    HEADS_TRAIN_SEED: "htr",
    HEADS_CAL_SEED: "hcal",
    HEADS_TEST_SEED: "htest",
    VAL_SEED: "val",
    EVAL_SEED: "eval",
}
