"""Pure numpy/scipy building blocks of the signal contract (no neurokit2: this imports on a bare GPU box).

Every function works on the last axis, so a 1-D record and a batch ``[..., T]`` go through the same
code. Rates are in Hz, durations in s, lengths in samples.

>>> import numpy as np
>>> from m2ae.signal.filters import contract_windows_fast
>>> t = np.arange(0, 60, 1 / 250)
>>> ecg, ppg = np.sin(2 * np.pi * 1.2 * t), np.sin(2 * np.pi * 1.2 * t - 1.0)
>>> win = contract_windows_fast(ecg, ppg, fs_hz=250)
>>> win.ecg.shape, win.starts_s[:2].tolist()
((6, 1250), [0.0, 10.0])
"""
from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

import numpy as np
from scipy import signal as sps

from ..contract import ECG_BAND_HZ, FS_HZ, PPG_BAND_HZ, WINDOW_S
from ..record import Windows

__all__ = [
    "resample_to", "rational_ratio", "bandpass", "ecg_bandpass", "ppg_bandpass", "ppg_polarity_score",
    "ppg_fix_polarity", "ecg_looks_inverted", "robust_normalise", "cut_windows", "fill_gaps", "nonfinite_runs",
    "contract_windows_fast",
]

BANDPASS_ORDER = 3          # Butterworth order per edge; applied forward and backward (zero phase)
MAX_RATIO_DENOMINATOR = 1000  # rational approximation of fs_out / fs_in for polyphase resampling
SIGMA_PER_P1_P99 = 4.6527     # (q99 - q1) of a unit Gaussian: makes the robust scale read like a std
MIN_SCALE_REL = 0.05          # window scale floor, relative to the median scale of its batch/record


# --- resampling ---------------------------------------------------------------------------------

def rational_ratio(fs_in_hz: float, fs_out_hz: float = FS_HZ) -> tuple[int, int]:
    """(up, down) with up/down ≈ fs_out/fs_in, denominator ≤ 1000 (e.g. 360 → 125 Hz: (25, 72))."""
    frac = Fraction(float(fs_out_hz) / float(fs_in_hz)).limit_denominator(MAX_RATIO_DENOMINATOR)
    if frac.numerator == 0:
        raise ValueError(f"cannot resample {fs_in_hz} Hz to {fs_out_hz} Hz")
    return frac.numerator, frac.denominator


def resample_to(x: np.ndarray, fs_in_hz: float, fs_out_hz: float = FS_HZ) -> np.ndarray:
    """Polyphase resampling along the last axis (scipy.signal.resample_poly, anti-aliased).

    The ratio is approximated by a fraction with denominator ≤ 1000, so the effective output rate
    is ``fs_in * up / down`` (exact for all common rates: 100, 128, 250, 256, 360, 500, 1000 Hz).
    Output length is ``ceil(T * up / down)``. Input must be finite (see ``fill_gaps``).

    >>> resample_to(np.zeros(3600), 360).shape
    (1250,)
    """
    x = np.asarray(x, dtype=np.float64)
    up, down = rational_ratio(fs_in_hz, fs_out_hz)
    if up == down:
        return x.copy()
    # padtype="line" extends the signal linearly instead of with zeros: no edge dip on offset signals.
    return sps.resample_poly(x, up, down, axis=-1, padtype="line")


# --- band-pass filters --------------------------------------------------------------------------

@lru_cache(maxsize=64)
def _bandpass_sos(fs_hz: float, low_hz: float, high_hz: float, order: int) -> np.ndarray:
    nyquist = fs_hz / 2.0
    high_hz = min(high_hz, 0.9 * nyquist)  # a 40 Hz edge does not exist at 50 Hz sampling
    if high_hz <= low_hz:
        return sps.butter(order, low_hz, btype="highpass", fs=fs_hz, output="sos")
    return sps.butter(order, [low_hz, high_hz], btype="bandpass", fs=fs_hz, output="sos")


def bandpass(x: np.ndarray, fs_hz: float, low_hz: float, high_hz: float, order: int = BANDPASS_ORDER) -> np.ndarray:
    """Zero-phase Butterworth band-pass (scipy ``sosfiltfilt``) along the last axis.

    Zero phase matters: R-peak and pulse-peak times (and so the pulse-arrival delay) are not shifted.
    Signals shorter than the filter's padding are filtered with a shorter pad instead of failing.
    """
    x = np.asarray(x, dtype=np.float64)
    sos = _bandpass_sos(float(fs_hz), float(low_hz), float(high_hz), int(order))
    default_pad = 3 * (2 * len(sos) + 1 - min((sos[:, 2] == 0).sum(), (sos[:, 5] == 0).sum()))
    padlen = min(default_pad, x.shape[-1] - 1)
    return sps.sosfiltfilt(sos, x, axis=-1, padlen=max(padlen, 0))


def ecg_bandpass(x: np.ndarray, fs_hz: float) -> np.ndarray:
    """ECG band-pass 0.5–40 Hz (baseline wander and mains/EMG out), zero phase, along the last axis."""
    return bandpass(x, fs_hz, *ECG_BAND_HZ)


def ppg_bandpass(x: np.ndarray, fs_hz: float) -> np.ndarray:
    """PPG band-pass 0.5–8 Hz (respiratory baseline and high-frequency noise out), zero phase."""
    return bandpass(x, fs_hz, *PPG_BAND_HZ)


# --- PPG polarity -------------------------------------------------------------------------------

def ppg_polarity_score(x: np.ndarray, fs_hz: float) -> np.ndarray:
    """Evidence that PPG pulses point up, along the last axis: > 0 upright, < 0 inverted.

    Two cues, because each fails alone on real devices:
    - slope asymmetry: a pulse rises fast and falls slowly, so (q98 + q2) / (q98 - q2) of the first
      difference is > 0 (percentiles, not moments, so motion spikes do not decide it). Narrow,
      near-symmetric pulses (HeartPy's finger PPG, fast simulated beats) leave it near 0;
    - skewness: sharp systolic peaks over broad troughs skew the signal positive (Elgendi's
      skewness SQI). A strong dicrotic wave at high heart rate can push it slightly negative.
    Each cue is scaled by its typical magnitude on upright records (0.15 and 0.5) and the two added,
    so a confident cue outvotes an unsure one.
    """
    x = np.asarray(x, dtype=np.float64)
    d = np.diff(x, axis=-1)
    q_lo, q_hi = np.percentile(d, [2.0, 98.0], axis=-1)
    span = q_hi - q_lo
    slope = np.where(span > 0, (q_hi + q_lo) / np.where(span > 0, span, 1.0), 0.0)
    centred = x - x.mean(axis=-1, keepdims=True)
    sd = centred.std(axis=-1)
    skewness = np.where(sd > 0, (centred**3).mean(axis=-1) / np.where(sd > 0, sd, 1.0) ** 3, 0.0)
    return slope / 0.15 + skewness / 0.5


def ppg_fix_polarity(x: np.ndarray, fs_hz: float, window_s: float = WINDOW_S) -> tuple[np.ndarray, np.ndarray | bool]:
    """Flip inverted PPG so the systolic upstroke is positive. Returns (x_fixed, flipped).

    Each record (row of a batch ``[..., T]``) is decided on its own, by the median of its per-window
    scores (``window_s`` chunks) so artefacts in part of the record do not decide it. ``flipped`` is a
    bool for 1-D input, else a bool array of shape ``x.shape[:-1]``. Works best on band-passed PPG.
    """
    x = np.asarray(x, dtype=np.float64)
    n = int(round(window_s * fs_hz))
    n_chunks = x.shape[-1] // n
    if n_chunks >= 2:
        chunks = x[..., : n_chunks * n].reshape(x.shape[:-1] + (n_chunks, n))
        score = np.median(ppg_polarity_score(chunks, fs_hz), axis=-1)
    else:
        score = ppg_polarity_score(x, fs_hz)
    flipped = np.asarray(score < 0)
    if x.ndim == 1:
        return (-x if flipped else x.copy()), bool(flipped)
    return np.where(flipped[..., None], -x, x), flipped


def ecg_looks_inverted(x: np.ndarray, fs_hz: float, chunk_s: float = 2.0) -> bool:
    """True when the largest deflection of most 2-s chunks of a band-passed ECG is negative.

    The criterion of ``nk.ecg_invert`` (sign of the sample with the largest magnitude, median over
    2-s stretches that hold at least one beat), on non-overlapping chunks so it stays O(T). Lead II
    QRS complexes point up; mostly-downward ones suggest an inverted lead or swapped electrodes.
    """
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    n = int(round(chunk_s * fs_hz))
    if len(x) < n:
        return False
    chunks = x[: (len(x) // n) * n].reshape(-1, n)
    chunks = chunks - np.median(chunks, axis=1, keepdims=True)
    extreme = np.take_along_axis(chunks, np.abs(chunks).argmax(axis=1)[:, None], axis=1)[:, 0]
    return bool(np.median(extreme) < 0)


# --- normalisation and windows ------------------------------------------------------------------

def robust_normalise(x: np.ndarray, axis: int = -1, min_scale: float | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Robust z-score: (x - median) / scale, with scale = (q99 - q1) / 4.65 (a std for Gaussian data).

    Returns (z, center, scale) with ``x == z * scale + center`` (center/scale keep ``axis`` reduced).
    The 1–99 percentile range ignores short artefacts yet, unlike the IQR, still spans the QRS
    (an IQR scale puts R-peaks at ±15 and lets the model see little else). Flat windows do not
    explode: scale is floored at ``min_scale``, by default 5% of the median scale over the other axes
    (e.g. over the windows of one record) and never below 1e-12.

    >>> z, c, s = robust_normalise(np.array([[0.0, 1.0, 2.0, 3.0, 4.0]]))
    >>> np.allclose(z * s + c, [[0, 1, 2, 3, 4]])
    True
    """
    x = np.asarray(x, dtype=np.float64)
    center = np.median(x, axis=axis, keepdims=True)
    q_lo, q_hi = np.percentile(x, [1.0, 99.0], axis=axis, keepdims=True)
    scale = (q_hi - q_lo) / SIGMA_PER_P1_P99
    if min_scale is None:
        positive = scale[scale > 0]
        min_scale = MIN_SCALE_REL * float(np.median(positive)) if positive.size else 0.0
    scale = np.maximum(scale, max(float(min_scale), 1e-12))
    z = (x - center) / scale
    return z, np.squeeze(center, axis=axis), np.squeeze(scale, axis=axis)


def cut_windows(x: np.ndarray, fs_hz: float, window_s: float = WINDOW_S, stride_s: float = WINDOW_S
                ) -> tuple[np.ndarray, np.ndarray]:
    """Cut full windows along the last axis: ([..., N, W] windows, starts_s [N]).

    W = round(window_s * fs); a stride shorter than the window overlaps windows. A trailing part
    shorter than one window is left out; a signal shorter than one window gives N = 0. The windows
    are a copy (safe to modify). The stride is rounded to whole samples; ``starts_s`` gives the true starts.

    >>> w, s = cut_windows(np.arange(3000.0), 125, stride_s=5)
    >>> w.shape, s.tolist()
    ((3, 1250), [0.0, 5.0, 10.0])
    """
    x = np.asarray(x)
    width = int(round(window_s * fs_hz))
    step = int(round(stride_s * fs_hz))
    if width <= 0 or step <= 0:
        raise ValueError(f"window_s and stride_s must be positive (got {window_s}, {stride_s})")
    n_total = x.shape[-1]
    if n_total < width:
        return np.empty(x.shape[:-1] + (0, width), dtype=x.dtype), np.empty(0)
    view = np.lib.stride_tricks.sliding_window_view(x, width, axis=-1)[..., ::step, :]
    starts = np.arange(view.shape[-2]) * step / float(fs_hz)
    return np.ascontiguousarray(view), starts


# --- gaps -----------------------------------------------------------------------------------------

def nonfinite_runs(x: np.ndarray) -> list[tuple[int, int]]:
    """[(start, stop)) sample ranges where a 1-D signal is NaN or ±inf."""
    bad = ~np.isfinite(np.asarray(x, dtype=np.float64))
    if not bad.any():
        return []
    edges = np.diff(np.concatenate(([0], bad.view(np.int8), [0])))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def fill_gaps(x: np.ndarray, fs_hz: float, max_gap_s: float = 1.0, name: str = "signal"
              ) -> tuple[np.ndarray, list[tuple[int, int]], list[str]]:
    """Interpolate short NaN/inf gaps; split at long ones. Returns (x_filled, segments, notes).

    x_filled : float64 copy; gaps ≤ ``max_gap_s`` linearly interpolated, longer gaps (and gaps at the
        record's edges, which have no neighbour on one side) stay NaN.
    segments : [(start, stop)) sample ranges of the finite parts between long/edge gaps; windows must
        be cut inside one segment, never across.
    notes : human-readable lines (``"ECG: interpolated 2 gaps (0.30 s in total)"``) for the report.

    >>> y, seg, notes = fill_gaps(np.r_[1.0, np.nan, 3.0, np.full(300, np.nan), 5.0, 6.0], 125, name="PPG")
    >>> y[:3].tolist(), seg
    ([1.0, 2.0, 3.0], [(0, 3), (303, 305)])
    """
    y = np.array(x, dtype=np.float64)
    runs = nonfinite_runs(y)
    n = len(y)
    if not runs:
        return y, [(0, n)], []
    max_gap = int(round(max_gap_s * fs_hz))
    y[~np.isfinite(y)] = np.nan
    short: list[tuple[int, int]] = []
    long_: list[tuple[int, int]] = []
    for a, b in runs:
        (short if (b - a) <= max_gap and a > 0 and b < n else long_).append((a, b))
    if short:
        good = np.flatnonzero(np.isfinite(y))
        idx = np.concatenate([np.arange(a, b) for a, b in short])
        y[idx] = np.interp(idx, good, y[good])
    notes = []
    if short:
        total = sum(b - a for a, b in short) / fs_hz
        notes.append(f"{name}: interpolated {len(short)} gap{'s' if len(short) > 1 else ''} ≤ {max_gap_s:g} s "
                     f"({total:.2f} s in total)")
    segments, pos = [], 0
    for a, b in long_:
        if a > pos:
            segments.append((pos, a))
        pos = b
    if pos < n:
        segments.append((pos, n))
    if long_:
        total = sum(b - a for a, b in long_) / fs_hz
        notes.append(f"{name}: {len(long_)} gap{'s' if len(long_) > 1 else ''} > {max_gap_s:g} s or at an edge "
                     f"({total:.1f} s in total) left out; the record is split there")
    return y, segments, notes


# --- the fast path for training and bulk embedding ---------------------------------------------

def _interp_nonfinite_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    bad = ~np.isfinite(x)
    if not bad.any():
        return x, bad
    x = x.copy()
    t = np.arange(x.shape[-1])
    for row, row_bad in zip(x.reshape(-1, x.shape[-1]), bad.reshape(-1, x.shape[-1])):
        if row_bad.all():
            row[:] = 0.0
        elif row_bad.any():
            row[row_bad] = np.interp(t[row_bad], t[~row_bad], row[~row_bad])
    return x, bad


def contract_windows_fast(ecg: np.ndarray | None, ppg: np.ndarray | None, fs_hz: float, stride_s: float = WINDOW_S,
                          max_bad_fraction: float = 0.1) -> Windows:
    """Resample → band-pass → PPG polarity → 10-s windows → robust normalisation, vectorised.

    The training/bulk-embedding path: no quality, no peaks (``m2ae.preprocess`` adds those).
    ecg, ppg : [T] or a batch [B, T] of records of equal length at ``fs_hz`` (either may be None).
    Non-finite samples are linearly interpolated; windows with more than ``max_bad_fraction`` of
    them are dropped. Returns ``Windows`` with ecg/ppg float32 [N, 1250], starts_s [N],
    center/scale [N] and ``meta["record_index"]`` int64 [N] (row of the batch each window came from;
    windows are ordered record by record) and ``meta["ppg_flipped"]`` bool [B].
    """
    if ecg is None and ppg is None:
        raise ValueError("contract_windows_fast: neither ECG nor PPG given")
    arrays = {m: (None if a is None else np.asarray(a, dtype=np.float64)) for m, a in (("ecg", ecg), ("ppg", ppg))}
    ref = next(a for a in arrays.values() if a is not None)
    single = ref.ndim == 1
    out: dict = {}
    meta: dict = {}
    bad_windows = None
    for mod, x in arrays.items():
        if x is None:
            continue
        if x.shape != ref.shape:
            # ref is the ECG whenever both are given, so x is the PPG here
            raise ValueError(f"contract_windows_fast: ECG and PPG shapes differ ({ref.shape} vs {x.shape})")
        x2 = x[None, :] if single else x.reshape(-1, x.shape[-1])
        x2, bad = _interp_nonfinite_rows(x2)
        y = resample_to(x2, fs_hz, FS_HZ)
        y = ecg_bandpass(y, FS_HZ) if mod == "ecg" else ppg_bandpass(y, FS_HZ)
        if mod == "ppg":
            y, flipped = ppg_fix_polarity(y, FS_HZ)
            meta["ppg_flipped"] = flipped
        w, starts = cut_windows(y, FS_HZ, WINDOW_S, stride_s)          # [B, N, 1250]
        if bad.any():
            bad_rs = resample_to(bad.astype(np.float64), fs_hz, FS_HZ) > 0.5
            frac = cut_windows(bad_rs, FS_HZ, WINDOW_S, stride_s)[0].mean(axis=-1)  # [B, N]
            bw = frac > max_bad_fraction
            bad_windows = bw if bad_windows is None else (bad_windows | bw)
        out[mod] = w
    n_rec, n_win = next(iter(out.values())).shape[:2]
    keep = np.ones((n_rec, n_win), dtype=bool) if bad_windows is None else ~bad_windows
    record_index = np.broadcast_to(np.arange(n_rec)[:, None], (n_rec, n_win))[keep]
    starts_all = np.broadcast_to(starts[None, :], (n_rec, n_win))[keep]
    fields: dict = {}
    for mod, w in out.items():
        w = w[keep]                                                       # [N, 1250]
        if len(w):
            z, center, scale = robust_normalise(w, axis=-1)
        else:
            z, center, scale = w, np.empty(0), np.empty(0)
        fields[mod] = z.astype(np.float32)
        fields[f"{mod}_center"] = center.astype(np.float32)
        fields[f"{mod}_scale"] = scale.astype(np.float32)
    meta["record_index"] = record_index.astype(np.int64)
    if single and "ppg_flipped" in meta:
        meta["ppg_flipped"] = bool(np.asarray(meta["ppg_flipped"]).reshape(-1)[0])
    return Windows(ecg=fields.get("ecg"), ppg=fields.get("ppg"), starts_s=starts_all.astype(np.float64),
                   ecg_center=fields.get("ecg_center"), ecg_scale=fields.get("ecg_scale"),
                   ppg_center=fields.get("ppg_center"), ppg_scale=fields.get("ppg_scale"), meta=meta, fs=FS_HZ)

