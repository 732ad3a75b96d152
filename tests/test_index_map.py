"""The 2-D map: UMAP fitted at build time; new fingerprints placed from FAISS neighbours without
umap/numba, measured against UMAP's own ``transform``."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from m2ae.index import FingerprintIndex, MapConfig
from m2ae.index.mapping import map_diameter, place_from_neighbours, smooth_knn_weights

DIM, N_CLUSTERS = 32, 6


def blobs(n: int, rng: np.random.Generator):
    centres = np.random.default_rng(0).normal(size=(N_CLUSTERS, DIM))
    label = rng.integers(0, N_CLUSTERS, n)
    x = centres[label] + 0.45 * rng.normal(size=(n, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), label


@pytest.fixture(scope="module")
def umap_index():
    rng = np.random.default_rng(1)
    x, label = blobs(1000, rng)
    meta = pd.DataFrame({"record": [f"r{i}" for i in range(len(x))], "subject_id": [f"s{i}" for i in range(len(x))],
                         "label_cluster": label})
    idx = FingerprintIndex.build(x, meta, "v", map_config=MapConfig(method="umap", seed=0), keep_reducer=True)
    return idx, label


def test_placement_matches_umap_transform(umap_index):
    idx, label = umap_index
    assert idx.manifest["map"]["method"] == "umap" and idx.manifest["map"]["fitted_on"] == 1000
    q, q_label = blobs(150, np.random.default_rng(2))
    by_umap = idx.reducer.transform(q)
    placed = idx.place(q)
    xy = idx.metadata[["map_x", "map_y"]].to_numpy()
    rel = np.linalg.norm(by_umap - placed, axis=1) / map_diameter(xy)
    # measured: median 1.7 % of the map's diameter, every point in the same cluster as UMAP put it
    assert np.median(rel) < 0.04, np.median(rel)
    centres = np.stack([xy[label == c].mean(axis=0) for c in range(N_CLUSTERS)])

    def nearest_cluster(p):
        return np.argmin(((p[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)

    assert (nearest_cluster(placed) == nearest_cluster(by_umap)).mean() >= 0.95
    assert (nearest_cluster(placed) == q_label).mean() >= 0.95


def test_smooth_knn_weights_match_umap():
    from umap.umap_ import smooth_knn_dist

    rng = np.random.default_rng(4)
    d = np.sort(rng.uniform(0.1, 1.5, size=(50, 15)), axis=1).astype(np.float32)
    for connectivity in (0.0, 1.0):  # 0: what UMAP.transform uses; 1: what UMAP.fit uses
        sigmas, rhos = smooth_knn_dist(d, k=15, local_connectivity=connectivity)
        expected = np.exp(-np.maximum(d - rhos[:, None], 0) / sigmas[:, None])
        got = smooth_knn_weights(d, local_connectivity=connectivity)
        np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4)


def test_place_from_neighbours_weights_and_missing_ids():
    rng = np.random.default_rng(6)
    near = rng.normal(0.0, 0.2, size=(10, 2))          # a cluster around (0, 0)
    far = rng.normal(0.0, 0.2, size=(5, 2)) + [20, 0]  # another around (20, 0)
    map_xy = np.concatenate([near, far]).astype(np.float32)
    scores = np.concatenate([rng.uniform(0.95, 0.99, 10), rng.uniform(0.3, 0.4, 5)])[None, :]
    ids = np.arange(15)[None, :]
    p = place_from_neighbours(scores, ids, map_xy)
    assert p.shape == (1, 2) and np.linalg.norm(p[0]) < 1.0  # pulled into the similar cluster
    # ids of -1 (fewer neighbours than asked) are ignored
    padded = place_from_neighbours(np.pad(scores, ((0, 0), (0, 3)), constant_values=-1.0),
                                   np.pad(ids, ((0, 0), (0, 3)), constant_values=-1), map_xy)
    np.testing.assert_allclose(padded, p, atol=0.05)
    even = place_from_neighbours(np.full((1, 4), 0.5), np.array([[10, 11, 12, 13]]),
                                 np.array([[0, 0]] * 10 + [[4, 0], [0, 4], [4, 4], [0, 0]], np.float32))
    np.testing.assert_allclose(even[0], [2.0, 2.0], atol=1e-5)  # equal similarity: plain mean


def test_small_sets_fall_back_to_pca():
    x, _ = blobs(30, np.random.default_rng(5))
    meta = pd.DataFrame({"record": ["r"] * 30, "subject_id": ["s"] * 30})
    idx = FingerprintIndex.build(x, meta, "v")
    assert idx.manifest["map"]["method"] == "pca" and "too few" in idx.manifest["map"]["note"]


def test_query_path_never_imports_umap_or_numba(umap_index, tmp_path):
    idx, _ = umap_index
    idx.save(tmp_path / "idx")
    code = textwrap.dedent(f"""
        import sys, numpy as np, m2ae
        idx = m2ae.open_index({str(tmp_path / 'idx')!r})
        q = np.random.default_rng(0).normal(size=(3, {DIM})).astype(np.float32)
        idx.search(q, k=5); xy = idx.place(q)
        assert xy.shape == (3, 2)
        bad = [m for m in ("umap", "numba", "pynndescent") if m in sys.modules]
        print("imported:", bad)
        sys.exit(1 if bad else 0)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
