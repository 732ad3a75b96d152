"""Familiarity scoring: is a window (or record) like the signals the model and its index know?

A window is scored by two tests against the index's reference (``familiarity.json``, made by
``m2ae.index.calibration`` from held-out windows: simulated subjects not in the index, and real CinC
2015 validation records searched with their own windows left out), per input mode (both / ecg / ppg):

- **neighbourhood**: the top-1 cosine similarity of its fingerprint to the indexed windows. Low =
  nothing like it in the index.
- **signal shape**: the Mahalanobis distance of six shape features per channel (``SHAPE_FEATURES``:
  spectral entropy, power above 15 Hz, beat periodicity, kurtosis, kurtosis and skew of the slope)
  from their Gaussian over the reference windows. High = not shaped like an ECG / PPG the model was
  trained on. This test exists because the first does not separate: since the index holds real ICU
  windows (artefacts included), white noise and a square wave reach top-1 similarities of 0.77–0.89,
  inside the range of held-out real and simulated windows (and so do sines, random walks, flat lines
  with spikes); their shape features lie 8–600 reference standard deviations out.

A window is **unfamiliar** when either test puts it outside the reference: top-1 below the lower
``FLAG_QUANTILE_PCT`` % quantile, or shape distance above the upper one; each quantile is taken per
source (simulated, real) and the more lenient of the two is kept, so at least ~95 % of each source's
held-out windows pass. A record is **unfamiliar** when the median over its windows is outside the same
quantiles of the reference's per-subject / per-record medians (far less noisy than one window).

Without the windows themselves (``ecg`` / ``ppg`` not given) only the neighbourhood test runs (``note``
says so). An index without a reference, or with one computed for another model version, reports
``calibrated: False`` with the reason (never an error). Scoring only: no files, no model run (a model
is asked for its version, nothing else).

>>> fam = familiarity(idx, model.fingerprint(ecg=w.ecg, ppg=w.ppg), "both", ecg=w.ecg, ppg=w.ppg)  # doctest: +SKIP
>>> fam["record_unfamiliar"], fam["share_unfamiliar"]                                          # doctest: +SKIP
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..contract import FS_HZ
from ..errors import InputError
from .fingerprints import model_version_of, normalise_fingerprints

MODES = ("both", "ecg", "ppg")
QUANTILES_PCT = (1, 2.5, 5, 10, 50)
FLAG_QUANTILE_PCT = 2.5      # per test and per source: outside this tail of held-out windows = unfamiliar
SHAPE_FEATURES = ("spectral_entropy", "power_above_15hz", "periodicity", "log_kurtosis", "log_slope_kurtosis",
                  "slope_skew")
HIGH_BAND_HZ = 15.0          # QRS energy lives above it (ECG); a PPG has next to none; white noise most
BEAT_LAGS_S = (0.3, 2.0)     # autocorrelation searched over beat intervals of 30-200 bpm
TINY = 1e-12


def mode_of(ecg: Any, ppg: Any) -> str:
    """The input mode name ("both", "ecg", "ppg") for the modalities given."""
    if ecg is not None and ppg is not None:
        return "both"
    if ecg is not None:
        return "ecg"
    if ppg is not None:
        return "ppg"
    raise InputError("familiarity: no ECG and no PPG given")


def top1_similarity(index: Any, fp: np.ndarray, exclude_subject: Any = None) -> np.ndarray:
    """Cosine similarity [n] of each fingerprint [n, D] to its nearest indexed window (-1 when none may be returned)."""
    hits = index.search(fp, k=1, exclude_subject=exclude_subject)
    return np.array([float(h["score"].iloc[0]) if len(h) else -1.0 for h in hits], dtype=np.float64)


def channel_shape(x: np.ndarray) -> np.ndarray:
    """The ``SHAPE_FEATURES`` [n, 6] of contract windows [n, 1250] of one channel (scale-free: a window
    and a multiple of it score alike; a flat window gets extreme values rather than NaN)."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    x = np.nan_to_num(x - np.nanmean(x, axis=1, keepdims=True))
    n = x.shape[1]
    power = np.abs(np.fft.rfft(x, axis=1)) ** 2
    share = power / np.maximum(power.sum(axis=1, keepdims=True), TINY)
    entropy = -(share * np.log(share + TINY)).sum(axis=1) / np.log(share.shape[1])
    high = share[:, np.fft.rfftfreq(n, 1.0 / FS_HZ) > HIGH_BAND_HZ].sum(axis=1)
    acf = np.fft.irfft(np.abs(np.fft.rfft(x, 2 * n, axis=1)) ** 2, axis=1)[:, :n]
    acf /= np.maximum(acf[:, :1], TINY)
    periodicity = acf[:, int(BEAT_LAGS_S[0] * FS_HZ):int(BEAT_LAGS_S[1] * FS_HZ)].max(axis=1)

    def moments(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        v = v - v.mean(axis=1, keepdims=True)
        m2 = np.maximum((v ** 2).mean(axis=1), TINY)
        return (v ** 4).mean(axis=1) / m2 ** 2, (v ** 3).mean(axis=1) / m2 ** 1.5

    kurt, _ = moments(x)
    slope_kurt, slope_skew = moments(np.diff(x, axis=1))
    return np.stack([entropy, high, periodicity, np.log(kurt + 1e-3), np.log(slope_kurt + 1e-3), slope_skew], axis=1)


def window_shape(ecg: Any, ppg: Any) -> np.ndarray:
    """Shape features of a mode's windows: ECG's then PPG's, of the channels given → [n, 6 or 12]."""
    parts = [channel_shape(x) for x in (ecg, ppg) if x is not None]
    if not parts:
        raise InputError("familiarity: no ECG and no PPG given")
    return np.concatenate(parts, axis=1)


def fit_shape(features: np.ndarray) -> dict[str, Any]:
    """Gaussian of reference shape features [n, F]: {"features", "mean", "precision"} (JSON-able)."""
    f = np.asarray(features, dtype=np.float64)
    cov = np.cov(f, rowvar=False)
    cov += np.eye(len(cov)) * 1e-6 * max(float(np.trace(cov)) / len(cov), TINY)  # a constant feature stays invertible
    return {"mean": [round(float(v), 6) for v in f.mean(axis=0)],
            "precision": [[round(float(v), 6) for v in row] for row in np.linalg.inv(cov)]}


def shape_distance(features: np.ndarray, shape: dict[str, Any]) -> np.ndarray:
    """Mahalanobis distance [n] of shape features [n, F] from the reference Gaussian ``shape``."""
    d = np.asarray(features, dtype=np.float64) - np.asarray(shape["mean"])
    return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", d, np.asarray(shape["precision"]), d), 0.0))


def _quantiles(values: np.ndarray) -> dict[str, float]:
    return {f"{q:g}": round(float(np.percentile(values, q)), 4) for q in QUANTILES_PCT}


def _medians(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    return np.array([np.median(values[groups == g]) for g in np.unique(groups)])


def reference_mode(top1: np.ndarray, groups: np.ndarray, sources: np.ndarray,
                   shape: np.ndarray | None = None) -> dict[str, Any]:
    """One input mode's reference from held-out windows: their top-1 similarities [n], groups [n]
    (subject / record), sources [n] ("simulated" / "real") and shape features [n, F] (None: no shape
    test). Thresholds per source at ``FLAG_QUANTILE_PCT`` %, the more lenient kept (see the module
    docstring); quantiles and sorted top-1s kept for the percentile a query is reported at."""
    s, groups, sources = np.asarray(top1, np.float64), np.asarray(groups).astype(str), np.asarray(sources).astype(str)
    q = FLAG_QUANTILE_PCT
    names = sorted(set(sources))
    out: dict[str, Any] = {
        "window_quantiles": _quantiles(s), "subject_median_quantiles": _quantiles(_medians(s, groups)),
        "window_top1_sorted": [round(float(v), 4) for v in np.sort(s)],
        "top1_threshold": min(float(np.percentile(s[sources == n], q)) for n in names),
        "record_top1_threshold": min(float(np.percentile(_medians(s[sources == n], groups[sources == n]), q))
                                     for n in names),
        "sources": {n: {"windows": int((sources == n).sum()), "groups": int(len(np.unique(groups[sources == n])))}
                    for n in names}}
    if shape is not None:
        model = fit_shape(shape)
        dist = shape_distance(shape, model)
        out["shape"] = {
            "features": list(SHAPE_FEATURES), **model, "window_quantiles": _quantiles(dist),
            "threshold": max(float(np.percentile(dist[sources == n], 100 - q)) for n in names),
            "record_threshold": max(float(np.percentile(_medians(dist[sources == n], groups[sources == n]), 100 - q))
                                    for n in names)}
    return out


def reference_status(index: Any, model: Any = None) -> tuple[dict | None, str | None]:
    """(reference, None) when the index carries a reference made by its model (and ``model``'s)
    version, else (None, why it is "not calibrated")."""
    ref = getattr(index, "familiarity_reference", None)
    if ref is None:
        return None, getattr(index, "familiarity_note", None) or "the index has no familiarity calibration"
    version = model_version_of(model) or index.model_version
    if ref.get("model_version") != version or (index.model_version and ref.get("model_version") != index.model_version):
        return None, (f"familiarity calibrated for model version {ref.get('model_version')}, "
                      f"not {version}; run `m2ae index calibrate`")
    return ref, None


def familiarity(index: Any, fp: Any, mode: str, model: Any = None, exclude_subject: Any = None,
                ecg: Any = None, ppg: Any = None) -> dict[str, Any]:
    """How familiar each window fingerprint [n, D] (or [D]) is, against the index's reference.

    mode : the input mode the fingerprints were made with ("both", "ecg", "ppg").
    model : the model (or its version string) that made them; checked against the reference.
    exclude_subject : a subject whose windows are not searched (the query's own: the reference's
        windows were searched without their own subject / record too).
    ecg, ppg : the contract windows [n, 1250] the fingerprints were made from (those of ``mode``);
        without them the signal-shape test is skipped. Returns ``score_windows``' dict.
    """
    if mode not in MODES:
        raise InputError(f"familiarity mode must be one of {', '.join(MODES)}, got {mode!r}")
    x = normalise_fingerprints(fp, index.dims, "query fingerprint")
    ref, why = reference_status(index, model)
    shape = None
    if ecg is not None or ppg is not None:
        shape = window_shape(ecg if mode != "ppg" else None, ppg if mode != "ecg" else None)
        if len(shape) != len(x):
            raise InputError(f"familiarity: {len(shape)} windows but {len(x)} fingerprints")
    return score_windows(top1_similarity(index, x, exclude_subject=exclude_subject), mode, ref, index.count, why,
                         shape=shape)


def score_windows(top1: np.ndarray, mode: str, ref: dict[str, Any] | None, index_count: int,
                  why: str | None = None, shape: np.ndarray | None = None) -> dict[str, Any]:
    """Verdicts for a record's windows (input mode ``mode``) against a reference.

    top1 : [n] top-1 similarities; shape : [n, F] shape features (None: that test is skipped).
    ref : the reference (None: not calibrated, ``why`` says why).
    Returns {"calibrated", "note", "mode", "n_windows", "index_count", "top1" [n], "median_top1", and when
    calibrated: "percentile" [n] (share of reference windows with a lower top-1, %), "threshold" /
    "record_threshold" (top-1 limits for a window / a record's median), "shape_distance" [n],
    "median_shape_distance", "shape_threshold", "record_shape_threshold" (None without the shape
    test), "unfamiliar" [n] bools, "share_unfamiliar", "record_unfamiliar", "record_reasons" [str]}.
    """
    s = np.asarray(top1, dtype=np.float64)
    out: dict[str, Any] = {"mode": mode, "n_windows": int(len(s)), "index_count": index_count,
                           "top1": [round(float(v), 4) for v in s], "median_top1": round(float(np.median(s)), 4)}
    if ref is None or mode not in ref["modes"]:
        out.update(calibrated=False, note=why or f"no familiarity reference for mode {mode!r}")
        return out
    r = ref["modes"][mode]
    sorted_ref = np.asarray(r["window_top1_sorted"], dtype=np.float64)
    q = f"{ref.get('flag_quantile_pct', FLAG_QUANTILE_PCT):g}"
    threshold = float(r.get("top1_threshold", r["window_quantiles"].get(q, np.nan)))
    record_threshold = float(r.get("record_top1_threshold", r["subject_median_quantiles"].get(q, np.nan)))
    unfamiliar = s < threshold
    reasons = [f"median top-1 similarity {np.median(s):.3f} < {record_threshold:.3f}"] \
        if np.median(s) < record_threshold else []
    dist = None
    note = None
    if shape is not None and "shape" in r:
        dist = shape_distance(shape, r["shape"])
        unfamiliar |= dist > r["shape"]["threshold"]
        if np.median(dist) > r["shape"]["record_threshold"]:
            reasons.append(f"median signal-shape distance {np.median(dist):.1f} > {r['shape']['record_threshold']:.1f}")
    else:
        note = "signal shape not checked (" + ("no windows given" if shape is None else "reference without it") + ")"
    out.update(
        calibrated=True,
        note=note,
        percentile=[round(100.0 * float(v), 1) for v in np.searchsorted(sorted_ref, s, side="left") / len(sorted_ref)],
        threshold=round(threshold, 4),
        record_threshold=round(record_threshold, 4),
        flag_quantile_pct=float(q),
        shape_distance=None if dist is None else [round(float(v), 2) for v in dist],
        median_shape_distance=None if dist is None else round(float(np.median(dist)), 2),
        shape_threshold=None if dist is None else round(float(r["shape"]["threshold"]), 2),
        record_shape_threshold=None if dist is None else round(float(r["shape"]["record_threshold"]), 2),
        unfamiliar=[bool(u) for u in unfamiliar],
        share_unfamiliar=round(float(unfamiliar.mean()), 4),
        record_unfamiliar=bool(reasons),
        record_reasons=reasons,
        reference=ref.get("data_summary") or (f"{ref['n']} windows of {ref['subjects']} unseen simulated subjects "
                                               f"(seed {ref['seed']}, {ref['date']})"),
    )
    return out


def score_top1(top1: np.ndarray, mode: str, ref: dict[str, Any] | None, index_count: int,
               why: str | None = None) -> dict[str, Any]:
    """``score_windows`` with the neighbourhood test only (kept for callers without windows)."""
    return score_windows(top1, mode, ref, index_count, why)


def summary_text(fam: dict[str, Any]) -> str:
    """One sentence on a calibrated verdict: median top-1 and shape distance against their limits."""
    text = (f"windows are on median {fam['median_top1']:.2f} similar to their nearest of {fam['index_count']:,} "
            f"indexed windows (held-out records: {fam['flag_quantile_pct']:g} % below {fam['record_threshold']:.2f})")
    if fam.get("median_shape_distance") is not None:
        text += (f", and their signal shape is on median {fam['median_shape_distance']:.1f} from the reference "
                 f"(held-out records: {fam['flag_quantile_pct']:g} % above {fam['record_shape_threshold']:.1f})")
    return text + f"; {fam['share_unfamiliar']:.0%} of windows are flagged unfamiliar"


def warning_text(fam: dict[str, Any], window: int | None = None) -> str | None:
    """The user-facing warning for an unfamiliar window/record, or None when it is familiar or the
    index is not calibrated. ``window``: the window shown (its own figures are quoted when flagged)."""
    if not fam.get("calibrated"):
        return None
    win_flag = window is not None and 0 <= window < fam["n_windows"] and fam["unfamiliar"][window]
    if not (win_flag or fam["record_unfamiliar"]):
        return None
    if win_flag:
        assert window is not None
        what = (f"this window's nearest of {fam['index_count']:,} indexed windows is {fam['top1'][window]:.2f} "
                f"similar (limit {fam['threshold']:.2f})")
        if fam.get("shape_distance") is not None:
            what += (f" and its signal shape is {fam['shape_distance'][window]:.1f} from the reference "
                     f"(limit {fam['shape_threshold']:.1f})")
        what += f"; {fam['share_unfamiliar']:.0%} of the record's windows are flagged"
    else:
        what = summary_text(fam)
    return (f"Unfamiliar signal: {what}. It is unlike the held-out simulated and real ICU records the model "
            "was checked on; treat these predictions as unreliable.")


def unfamiliar_note(fam: dict[str, Any]) -> str | None:
    """The one-line note ``m2ae index query`` prints for an unfamiliar record, None otherwise."""
    if not fam.get("record_unfamiliar"):
        return None
    return (f"unfamiliar record: {'; '.join(fam.get('record_reasons') or [])} "
            f"({fam['flag_quantile_pct']:g} % of held-out records are outside); predictions are unreliable")
