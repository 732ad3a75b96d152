"""Separating a T wave and the following P wave where they overlap (fast heart rates).

At rates above ~100 bpm the P wave starts before the previous T wave has ended, so neither the T end nor
the P onset reaches the isoelectric level and a tangent drawn on the sum lands inside the other wave.
Here the pair is fitted as two bell-shaped waves on a flat level (least squares; the T centre kept near
the T peak found on the beat, the P centre within the span before the next QRS); the neighbouring wave's
fit is then subtracted so that the classical tangent can be drawn on the wave of interest alone, with its
own shape. Times are samples of the median beat (500 Hz).
"""
from __future__ import annotations

import warnings

import numpy as np

from .qrs_bounds import FS_500_HZ as FS_HZ   # the median beat's rate
T_SIGMA_S = (0.015, 0.15)      # plausible widths (Gaussian sigma) of a T wave ...
P_SIGMA_S = (0.008, 0.05)      # ... and of a P wave
T_CENTRE_TOL_S = 0.03          # the fitted T centre stays this close to the T peak found on the beat


def _pair(t: np.ndarray, a1: float, c1: float, s1: float, a2: float, c2: float, s2: float, level: float
          ) -> np.ndarray:
    return np.asarray(a1 * np.exp(-0.5 * ((t - c1) / s1) ** 2) + a2 * np.exp(-0.5 * ((t - c2) / s2) ** 2)
                      + level)


def bell(params: np.ndarray, n: int) -> np.ndarray:
    """One fitted wave (amplitude, centre, sigma in samples) over samples 0..n-1."""
    a, c, s = params
    return np.asarray(a * np.exp(-0.5 * ((np.arange(n) - c) / s) ** 2))


def fit_t_and_p(y: np.ndarray, lo: int, hi: int, t_peak: float, p_between: tuple[float, float]
                ) -> tuple[np.ndarray, np.ndarray, float] | None:
    """Fit ``y[lo:hi]`` as a T wave peaking near ``t_peak`` plus a P wave centred within ``p_between``
    (samples) on a flat isoelectric level; returns the (amplitude, centre, sigma) of T and of P and the
    level, or None when the fit does not converge or the stretch is too short. The level is fitted too:
    at fast rates the beat dwells longest on its T and P waves, not on the short ST and PR segments that
    bound this stretch. Several P starting points are tried, since the least-squares surface has a local
    minimum wherever the P start lies on a T flank."""
    from scipy.optimize import OptimizeWarning, curve_fit

    p_lo, p_hi = max(p_between[0], lo + 1.0), min(p_between[1], hi - 1.0)
    if hi - lo < int(0.1 * FS_HZ) or p_hi <= p_lo or not lo <= t_peak < hi:
        return None
    t = np.arange(lo, hi, dtype=np.float64)
    seg = y[lo:hi]
    tol = T_CENTRE_TOL_S * FS_HZ
    t_lo, t_hi = (s * FS_HZ for s in T_SIGMA_S)
    q_lo, q_hi = (s * FS_HZ for s in P_SIGMA_S)
    bounds = ([-np.inf, t_peak - tol, t_lo, -np.inf, p_lo, q_lo, -np.inf],
              [np.inf, t_peak + tol, t_hi, np.inf, p_hi, q_hi, np.inf])
    best, best_sse = None, np.inf
    for c2 in np.linspace(p_lo, p_hi, 5)[1:-1] if p_hi - p_lo > 4 else [0.5 * (p_lo + p_hi)]:
        # started from the isoelectric level the beat gives (0): the stretch's ends may lie on a wave
        p0 = [float(y[int(t_peak)]), t_peak, 0.045 * FS_HZ, float(y[int(round(c2))]), c2, 0.02 * FS_HZ, 0.0]
        try:
            with warnings.catch_warnings():
                # the parameters' covariance is not used: a flat P (covariance not estimable) is no error
                warnings.simplefilter("ignore", OptimizeWarning)
                popt, _ = curve_fit(_pair, t, seg, p0=p0, bounds=bounds, maxfev=2000)
        except (RuntimeError, ValueError):
            continue
        sse = float(np.sum((seg - _pair(t, *popt)) ** 2))
        if sse < best_sse:
            best, best_sse = popt, sse
    if best is None:
        return None
    return np.asarray(best[:3]), np.asarray(best[3:6]), float(best[6])
