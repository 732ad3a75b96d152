"""Embedding at scale (resume, skipping, flags), index build/query end to end, and the CLI."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from m2ae.errors import InputError, ModelMismatchError
from m2ae.index import build_index, embed, load_embeddings, open_index, query_record, simulated_items
from m2ae.index.sources import find_record_files
from m2ae.index.mapping import MapConfig
from m2ae.io import write_record
from m2ae.simulate import simulate_record, write_cohort

ROOT = Path(__file__).resolve().parents[1]
PCA = MapConfig(method="pca")


class SpectralModel:
    """Stand-in for the M2AE: a fixed random projection of each window's log spectrum, so windows of
    one subject land close together. Counts its calls; can be told to fail after some calls."""

    version = "stand-in-1"
    path = None

    def __init__(self, fail_after: int | None = None):
        self.calls = 0
        self.windows = 0
        self.fail_after = fail_after
        self.w = np.random.default_rng(0).normal(size=(128, 64)).astype(np.float32)

    def fingerprint(self, ecg=None, ppg=None, batch_size=256):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt("simulated interruption")
        self.calls += 1
        feats = []
        for x in (ecg, ppg):
            n = len(ecg if ecg is not None else ppg)
            spec = np.zeros((n, 64), np.float32) if x is None else np.log1p(np.abs(np.fft.rfft(x, axis=1))[:, 1:257])
            feats.append(spec.reshape(n, 64, -1).mean(axis=2) if x is not None else spec)
        self.windows += n
        fp = np.concatenate(feats, axis=1) @ self.w
        return (fp / np.linalg.norm(fp, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("cohort")
    write_cohort(8, out, seed=3, duration_s=30.0)  # 8 subjects x 3 windows, all five rhythms
    return out


def test_find_record_files_skips_sidecars(cohort):
    files = find_record_files(cohort)
    assert len(files) == 8 and all(f.suffix == ".npz" for f in files)  # labels.csv, manifest.json skipped


def test_embed_folder_writes_fingerprints_metadata_waveforms(cohort, tmp_path):
    model = SpectralModel()
    res = embed([cohort], model, tmp_path / "emb", batch_size=10, progress=False)
    assert res.fingerprints.shape == (24, 64) and res.fingerprints.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(res.fingerprints, axis=1), 1.0, atol=1e-5)
    meta = res.metadata
    for col in ("record", "subject_id", "start_s", "source", "modalities", "ecg_quality", "ppg_quality",
                "low_quality", "label_rhythm", "label_hypertension", "label_age"):
        assert col in meta.columns, col
    assert set(meta["modalities"]) == {"ecg+ppg"} and meta["subject_id"].nunique() == 8
    assert sorted(meta.groupby("record")["start_s"].apply(list).iloc[0]) == [0.0, 10.0, 20.0]
    assert model.calls < 8  # windows of several records share model batches
    back = load_embeddings(tmp_path / "emb")
    np.testing.assert_array_equal(back.fingerprints, res.fingerprints)
    assert back.manifest["model_version"] == "stand-in-1" and back.manifest["count"] == 24
    assert sorted(os.listdir(tmp_path)) == ["emb"]  # no partial/temp folders left


def test_embed_resumes_after_interruption(cohort, tmp_path):
    out = tmp_path / "emb"
    with pytest.raises(KeyboardInterrupt):
        embed([cohort], SpectralModel(fail_after=3), out, batch_size=3, progress=False)  # one record per batch
    assert not out.exists() and (tmp_path / "emb.partial").is_dir()
    again = SpectralModel()
    res = embed([cohort], again, out, batch_size=3, progress=False)
    assert again.windows == 24 - 3 * 3  # the three finished records were not embedded again
    full = embed([cohort], SpectralModel(), None, batch_size=3, progress=False)
    order = np.argsort(res.metadata["record"].to_numpy() + res.metadata["start_s"].astype(str).to_numpy())
    order_full = np.argsort(full.metadata["record"].to_numpy() + full.metadata["start_s"].astype(str).to_numpy())
    np.testing.assert_allclose(res.fingerprints[order], full.fingerprints[order_full], atol=1e-6)
    assert not (tmp_path / "emb.partial").exists()
    # a partial run by another model is refused rather than mixed
    with pytest.raises(KeyboardInterrupt):
        embed([cohort], SpectralModel(fail_after=1), tmp_path / "e2", batch_size=3, progress=False)
    other = SpectralModel()
    other.version = "stand-in-2"
    with pytest.raises(ModelMismatchError, match="stand-in-1.*stand-in-2"):
        embed([cohort], other, tmp_path / "e2", batch_size=3, progress=False)


def test_unusable_inputs_are_skipped_and_dead_channels_dropped(cohort, tmp_path):
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for f in sorted(cohort.glob("*.npz"))[:2]:
        (mixed / f.name).write_bytes(f.read_bytes())
    (mixed / "broken.csv").write_text("a,b\nx,y\n")
    short = simulate_record("NSR", duration_s=4.0, seed=1)
    write_record(short, mixed / "short.npz")
    noisy = simulate_record("NSR", duration_s=20.0, seed=2)
    noisy.ppg = np.random.default_rng(0).normal(size=noisy.ppg.shape)  # PPG replaced by white noise
    noisy.meta["record_id"] = "noisy"
    res = embed([mixed, noisy], SpectralModel(), None, progress=False)
    skipped = {Path(s["input"]).name: s["error"] for s in res.skipped}
    assert set(skipped) == {"broken.csv", "short.npz"}
    assert all("\n" not in e for e in skipped.values())
    # the white-noise PPG shows no pulse (beats alike nowhere, not locked to the R-peaks): the record
    # is kept on its ECG alone, the PPG dropped with the reason in every window's metadata
    noisy_rows = res.metadata[res.metadata["record"] == "noisy"]
    assert len(noisy_rows) == 2 and set(noisy_rows["modalities"]) == {"ecg"}
    assert noisy_rows["ppg_quality"].isna().all() and not noisy_rows["low_quality"].any()
    assert all(d.startswith("PPG: no pulse (") for d in noisy_rows["dropped"])
    assert (res.metadata.loc[res.metadata["record"] != "noisy", "dropped"] == "").all()


def test_bad_sources(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"no records found in .*empty \(looked for: record files"):
        embed([tmp_path / "empty"], SpectralModel(), None, progress=False)
    with pytest.raises(InputError, match="no such file or folder"):
        embed([tmp_path / "absent.csv"], SpectralModel(), None, progress=False)
    short = simulate_record("NSR", duration_s=4.0, seed=1)
    with pytest.raises(InputError, match="no usable window"):
        embed([short], SpectralModel(), tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()
    with pytest.raises(InputError, match="give record files/folders, --simulate N"):
        build_index([], tmp_path / "idx")


def test_records_and_corpus_streams_and_simulated_items():
    recs = [simulate_record(r, duration_s=20.0, seed=i) for i, r in enumerate(["AF", "SB"])]
    res = embed([recs[0], iter(recs[1:])], SpectralModel(), None, progress=False,
                extra_items=simulated_items(2, seed=5, duration_s=20.0))
    assert res.fingerprints.shape[0] == 8 and res.metadata["record"].nunique() == 4
    sim = res.metadata[res.metadata["source"] == "m2ae.simulate"]
    assert {"sim-s5-000000", "sim-s5-000001"} <= set(sim["subject_id"])  # seeds never share subject ids


def test_build_and_query_finds_own_subject_and_label(cohort, tmp_path):
    model = SpectralModel()
    idx = build_index([cohort], tmp_path / "idx", model=model, simulate=20, seed=9, duration_s=30.0,
                      map_config=PCA, progress=False, build_command="test build")
    assert idx.count == (8 + 20) * 3 and not (tmp_path / ".idx.embed").exists()
    m = idx.manifest
    assert m["model_version"] == "stand-in-1" and m["build_command"] == "test build" and len(m["data"]) == 2
    # sources ship as "<input folder>/<path inside it>", never as a path of the building machine
    real = idx.metadata.loc[idx.metadata["source"] != "m2ae.simulate", "source"]
    assert len(real) == 8 * 3 and real.str.startswith(cohort.name + "/").all(), real.unique()[:3]
    target = sorted(cohort.glob("*.npz"))[1]
    res = query_record(target, index=tmp_path / "idx", model=model, k=5)
    assert res["neighbours"][0]["subject_id"] == res["query"]["subject_id"]
    assert res["own_subject_neighbours"] == 3
    res_x = query_record(target, index=tmp_path / "idx", model=model, k=5, exclude_subject=True)
    assert res_x["own_subject_neighbours"] == 0 and len(res_x["neighbours"]) == 5
    res_m = query_record(target, index=tmp_path / "idx", model=model, k=5, mode="mean")
    assert res_m["mode"] == "mean" and len(res_m["neighbours"]) == 5
    assert res_m["query"]["map_xy"] == res["query"]["map_xy"]
    with pytest.raises(InputError, match="query mode"):
        query_record(target, index=tmp_path / "idx", model=model, mode="median")
    with pytest.raises(ModelMismatchError):
        other = SpectralModel()
        other.version = "other"
        query_record(target, index=tmp_path / "idx", model=other)
    short = simulate_record("NSR", duration_s=4.0, seed=1)
    with pytest.raises(InputError):
        query_record(short, index=tmp_path / "idx", model=model)


def _m2ae(*args, timeout=180):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    return subprocess.run([sys.executable, "-m", "m2ae.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=env)


def test_cli_build_query_and_errors(cohort, tmp_path):
    out = tmp_path / "cli-idx"
    r = _m2ae("index", "build", cohort, "--simulate", "12", "--seed", "4", "--duration", "30", "--map", "pca",
              "--out", out, "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["count"] == (8 + 12) * 3 and summary["index_type"] == "Flat"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["build_command"].startswith("m2ae index build") and "--simulate 12" in manifest["build_command"]
    target = sorted(cohort.glob("*.npz"))[2]
    r = _m2ae("index", "query", target, "--index", out, "--k", "5", "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert len(res["neighbours"]) == 5 and res["neighbours"][0]["subject_id"] == res["query"]["subject_id"]
    r = _m2ae("index", "query", target, "--index", out, "--k", "500", "--exclude-subject", "--json")
    assert r.returncode == 0 and "note: k=500 is more than" in r.stderr
    assert len(json.loads(r.stdout)["neighbours"]) == 57
    for args, pattern in [
        (("index", "query", target, "--index", tmp_path / "nope"), "no such index folder"),
        (("index", "query", tmp_path / "nothing.csv", "--index", out), "nothing.csv"),
    ]:
        r = _m2ae(*args)
        assert r.returncode == 2 and r.stderr.startswith("error: ") and pattern in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_labels_and_subject_from_a_nearby_manifest(tmp_path):
    from m2ae.index.sources import load_path, manifest_meta_for

    write_cohort(2, tmp_path / "csvs", seed=1, duration_s=20.0, fmt="csv")  # CSV cannot carry labels
    f = sorted((tmp_path / "csvs").glob("*.csv"))
    f = [p for p in f if p.name != "labels.csv"][0]
    extra = manifest_meta_for(f)
    assert extra["subject_id"] == f.stem and extra["labels"]["rhythm"] in ("NSR", "AF")
    rec = load_path(f)
    assert rec.meta["subject_id"] == f.stem and rec.meta["labels"]["rhythm"] == extra["labels"]["rhythm"]
    assert manifest_meta_for(tmp_path / "elsewhere.csv") == {}


def test_dataloader_workers_give_the_same_result(cohort):
    inline = embed([cohort], SpectralModel(), None, batch_size=7, num_workers=0, progress=False)
    workers = embed([cohort], SpectralModel(), None, batch_size=7, num_workers=2, progress=False)
    np.testing.assert_allclose(workers.fingerprints, inline.fingerprints, atol=1e-6)
    assert workers.metadata["record"].tolist() == inline.metadata["record"].tolist()


def test_cli_embed_in_process(cohort, tmp_path, capsys):
    from m2ae.cli import main

    assert main(["embed", str(cohort), "--out", str(tmp_path / "e"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["count"] == 24 and out["records"] == 8 and out["windows_per_s"] > 0
    assert (tmp_path / "e" / "fingerprints.npy").exists()
    assert main(["embed", str(tmp_path / "missing"), "--out", str(tmp_path / "f")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_cli_build_with_umap_keeps_json_clean(cohort, tmp_path, capsys):
    from m2ae.cli import main

    out = tmp_path / "u"
    assert main(["index", "build", str(cohort), "--simulate", "20", "--seed", "2", "--duration", "30",
                 "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)  # UMAP's progress went to stderr
    assert summary["map"] == "umap" and summary["count"] == (8 + 20) * 3
    idx = open_index(out)
    assert idx.manifest["map"]["fitted_on"] == idx.count and np.isfinite(idx.metadata["map_x"]).all()
