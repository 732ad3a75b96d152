"""Contract windows straight from the simulator: the model's pretraining and evaluation stream.

Each window is rendered 1 s longer on both sides (12 s), passed through the same numpy/scipy
signal contract real records go through (``m2ae.signal.filters``: resample to 125 Hz, band-pass,
PPG polarity, robust per-window normalisation) and cropped to the central 10 s, so the band-pass
has no edge transients inside the window. numpy + scipy only: runs on a bare GPU box.

>>> batch = simulate_windows(8, seed=0)
>>> batch["ecg"].shape, batch["ecg"].dtype, batch["rhythm"].shape
((8, 1250), dtype('float32'), (8,))
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..contract import ALL_RHYTHM_CODES, FS_HZ, WINDOW_S, WINDOW_SAMPLES
from ..errors import InputError
from ..signal.filters import ecg_bandpass, ppg_bandpass, ppg_fix_polarity, resample_to, robust_normalise
from .core import synthesize
from .subject import SubjectParams, sample_subject_table, subjects_to_table

MARGIN_S = 1.0        # rendered on each side of the window and cut off after filtering
CHUNK_WINDOWS = 256   # windows rendered per vectorised call (bounds memory; results don't depend on it)

LABEL_KEYS = ("subject_id", "rhythm", "hypertension", "age", "sex", "sbp_mmhg", "pat_ms", "hr_bpm", "n_pvc")


def _table_take(table: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[rows] for k, v in table.items()}


def _render_chunk(table: dict[str, np.ndarray], rng: np.random.Generator, fs_hz: float,
                  noise: bool) -> dict[str, np.ndarray]:
    span = (MARGIN_S, MARGIN_S + WINDOW_S)
    raw = synthesize(table, WINDOW_S + 2 * MARGIN_S, fs_hz, rng, noise=noise, label_span_s=span)
    ecg, ppg = raw["ecg"], raw["ppg"]
    if fs_hz != FS_HZ:
        ecg, ppg = resample_to(ecg, fs_hz, FS_HZ), resample_to(ppg, fs_hz, FS_HZ)
    ecg = ecg_bandpass(ecg, FS_HZ)
    ppg, flipped = ppg_fix_polarity(ppg_bandpass(ppg, FS_HZ), FS_HZ)
    a = int(round(MARGIN_S * FS_HZ))
    ecg, ecg_c, ecg_s = robust_normalise(ecg[:, a:a + WINDOW_SAMPLES])
    ppg, ppg_c, ppg_s = robust_normalise(ppg[:, a:a + WINDOW_SAMPLES])
    return {
        "ecg": ecg.astype(np.float32), "ppg": ppg.astype(np.float32),
        "ecg_center": ecg_c.astype(np.float32), "ecg_scale": ecg_s.astype(np.float32),
        "ppg_center": ppg_c.astype(np.float32), "ppg_scale": ppg_s.astype(np.float32),
        "ppg_flipped": np.asarray(flipped, dtype=bool),
        "hr_bpm": raw["hr_bpm"], "pat_ms": raw["pat_ms"], "n_pvc": raw["n_pvc"],
    }


def _labels(table: dict[str, np.ndarray], subject_index: np.ndarray) -> dict[str, np.ndarray]:
    rhythm = np.zeros(len(subject_index), dtype=np.int64)
    for i, code in enumerate(ALL_RHYTHM_CODES):
        rhythm[table["rhythm"] == code] = i
    return {
        "subject_id": subject_index.astype(np.int64),
        "rhythm": rhythm,
        "hypertension": table["hypertension"].astype(bool),
        "age": table["age"].astype(np.float32),
        "sex": (table["sex"] == "M").astype(np.int64),
        "sbp_mmhg": table["sbp_mmhg"].astype(np.float32),
    }


def render_windows(table: dict[str, np.ndarray], subject_index: np.ndarray, seed: int | np.random.SeedSequence,
                   fs_hz: float = FS_HZ,
                   noise: bool = True) -> dict[str, np.ndarray]:
    """Render one window per row of ``table`` (rows may repeat subjects); see :func:`simulate_windows`."""
    n = len(subject_index)
    chunks = []
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    for c, child in zip(range(0, n, CHUNK_WINDOWS), ss.spawn(max(1, -(-n // CHUNK_WINDOWS)))):
        rows = np.arange(c, min(n, c + CHUNK_WINDOWS))
        part = _table_take(table, rows)
        out = _render_chunk(part, np.random.default_rng(child), fs_hz, noise)
        out.update(_labels(part, subject_index[rows]))
        chunks.append(out)
    if not chunks:
        raise InputError("simulate_windows: n_windows must be >= 1")
    return {k: np.concatenate([ch[k] for ch in chunks]) for k in chunks[0]}


def simulate_windows(
    n_windows: int,
    seed: int = 0,
    subjects: list[SubjectParams] | None = None,
    n_subjects: int | None = None,
    fs_hz: float = FS_HZ,
    noise: bool = True,
) -> dict[str, np.ndarray]:
    """``n_windows`` paired 10-s windows already under the signal contract, with labels.

    Subjects: ``subjects`` (a list of :class:`SubjectParams`) or a pool of ``n_subjects`` drawn
    from ``seed``; windows pick subjects uniformly at random from that pool (each window gets its
    own heart-rate drift, breathing phase, noise and artefacts). With neither, every window is a new
    subject. ``fs_hz``: rate the signals are rendered at before the contract resamples them to
    125 Hz (e.g. 250 or 500 to include the resampling step).

    Returns a dict of arrays, one row per window:
        ecg, ppg : float32 [n, 1250], band-passed, PPG polarity fixed, robust-normalised.
        ecg_center, ecg_scale (mV), ppg_center, ppg_scale (au) : float32 [n]; units = z·scale + center.
        ppg_flipped : bool [n] (the polarity step flipped the rendered PPG; rare, noisy windows).
        subject_id : int64 [n], index into this call's subject pool (the list given, the drawn pool,
            or the window itself when each window is a new subject).
        rhythm : int64 [n], index into ``m2ae.contract.ALL_RHYTHM_CODES``.
        hypertension : bool [n]; age : float32 [n] years; sex : int64 [n] (1 male, 0 female);
        sbp_mmhg : float32 [n]; hr_bpm : float32 [n] from the R peaks inside the window;
        pat_ms : float32 [n] median R-peak → PPG systolic-peak delay of the window's normal beats;
        n_pvc : int64 [n] premature ventricular beats inside the window.
    Deterministic for (n_windows, seed, subjects/n_subjects, fs_hz).
    """
    n_windows = int(n_windows)
    if n_windows < 1:
        raise InputError(f"simulate_windows: n_windows must be >= 1, got {n_windows}")
    if not 20.0 <= float(fs_hz) <= 2000.0:
        raise InputError(f"simulate_windows: fs_hz {fs_hz} outside 20-2000 Hz")
    pool_seed, window_seed = np.random.SeedSequence(seed).spawn(2)
    pool_rng = np.random.default_rng(pool_seed)
    if subjects is not None:
        pool = subjects_to_table(list(subjects))
        subject_index = pool_rng.integers(0, len(subjects), n_windows)
    elif n_subjects is not None:
        if int(n_subjects) < 1:
            raise InputError(f"simulate_windows: n_subjects must be >= 1, got {n_subjects}")
        pool = sample_subject_table(pool_rng, int(n_subjects))
        subject_index = pool_rng.integers(0, int(n_subjects), n_windows)
    else:
        pool = sample_subject_table(pool_rng, n_windows)
        subject_index = np.arange(n_windows)
    return render_windows(_table_take(pool, subject_index), subject_index, window_seed, fs_hz, noise)


def window_stream(seed: int = 0, batch_size: int = 256, n_subjects: int | None = None,
                  fs_hz: float = FS_HZ, noise: bool = True) -> Iterator[dict[str, np.ndarray]]:
    """Endless batches from :func:`simulate_windows` (torch-free; wrap it in an IterableDataset).

    n_subjects : draw a fixed pool once and sample windows from it (``subject_id`` indexes the
        pool, stable across batches); None: every window is a new subject and ``subject_id`` counts
        up across the stream (unique). Batch ``b`` is deterministic for (seed, batch_size, b);
        give each DataLoader worker / DDP rank its own seed.

    >>> batch = next(window_stream(seed=1, batch_size=4))
    >>> batch["ppg"].shape
    (4, 1250)
    """
    if int(batch_size) < 1:
        raise InputError(f"window_stream: batch_size must be >= 1, got {batch_size}")
    pool_seed, stream_seed = np.random.SeedSequence(seed).spawn(2)
    pool = None
    n_pool = 0
    if n_subjects is not None:
        n_pool = int(n_subjects)
        if n_pool < 1:
            raise InputError(f"window_stream: n_subjects must be >= 1, got {n_subjects}")
        pool = sample_subject_table(np.random.default_rng(pool_seed), n_pool)
    b = 0
    while True:
        batch_seq = np.random.SeedSequence(stream_seed.entropy, spawn_key=(*stream_seed.spawn_key, b))
        draw_seq, render_seq = batch_seq.spawn(2)
        rng = np.random.default_rng(draw_seq)
        if pool is not None:
            subject_index = rng.integers(0, n_pool, batch_size)
            table = _table_take(pool, subject_index)
        else:
            subject_index = np.arange(b * batch_size, (b + 1) * batch_size)
            table = sample_subject_table(rng, batch_size, id_start=b * batch_size)
        yield render_windows(table, subject_index, render_seq, fs_hz, noise)
        b += 1
