"""Familiarity: is a window (or record) like the windows the index — and so the model — knows?

The demo model is trained on simulated signals only; on a real record its heads can be confidently
wrong. The fingerprint says so before the heads do: a window unlike anything in the index has a low
top-1 cosine similarity to it. ``calibrate_familiarity`` measures what top-1 similarity looks like
for windows of simulated subjects that are NOT in the index (``m2ae.simulate.splits.VAL_SEED``
subjects, drawn with ``m2ae.simulate.labelled.subject_windows`` like ``m2ae eval`` draws its held-out
windows), per input mode (both / ecg / ppg), and saves it as ``familiarity.json`` in the index
folder. ``familiarity`` then places a query's top-1 similarities in that reference:

- a window is **unfamiliar** when its top-1 similarity is below the reference's 1 % quantile for the
  same input mode: by construction 1 % of unseen simulated windows are flagged (a false-alarm rate
  fixed in advance rather than a threshold tuned on the few real records we hold);
- a record is **unfamiliar** when the median top-1 similarity over its windows is below the 1 %
  quantile of the same statistic over the reference subjects (each reference subject contributes
  ``WINDOWS_PER_SUBJECT`` windows). A record-level median is much less noisy than one window, so this
  test separates real from simulated records far better than the per-window flag.

An index without ``familiarity.json``, or with one computed for another model version, reports
``calibrated: False`` with the reason (never an error).

>>> ref = calibrate_familiarity(idx, model)          # writes <index>/familiarity.json   # doctest: +SKIP
>>> fam = familiarity(idx, model.fingerprint(ecg=w.ecg, ppg=w.ppg), "both")             # doctest: +SKIP
>>> fam["record_unfamiliar"], fam["share_unfamiliar"]                                  # doctest: +SKIP
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .store import _utc_now, model_version_of, normalise_fingerprints

FAMILIARITY_FILE = "familiarity.json"
FORMAT = "m2ae-familiarity/1"
MODES = ("both", "ecg", "ppg")
QUANTILES_PCT = (1, 5, 10, 50)
FLAG_QUANTILE_PCT = 1        # below this reference quantile = unfamiliar (1 % false alarms on unseen simulated data)
WINDOWS_PER_SUBJECT = 6      # reference windows per simulated subject (the record-level median is over these)


def mode_of(ecg, ppg) -> str:
    """The input mode name ("both", "ecg", "ppg") for the modalities given."""
    if ecg is not None and ppg is not None:
        return "both"
    if ecg is not None:
        return "ecg"
    if ppg is not None:
        return "ppg"
    raise InputError("familiarity: no ECG and no PPG given")


def top1_similarity(index, fp, exclude_subject=None) -> np.ndarray:
    """Cosine similarity [n] of each fingerprint [n, D] to its nearest indexed window."""
    hits = index.search(fp, k=1, exclude_subject=exclude_subject)
    return np.array([float(h["score"].iloc[0]) if len(h) else -1.0 for h in hits], dtype=np.float64)


def calibrate_familiarity(index, model=None, n_windows: int = 600, seed: int | None = None,
                          save: bool = True) -> dict[str, Any]:
    """Reference top-1 similarities of unseen simulated windows, per input mode; saved as
    ``<index>/familiarity.json`` (temp file + rename) when the index has a folder and ``save``.

    n_windows : reference windows (``n_windows // WINDOWS_PER_SUBJECT`` subjects, at least 2).
    seed : simulator seed (default ``m2ae.simulate.splits.VAL_SEED``: subjects disjoint from the
        index's ``m2ae simulate`` cohorts and from the heads' training data).
    Returns the reference dict (also set as ``index.familiarity_reference``).
    """
    from ..simulate import splits
    from ..simulate.labelled import subject_windows
    from .embed import fingerprint_windows, resolve_model

    model = resolve_model(model)
    index.check_model(model)
    seed = splits.VAL_SEED if seed is None else int(seed)
    n_subjects = max(2, int(n_windows) // WINDOWS_PER_SUBJECT)
    sim = subject_windows(n_subjects, WINDOWS_PER_SUBJECT, seed=seed)
    subjects = np.asarray(sim["subject_id"]).astype(str)
    in_index = set(index.metadata["subject_id"].astype(str)) & set(subjects)
    if in_index:
        raise InputError(f"familiarity calibration: {len(in_index)} reference subjects (seed {seed}) are in the index; use another seed")
    modes = {}
    for mode in MODES:
        ecg = sim["ecg"] if mode in ("both", "ecg") else None
        ppg = sim["ppg"] if mode in ("both", "ppg") else None
        s = top1_similarity(index, fingerprint_windows(model, ecg, ppg))
        per_subject = np.array([np.median(s[subjects == u]) for u in np.unique(subjects)])
        modes[mode] = {
            "window_quantiles": {str(q): round(float(np.percentile(s, q)), 4) for q in QUANTILES_PCT},
            "subject_median_quantiles": {str(q): round(float(np.percentile(per_subject, q)), 4) for q in QUANTILES_PCT},
            "window_top1_sorted": [round(float(v), 4) for v in np.sort(s)],
        }
    ref = {
        "format": FORMAT,
        "model_version": model_version_of(model),
        "index_count": index.count,
        "n": int(len(subjects)),
        "subjects": int(n_subjects),
        "windows_per_subject": WINDOWS_PER_SUBJECT,
        "seed": seed,
        "data": f"m2ae.simulate.labelled.subject_windows({n_subjects}, {WINDOWS_PER_SUBJECT}, seed={seed}): "
                f"simulated subjects not in the index",
        "flag_quantile_pct": FLAG_QUANTILE_PCT,
        "date": _utc_now(),
        "modes": modes,
    }
    index.familiarity_reference = ref
    if save and getattr(index, "path", None) is not None:
        write_reference(Path(index.path), ref)
    return ref


def write_reference(folder: Path, ref: dict) -> Path:
    """Write ``familiarity.json`` atomically (a temp file in the same folder, then os.replace)."""
    folder = Path(folder)
    fd, tmp = tempfile.mkstemp(prefix=f".{FAMILIARITY_FILE}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(ref, f, indent=1)
            f.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, folder / FAMILIARITY_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return folder / FAMILIARITY_FILE


def read_reference(folder) -> tuple[dict | None, str | None]:
    """(reference, None) from ``<folder>/familiarity.json``, or (None, why) when absent or unreadable."""
    p = Path(folder) / FAMILIARITY_FILE
    if not p.exists():
        return None, f"no {FAMILIARITY_FILE} in the index folder (run `m2ae index calibrate`)"
    try:
        ref = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return None, f"{p}: unreadable ({type(e).__name__}); run `m2ae index calibrate`"
    if not isinstance(ref, dict) or ref.get("format") != FORMAT or not isinstance(ref.get("modes"), dict):
        return None, f"{p}: not a {FORMAT} file; run `m2ae index calibrate`"
    return ref, None


def reference_status(index, model=None) -> tuple[dict | None, str | None]:
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


def familiarity(index, fp, mode: str, model=None, exclude_subject=None) -> dict[str, Any]:
    """How familiar each window fingerprint [n, D] (or [D]) is, against the index's reference.

    mode : the input mode the fingerprints were made with ("both", "ecg", "ppg").
    Returns {"calibrated", "note", "mode", "n_windows", "index_count", "top1" [n], "median_top1",
    and when calibrated: "percentile" [n] (share of reference windows with a lower top-1, %),
    "threshold" (the reference's 1 % quantile), "unfamiliar" [n] bools, "share_unfamiliar",
    "record_threshold" (1 % quantile of reference subjects' median top-1), "record_unfamiliar"}.
    """
    if mode not in MODES:
        raise InputError(f"familiarity mode must be one of {', '.join(MODES)}, got {mode!r}")
    x = normalise_fingerprints(fp, index.dims, "query fingerprint")
    s = top1_similarity(index, x, exclude_subject=exclude_subject)
    out: dict[str, Any] = {"mode": mode, "n_windows": int(len(s)), "index_count": index.count,
                           "top1": [round(float(v), 4) for v in s], "median_top1": round(float(np.median(s)), 4)}
    ref, why = reference_status(index, model)
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
        reference=f"{ref['n']} windows of {ref['subjects']} unseen simulated subjects (seed {ref['seed']}, {ref['date']})",
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
                f"{fam['top1'][window]:.2f} similar ({pct} of unseen simulated windows are below {fam['threshold']:.2f})")
    else:
        what = (f"this record's windows are on median only {fam['median_top1']:.2f} similar to their nearest of "
                f"{fam['index_count']:,} indexed windows ({pct} of unseen simulated subjects are below "
                f"{fam['record_threshold']:.2f})")
    return (f"Unfamiliar signal: {what}; {fam['share_unfamiliar']:.0%} of the record's windows are flagged. "
            "The demo model was trained on simulated data; treat these predictions as unreliable.")
