"""Whether a median beat has a P wave at all (atrial fibrillation has none).

The P delineation of :mod:`.median_beat` finds *some* most prominent wave before the QRS; in atrial
fibrillation that is what the median leaves of the fibrillatory waves and of the previous beats' T waves,
not a P wave. A P wave is the same in every beat, since it is locked to the QRS it conducts: each beat's
P stretch correlates with the other beats', and the median beat's P stands clear of the median's own noise
there (the beat-to-beat spread / √N). An irregular RR, the hallmark of atrial fibrillation, asks for
stronger evidence, and for the wave to follow the QRS after it rather than the one before (a T wave).
"""
from __future__ import annotations

import numpy as np

from .filters import resample_to
from .median_beat import FS_500_HZ, MedianBeat, row_correlation
from .qrs_bounds import smooth

P_SPAN_S = 0.12          # the P wave read from its onset on (P waves last 80-120 ms)
QRS_GUARD_S = 0.01       # kept off the QRS onset, whose steep flank would correlate in every beat
MIN_BEAT_CORR = 0.5      # median single-beat correlation with the median beat's P wave, regular rhythm
MIN_SNR = 5.0            # median beat's P peak-to-peak over its noise (residual spread / √N), regular rhythm
IRREGULAR_RR = 0.1       # RR interquartile range (share of the median RR) above which the rhythm is irregular
IRREGULAR_CORR, IRREGULAR_SNR = 0.65, 8.0   # the bar when it is


def p_wave_evidence(mb: MedianBeat, p_onset: float, qrs_onset: float, rr_s: np.ndarray, ecg: np.ndarray,
                    r_peaks: np.ndarray, fs_hz: float) -> dict[str, float]:
    """Evidence for the P wave from ``p_onset`` to at most ``qrs_onset`` (samples of ``mb.beat``, 500 Hz)
    of the median beat ``mb`` built from ``ecg`` around ``r_peaks`` (samples at ``fs_hz``): ``corr``, the
    median Pearson r of each beat's P stretch with the median of the other beats' (every beat at
    ``r_peaks``); ``corr_prev``, the same with each stretch placed one median RR after the R peak before;
    ``snr``, the median beat's P peak-to-peak over the noise of the median there; ``rr_spread``, the
    interquartile range of the RR intervals ``rr_s`` (s) over their median. NaN where not computable
    (a P stretch under 30 ms)."""
    out = {"corr": float("nan"), "corr_prev": float("nan"), "snr": float("nan"), "rr_spread": _rr_spread(rr_s)}
    if not (np.isfinite(p_onset) and np.isfinite(qrs_onset)) or len(mb.beats) < 2:
        return out
    a = max(int(round(p_onset)), 0)
    b = min(a + int(P_SPAN_S * FS_500_HZ), int(qrs_onset) - int(QRS_GUARD_S * FS_500_HZ))
    if b - a < int(0.03 * FS_500_HZ):
        return out
    w = int(0.01 * FS_500_HZ)
    own, prev = _stretches(ecg, r_peaks, fs_hz, a - mb.r, b - a, mb.rr)
    out["corr"] = _loo_corr(own if len(own) >= 2 else mb.beats[:, a:b], w)
    if len(prev) >= 2:
        out["corr_prev"] = _loo_corr(prev, w)
    # noise of one beat from the differences between consecutive beats (free of the waves they share);
    # a median of N beats keeps 1.2533 / √N of it
    diff = np.diff(mb.beats[:, a:b], axis=0)
    sigma = 1.4826 * float(np.median(np.abs(diff))) / np.sqrt(2.0)
    noise = 1.2533 * sigma / np.sqrt(len(mb.beats))
    out["snr"] = float(np.ptp(smooth(mb.beat[a:b], w))) / max(noise, 1e-12)
    return out


def _stretches(ecg: np.ndarray, r_peaks: np.ndarray, fs_hz: float, offset: int, n: int, rr: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """The ``n``-sample stretches (500 Hz) ``offset`` samples from each R peak of ``ecg`` and the same
    stretches placed from the R peak before (one median RR ``rr`` on): every beat, not only those alike
    enough for the median beat, since in atrial fibrillation that choice keeps the beats whose previous T
    wave happens to fall at the same place, which then looks like a P wave locked to R."""
    up = resample_to(np.asarray(ecg, dtype=np.float64), fs_hz, FS_500_HZ)
    r = np.round(np.asarray(r_peaks, dtype=np.float64) * FS_500_HZ / fs_hz).astype(np.int64)
    # beats whose R peak before is in the list (not an ectopic beat left out): consecutive gaps only
    after = np.nonzero(np.diff(r) < 1.5 * rr)[0] + 1

    def cut(at: np.ndarray) -> np.ndarray:
        at = at[(at >= 0) & (at + n <= len(up))]
        return np.stack([up[s:s + n] for s in at]) if len(at) else np.empty((0, n))

    return cut(r + offset), cut(r[after - 1] + rr + offset)


def _loo_corr(rows: np.ndarray, width: int) -> float:
    """Median Pearson r of each (smoothed) row with the median of the other rows: against a median that
    includes it, a row of few correlates with itself."""
    x = np.stack([smooth(row, width) for row in rows])
    return float(np.median([row_correlation(x[i:i + 1], np.median(np.delete(x, i, 0), 0))[0]
                            for i in range(len(x))]))


def _rr_spread(rr_s: np.ndarray) -> float:
    rr = np.asarray(rr_s, dtype=np.float64)
    rr = rr[np.isfinite(rr)]
    if len(rr) < 3:
        return float("nan")
    q1, q2, q3 = np.percentile(rr, [25, 50, 75])
    return float((q3 - q1) / q2)


def has_p_wave(evidence: dict[str, float]) -> bool:
    """Whether ``evidence`` (:func:`p_wave_evidence`) shows a P wave: alike in the beats and clear of the
    noise; when the RR is irregular, by a higher bar and locked to the QRS after it (the beats agree
    better placed from their own R peak than from the one before, as a previous T wave would). An
    unknown RR spread counts as regular."""
    irregular = np.isfinite(evidence["rr_spread"]) and evidence["rr_spread"] > IRREGULAR_RR
    if not irregular:
        return bool(evidence["corr"] >= MIN_BEAT_CORR and evidence["snr"] >= MIN_SNR)
    locked = not evidence.get("corr_prev", np.nan) >= evidence["corr"]
    return bool(locked and evidence["corr"] >= IRREGULAR_CORR and evidence["snr"] >= IRREGULAR_SNR)
