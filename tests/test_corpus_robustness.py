"""Corpus runs survive bad records (issue 12 item 7): one broken record is skipped with its reason,
counted per reason in a report at the end; a folder with no records says so; Ctrl-C / MemoryError stop."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from m2ae.cli import main
from m2ae.errors import InputError
from m2ae.index import build_index, embed
from m2ae.index.mapping import MapConfig
from m2ae.io import iter_corpus, write_record
from m2ae.io.corpus import SkipReport
from m2ae.io.corpus.report import split_message
from m2ae.simulate import simulate_record
from test_index_embed import SpectralModel
from test_io_corpus import write_pulsedb_segments


def _self_referencing_age(path):
    """Point segment 2's Age cell at a cell that refers to itself (the issue's RecursionError file)."""
    import h5py

    with h5py.File(path, "r+") as h5:
        loop = h5["#refs#"].create_dataset("loop", shape=(1, 1), dtype=h5py.ref_dtype)
        loop.attrs["MATLAB_class"] = np.bytes_("cell")
        loop[0, 0] = loop.ref
        ages = h5["Subj_Wins/Age"][()]
        ages[0, 1] = loop.ref
        h5["Subj_Wins/Age"][...] = ages


def _short_age_column(path, keep=1):
    """Cut the Age field to ``keep`` entries (the issue's IndexError file)."""
    import h5py

    with h5py.File(path, "r+") as h5:
        g = h5["Subj_Wins"]
        ages = g["Age"][()][:, :keep]
        del g["Age"]
        ds = g.create_dataset("Age", data=ages, dtype=h5py.ref_dtype)
        ds.attrs["MATLAB_class"] = np.bytes_("cell")


def _self_referencing_ecg(path, segment=0):
    import h5py

    with h5py.File(path, "r+") as h5:
        loop = h5["#refs#"].create_dataset("loop_ecg", shape=(1, 1), dtype=h5py.ref_dtype)
        loop.attrs["MATLAB_class"] = np.bytes_("cell")
        loop[0, 0] = loop.ref
        refs = h5["Subj_Wins/ECG_F"][()]
        refs[0, segment] = loop.ref
        h5["Subj_Wins/ECG_F"][...] = refs


def test_pulsedb_self_reference_and_short_age_column(tmp_path):
    d = tmp_path / "PulseDB_MIMIC"
    d.mkdir()
    _self_referencing_age(write_pulsedb_segments(d / "p000001.mat"))
    _short_age_column(write_pulsedb_segments(d / "p000002.mat"))
    _self_referencing_ecg(write_pulsedb_segments(d / "p000003.mat", n_seg=2))
    report = SkipReport()
    recs = list(iter_corpus(tmp_path, report=report))
    # 3 + 3 + (2 - 1): every segment whose signals are readable is kept, its bad metadata left out
    assert len(recs) == 7
    by_id = {r.meta["record_id"]: r for r in recs}
    assert by_id["p000001/1"].meta["labels"]["age"] == 67.0
    assert "age" not in by_id["p000001/2"].meta["labels"]
    assert any("Age left out" in n and "refers to itself" in n for n in by_id["p000001/2"].meta["notes"])
    assert by_id["p000002/1"].meta["labels"]["age"] == 67.0
    assert "age" not in by_id["p000002/3"].meta["labels"]
    assert any("Age left out: field Age holds 1 entries for 3 segments" in n for n in by_id["p000002/3"].meta["notes"])
    assert by_id["p000002/3"].meta["labels"]["sex"] == "M"  # the other fields stay
    d_ = report.as_dict()
    assert d_["skipped"] == 1 and list(d_["reasons"]) == ["ECG not readable"]
    assert d_["reasons"]["ECG not readable"]["records"] == ["p000003.mat#1"]
    assert "refers to itself" in d_["reasons"]["ECG not readable"]["example"]


def test_layout_generator_that_raises_is_one_skip(tmp_path, monkeypatch):
    """A layout whose own generator raises something unexpected: the run reports it and goes on with
    the next corpus; ``on_error="raise"`` raises it; MemoryError and Ctrl-C always stop the run."""
    import m2ae.io.corpus as corpus

    good = tmp_path / "good"
    rec = simulate_record("NSR", duration_s=12.0, seed=1)
    write_record(rec, good / "a.npz")

    def broken(folder):
        yield rec
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setitem(corpus._ITERATE, "vitaldb", broken)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "0001.vital").write_bytes(b"x")
    report = SkipReport()
    recs = list(iter_corpus([tmp_path / "bad", good], report=report))
    assert len(recs) == 2  # the record before the failure, then the next corpus
    assert list(report.as_dict()["reasons"]) == ["unexpected RecursionError"]
    with pytest.raises(RecursionError):
        list(iter_corpus(tmp_path / "bad", on_error="raise"))
    for stop in (MemoryError, KeyboardInterrupt):
        def stopping(folder, stop=stop):
            raise stop()
            yield  # a generator

        monkeypatch.setitem(corpus._ITERATE, "vitaldb", stopping)
        with pytest.raises(stop):
            list(iter_corpus(tmp_path / "bad"))


def test_folder_with_no_records_says_so(tmp_path, capsys):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.json").write_text("{}")
    with pytest.raises(InputError, match=r"^no records found in .*docs \(looked for: "):
        list(iter_corpus(tmp_path / "docs"))
    assert main(["embed", str(tmp_path / "docs"), "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: no records found in {tmp_path / 'docs'} (looked for: ")
    # a PulseDB folder whose file holds no segment
    import h5py

    (tmp_path / "PulseDB_x").mkdir()
    with h5py.File(tmp_path / "PulseDB_x" / "p1.mat", "w") as h5:
        g = h5.create_group("Subj_Wins")
        g.create_dataset("ECG_F", shape=(1, 0), dtype=h5py.ref_dtype)
    with pytest.raises(InputError, match=r"no records found in .*PulseDB_x \(looked for: PulseDB \.mat"):
        list(iter_corpus(tmp_path / "PulseDB_x"))
    with pytest.raises(InputError, match=r"^no records found in .*PulseDB_x \(looked for: PulseDB \.mat"):
        embed([tmp_path / "PulseDB_x"], SpectralModel(), None, progress=False)


def _reason(reasons, start):
    """The entry of the one reason that starts with ``start`` (readers may word the rest their way)."""
    hits = [v for k, v in reasons.items() if k.startswith(start)]
    assert len(hits) == 1, reasons
    return hits[0]


def _mixed_folder(root):
    """Four good records and five bad ones, each bad in its own way."""
    for i in range(4):
        write_record(simulate_record("NSR", duration_s=20.0, seed=i), root / f"good{i}.npz")
    (root / "broken.csv").write_text("time,RESP\n0,1\n0.01,2\n")
    (root / "broken2.csv").write_text("time,RESP\n0,1\n0.01,2\n")
    (root / "truncated.npz").write_bytes((root / "good0.npz").read_bytes()[:300])
    (root / "empty.edf").write_bytes(b"")
    write_record(simulate_record("NSR", duration_s=4.0, seed=9), root / "short.npz")
    return root


def test_embed_skips_bad_records_and_reports_per_reason(tmp_path, monkeypatch):
    folder = _mixed_folder(tmp_path / "mixed")
    import m2ae.index.sources as sources

    real = sources.load_path

    def flaky(path, read_kwargs=None):  # one record whose reader has a bug, not a bad-input refusal
        if str(path).endswith("good3.npz"):
            raise ZeroDivisionError("float division by zero")
        return real(path, read_kwargs)

    monkeypatch.setattr(sources, "load_path", flaky)
    res = embed([folder], SpectralModel(), tmp_path / "out", progress=False)
    assert res.metadata["record"].nunique() == 3
    rep = res.manifest["skip_report"]
    assert rep["skipped"] == 6
    reasons = rep["reasons"]
    assert reasons["unexpected ZeroDivisionError"]["records"] == [str(folder / "good3.npz")]
    assert _reason(reasons, "no ECG or PPG column")["count"] == 2
    assert sum(v["count"] for v in reasons.values()) == 6
    assert json.loads((tmp_path / "out" / "embed_manifest.json").read_text())["skip_report"] == rep


def test_embed_stops_on_memory_error_and_ctrl_c(tmp_path, monkeypatch):
    folder = _mixed_folder(tmp_path / "mixed")
    import m2ae.index.sources as sources

    for stop in (MemoryError, KeyboardInterrupt):
        def boom(path, read_kwargs=None, stop=stop):
            raise stop()

        monkeypatch.setattr(sources, "load_path", boom)
        with pytest.raises(stop):
            embed([folder], SpectralModel(), None, progress=False)


def test_embed_cli_prints_the_report_on_a_pulsedb_corpus(tmp_path, capsys, monkeypatch):
    """The issue's case: `m2ae embed` on a PulseDB folder with a self-referencing cell and a short Age
    column runs to the end and prints what it left out."""
    embed_mod = sys.modules["m2ae.index.embed"]  # the package's `embed` names the function, not the module
    monkeypatch.setattr(embed_mod, "resolve_model", lambda model, device=None: SpectralModel())
    d = tmp_path / "corpus" / "PulseDB_MIMIC"
    d.mkdir(parents=True)
    _self_referencing_age(write_pulsedb_segments(d / "p000001.mat"))
    _short_age_column(write_pulsedb_segments(d / "p000002.mat"))
    _self_referencing_ecg(write_pulsedb_segments(d / "p000003.mat", n_seg=2))
    (d / "p000004.mat").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)  # an HDF5 signature, then nothing
    rc = main(["embed", str(tmp_path / "corpus"), "--out", str(tmp_path / "e"), "--json"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    summary = json.loads(out.out)
    assert summary["records"] == 7
    rep = summary["skip_report"]
    assert rep["skipped"] == 2 and set(rep["reasons"]) == {"ECG not readable", "not a readable MATLAB v7.3"}
    assert "Traceback" not in out.err
    rc = main(["embed", str(tmp_path / "corpus"), "--out", str(tmp_path / "e2")])
    text = capsys.readouterr().out
    assert rc == 0 and "skipped 2 record(s):" in text and "1 x ECG not readable: p000003.mat#1" in text


def test_index_build_manifest_carries_the_report(tmp_path):
    folder = _mixed_folder(tmp_path / "mixed")
    idx = build_index([folder], tmp_path / "idx", model=SpectralModel(), map_config=MapConfig(method="pca"),
                      progress=False)
    rep = idx.manifest["skip_report"]
    assert rep["skipped"] == 5 and _reason(rep["reasons"], "no ECG or PPG column")["count"] == 2


def test_train_corpus_store_reports_skips(tmp_path, caplog):
    from m2ae.train.config import TrainConfig
    from m2ae.train.corpus_data import corpus_store

    folder = _mixed_folder(tmp_path / "mixed")
    cfg = TrainConfig(data=[str(folder)], data_split="", progress=False)
    with caplog.at_level("WARNING", logger="m2ae.train"):
        store, card = corpus_store(cfg, tmp_path / "cache", min_len=1250)
    assert "training data: skipped 5 record(s):" in caplog.text  # said on stderr at the end of the corpus pass
    assert card["records"] == 4
    rep = card["skipped_records"]
    # short.npz (4 s) is under one window: left out as "shorter than 10 s"
    assert rep["skipped"] == 5 and rep["reasons"]["shorter than 10 s"]["count"] == 1
    assert _reason(rep["reasons"], "no ECG or PPG column")["records"] == [str(folder / "broken.csv"), str(folder / "broken2.csv")]


def test_split_message_keeps_reasons_apart_from_names():
    assert split_message("x/a.csv: no ECG or PPG column (columns: t)") == ("x/a.csv", "no ECG or PPG column")
    assert split_message("r001.mat#3: unexpected IndexError: list index") == ("r001.mat#3", "unexpected IndexError")
    assert split_message("no records found in /d (looked for: x)") == ("?", "no records found in /d")
    r = SkipReport(max_names=2)
    for i in range(5):
        r.add(f"f{i}.csv: file is empty")
    assert r.as_dict() == {"skipped": 5, "reasons": {"file is empty": {
        "count": 5, "records": ["f0.csv", "f1.csv"], "example": "f0.csv: file is empty"}}}
    assert r.lines()[1] == "  5 x file is empty: f0.csv, f1.csv, … 3 more"
