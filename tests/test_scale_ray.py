"""The Ray Data engine (m2ae.index.ray_engine): same fingerprints as the single-process path, a killed
worker retried, a restarted run redoing nothing, `m2ae index build --engine ray` building the same index.

One local Ray cluster of 2 CPUs serves the whole module (starting Ray costs seconds on busy cores).
The corpus is a tmp folder of 4 short simulated records written with m2ae.io writers (NPZ, CSV, WFDB)
plus one file that cannot be read, so the skipped-record report is exercised too.
"""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from m2ae.errors import InputError
from m2ae.index import MapConfig, embed
from m2ae.index.fingerprints import resolve_model
from m2ae.index.parquet_shards import read_shard_fingerprints, shard_info
from m2ae.index.ray_engine import (
    FAULT_ENV,
    RAY_MISSING,
    embed_on_ray,
    engine_of,
    require_ray,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def cluster():
    """A local 2-CPU Ray cluster for this module; shut down after it."""
    ray = pytest.importorskip("ray", reason="the scale extra (ray[data]) is not installed")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def model():
    return resolve_model(None)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A folder of 4 simulated records (30 s each, three formats) and one unreadable file."""
    from m2ae.io.writers import write_record
    from m2ae.simulate.record import cohort_subjects, simulate_record

    folder = tmp_path_factory.mktemp("corpus")
    for i, ((subject, seed), fmt) in enumerate(zip(cohort_subjects(4, seed=11), ["npz", "csv", "wfdb", "npz"])):
        rec = simulate_record(subject, duration_s=30.0, seed=seed)
        write_record(rec, folder / f"rec{i}", fmt=fmt)
    (folder / "broken.csv").write_text("this,is\nnot,a record\n")
    return folder


def _by_window(res):
    """{(record, window): fingerprint} of an embedding result."""
    keys = list(zip(res.metadata["record"].astype(str), res.metadata["window"].astype(int)))
    return dict(zip(keys, res.fingerprints))


@pytest.fixture(scope="module")
def plain(corpus, model):
    return embed([corpus], model, None, progress=False, num_workers=0)


def test_engine_choice_and_missing_extra(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert engine_of(None) == "local"
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")
    assert engine_of(None) == "ray"
    assert engine_of("local") == "local"
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the scale extra were not installed
    with pytest.raises(Exception, match="scale extra") as e:
        require_ray()
    assert str(e.value) == RAY_MISSING


def test_cli_engine_ray_without_ray_is_one_error_line(monkeypatch, capsys, corpus, tmp_path):
    from m2ae.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)
    assert main(["embed", str(corpus), "--out", str(tmp_path / "e"), "--engine", "ray"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ['error: --engine ray needs the scale extra: pip install -e ".[scale]"']


@pytest.fixture(scope="module")
def killed_run(cluster, corpus, model, tmp_path_factory):
    """One Ray run whose first fingerprint actor exits on its first batch (FAULT_ENV), shards kept."""
    import os

    out = tmp_path_factory.mktemp("killed") / "emb"
    marker = out.with_name("died-once")
    os.environ[FAULT_ENV] = str(marker)
    try:
        res = embed_on_ray([corpus], model, out, progress=False, num_workers=1, records_per_shard=2,
                           keep_shards=True)
    finally:
        del os.environ[FAULT_ENV]
    return res, out, marker


def test_ray_equals_single_process_even_when_a_worker_is_killed(killed_run, plain):
    res, out, marker = killed_run
    assert marker.exists()  # an actor really did die mid-run, and was restarted with its batch retried
    a, b = _by_window(plain), _by_window(res)
    assert set(a) == set(b) and len(a) == 12  # 4 records x 3 windows, same ids
    assert max(float(np.abs(a[k] - b[k]).max()) for k in a) < 1e-5
    # the unreadable file is reported, not fatal, exactly as on the plain path
    assert [s["input"] for s in res.skipped] == [s["input"] for s in plain.skipped]
    assert len(res.skipped) == 1 and "broken.csv" in res.skipped[0]["input"]
    m = json.loads((out / "embed_manifest.json").read_text())
    assert m["engine"] == "ray" and m["shards"] == 3 and m["shards_written"] == 3 and m["count"] == 12


def test_restarted_run_redoes_nothing(killed_run, corpus, model):
    first, out, _ = killed_run
    shard_dir = out.with_name("emb.ray-partial") / "shards"
    shards = sorted(shard_dir.glob("*.parquet"))
    assert first.manifest["shards_written"] == 3 and len(shards) == 3
    assert sum(shard_info(p)["rows"] for p in shards) == 12
    assert sum(len(shard_info(p)["skipped"]) for p in shards) == 1
    assert read_shard_fingerprints(shards[0]).shape[1] == 256
    # as after a crash: one shard is missing, a temporary file of an interrupted write is left over
    shards[1].unlink()
    (shard_dir / f".{shards[1].name}.tmp-999").write_bytes(b"PAR1 cut short")
    again = embed_on_ray([corpus], model, out, progress=False, num_workers=1, records_per_shard=2, keep_shards=True)
    assert again.manifest["shards_written"] == 1 and again.manifest["shards_reused"] == 2
    np.testing.assert_allclose(again.fingerprints, first.fingerprints, atol=1e-6)
    third = embed_on_ray([corpus], model, out, progress=False, num_workers=1, records_per_shard=2)
    assert third.manifest["shards_written"] == 0 and third.manifest["shards_reused"] == 3
    assert not shard_dir.parent.exists()  # the work folder goes once the output is written


def test_cli_index_build_engine_ray_builds_the_same_index(cluster, corpus, model, plain, tmp_path, capsys,
                                                          monkeypatch):
    from m2ae.cli import main
    from m2ae.index import FingerprintIndex, open_index

    # the familiarity reference (1,800 simulated windows) is the same step on either engine: left out here
    monkeypatch.setattr("m2ae.index.build.calibrate_familiarity", lambda idx, model: None)
    ray_dir = tmp_path / "ray"
    assert main(["index", "build", str(corpus), "--engine", "ray", "--out", str(ray_dir), "--map", "pca",
                 "--workers", "1", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["count"] == 12 and summary["skipped_inputs"][0]["input"].endswith("broken.csv")
    # the plain path's index over the same windows (what `m2ae index build` without --engine saves)
    p = FingerprintIndex.build(plain.fingerprints, plain.metadata, plain.model_version,
                               map_config=MapConfig(method="pca"))
    r = open_index(ray_dir, model=model)
    assert r.manifest["index_type"] == p.manifest["index_type"] == "Flat"
    assert r.manifest["streaming"]["shards"] >= 1  # filled from the Parquet shards, not gathered in memory
    pk = list(zip(p.metadata["record"], p.metadata["window"]))
    rk = list(zip(r.metadata["record"], r.metadata["window"]))
    assert sorted(pk) == sorted(rk)
    fp_p = np.stack([p.index.reconstruct(i) for i in range(len(pk))])
    fp_r = np.stack([r.index.reconstruct(rk.index(key)) for key in pk])  # the ray row of each plain row
    assert np.abs(fp_p - fp_r).max() < 1e-5
    # same neighbours (as (record, window)) for a sample of queries
    queries = fp_p[::3]
    for hp, hr in zip(p.search(queries, k=5), r.search(queries, k=5)):
        assert list(zip(hp["record"], hp["window"])) == list(zip(hr["record"], hr["window"]))
        np.testing.assert_allclose(hp["score"].to_numpy(), hr["score"].to_numpy(), atol=1e-5)


def test_streamed_ray_build_under_a_tiny_memory_budget_keeps_recall(cluster, model, tmp_path, monkeypatch):
    """`build_index(engine="ray")` fills the index from the shards; a budget below raw float32 vectors
    gives IVF-PQ re-ranked from float16 inside faiss: >= 0.95 recall@10 against the plain path's exact
    index over the same windows, and the map fitted on a 100-window sample, the rest placed through
    their neighbours, equals the plain build's with the same MapConfig."""
    from m2ae.index import FingerprintIndex, IndexConfig, build_index, open_index
    from m2ae.index.sources import simulated_items

    monkeypatch.setattr("m2ae.index.build.calibrate_familiarity", lambda idx, model: None)
    n_subjects, duration_s = 30, 100.0  # 300 windows: IVF-PQ needs 256 to learn its codebooks
    plain = embed(simulated_items(n_subjects, seed=3, duration_s=duration_s), model, None, progress=False,
                  num_workers=0)
    n = len(plain.fingerprints)
    cfg = IndexConfig(nlist=16, nprobe=8, memory_budget_mb=n * 800 / 2**20)  # IVF-Flat needs n·1032 bytes
    mcfg = MapConfig(method="pca", fit_sample=100)
    out = tmp_path / "idx"
    kwargs = dict(model=model, simulate=n_subjects, seed=3, duration_s=duration_s, engine="ray", num_workers=1,
                  map_config=mcfg, progress=False)
    # a budget that fits PQ codes only (below the 8-bit re-ranking copy) is refused in one line, shards kept ...
    with pytest.raises(InputError, match="memory budget of at least"):
        build_index([], out, config=IndexConfig(nlist=16, memory_budget_mb=n * 100 / 2**20), **kwargs)
    shards = list(tmp_path.glob(".idx.embed.ray-partial/shards/*.parquet"))
    assert sum(shard_info(s)["rows"] for s in shards) == n and not out.exists()
    # ... so the build started again with a workable budget embeds nothing again
    build_index([], out, config=cfg, **kwargs)
    r = open_index(out, model=model)
    assert r.manifest["index_type"] == "IVF16,PQ32np,Refine(SQfp16)" and r.count == n
    assert r.manifest["embedding"]["shards_reused"] == len(shards) and r.manifest["embedding"]["shards_written"] == 0
    assert r.manifest["streaming"]["refine"] == "SQfp16" and r.manifest["map"]["placed_by_neighbours"] == n - 100
    assert not list(tmp_path.glob(".*"))  # the embedding work folder and its shards are gone
    p = FingerprintIndex.build(plain.fingerprints, plain.metadata, plain.model_version, map_config=mcfg)
    assert p.manifest["index_type"] == "Flat"
    pk = list(zip(p.metadata["record"], p.metadata["window"]))
    assert pk == list(zip(r.metadata["record"], r.metadata["window"]))  # same ids: rows in the same order
    np.testing.assert_allclose(r.metadata[["map_x", "map_y"]].to_numpy(), p.metadata[["map_x", "map_y"]].to_numpy(),
                               atol=1e-4)
    queries = plain.fingerprints[::5]
    truth = [set(h["id"]) for h in p.search(queries, k=10)]
    found = [set(h["id"]) for h in r.search(queries, k=10)]
    recall = np.mean([len(f & t) / 10 for f, t in zip(found, truth)])
    print(f"recall@10 of the streamed IVF-PQ index vs the exact plain index: {recall:.3f} ({len(queries)} queries)")
    assert recall >= 0.95


def test_corpus_stream_in_waves_equals_single_process(cluster, model, tmp_path):
    """A corpus reader's records (read by the driver, shipped in waves) embed as on the plain path; an
    item that is not a Record is reported like the plain path reports it."""
    from m2ae.simulate.record import cohort_subjects, simulate_record

    recs = [simulate_record(s, duration_s=20.0, seed=seed) for s, seed in cohort_subjects(3, seed=5)]

    def stream():
        yield from recs[:2]
        yield "not a record"
        yield recs[2]

    plain = embed([stream()], model, None, progress=False, num_workers=0)
    res = embed_on_ray([stream()], model, tmp_path / "emb", progress=False, num_workers=1, records_per_shard=2,
                       shards_per_wave=1)  # 2 waves: records 1-2, then record 3
    a, b = _by_window(plain), _by_window(res)
    assert set(a) == set(b) and len(a) == 6
    assert max(float(np.abs(a[k] - b[k]).max()) for k in a) < 1e-5
    assert res.manifest["shards"] == 2 and res.manifest["skip_report"]["skipped"] == 1
    assert "not a Record" in res.skipped[0]["error"]


# --- the streaming index build from shards (no Ray needed) -------------------------------------------

def _clustered(n, dim, seed):
    """L2-normalised vectors around 40 centres (fingerprints cluster like this)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(40, dim))
    x = centres[rng.integers(0, 40, n)] + 0.35 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _write_shards(x, folder, per_shard):
    import pandas as pd

    from m2ae.index.parquet_shards import write_shard
    from m2ae.index.waveforms import CompactWaveforms

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for s in range(0, len(x), per_shard):
        part = x[s:s + per_shard]
        meta = pd.DataFrame({"record": [f"r{s}"] * len(part), "window": np.arange(len(part))})
        paths.append(write_shard(folder / f"shard-{s:07d}.parquet", part, meta,
                                 CompactWaveforms.from_windows(None, None, n=len(part)), ["k"] * len(part), [], "v"))
    return paths


def test_streamed_ivf_flat_equals_in_memory_build(tmp_path):
    from m2ae.index.faiss_index import IndexConfig, new_faiss_index
    from m2ae.index.streaming import index_from_shards

    x = _clustered(3000, 32, seed=1)
    shards = _write_shards(x, tmp_path / "shards", 700)
    cfg = IndexConfig(kind="ivf", nlist=16, nprobe=4, train_per_list=40)  # 640 of 3000 rows train
    built = index_from_shards(shards, cfg, vectors_out=tmp_path / "v.npy")
    ref, spec, _ = new_faiss_index(x, len(x), 32, cfg)
    ref.add(x)
    assert built.spec == spec == "IVF16,Flat" and built.count == 3000
    q = x[::97]
    _, ids_s = built.index.search(q, 10)
    _, ids_m = ref.search(q, 10)
    assert (ids_s == ids_m).all()  # same training sample, same rows, same order
    np.testing.assert_allclose(built.vectors()[123].astype(np.float32), x[123], atol=1e-3)


def test_streamed_ivfpq_under_budget_reranks_exactly(tmp_path):
    import faiss

    from m2ae.index.faiss_index import IndexConfig
    from m2ae.index.streaming import index_from_shards, rerank, streaming_config

    n, dim = 4000, 64
    budget = n * (dim * 4 + 8) // 4  # a quarter of what IVF-Flat needs
    cfg = streaming_config(n, dim, budget, IndexConfig(nlist=32, nprobe=8, exact_below=10))
    assert cfg.kind == "ivfpq" and cfg.pq_m == 32 and not cfg.refine_in_memory
    x = _clustered(n, dim, seed=2)
    built = index_from_shards(_write_shards(x, tmp_path / "shards", 900), cfg, budget,
                              vectors_out=tmp_path / "v.npy")
    assert "RFlat" not in built.spec and len(faiss.serialize_index(built.index)) < n * dim * 4 // 2
    q = x[::50] + 0.05 * np.random.default_rng(3).normal(size=(n // 50, dim)).astype(np.float32)
    truth = np.argsort(-(q / np.linalg.norm(q, axis=1, keepdims=True)) @ x.T, axis=1)[:, :10]
    _, pq_ids = built.index.search(np.ascontiguousarray(q / np.linalg.norm(q, axis=1, keepdims=True)), 10)
    scores, ids = rerank(built.index, built.vectors(), q, k=10, k_factor=16)

    def recall(found):
        return np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)])

    assert recall(ids) >= 0.95 and recall(ids) > recall(pq_ids)
    assert (np.diff(scores, axis=1) <= 1e-6).all()
