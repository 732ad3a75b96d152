"""Per-window signal quality in [0, 1]: beat-template agreement times simple sanity checks.

Template agreement is the Orphanidou et al. (2015) index that ``nk.ecg_quality`` / ``nk.ppg_quality``
compute with ``method="templatematch"``: each beat (half a median beat interval either side of its
peak, as neurokit2 segments it) is correlated with the record's template beat. neurokit2 builds a
pandas DataFrame per beat (about 3 s per hour of signal per channel), so the same index is computed
here on a strided [beats, samples] array; tests check it against neurokit2's.

The sanity checks catch what a template cannot: a flat or disconnected stretch, a clipped
(saturated) signal, an amplitude far from the record's typical one (motion), a window largely
filled in over short gaps, too few beats. Quality = template score × each sanity score.

Whether a channel carries anything at all is judged here too: ``flat_windows`` (a window that
spans only a few ADC steps: a disconnected sensor or a lead switched off) and ``shows_pulse``
(beats alike enough to be pulses, not noise) feed the pipeline's decision to drop a dead modality.
"""
from __future__ import annotations

import numpy as np

from .peaks import HR_MAX_BPM, HR_MIN_BPM

# Beat-template correlation of pure band-passed noise around detected "peaks" is ~0.3-0.6 (the
# peak alignment itself correlates), clean beats are > 0.9: map [R_FLOOR, R_FULL] linearly onto [0, 1].
R_FLOOR = 0.5
R_FULL = 1.0
# Agreement of three R-peak detectors (F1 of their beats, ``beats.py``): on the CinC 2015 train split's
# true VT alarm windows most read above 0.8 though the wide beats match no template; in band-passed
# noise the detectors pick different "beats".
AGREE_FLOOR = 0.6
AGREE_FULL = 0.95
AMPLITUDE_OK_RATIO = 3.0     # window scale within 3x of the record's median: no penalty
AMPLITUDE_BAD_RATIO = 10.0   # beyond 10x (or below 1/10): quality 0
CLIP_BAD_FRACTION = 0.1      # 10% of a window's samples stuck at the record's extreme value: quality 0
INTERPOLATED_BAD_FRACTION = 0.2  # 20% of a window filled in over short gaps: quality 0
MIN_BEATS_PER_WINDOW = 3
LOOKALIKES = 2               # window_local_template_score: a beat needs this many look-alikes
# A window whose 1-99 % range spans fewer than FLAT_STEPS quantisation steps of the raw signal
# carries no signal: on the CinC 2015 monitors a disconnected PPG or ECG spans 0-10 steps, a real
# one hundreds to thousands. Float data without visible steps fall back on FLAT_REL: 1000x below
# the record's loud windows (its 90th percentile range) is no signal either.
FLAT_STEPS = 10.0
FLAT_REL = 1e-3
ADC_MIN_LEVELS = 100  # below this many steps from min to max, the smallest gap is no ADC step
# A PPG shows a pulse when the beats detected in it look alike (window template score: in one
# window clearly, >= 0.75, or fairly, >= 0.5, in 3) OR when its peaks are locked to the ECG's
# R-peaks (>= 40 % of the R-peaks followed by a pulse peak within 40 ms of the record's median
# delay). Only a PPG that fails both is dropped. Measured with nothing dropped: 300 simulated noisy
# records (10-120 s, every rhythm, 100-500 Hz) fail the template rule in 3, all locked (>= 0.71);
# 60 ECG records with white, pink or brown noise for PPG lock 0.08-0.17 (chance), so noise fails.
# With both rules: no PPG dropped in 400 simulated noisy records (m2ae.simulate.simulate_record,
# seeds 0-399) nor in sample_data's simulated records; 59 of those 60 noise PPGs dropped.
# Heart-rate agreement with the ECG was no help: the detector's "rate" in band-passed noise agreed
# with the ECG's in up to 28 of 30 windows. The template rule alone is too strict for short noisy
# records, locking alone for real ICU records (bad ECG, arrhythmia: 133 of 432 CinC 2015 PPGs that
# pass the template rule lock below 0.4).
PULSE_CLEAR_MIN = 0.75
PULSE_FAIR_MIN = 0.5
PULSE_FAIR_WINDOWS = 3
PULSE_LOCK_S = 0.04
PULSE_LOCK_MIN = 0.4
PULSE_LOCK_MIN_BEATS = 5     # fewer R-peaks in the PPG's usable windows: locking cannot be told


def pulse_locked_fraction(delays_s: np.ndarray, r_peaks: np.ndarray, starts: np.ndarray, usable: np.ndarray,
                          width: int) -> float:
    """Share of the R-peaks in ``usable`` windows followed by a pulse peak at the record's usual delay.

    delays_s : per R-peak, delay in s to its pulse peak (``peaks.beat_delays_s``, NaN where none);
    r_peaks : R-peak sample indices; starts / width : windows in samples; usable : bool [N], the PPG
    windows with signal. "Usual" = within ``PULSE_LOCK_S`` (40 ms) of the median delay. A real
    pulse follows each heartbeat after a nearly constant delay; peaks found in noise fall anywhere
    in the beat interval (10-20 % of R-peaks by chance). NaN when fewer than 5 R-peaks or 3 delays
    are available (locking cannot be told).
    """
    r = np.asarray(r_peaks, dtype=np.int64)
    s0 = np.asarray(starts, dtype=np.int64)[np.asarray(usable, dtype=bool)]
    cover = np.zeros(len(r) + 1, dtype=np.int64)    # +1 where a usable window's R-peaks begin, -1 after them
    np.add.at(cover, np.searchsorted(r, s0, side="left"), 1)
    np.add.at(cover, np.searchsorted(r, s0 + width, side="left"), -1)
    inside = np.cumsum(cover)[:-1] > 0
    d = np.asarray(delays_s, dtype=np.float64)[inside]
    d = d[np.isfinite(d)]
    if inside.sum() < PULSE_LOCK_MIN_BEATS or len(d) < 3:
        return float("nan")
    return float(np.sum(np.abs(d - np.median(d)) <= PULSE_LOCK_S) / inside.sum())


def beats_alike(template_score: np.ndarray, usable: np.ndarray, hr_ppg_bpm: np.ndarray) -> bool:
    """Whether a PPG's detected beats look alike anywhere: template score >= 0.75 in one usable window
    with a pulse rate, or >= 0.5 in 3 (in all of them when the record has fewer windows).

    template_score : [N] window template scores; usable : bool [N], windows with signal;
    hr_ppg_bpm : [N] pulse rate in bpm (NaN where none).
    """
    ok = np.asarray(usable, dtype=bool) & np.isfinite(np.asarray(hr_ppg_bpm, dtype=np.float64))
    t = np.where(ok, np.asarray(template_score, dtype=np.float64), 0.0)
    fair_needed = min(PULSE_FAIR_WINDOWS, len(t))
    return bool(len(t) and ((t >= PULSE_CLEAR_MIN).any() or (t >= PULSE_FAIR_MIN).sum() >= fair_needed))


def shows_pulse(template_score: np.ndarray, usable: np.ndarray, hr_ppg_bpm: np.ndarray,
                locked_fraction: float = float("nan")) -> bool:
    """Whether a PPG shows a pulse anywhere (see ``PULSE_CLEAR_MIN``); False = drop it as dead.

    Arguments as ``beats_alike``, plus locked_fraction : ``pulse_locked_fraction`` (NaN without an
    ECG to compare with). A pulse shows when the beats look alike, or when they are locked to the
    R-peaks; without an ECG to tell, any usable window with a pulse rate keeps the PPG.
    """
    if beats_alike(template_score, usable, hr_ppg_bpm):
        return True
    if np.isfinite(locked_fraction):
        return bool(locked_fraction >= PULSE_LOCK_MIN)
    return bool((np.asarray(usable, dtype=bool) & np.isfinite(np.asarray(hr_ppg_bpm, dtype=np.float64))).any())


def beat_template_correlation(x: np.ndarray, peaks: np.ndarray, fs_hz: float) -> np.ndarray:
    """Pearson r of each beat with the median template beat (NaN for beats cut by the edges).

    x : one gap-free filtered segment; peaks : its sorted peak indices. Beats span ±half the median
    peak interval around each peak.
    """
    r = np.full(len(peaks), np.nan)
    if len(peaks) < 3:
        return r
    half = int(round(0.5 * np.median(np.diff(peaks))))
    half = int(np.clip(half, int(0.1 * fs_hz), int(1.5 * fs_hz)))
    inside = (peaks - half >= 0) & (peaks + half < len(x))
    if inside.sum() < 3:
        return r
    idx = peaks[inside][:, None] + np.arange(-half, half + 1)[None, :]
    beats = x[idx]                                                   # [n_beats, 2*half+1]
    beats = beats - beats.mean(axis=1, keepdims=True)
    template = np.median(beats, axis=0)
    template = template - template.mean()
    num = beats @ template
    den = np.sqrt((beats * beats).sum(axis=1) * (template @ template))
    r[inside] = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
    return r


def window_template_score(peaks: np.ndarray, beat_r: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """Per window: mean beat correlation r of the beats inside, mapped as (r - 0.5) / 0.5 onto [0, 1].

    Windows with fewer than 3 usable beats score 0 (nothing to judge the morphology by).
    """
    out = np.zeros(len(starts))
    lo = np.searchsorted(peaks, starts, side="left")
    hi = np.searchsorted(peaks, starts + width, side="left")
    for i, (a, b) in enumerate(zip(lo, hi)):
        r = beat_r[a:b]
        r = r[np.isfinite(r)]
        if len(r) >= MIN_BEATS_PER_WINDOW:
            out[i] = np.clip((np.mean(r) - R_FLOOR) / (R_FULL - R_FLOOR), 0.0, 1.0)
    return out


def agreement_score(window_agreement: np.ndarray) -> np.ndarray:
    """Detector agreement of a window's beats (mean F1, ``beats.window_agreement``) mapped onto [0, 1]:
    0 at ``AGREE_FLOOR`` or below, 1 at ``AGREE_FULL`` or above, linear between."""
    a = np.nan_to_num(np.asarray(window_agreement, dtype=np.float64), nan=0.0)
    return np.clip((a - AGREE_FLOOR) / (AGREE_FULL - AGREE_FLOOR), 0.0, 1.0)


def window_local_template_score(x: np.ndarray, peaks: np.ndarray, starts: np.ndarray, width: int,
                                fs_hz: float) -> np.ndarray:
    """Per window: do the window's beats come in families of look-alikes? Per beat (±half the window's
    median beat interval, 0.1-0.6 s) the Pearson r with its second most similar beat in the window;
    the mean is mapped like ``window_template_score``. A VT run's beats resemble each other though not
    the record's template, and so do the sinus beats around them; artefact "beats" resemble none.
    0 with fewer than 3 beats inside the signal."""
    x = np.asarray(x, dtype=np.float64)
    out = np.zeros(len(starts))
    lo = np.searchsorted(peaks, starts, side="left")
    hi = np.searchsorted(peaks, starts + width, side="left")
    for i, (a, b) in enumerate(zip(lo, hi)):
        p = np.asarray(peaks[a:b], dtype=np.int64)
        if len(p) < MIN_BEATS_PER_WINDOW:
            continue
        half = int(np.clip(round(0.5 * np.median(np.diff(p))), int(0.1 * fs_hz), int(0.6 * fs_hz)))
        p = p[(p - half >= 0) & (p + half < len(x))]
        if len(p) < MIN_BEATS_PER_WINDOW:
            continue
        beats = x[p[:, None] + np.arange(-half, half + 1)[None, :]]
        if not np.isfinite(beats).all():
            continue
        beats = beats - beats.mean(axis=1, keepdims=True)
        norm = np.sqrt((beats * beats).sum(axis=1))
        beats = beats / np.where(norm > 0, norm, 1.0)[:, None]
        gram = beats @ beats.T
        np.fill_diagonal(gram, -1.0)
        # each beat's second-best look-alike: a beat that resembles at least two others belongs to a
        # family (sinus beats, the VT run, the PVCs of a bigeminy); a noise "beat" resembles none
        r = np.sort(gram, axis=1)[:, -LOOKALIKES]
        out[i] = np.clip((np.mean(r) - R_FLOOR) / (R_FULL - R_FLOOR), 0.0, 1.0)
    return out


def amplitude_score(window_scale: np.ndarray, flat: np.ndarray | None = None) -> np.ndarray:
    """1 when a window's scale is within 3x of the record's median scale, 0 beyond 10x, log-linear between.

    ``flat`` (bool [N], see ``flat_windows``): windows without signal score 0 and stay out of the
    median, so a channel that is disconnected for most of the record is judged by its live windows
    (otherwise the flat majority sets the reference and every live window reads as 10x too large).
    """
    s = np.asarray(window_scale, dtype=np.float64)
    live = (s > 0) if flat is None else (s > 0) & ~np.asarray(flat, dtype=bool)
    ref = np.median(s[live]) if live.any() else 0.0
    if ref <= 0:
        return np.zeros(len(s))
    dev = np.abs(np.log(np.maximum(s, 1e-300) / ref))
    ramp = np.log(AMPLITUDE_BAD_RATIO) - np.log(AMPLITUDE_OK_RATIO)
    return np.where(live, np.clip((np.log(AMPLITUDE_BAD_RATIO) - dev) / ramp, 0.0, 1.0), 0.0)


def adc_step(x: np.ndarray, max_samples: int = 2_000_000) -> float:
    """Quantisation step of a raw signal (its units): the smallest gap between two distinct values.

    0.0 when it cannot be told: fewer than two distinct finite values, or a range of fewer than
    ``ADC_MIN_LEVELS`` steps (a two-level square wave's "step" is its whole swing). Only the first
    ``max_samples`` finite samples are looked at (sorting days of samples for one number is not
    worth it); float data without an ADC behind them give a tiny step, and ``flat_windows`` then
    relies on its relative rule.
    """
    x = np.asarray(x, dtype=np.float64)
    v = np.unique(x[np.isfinite(x)][:max_samples])
    if len(v) < 2:
        return 0.0
    step = float(np.diff(v).min())
    return step if (v[-1] - v[0]) >= ADC_MIN_LEVELS * step else 0.0


def flat_windows(windows: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Windows [N, W] that carry no signal: (flat bool [N], 1-99 % range [N] in the signal's units).

    Flat = the window's 1-99 % range spans fewer than ``FLAT_STEPS`` ADC steps (``step``, see
    ``adc_step``) or is ``FLAT_REL`` (1/1000) of the record's 90th-percentile window range. The
    percentiles ignore brief spikes, so a disconnected sensor with a few glitches still reads flat.
    """
    w = np.asarray(windows, dtype=np.float64)
    if len(w) == 0:
        return np.zeros(0, dtype=bool), np.zeros(0)
    lo, hi = np.percentile(w, [1.0, 99.0], axis=-1)
    rng = hi - lo
    floor = max(FLAT_STEPS * step, FLAT_REL * float(np.percentile(rng, 90)))
    return (rng <= floor) | ~np.isfinite(rng), rng


def clipped_mask(x: np.ndarray, fs_hz: float, min_run_s: float = 0.04) -> np.ndarray:
    """Samples of a raw signal stuck at its overall max or min for ≥ 40 ms (and ≥ 3 samples): saturation.

    The run length keeps a quantised signal whose trough merely repeats its lowest value for a few
    samples from reading as clipped.
    """
    x = np.asarray(x, dtype=np.float64)
    min_run = max(3, int(round(min_run_s * fs_hz)))
    finite = np.isfinite(x)
    if finite.sum() < min_run:
        return np.zeros(len(x), dtype=bool)
    hi, lo = np.nanmax(x), np.nanmin(x)
    if hi == lo:
        return finite.copy()
    at_edge = finite & ((x == hi) | (x == lo))
    if not at_edge.any():
        return at_edge
    edges = np.diff(np.concatenate(([0], at_edge.view(np.int8), [0])))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    mask = np.zeros(len(x), dtype=bool)
    for a, b in zip(starts, stops):
        if b - a >= min_run:
            mask[a:b] = True
    return mask


def clip_score(clip_fraction: np.ndarray) -> np.ndarray:
    """1 with no clipping, falling linearly to 0 at 10% of the window's samples clipped."""
    return np.clip(1.0 - np.asarray(clip_fraction) / CLIP_BAD_FRACTION, 0.0, 1.0)


def interpolated_score(interpolated_fraction: np.ndarray) -> np.ndarray:
    """1 with no filled-in samples, falling linearly to 0 at 20% of the window interpolated over gaps."""
    return np.clip(1.0 - np.asarray(interpolated_fraction) / INTERPOLATED_BAD_FRACTION, 0.0, 1.0)


def heart_rate_score(hr_bpm: np.ndarray) -> np.ndarray:
    """1 for a window whose heart rate is measurable and within 25–240 bpm, else 0."""
    hr = np.asarray(hr_bpm, dtype=np.float64)
    return (np.isfinite(hr) & (hr >= HR_MIN_BPM) & (hr <= HR_MAX_BPM)).astype(np.float64)
