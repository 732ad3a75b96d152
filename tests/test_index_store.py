"""FingerprintIndex: build / save / load / search, exclusions, filters, incremental add, model check,
bad inputs. Uses clustered random unit vectors (no model needed) and a PCA map (UMAP is covered in
test_index_map.py)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from m2ae.errors import InputError, ModelMismatchError
from m2ae.index import CompactWaveforms, FingerprintIndex, IndexConfig, MapConfig, open_index

DIM = 32
N_CLUSTERS = 4
WINDOWS_PER_SUBJECT = 5


def clustered(n_subjects: int, seed: int = 0):
    """Unit vectors: each subject's windows sit close together, subjects of a cluster share a label."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(N_CLUSTERS, DIM))
    rows, meta = [], []
    for s in range(n_subjects):
        c = s % N_CLUSTERS
        subject_centre = centres[c] + 0.35 * rng.normal(size=DIM)
        for w in range(WINDOWS_PER_SUBJECT):
            rows.append(subject_centre + 0.05 * rng.normal(size=DIM))
            meta.append({"record": f"rec{s:03d}", "subject_id": f"subj{s:03d}", "start_s": 10.0 * w,
                         "label_rhythm": ["NSR", "AF", "SB", "PVC"][c], "low_quality": w == 4})
    x = np.asarray(rows, np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True), pd.DataFrame(meta)


@pytest.fixture(scope="module")
def small():
    x, meta = clustered(24)
    rng = np.random.default_rng(1)
    waves = CompactWaveforms.from_windows(rng.normal(size=(len(x), 1250)).astype(np.float32), None)
    idx = FingerprintIndex.build(x, meta, "version-A", waveforms=waves, map_config=MapConfig(method="pca"))
    return x, meta, waves, idx


def test_search_returns_self_and_same_label_first(small):
    x, meta, _, idx = small
    hits = idx.search(x[:8], k=5)
    assert len(hits) == 8
    for i, h in enumerate(hits):
        assert list(h.columns[:3]) == ["id", "score", "rank"]
        assert h["id"].iloc[0] == i and h["score"].iloc[0] == pytest.approx(1.0, abs=1e-5)
        assert (np.diff(h["score"].to_numpy()) <= 1e-6).all()
        assert (h["label_rhythm"] == meta["label_rhythm"].iloc[i]).all()
        assert (h["subject_id"] == meta["subject_id"].iloc[i]).sum() == WINDOWS_PER_SUBJECT


def test_exact_search_matches_brute_force(small):
    x, _, _, idx = small
    q = x[[3, 50, 99]]
    expected = np.argsort(-(q @ x.T), axis=1)[:, :7]
    got = np.stack([h["id"].to_numpy() for h in idx.search(q, k=7)])
    assert (got == expected).all()


def test_exclusions_and_filters(small):
    x, meta, _, idx = small
    h = idx.search(x[0], k=10, exclude_subject="subj000")[0]
    assert len(h) == 10 and "subj000" not in set(h["subject_id"])
    h = idx.search(x[0], k=10, exclude_record="rec000")[0]
    assert "rec000" not in set(h["record"])
    # one exclusion per query
    hs = idx.search(x[[0, 5]], k=3, exclude_subject=["subj000", None])
    assert "subj000" not in set(hs[0]["subject_id"]) and hs[1]["subject_id"].iloc[0] == "subj001"
    h = idx.search(x[0], k=10, filters={"label_rhythm": "AF"})[0]
    assert len(h) == 10 and (h["label_rhythm"] == "AF").all()
    h = idx.search(x[0], k=10, filters={"label_rhythm": ["AF", "SB"], "low_quality": lambda s: ~s.astype(bool)})[0]
    assert set(h["label_rhythm"]) <= {"AF", "SB"} and not h["low_quality"].any()
    with pytest.raises(InputError, match="not in the index metadata"):
        idx.search(x[0], k=3, filters={"nope": 1})
    with pytest.raises(InputError, match="2 values for 1 query"):
        idx.search(x[0], k=3, exclude_subject=["a", "b"])


def test_k_larger_than_index_is_clamped_with_note(small):
    x, _, _, idx = small
    h = idx.search(x[0], k=500)[0]
    assert len(h) == idx.count and "more than the 120 windows" in h.attrs["note"]
    h = idx.search(x[0], k=500, exclude_subject="subj000")[0]
    assert len(h) == idx.count - WINDOWS_PER_SUBJECT
    assert "note" not in idx.search(x[0], k=5)[0].attrs
    for bad_k in (0, -3, 2.5):
        with pytest.raises(InputError, match="k must be a positive integer"):
            idx.search(x[0], k=bad_k)


def test_bad_query_fingerprints(small):
    _, _, _, idx = small
    with pytest.raises(InputError, match="16-d fingerprints but the index holds 32-d"):
        idx.search(np.ones(16, np.float32))
    with pytest.raises(InputError, match="NaN or inf"):
        idx.search(np.full(DIM, np.nan, np.float32))
    with pytest.raises(InputError, match="all-zero"):
        idx.search(np.zeros(DIM, np.float32))


def test_save_load_roundtrip_and_no_temp_left(small, tmp_path):
    x, meta, waves, idx = small
    out = tmp_path / "idx"
    idx.save(out, build_command="pytest build")
    idx.save(out)  # overwriting an existing index goes through the same temp-then-rename
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["count"] == len(x) and manifest["dims"] == DIM and manifest["model_version"] == "version-A"
    assert manifest["build_command"] == "pytest build" and manifest["index_type"] == "Flat"
    loaded = open_index(out, model="version-A")
    assert loaded.count == len(x)
    a, b = idx.search(x[:4], k=6), loaded.search(x[:4], k=6)
    for ha, hb in zip(a, b):
        assert (ha["id"].to_numpy() == hb["id"].to_numpy()).all()
    np.testing.assert_allclose(loaded.place(x[:5]), idx.place(x[:5]), atol=1e-5)
    w = loaded.waveforms([0, 7])
    assert w["ecg"].shape == (2, 625) and w["fs_hz"] == 62.5
    assert np.isnan(w["ppg"]).all()  # the windows had no PPG
    ref = waves.decode(np.array([0, 7]))["ecg"]
    np.testing.assert_allclose(w["ecg"], ref)


def test_waveform_quantisation_error_is_small():
    rng = np.random.default_rng(3)
    t = np.arange(1250) / 125.0
    # band-limited like contract windows (content below the 31 Hz of the 62.5 Hz thumbnails)
    x = (np.sin(2 * np.pi * 1.2 * t) + 0.4 * np.sin(2 * np.pi * 9.0 * t + 1.0))[None, :] * rng.uniform(0.5, 3, (4, 1))
    w = CompactWaveforms.from_windows(x.astype(np.float32), x.astype(np.float32))
    y = w.decode(np.arange(4))
    for mod in ("ecg", "ppg"):
        err = np.abs(y[mod] - x[:, ::2]).max(axis=1) / np.abs(x).max(axis=1)
        assert (err < 0.02).all(), err  # int8 step (0.4 %) + resampling filter ripple
    assert w.ecg.dtype == np.int8 and w.ecg.shape == (4, 625)


def test_incremental_add(small, tmp_path):
    x, meta, _, _ = small
    idx = FingerprintIndex.build(x[:60], meta.iloc[:60], "version-A",
                                 waveforms=CompactWaveforms.from_windows(None, np.ones((60, 1250), np.float32)),
                                 map_config=MapConfig(method="pca"))
    new_meta = meta.iloc[60:].copy()
    new_meta["label_extra"] = "new"
    ids = idx.add(x[60:], new_meta)
    assert ids.tolist() == list(range(60, len(x))) and idx.count == len(x)
    assert idx.metadata["id"].tolist() == list(range(len(x)))
    h = idx.search(x[100], k=1)[0]
    assert h["id"].iloc[0] == 100 and h["label_extra"].iloc[0] == "new"
    # the added windows were placed on the existing map next to their neighbours
    assert np.isfinite(idx.metadata[["map_x", "map_y"]].to_numpy()).all()
    assert np.isnan(idx.waveforms([100])["ecg"]).all() and np.isnan(idx.waveforms([100])["ppg"]).all()
    idx.save(tmp_path / "grown")
    again = open_index(tmp_path / "grown")
    assert again.count == len(x) and again.manifest["added"][0]["count"] == len(x) - 60
    with pytest.raises(InputError, match="metadata has 2 rows for 3"):
        idx.add(x[:3], meta.iloc[:2])


def test_model_version_mismatch_names_both(small, tmp_path):
    _, _, _, idx = small
    idx.save(tmp_path / "v")

    class OtherModel:
        version = "version-B"

    with pytest.raises(ModelMismatchError) as e:
        open_index(tmp_path / "v", model=OtherModel())
    msg = str(e.value)
    assert "version-A" in msg and "version-B" in msg and "\n" not in msg
    assert isinstance(e.value, InputError)


def test_missing_and_corrupt_index_folders(small, tmp_path):
    _, _, _, idx = small
    with pytest.raises(InputError, match="no such index folder"):
        open_index(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="manifest.json missing"):
        open_index(tmp_path / "empty")
    good = tmp_path / "good"
    idx.save(good)
    for name, damage, pattern in [
        ("manifest.json", b"{not json", "corrupt manifest"),
        ("fingerprints.faiss", b"garbage" * 10, "corrupt FAISS index"),
        ("metadata.parquet", b"PAR1 broken", "corrupt metadata"),
    ]:
        bad = tmp_path / f"bad-{name}"
        idx.save(bad)
        (bad / name).write_bytes(damage)
        with pytest.raises(InputError, match=pattern):
            open_index(bad)
    trunc = tmp_path / "trunc"
    idx.save(trunc)
    (trunc / "fingerprints.faiss").unlink()
    with pytest.raises(InputError, match="fingerprints.faiss missing"):
        open_index(trunc)


def test_ivf_index_for_large_sets_and_gpu_off():
    x, meta = clustered(60)
    cfg = IndexConfig(exact_below=100, nlist=8, nprobe=8, use_gpu=False)
    idx = FingerprintIndex.build(x, meta, "v", config=cfg, map_config=MapConfig(method="pca"))
    assert idx.manifest["index_type"] == "IVF8,Flat"
    h = idx.search(x[10], k=5, exclude_subject="subj002")[0]  # row 10 belongs to subj002
    assert len(h) == 5 and "subj002" not in set(h["subject_id"])
    assert (h["label_rhythm"] == meta["label_rhythm"].iloc[10]).all()


def test_factory_choice_by_size():
    cfg = IndexConfig()
    assert cfg.factory(50_000, 256)[0] == "Flat"
    spec, params = cfg.factory(1_000_000, 256)
    assert spec == "IVF4096,Flat" and params == "nprobe=16"
    assert IndexConfig(kind="ivfpq").factory(1_000_000, 256)[0] == "IVF4096,PQ32np,RFlat"


def test_search_windows_merges_per_window_hits(small):
    x, meta, _, idx = small
    rows = np.arange(5, 10)  # all windows of subj001
    merged = idx.search_windows(x[rows], k=8)
    assert len(merged) == 8 and merged["id"].is_unique
    assert set(merged["id"].head(5)) == set(rows)  # every window finds itself first (score 1)
    assert (np.diff(merged["score"].to_numpy()) <= 1e-6).all() and merged["rank"].tolist() == list(range(1, 9))
    assert set(merged["query_window"]) <= set(range(5))
    excl = idx.search_windows(x[rows], k=8, exclude_subject="subj001")
    assert "subj001" not in set(excl["subject_id"]) and (excl["label_rhythm"] == meta["label_rhythm"].iloc[5]).all()
