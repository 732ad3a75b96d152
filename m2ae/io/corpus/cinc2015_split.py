"""The one fixed record-level train / validation / test split of the CinC 2015 corpus (r001–r550).

The split is data committed in the package (``cinc2015_split.csv`` beside this module: ``record,split``),
so training, heads, index and evaluation agree on it without the data folder. It was generated once
with ``write_cinc2015_split(labels_csv)`` (``make_cinc2015_split`` with ``SPLIT_SEED``) and is never
regenerated with another seed; ``tests/test_io_cinc2015.py`` regenerates it from ``labels.csv`` and
checks it equals the committed file.

How it is drawn (``make_cinc2015_split``):

- by record, never by window: a record's windows all go to one side (one record = one patient stay);
- stratified by (alarm_type, true_alarm): within each of the four strata, round(20 %) of the records go
  to test, round(20 %) to validation, the rest (about 60 %) to train;
- the order inside a stratum is the SHA-256 of ``"{seed}:{record}"``, not a NumPy generator, so the
  split is the same on every Python / NumPy version;
- ``FORCED_TEST`` records (r152 is the same recording as ``../real/wfdb/a103l``) go first, so they
  always land on the test side.

Nothing is selected, tuned or thresholded on ``test``.

>>> cinc2015_split("r152")                                  # doctest: +SKIP
'test'
>>> len(cinc2015_records("train"))                          # doctest: +SKIP
328
"""
from __future__ import annotations

import csv
import hashlib
from collections import defaultdict
from functools import lru_cache
from importlib import resources
from pathlib import Path

SPLITS = ("train", "validation", "test")
SPLIT_SEED = 2015  # fixed once; changing it would move records across the held-out line
HELD_OUT_SHARES = {"test": 0.2, "validation": 0.2}  # of each stratum; train takes the rest
FORCED_TEST = ("r152",)  # r152 == real/wfdb/a103l: a103l must stay a record the model never trained on
SPLIT_FILE = "cinc2015_split.csv"


def _stratum(row: dict[str, str]) -> tuple[str, int]:
    """(alarm_type, true_alarm as 0/1) of one labels.csv row."""
    return row["alarm_type"].strip(), int(str(row["true_alarm"]).strip().lower() in ("1", "true"))


def make_cinc2015_split(labels_csv: str | Path, seed: int = SPLIT_SEED) -> dict[str, str]:
    """``{record: split}`` drawn from the corpus' ``labels.csv`` (see the module docstring for how).

    Deterministic for a given table and seed; raises ValueError when a forced record has no room on
    the test side of its stratum or a record is listed twice.
    """
    with open(labels_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    strata: dict[tuple[str, int], list[str]] = defaultdict(list)
    seen: set[str] = set()
    for row in rows:
        name = row["record"].strip()
        if name in seen:
            raise ValueError(f"{labels_csv}: record {name} is listed twice")
        seen.add(name)
        strata[_stratum(row)].append(name)
    out: dict[str, str] = {}
    for key in sorted(strata):
        names = strata[key]
        # Forced records first (False sorts before True), then a hash order that no library version changes.
        order = sorted(names, key=lambda r: (r not in FORCED_TEST,
                                              hashlib.sha256(f"{seed}:{r}".encode()).hexdigest()))
        n_test = int(len(names) * HELD_OUT_SHARES["test"] + 0.5)
        n_val = int(len(names) * HELD_OUT_SHARES["validation"] + 0.5)
        forced = [r for r in names if r in FORCED_TEST]
        if len(forced) > n_test:
            raise ValueError(f"stratum {key}: {len(forced)} forced test records but room for {n_test}")
        for i, r in enumerate(order):
            out[r] = "test" if i < n_test else "validation" if i < n_test + n_val else "train"
    return dict(sorted(out.items()))


def write_cinc2015_split(labels_csv: str | Path, out: str | Path | None = None, seed: int = SPLIT_SEED) -> Path:
    """Write ``make_cinc2015_split(labels_csv, seed)`` as ``record,split`` rows (sorted by record) to
    ``out``, by default the package's ``cinc2015_split.csv``; returns the path written.

    Run once to create the committed table; a test checks that it still reproduces."""
    path = Path(out) if out is not None else Path(__file__).with_name(SPLIT_FILE)
    split = make_cinc2015_split(labels_csv, seed)
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["record", "split"])
        w.writerows(split.items())
    _table.cache_clear()
    return path


@lru_cache(maxsize=1)
def _table() -> dict[str, str]:
    """The committed split, read from package data (works from an installed wheel too)."""
    text = (resources.files(__package__ or "m2ae.io.corpus") / SPLIT_FILE).read_text()
    return {row["record"]: row["split"] for row in csv.DictReader(text.splitlines())}


def cinc2015_split(record: str) -> str:
    """The split ("train", "validation" or "test") of one CinC 2015 record name (``r001``…``r550``).

    Raises KeyError for a name outside the corpus' fixed split."""
    table = _table()
    if record not in table:
        raise KeyError(f"{record!r} is not one of the {len(table)} CinC 2015 records of the fixed split")
    return table[record]


def cinc2015_records(split: str) -> list[str]:
    """The record names (sorted) on one side of the fixed split: "train", "validation" or "test"."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    return sorted(r for r, s in _table().items() if s == split)


def split_table() -> dict[str, str]:
    """A copy of the whole fixed split, ``{record: split}``."""
    return dict(_table())
