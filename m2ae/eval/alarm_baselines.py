"""The classical baseline of the alarm evaluation: hand-made beat features of the last 20 s before the
alarm + logistic regression, fitted, chosen and thresholded exactly as the alarm heads are
(``m2ae.train.alarm``: C and joint vs per-type chosen by cross-validation over the train and validation
records, the chosen model refitted on all of them, the threshold set on the out-of-fold scores; test
split only scored).

Features per record (``alarm_features``; NaN where a channel is absent, imputed with the training
mean after z-scoring):

- ECG, from the R-peaks (neurokit2 ``ecg_peaks``, as ``m2ae.preprocess`` detects them): heart rate and
  HRV (``m2ae.eval.baselines.beat_features``: mean interval, SDNN, RMSSD, RR irregularity, largest
  jump, beat count), the longest pause, QRS width per beat (median, 90th percentile, share ≥ 120 ms;
  ``m2ae.eval.alarm_rules.qrs_widths_s`` — ``nk.ecg_delineate`` took 0.2–1.8 s per window here and left
  many beats without boundaries), beat morphology (median correlation of each beat with the window's
  template beat — neurokit2's "templatematch" quality index, ``m2ae.signal.quality``; share of beats
  below 0.5), Welch band powers of the last window, and the share of power in the 3–8 Hz VF band;
- PPG, from the pulse peaks (neurokit2 ``ppg_peaks``): the same HRV set, longest pause, pulse
  morphology and band powers;
- which channels the record has.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..contract import FS_HZ, WINDOW_S
from ..signal.quality import beat_template_correlation
from ..train.alarm_selection import CV_WORDS, DEV_SPLITS, Choice, Rows, choose_logistic, dev_folds
from ..train.alarm_data import AlarmRecord
from .alarm_rules import WIDE_QRS_S, longest_pause_s, qrs_widths_s, vf_band_share
from .baselines import HRV_NAMES, SPECTRAL_BANDS_HZ, beat_features, spectral_features

BACKS = (1, 0)  # the last two windows before the alarm, in time order
MORPHOLOGY_R = 0.5


def _morphology(windows: list[np.ndarray], peaks: list[np.ndarray]) -> tuple[float, float]:
    """(median beat-template correlation, share of beats below ``MORPHOLOGY_R``) over the windows."""
    r = np.concatenate([beat_template_correlation(np.asarray(x, np.float64), np.asarray(p, np.int64), FS_HZ)
                        for x, p in zip(windows, peaks)] or [np.zeros(0)])
    r = r[np.isfinite(r)]
    return (float(np.median(r)), float(np.mean(r < MORPHOLOGY_R))) if len(r) else (np.nan, np.nan)


def _channel_features(rec: AlarmRecord, modality: str, idx: list[int]) -> list[float]:
    """One channel's features over the cached windows ``idx`` (time order); NaN when it is absent."""
    # HRV, longest pause, morphology (2), band powers; ECG adds QRS width (3) and the VF band share
    n = len(HRV_NAMES) + 1 + 2 + len(SPECTRAL_BANDS_HZ) + (4 if modality == "ecg" else 0)
    x = getattr(rec, modality)
    if x is None or not idx:
        return [np.nan] * n
    lo, hi = float(rec.starts_s[idx[0]]), float(rec.starts_s[idx[-1]]) + WINDOW_S
    beats = rec.beats_in(modality, lo, hi)
    hrv = beat_features([np.round((beats - lo) * FS_HZ).astype(np.int64)])[0]
    wins = [x[i] for i in idx]
    peaks = [rec.window_peaks(modality, i) for i in idx]
    out = [*hrv, longest_pause_s(beats, lo, hi), *_morphology(wins, peaks), *spectral_features(wins[-1][None])[0]]
    if modality == "ecg":
        w = np.concatenate([qrs_widths_s(xx, p) for xx, p in zip(wins, peaks)])
        w = w[np.isfinite(w)]
        out += ([float(np.median(w)), float(np.percentile(w, 90)), float(np.mean(w >= WIDE_QRS_S))] if len(w)
                else [np.nan] * 3)
        out.append(max(vf_band_share(xx) for xx in wins))
    return out


def feature_names() -> list[str]:
    """Column names of ``alarm_features``."""
    def chan(m: str) -> list[str]:
        names = [f"{m}_{h}" for h in HRV_NAMES] + [f"{m}_longest_pause_s", f"{m}_beat_r_median",
                                                   f"{m}_beats_r_below_0.5"]
        names += [f"{m}_band_{lo:g}_{hi:g}_hz" for lo, hi in SPECTRAL_BANDS_HZ]
        if m == "ecg":
            names += ["ecg_qrs_median_s", "ecg_qrs_p90_s", "ecg_share_wide_qrs", "ecg_vf_band_share"]
        return names
    return chan("ecg") + chan("ppg") + ["has_ecg", "has_ppg"]


def alarm_features(records: Sequence[AlarmRecord]) -> np.ndarray:
    """[n_records, F] classical features of the last two windows before each alarm (``feature_names``)."""
    rows = []
    for r in records:
        idx = sorted(i for i in (r.back_index(b) for b in BACKS) if i is not None)
        rows.append(_channel_features(r, "ecg", idx) + _channel_features(r, "ppg", idx)
                    + [float(r.ecg is not None), float(r.ppg is not None)])
    return np.asarray(rows, np.float64)


def fit_classical(records: Sequence[AlarmRecord], features: np.ndarray | None = None
                  ) -> tuple[Choice, np.ndarray, dict[str, Any]]:
    """Logistic regression on ``alarm_features``, chosen by cross-validation over the train and validation
    records and refitted on all of them (``m2ae.train.alarm.choose_logistic``). Returns (choice — its
    ``oof`` holds the out-of-fold logit of every train and validation record —, per-record logit
    [n_records] of the refitted model for every record given, a description)."""
    X = alarm_features(records) if features is None else features
    # impute a missing channel with the mean of the records it learns from (0 after fit_logistic's z-score)
    split = np.array([r.split for r in records])
    y = np.array([r.true_alarm for r in records], bool)
    types = np.array([r.alarm_type for r in records])
    dev = np.flatnonzero(np.isin(split, DEV_SPLITS))
    mu = np.nanmean(X[dev], axis=0)
    mu = np.where(np.isfinite(mu), mu, 0.0)
    Xi = np.where(np.isfinite(X), X, mu)
    rows = Rows(Xi[dev], dev, np.zeros(len(dev), np.int64), np.full(len(dev), "features"))
    choice = choose_logistic(rows, rows, y, types, dev_folds(records))
    logit = np.full(len(records), np.nan)
    for t, m in choice.models.items():
        keep = types == t
        logit[keep] = m.logit(Xi[keep])
    desc = {"features": feature_names(), "scheme": choice.scheme,
            "C": {t: m.C for t, m in choice.models.items()}, "cv_auroc": choice.cv_auroc,
            "how": "sklearn LogisticRegression (class-balanced) on z-scored features, missing channels imputed "
                   "with the mean of the train and validation records; C and joint-vs-per-type chosen by "
                   + CV_WORDS}
    return choice, logit, desc
