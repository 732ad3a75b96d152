"""Familiarity scoring: is a window (or record) like the windows the index — and so the model — knows?

The demo model is trained on simulated signals only; on a real record its heads can be confidently
wrong. The fingerprint says so before the heads do: a window unlike anything in the index has a low
top-1 cosine similarity to it. The index carries a reference (``familiarity.json``, made by
``m2ae.index.calibration``): what top-1 similarity looks like for windows of simulated subjects that
are NOT in the index, per input mode (both / ecg / ppg). ``familiarity`` places a query's top-1
similarities in that reference:

- a window is **unfamiliar** when its top-1 similarity is below the reference's 1 % quantile for the
  same input mode: by construction 1 % of unseen simulated windows are flagged (a false-alarm rate
  fixed in advance rather than a threshold tuned on the few real records we hold);
- a record is **unfamiliar** when the median top-1 similarity over its windows is below the 1 %
  quantile of the same statistic over the reference subjects. A record-level median is much less
  noisy than one window, so this test separates real from simulated records far better than the
  per-window flag.

An index without a reference, or with one computed for another model version, reports
``calibrated: False`` with the reason (never an error). Scoring only: no files, no model run (a
model is asked for its version, nothing else).

>>> fam = familiarity(idx, model.fingerprint(ecg=w.ecg, ppg=w.ppg), "both")             # doctest: +SKIP
>>> fam["record_unfamiliar"], fam["share_unfamiliar"]                                  # doctest: +SKIP
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from .fingerprints import model_version_of, normalise_fingerprints

MODES = ("both", "ecg", "ppg")
QUANTILES_PCT = (1, 5, 10, 50)
FLAG_QUANTILE_PCT = 1        # below this reference quantile = unfamiliar (1 % false alarms on unseen simulated data)


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


def reference_mode(top1: np.ndarray, subjects: np.ndarray) -> dict[str, Any]:
    """One input mode's reference from the top-1 similarities [n] of reference windows and their
    subjects [n]: window quantiles, quantiles of the per-subject medians, and the sorted top-1s."""
    s = np.asarray(top1, dtype=np.float64)
    subjects = np.asarray(subjects)
    per_subject = np.array([np.median(s[subjects == u]) for u in np.unique(subjects)])
    return {
        "window_quantiles": {str(q): round(float(np.percentile(s, q)), 4) for q in QUANTILES_PCT},
        "subject_median_quantiles": {str(q): round(float(np.percentile(per_subject, q)), 4) for q in QUANTILES_PCT},
        "window_top1_sorted": [round(float(v), 4) for v in np.sort(s)],
    }


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


def familiarity(index: Any, fp: Any, mode: str, model: Any = None, exclude_subject: Any = None) -> dict[str, Any]:
    """How familiar each window fingerprint [n, D] (or [D]) is, against the index's reference.

    mode : the input mode the fingerprints were made with ("both", "ecg", "ppg").
    model : the model (or its version string) that made them; checked against the reference.
    exclude_subject : a subject whose windows are not searched (the query's own: the reference's
        subjects are not in the index either). Returns ``score_top1``'s dict.
    """
    if mode not in MODES:
        raise InputError(f"familiarity mode must be one of {', '.join(MODES)}, got {mode!r}")
    x = normalise_fingerprints(fp, index.dims, "query fingerprint")
    ref, why = reference_status(index, model)
    return score_top1(top1_similarity(index, x, exclude_subject=exclude_subject), mode, ref, index.count, why)


def score_top1(top1: np.ndarray, mode: str, ref: dict[str, Any] | None, index_count: int,
               why: str | None = None) -> dict[str, Any]:
    """Verdicts for top-1 similarities [n] of a record's windows (input mode ``mode``) against a reference.

    ref : the reference (None: not calibrated, ``why`` says why).
    Returns {"calibrated", "note", "mode", "n_windows", "index_count", "top1" [n], "median_top1",
    and when calibrated: "percentile" [n] (share of reference windows with a lower top-1, %),
    "threshold" (the reference's 1 % quantile), "unfamiliar" [n] bools, "share_unfamiliar",
    "record_threshold" (1 % quantile of reference subjects' median top-1), "record_unfamiliar"}.
    """
    s = np.asarray(top1, dtype=np.float64)
    out: dict[str, Any] = {"mode": mode, "n_windows": int(len(s)), "index_count": index_count,
                           "top1": [round(float(v), 4) for v in s], "median_top1": round(float(np.median(s)), 4)}
    if ref is None or mode not in ref["modes"]:
        out.update(calibrated=False, note=why or f"no familiarity reference for mode {mode!r}")
        return out
    r = ref["modes"][mode]
    sorted_ref = np.asarray(r["window_top1_sorted"], dtype=np.float64)
    q = str(ref.get("flag_quantile_pct", FLAG_QUANTILE_PCT))
    threshold = float(r["window_quantiles"][q])
    record_threshold = float(r["subject_median_quantiles"][q])
    unfamiliar = s < threshold
    out.update(
        calibrated=True,
        note=None,
        percentile=[round(100.0 * float(v), 1) for v in np.searchsorted(sorted_ref, s, side="left") / len(sorted_ref)],
        threshold=threshold,
        flag_quantile_pct=float(q),
        unfamiliar=[bool(u) for u in unfamiliar],
        share_unfamiliar=round(float(unfamiliar.mean()), 4),
        record_threshold=record_threshold,
        record_unfamiliar=bool(np.median(s) < record_threshold),
        reference=(f"{ref['n']} windows of {ref['subjects']} unseen simulated subjects "
                   f"(seed {ref['seed']}, {ref['date']})"),
    )
    return out


def warning_text(fam: dict[str, Any], window: int | None = None) -> str | None:
    """The user-facing warning for an unfamiliar window/record, or None when it is familiar or the
    index is not calibrated. ``window``: the window shown (its own top-1 is quoted when flagged)."""
    if not fam.get("calibrated"):
        return None
    win_flag = window is not None and 0 <= window < fam["n_windows"] and fam["unfamiliar"][window]
    if not (win_flag or fam["record_unfamiliar"]):
        return None
    pct = f"{fam['flag_quantile_pct']:g} %"
    if win_flag:
        what = (f"the nearest of {fam['index_count']:,} indexed windows to this window is only "
                f"{fam['top1'][window]:.2f} similar ({pct} of unseen simulated windows are below "
                f"{fam['threshold']:.2f})")
    else:
        what = (f"this record's windows are on median only {fam['median_top1']:.2f} similar to their nearest of "
                f"{fam['index_count']:,} indexed windows ({pct} of unseen simulated subjects are below "
                f"{fam['record_threshold']:.2f})")
    return (f"Unfamiliar signal: {what}; {fam['share_unfamiliar']:.0%} of the record's windows are flagged. "
            "The demo model was trained on simulated data; treat these predictions as unreliable.")


def unfamiliar_note(fam: dict[str, Any]) -> str | None:
    """The one-line note ``m2ae index query`` prints for an unfamiliar record, None otherwise."""
    if not fam.get("record_unfamiliar"):
        return None
    return (f"unfamiliar record: median top-1 similarity {fam['median_top1']:.3f} is below "
            f"{fam['record_threshold']:.3f} (1 % of unseen simulated subjects); predictions are unreliable")
