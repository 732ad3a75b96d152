"""The fingerprint map: a 2-D UMAP layout fitted once at build time, and a numba-free placement.

UMAP (umap-learn) is fitted when an index is built. A cold ``import umap`` costs ~30 s on 2 cores
(numba compiling) and a fitted reducer is hundreds of MB, so neither ships with the index and
nothing on the query/app path imports umap. A NEW fingerprint is placed where UMAP's own
``transform`` starts its optimisation: the membership-weighted mean of its k nearest neighbours'
map coordinates, with the neighbours found by FAISS and the weights computed the way UMAP computes
fuzzy-simplicial-set memberships (``smooth_knn_weights``). ``tests/test_index_map.py`` and
``bench/bench_embed.py`` measure how far this lands from ``umap.UMAP.transform``.

>>> coords = place_from_neighbours(scores, neighbour_ids, map_xy)   # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
import sys
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

SMOOTH_K_TOLERANCE = 1e-5  # UMAP's tolerance for the sigma binary search


@dataclass
class MapConfig:
    """How the 2-D map is fitted at build time.

    method : "umap" (default) or "pca" (used automatically below ``min_points_for_umap``, where a
        UMAP graph with ``n_neighbors`` neighbours is not meaningful).
    n_neighbors, min_dist, metric : UMAP parameters; euclidean on L2-normalised fingerprints orders
        neighbours exactly as cosine / inner product does, so the map and FAISS agree on neighbours.
    fit_sample : fit UMAP on at most this many fingerprints (uniform sample, seeded); the rest are
        placed with ``place_from_neighbours`` like any new fingerprint. UMAP on 20 k points takes
        about a minute on 2 cores; its memory grows with the sample, not with the index.
    place_k : neighbours used to place a fingerprint that was not in the UMAP fit.
    seed : UMAP ``random_state`` (makes the layout reproducible; UMAP then runs single-threaded).
    """

    method: str = "umap"
    n_neighbors: int = 15
    min_dist: float = 0.1
    metric: str = "euclidean"
    fit_sample: int = 20_000
    place_k: int = 15
    seed: int = 0
    min_points_for_umap: int = 60

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def smooth_knn_weights(distances: np.ndarray, local_connectivity: float = 0.0, n_iter: int = 64) -> np.ndarray:
    """UMAP's membership strengths of each point to its k nearest neighbours (numpy, no numba).

    distances : [n, k] ascending distances to the k neighbours (any non-negative unit).
    local_connectivity : 0 is what ``UMAP.transform`` uses for new points (``fit`` uses 1: the
        nearest neighbour gets weight 1).
    Returns [n, k] weights ``exp(-max(d - rho, 0) / sigma)`` with ``rho`` set by
    ``local_connectivity`` and ``sigma`` found by binary search so that the weights of neighbours
    2..k sum to ``log2(k)``, exactly as ``umap.umap_.smooth_knn_dist`` does.
    """
    d = np.asarray(distances, dtype=np.float64)
    n, k = d.shape
    target = np.log2(k)
    rho = np.zeros((n, 1))
    if local_connectivity > 0:
        index = int(np.floor(local_connectivity))
        frac = local_connectivity - index
        for i in range(n):
            nz = d[i][d[i] > 0]
            if len(nz) >= local_connectivity:
                rho[i] = nz[index - 1] if index > 0 else 0.0
                if index > 0 and frac > SMOOTH_K_TOLERANCE:
                    rho[i] += frac * (nz[index] - nz[index - 1])
                elif index == 0:
                    rho[i] = frac * nz[0]
            elif len(nz):
                rho[i] = nz.max()
    excess = np.maximum(d - rho, 0.0)  # [n, k]
    lo = np.zeros((n, 1))
    hi = np.full((n, 1), np.inf)
    mid = np.ones((n, 1))
    for _ in range(n_iter):
        psum = np.exp(-excess[:, 1:] / mid).sum(axis=1, keepdims=True)  # UMAP sums neighbours 2..k
        converged = np.abs(psum - target) < SMOOTH_K_TOLERANCE
        if converged.all():
            break
        too_big = (psum > target) & ~converged
        too_small = (psum <= target) & ~converged
        hi = np.where(too_big, mid, hi)
        lo = np.where(too_small, mid, lo)
        mid = np.where(too_big, (lo + hi) / 2.0,
                       np.where(too_small, np.where(np.isinf(hi), mid * 2.0, (lo + hi) / 2.0), mid))
    # UMAP keeps sigma away from 0 relative to the mean distance, so a cluster of ties stays finite.
    floor = np.where(rho > 0, d.mean(axis=1, keepdims=True), d.mean())
    mid = np.maximum(mid, 1e-3 * floor)
    return np.exp(-excess / mid)


def inner_product_to_distance(scores: np.ndarray) -> np.ndarray:
    """Euclidean distance between L2-normalised vectors from their inner product: sqrt(2 - 2 s)."""
    return np.sqrt(np.maximum(2.0 - 2.0 * np.asarray(scores, dtype=np.float64), 0.0))


def place_from_neighbours(scores: np.ndarray, neighbour_ids: np.ndarray, map_xy: np.ndarray) -> np.ndarray:
    """Map coordinates [n, 2] for fingerprints from their FAISS neighbours (ids -1 are ignored).

    scores : [n, k] inner products (descending) to the neighbours; neighbour_ids : [n, k] rows of
    ``map_xy`` [N, 2]. Each point lands at the UMAP-membership-weighted mean of its neighbours.
    """
    scores = np.asarray(scores, dtype=np.float64)
    ids = np.asarray(neighbour_ids)
    valid = ids >= 0
    dist = inner_product_to_distance(scores)
    dist = np.where(valid, dist, np.inf)
    order = np.argsort(dist, axis=1, kind="stable")
    dist = np.take_along_axis(dist, order, axis=1)
    ids = np.take_along_axis(ids, order, axis=1)
    valid = np.take_along_axis(valid, order, axis=1)
    w = np.zeros_like(dist)
    n_valid = valid.sum(axis=1)  # invalid neighbours were sorted to the end of each row
    for m in np.unique(n_valid):
        rows = n_valid == m
        if m == 1:
            w[rows, :1] = 1.0
        elif m > 1:
            w[np.ix_(rows, np.arange(m))] = smooth_knn_weights(dist[rows, :m])
    w_sum = w.sum(axis=1, keepdims=True)
    w = w / np.where(w_sum > 0, w_sum, 1.0)
    xy = map_xy[np.where(valid, ids, 0)]  # [n, k, 2]
    return (w[..., None] * xy).sum(axis=1).astype(np.float32)


def fit_map(fingerprints: np.ndarray, config: MapConfig | None = None, progress: bool = False):
    """Fit the 2-D map on L2-normalised fingerprints [N, D].

    Returns ``(map_xy [N, 2] float32, info dict for the manifest, reducer or None)``. UMAP is
    imported here only (build time). The reducer is returned so callers can compare placement
    against ``reducer.transform``; it is never saved.
    """
    import faiss

    cfg = config or MapConfig()
    x = np.ascontiguousarray(fingerprints, dtype=np.float32)
    n = len(x)
    method = cfg.method
    note = None
    if method == "umap" and n < cfg.min_points_for_umap:
        method = "pca"
        note = f"{n} fingerprints is too few for a UMAP graph (< {cfg.min_points_for_umap}): PCA map"
    rng = np.random.default_rng(cfg.seed)
    fit_rows = np.arange(n) if n <= cfg.fit_sample else np.sort(rng.choice(n, cfg.fit_sample, replace=False))
    reducer = None
    if method == "umap":
        import umap  # build time only: numba compile cost is paid here, never on the query path

        reducer = umap.UMAP(n_neighbors=cfg.n_neighbors, min_dist=cfg.min_dist, metric=cfg.metric,
                            random_state=cfg.seed, n_jobs=1, verbose=progress)
        # UMAP prints its progress to stdout, where `--json` output goes: send it to stderr.
        with contextlib.redirect_stdout(sys.stderr):
            fit_xy = reducer.fit_transform(x[fit_rows]).astype(np.float32)
    elif method == "pca":
        from sklearn.decomposition import PCA

        n_comp = min(2, n, x.shape[1])
        fit_xy = np.zeros((len(fit_rows), 2), np.float32)
        if n >= 2:
            fit_xy[:, :n_comp] = PCA(n_components=n_comp, random_state=cfg.seed).fit_transform(x[fit_rows])
    else:
        raise ValueError(f"unknown map method {cfg.method!r} (use 'umap' or 'pca')")

    map_xy = np.zeros((n, 2), np.float32)
    map_xy[fit_rows] = fit_xy
    rest = np.setdiff1d(np.arange(n), fit_rows)
    if len(rest):
        flat = faiss.IndexFlatIP(x.shape[1])
        flat.add(x[fit_rows])
        scores, nn = flat.search(x[rest], min(cfg.place_k, len(fit_rows)))
        map_xy[rest] = place_from_neighbours(scores, nn, fit_xy)
    info = {**cfg.to_dict(), "method": method, "fitted_on": int(len(fit_rows)), "placed_by_neighbours": int(len(rest))}
    if note:
        info["note"] = note
    return map_xy, info, reducer


def map_diameter(map_xy: np.ndarray) -> float:
    """Diagonal of the map's bounding box (the unit in which placement errors are reported)."""
    xy = np.asarray(map_xy, dtype=np.float64)
    if len(xy) == 0:
        return 0.0
    return float(np.linalg.norm(xy.max(axis=0) - xy.min(axis=0)))
