"""CinC 2015 corpus: layout detection, labels join, the fixed split, WFDB FLAC formats, skip reasons.

Fixtures are tiny FLAC WFDB records written here (wfdb.wrsamp writes formats 508/516/524), so the
FLAC path and the layout are tested without the shared data; the checks against the real corpus
(``../shared/data/cinc2015``) skip with a reason when that folder is absent.
"""
from __future__ import annotations

import csv
import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from m2ae.errors import InputError
from m2ae.io import cinc2015_records, cinc2015_split, detect_layout, iter_corpus, load_record
from m2ae.io.corpus import ALARM_TIME_S, SPLITS, make_cinc2015_split
from m2ae.io.corpus.cinc2015_split import FORCED_TEST, SPLIT_FILE

ROOT = Path(__file__).resolve().parents[1]
FS = 250
HEADER = ["record", "alarm_type", "true_alarm", "original_name", "channels", "has_ppg", "seconds"]


def _signals(seconds: float = 12.0, ppg: bool = True) -> tuple[np.ndarray, list[str], list[str]]:
    t = np.arange(int(seconds * FS)) / FS
    ecg = 0.8 * np.sin(2 * np.pi * 1.2 * t) ** 15  # spiky, ECG-ish, in mV
    cols, names, units = [ecg, 0.3 * np.sin(2 * np.pi * 0.3 * t)], ["II", "V"], ["mV", "mV"]
    if ppg:
        cols.append(0.5 + 0.4 * np.sin(2 * np.pi * 1.2 * t - 1.0))
        names.append("PLETH")
        units.append("NU")
    return np.column_stack(cols), names, units


def write_flac_record(folder: Path, name: str, fmt: str = "516", ppg: bool = True,
                      seconds: float = 12.0) -> np.ndarray:
    """A WFDB record in one of the FLAC formats (508: 8-bit, 516: 16-bit, 524: 24-bit); returns the signals."""
    import wfdb

    folder.mkdir(parents=True, exist_ok=True)
    sig, names, units = _signals(seconds, ppg)
    gain = {"508": 100.0, "516": 5000.0, "524": 200000.0}[fmt]  # ADC units per mV/NU within each format's range
    wfdb.wrsamp(name, fs=FS, units=units, sig_name=names, p_signal=sig, fmt=[fmt] * len(names),
                adc_gain=[gain] * len(names), baseline=[0] * len(names), write_dir=str(folder))
    return sig


def write_cinc_corpus(root: Path, rows: list[tuple[str, str, str, str]], missing_headers: tuple[str, ...] = (),
                      extra_headers: tuple[str, ...] = ()) -> Path:
    """The corpus layout: labels.csv (rows: record, alarm_type, true_alarm, original_name) + records/."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        for rec, kind, flag, orig in rows:
            w.writerow([rec, kind, flag, orig, "II V PLETH", 1, 12])
    for rec, *_ in rows:
        if rec not in missing_headers:
            write_flac_record(root / "records", rec)
    for rec in extra_headers:
        write_flac_record(root / "records", rec)
    return root


ROWS = [("r001", "VT", "1", "v714s"), ("r002", "other", "0", ""), ("r152", "other", "0", "")]


# --- WFDB FLAC formats ---------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["508", "516", "524"])
def test_load_record_reads_flac_formats(tmp_path, fmt):
    sig = write_flac_record(tmp_path, f"f{fmt}", fmt=fmt)
    assert f" {fmt} " in (tmp_path / f"f{fmt}.hea").read_text()  # really written compressed
    rec = load_record(tmp_path / f"f{fmt}.hea")
    assert rec.fs == FS and rec.modalities == ("ecg", "ppg")
    assert rec.meta["lead"] == "II" and rec.meta["ppg_column"] == "PLETH"
    # lossless up to the ADC step (8-bit: 1/100 mV)
    tol = {"508": 0.006, "516": 1e-3, "524": 1e-5}[fmt]
    np.testing.assert_allclose(rec.ecg, sig[:, 0], atol=tol)
    np.testing.assert_allclose(rec.ppg, sig[:, 2], atol=tol)


def test_load_record_reads_a_real_cinc2015_flac_record(cinc_dir):
    hea = cinc_dir / "records" / "r001.hea"
    assert " 516 " in hea.read_text().splitlines()[1]
    rec = load_record(hea)
    assert rec.fs == 250.0 and rec.duration_s == 300.0 and rec.modalities == ("ecg", "ppg")
    assert rec.meta["lead"] == "II" and np.isfinite(rec.ecg).all() and np.ptp(rec.ecg) > 0.1  # mV, not ADC units


# --- layout detection and labels join -----------------------------------------------------------

def test_detects_corpus_folder_and_records_folder(tmp_path):
    root = write_cinc_corpus(tmp_path / "cinc", ROWS)
    assert detect_layout(root) == "cinc2015"
    assert detect_layout(root / "records") == "cinc2015"  # labels.csv one level up
    assert detect_layout(root / "records" / "r001.hea") == "folder"  # one file is just a record
    # a labels.csv without the alarm columns is not this layout
    (tmp_path / "other" / "records").mkdir(parents=True)
    (tmp_path / "other" / "labels.csv").write_text("record,age\nr001,60\n")
    write_flac_record(tmp_path / "other" / "records", "r001")
    assert detect_layout(tmp_path / "other") == "folder"
    assert detect_layout(tmp_path / "other" / "records") == "folder"


def test_labels_join_subject_and_split(tmp_path):
    root = write_cinc_corpus(tmp_path / "cinc", ROWS)
    for where in (root, root / "records"):
        recs = {r.meta["subject_id"]: r for r in iter_corpus(where)}
        assert list(recs) == ["r001", "r002", "r152"]
        r1 = recs["r001"]
        assert r1.meta["corpus"] == "cinc2015" and r1.meta["record_id"] == "r001"
        assert r1.meta["labels"] == {"alarm_type": "VT", "true_alarm": True, "alarm_time_s": ALARM_TIME_S,
                                     "split": cinc2015_split("r001"), "original_name": "v714s"}
        assert recs["r002"].meta["labels"]["true_alarm"] is False and "original_name" not in recs["r002"].meta["labels"]
        assert recs["r152"].meta["labels"]["split"] == "test"
        assert r1.modalities == ("ecg", "ppg") and r1.fs == FS


def test_skip_reasons(tmp_path, caplog):
    rows = [*ROWS, ("r003", "VT", "maybe", ""), ("r004", "other", "1", "")]
    root = write_cinc_corpus(tmp_path / "cinc", rows, missing_headers=("r004",), extra_headers=("r999",))
    (root / "records" / "r002.dat").write_bytes(b"not flac at all")  # corrupt data file
    with caplog.at_level(logging.WARNING, logger="m2ae.io"):
        recs = {r.meta["subject_id"]: r for r in iter_corpus(root)}
    assert sorted(recs) == ["r001", "r152", "r999"]
    skipped = " | ".join(r.getMessage() for r in caplog.records)
    assert "r002" in skipped                                     # unreadable record
    assert "r003" in skipped and "expected 0 or 1" in skipped    # unreadable label
    assert "r004 is listed but" in skipped and "missing" in skipped  # labelled record without files
    # a header not listed in labels.csv is read, without alarm labels, and says so
    r999 = recs["r999"]
    assert "alarm_type" not in r999.meta["labels"] and "split" not in r999.meta["labels"]
    assert any("not listed in labels.csv" in n for n in r999.meta["notes"])
    assert any("not in the fixed CinC 2015 split" in n for n in r999.meta["notes"])
    with pytest.raises(InputError, match="r002"):
        list(iter_corpus(root, on_error="raise"))


def test_explicit_layout_on_a_folder_without_labels_says_what_is_missing(tmp_path):
    write_flac_record(tmp_path, "r001")
    with pytest.raises(InputError, match="labels.csv"):
        list(iter_corpus(tmp_path, layout="cinc2015"))


def test_real_corpus_iterates_with_labels(cinc_dir):
    assert detect_layout(cinc_dir) == "cinc2015" and detect_layout(cinc_dir / "records") == "cinc2015"
    first = []
    for rec in iter_corpus(cinc_dir, on_error="raise"):
        first.append(rec)
        if len(first) == 3:
            break
    with open(cinc_dir / "labels.csv", newline="") as f:
        table = {row["record"]: row for row in csv.DictReader(f)}
    for rec in first:
        row, labels = table[rec.meta["subject_id"]], rec.meta["labels"]
        assert labels["alarm_type"] == row["alarm_type"] and labels["true_alarm"] == (row["true_alarm"] == "1")
        assert labels["alarm_time_s"] == 300.0 and labels["split"] == cinc2015_split(rec.meta["subject_id"])
        assert rec.duration_s == float(row["seconds"]) and (rec.ppg is not None) == (row["has_ppg"] == "1")


# --- the fixed split -----------------------------------------------------------------------------

def _committed() -> list[tuple[str, str]]:
    path = ROOT / "m2ae" / "io" / "corpus" / SPLIT_FILE
    with open(path, newline="") as f:
        return [(row["record"], row["split"]) for row in csv.DictReader(f)]


def test_committed_split_properties():
    rows = _committed()
    names = [r for r, _ in rows]
    assert names == [f"r{i:03d}" for i in range(1, 551)]  # every record exactly once, in order
    assert {s for _, s in rows} == set(SPLITS)
    assert all(cinc2015_split(r) == "test" for r in FORCED_TEST) and cinc2015_split("r152") == "test"
    sizes = {s: len(cinc2015_records(s)) for s in SPLITS}
    assert sum(sizes.values()) == 550
    assert abs(sizes["train"] / 550 - 0.6) < 0.02 and abs(sizes["test"] / 550 - 0.2) < 0.02
    assert set(cinc2015_records("train")).isdisjoint(cinc2015_records("test"))
    with pytest.raises(KeyError):
        cinc2015_split("r551")
    with pytest.raises(ValueError):
        cinc2015_records("holdout")


def test_split_draw_is_stratified_and_forces_r152_to_test(tmp_path):
    rng = np.random.default_rng(0)
    table = tmp_path / "labels.csv"
    with open(table, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        for i in range(1, 201):
            w.writerow([f"r{i:03d}", "VT" if i % 3 else "other", int(rng.random() < 0.4), "", "II", 0, 300])
    split = make_cinc2015_split(table)
    assert split == make_cinc2015_split(table) and split != make_cinc2015_split(table, seed=1)
    assert split["r152"] == "test"
    with open(table, newline="") as f:
        strata = {row["record"]: (row["alarm_type"], row["true_alarm"]) for row in csv.DictReader(f)}
    for key in set(strata.values()):
        members = [r for r, k in strata.items() if k == key]
        counts = Counter(split[r] for r in members)
        for side in ("test", "validation"):
            assert counts[side] == int(len(members) * 0.2 + 0.5)


def test_committed_split_reproduces_from_labels_and_is_stratified(cinc_dir):
    labels = cinc_dir / "labels.csv"
    assert make_cinc2015_split(labels) == dict(_committed())  # regenerated == committed
    with open(labels, newline="") as f:
        strata = {row["record"]: (row["alarm_type"], row["true_alarm"]) for row in csv.DictReader(f)}
    assert sorted(strata) == [r for r, _ in _committed()]
    for key in set(strata.values()):
        members = [r for r, k in strata.items() if k == key]
        counts = Counter(cinc2015_split(r) for r in members)
        for side, share in (("train", 0.6), ("validation", 0.2), ("test", 0.2)):
            assert abs(counts[side] / len(members) - share) <= 1.0 / len(members) + 0.01, (key, counts)


def test_split_sides_filter_records_and_leave_out_records_outside_the_split(tmp_path):
    root = write_cinc_corpus(tmp_path / "cinc", ROWS, extra_headers=("a103l",))
    sides = {name: cinc2015_split(name) for name, *_ in ROWS}
    kept = [r.meta["record_id"] for r in iter_corpus(root, split=("train", "validation"))]
    assert kept == [n for n, s in sides.items() if s != "test"] and "r152" not in kept
    assert "a103l" not in kept  # not in the fixed split: never on a requested side
    assert [r.meta["record_id"] for r in iter_corpus(root, split="test")] == ["r152"]
    assert "a103l" in [r.meta["record_id"] for r in iter_corpus(root)]


def test_index_sources_read_only_the_requested_sides(tmp_path):
    from m2ae.index.sources import expand_sources

    root = write_cinc_corpus(tmp_path / "cinc", ROWS)
    items, streams = expand_sources([root], splits=("train", "validation"))
    names = [r.meta["record_id"] for stream in streams for r in stream]
    assert not items and "r152" not in names and names
