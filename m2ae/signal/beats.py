"""R-peaks that survive arrhythmia: several detectors on every ECG lead, combined per 10 s, beat classes.

One detector on one lead misses wide, fast or ectopic complexes: on the CinC 2015 train split's true
ventricular-tachycardia alarms, neurokit2's default ("neurokit") on lead II showed a 5-beat run at
>= 100 bpm in the alarm window (290-300 s) of 68 % of them (``bench/bench_alarm_beats.py``). Run on
the 270-300 s stretch of every lead and given the better lead by hand, Pan-Tompkins, Hamilton,
Elgendi and Kalidas found it in 97 %, Engelse-Zeelenberg in 61 %, Rodrigues in 84 %, neurokit in
82 %. Which lead carries the complexes changes from record to record (wide beats may be nearly
flat in lead II and tall in V), so picking by hand is what this module replaces:

1. every lead is run through ``DETECTORS`` (three principles: neurokit2's gradient method,
   Pan-Tompkins' integrated slope, Kalidas' wavelet; Hamilton and Elgendi cost 10x more), once per
   gap-free segment;
2. per 10-s block and lead, the beats at least two detectors found are kept (``_majority_beats``),
   plus, in gaps over 1.5x the median interval, beats one detector alone found (``_search_back``:
   a wide complex is often seen by one method only); the lead's score is the F1 agreement of its
   best-agreeing detector pair (``beat_agreement``; Li, Mark & Clifford's bSQI idea): real beats,
   narrow or wide, are found by different methods alike, artefact is not;
3. the best-scoring lead leads (ties within ``AGREEMENT_TIE``: the one with more beats); other
   trusted leads (score >= ``LEAD_TRUSTED``) fill its gaps with their beats;
4. the chosen beats are placed on the model lead's own deflection (largest |x| within 40 ms), so
   R-peak markers and pulse-arrival times refer to the trace the model reads;
5. each beat is classed normal / ventricular from its QRS width and its correlation with the
   lead's dominant beat (``classify_beats``).

The per-beat agreement is also a quality signal: ``quality.agreement_score`` lets beats the
detectors agree on count as beats whatever their shape, so a coherent VT run is not called noise.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .peaks import detect_r_peaks

DETECTORS = ("neurokit", "pantompkins1985", "kalidas2017")
MATCH_S = 0.1          # two detections within this are the same beat
BLOCK_S = 10.0         # leads and detectors are chosen per block of this length
AGREEMENT_TIE = 0.05   # a lead this close to the best lead's agreement is trusted as well
LEAD_TRUSTED = 0.6     # another lead whose detectors agree this well may fill the chosen lead's gaps
FILL_SPACING = 0.6     # ... with beats at least this share of its own median beat interval from any taken beat
SNAP_S = 0.04          # chosen beats move to the model lead's largest deflection within this
SEARCH_BACK_GAP = 1.5  # a beat interval this many times the block's median may hide beats ...
SEARCH_BACK_SEP = 0.35  # ... that one detector found at least this share of the median from the others
# Pan-Tompkins and Kalidas adapt their thresholds to whatever the lead holds and so "find" beats in
# asystole (slow noise, baseline): 80-110 per minute in a simulated beatless ECG, 90-120 in CinC r337's
# beatless lead II, where neurokit's finds 0-2. A block counts as beating only when neurokit's
# detector finds at least 2 beats in it on some lead (it finds some of a VT's beats, if not all).
PRESENCE_DETECTOR = "neurokit"
PRESENCE_MIN_BEATS = 2
REFRACTORY_S = 0.15    # two beats closer than this are one (block edges, two leads); 400 bpm
# QRS width: the span where the smoothed |slope| stays above QRS_LEVEL of its peak near the beat
# (the clinical 120-ms bound separates narrow supraventricular from wide ventricular complexes).
QRS_SEARCH_S = 0.2
QRS_LEVEL = 0.2
SLOPE_SMOOTH_S = 0.04
WIDE_QRS_S = 0.12
# A beat unlike the narrow-beat template (r below this) and wider than the template's beats by
# MORPH_WIDER_S is ventricular too: an ectopic beat may measure under 120 ms at 125 Hz.
MORPH_R_MAX = 0.6
MORPH_WIDER_S = 0.016
BEAT_CLASSES = ("normal", "ventricular")   # r_peak_classes codes 0, 1; -1 = not classed (edge, no template)


@dataclass
class BeatDetection:
    """Beats of one ECG segment. peaks : int64 [B] sample indices (on the model lead);
    lead : [B] name of the lead each beat was found in; agreement : float [B] in [0, 1], the
    detectors' agreement (F1) in that beat's block on that lead; classes : int8 [B] (see
    ``BEAT_CLASSES``); qrs_width_s : float [B] (NaN where not measurable)."""

    peaks: np.ndarray
    lead: np.ndarray
    agreement: np.ndarray
    classes: np.ndarray
    qrs_width_s: np.ndarray


def detect_with(x: np.ndarray, fs_hz: float, method: str) -> np.ndarray:
    """R-peak indices (int64, sorted, unique) of a band-passed ECG by one neurokit2 method; empty on failure."""
    return detect_r_peaks(x, fs_hz, method)


def beat_agreement(a: np.ndarray, b: np.ndarray, tol: int) -> float:
    """F1 of two sorted peak lists matched within ``tol`` samples (1 = same beats; 1 when both are empty)."""
    if len(a) == 0 and len(b) == 0:
        return 1.0
    if len(a) == 0 or len(b) == 0:
        return 0.0
    j = np.searchsorted(b, a)
    d = np.minimum(np.abs(a - b[np.clip(j, 0, len(b) - 1)]), np.abs(a - b[np.clip(j - 1, 0, len(b) - 1)]))
    matched = min(int(np.sum(d <= tol)), len(b))
    return 2.0 * matched / (len(a) + len(b))


def snap_to_deflection(x: np.ndarray, peaks: np.ndarray, radius: int) -> np.ndarray:
    """Each peak moved to the largest |x| within ``radius`` samples (the QRS apex, up or down)."""
    p = np.asarray(peaks, dtype=np.int64)
    if len(p) == 0 or radius <= 0:
        return p
    offs = np.arange(-radius, radius + 1)
    idx = np.clip(p[:, None] + offs[None, :], 0, len(x) - 1)
    return idx[np.arange(len(p)), np.argmax(np.abs(x[idx]), axis=1)]


def qrs_widths_s(x: np.ndarray, peaks: np.ndarray, fs_hz: float) -> np.ndarray:
    """QRS width (s) of each beat: the span around it where the smoothed |slope| stays above 20 % of
    its peak (NaN for beats within 0.2 s of the edges). Narrow beats read 60-110 ms, wide ones more."""
    x = np.asarray(x, np.float64)
    out = np.full(len(peaks), np.nan)
    half = int(round(QRS_SEARCH_S * fs_hz))
    p = np.asarray(peaks, np.int64)
    inside = (p - half >= 0) & (p + half < len(x))
    if not inside.any():
        return out
    k = max(1, int(round(SLOPE_SMOOTH_S * fs_hz)))
    env = np.convolve(np.abs(np.gradient(x)), np.ones(k) / k, mode="same")
    seg = env[p[inside][:, None] + np.arange(-half, half + 1)[None, :]]        # [B, 2*half+1]
    near = int(round(0.06 * fs_hz))
    c = half - near + np.argmax(seg[:, half - near:half + near + 1], axis=1)
    above = seg > QRS_LEVEL * seg[np.arange(len(seg)), c][:, None]
    cols = np.arange(seg.shape[1])[None, :]
    # the run of "above" that contains the centre: first "below" left and right of it
    below_left = np.where(~above & (cols < c[:, None]), cols, -1).max(axis=1)
    below_right = np.where(~above & (cols > c[:, None]), cols, seg.shape[1]).min(axis=1)
    out[inside] = (below_right - below_left - 1) / fs_hz
    return out


def _beat_matrix(x: np.ndarray, peaks: np.ndarray, half: int) -> tuple[np.ndarray, np.ndarray]:
    inside = (peaks - half >= 0) & (peaks + half < len(x))
    beats = x[peaks[inside][:, None] + np.arange(-half, half + 1)[None, :]]
    return beats - beats.mean(axis=1, keepdims=True), inside


def classify_beats(x: np.ndarray, peaks: np.ndarray, fs_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """(classes int8 [B], QRS widths s [B]) of beats found in one lead ``x`` (see ``BEAT_CLASSES``).

    The lead's dominant beat is the template of its beats of median QRS width. Ventricular (1): wider
    than 120 ms when the dominant beat is narrow; or unlike the dominant beat (r < 0.6) and >= 30 ms
    wider than it (so a bundle-branch block's wide but uniform beats stay normal). 0 = normal;
    -1 = not classed (a beat at an edge).
    """
    widths = qrs_widths_s(x, peaks, fs_hz)
    classes = np.full(len(peaks), -1, dtype=np.int8)
    ok = np.isfinite(widths)
    if not ok.any():
        return classes, widths
    dominant = float(np.median(widths[ok]))
    wider = ok & (widths >= dominant + MORPH_WIDER_S - 1e-9)
    classes[ok] = 0
    if dominant < WIDE_QRS_S:
        classes[ok & (widths >= WIDE_QRS_S) & wider] = 1
    half = int(round(0.1 * fs_hz))            # the QRS and its surroundings, not the T wave
    beats, inside = _beat_matrix(np.asarray(x, np.float64), np.asarray(peaks, np.int64), half)
    typical = (np.abs(widths - dominant) <= 1.0 / fs_hz + 1e-9)[inside]
    if typical.sum() < 3:
        return classes, widths
    template = np.median(beats[typical], axis=0)
    template = template - template.mean()
    den = np.sqrt((beats * beats).sum(axis=1) * (template @ template))
    r = np.full(len(peaks), np.nan)
    r[inside] = np.where(den > 0, beats @ template / np.where(den > 0, den, 1.0), 0.0)
    classes[wider & (r < MORPH_R_MAX)] = 1
    return classes, widths


def _majority_beats(found: list[np.ndarray], tol: int) -> np.ndarray:
    """Beats that at least two of the detectors found (within ``tol`` samples), at the first one's place."""
    out = []
    for i, p in enumerate(found):
        others = [q for j, q in enumerate(found) if j != i and len(q)]
        if not len(p) or not others:
            continue
        hit = np.zeros(len(p), dtype=bool)
        for q in others:
            j = np.clip(np.searchsorted(q, p), 1, len(q) - 1) if len(q) > 1 else np.zeros(len(p), np.int64)
            d = np.abs(p - q[j]) if len(q) == 1 else np.minimum(np.abs(p - q[j]), np.abs(p - q[j - 1]))
            hit |= d <= tol
        out.append(p[hit])
    beats = np.sort(np.concatenate(out)) if out else np.empty(0, dtype=np.int64)
    if len(beats) == 0:
        return beats
    keep = np.concatenate(([True], np.diff(beats) > tol))   # the same beat from several detectors: once
    return beats[keep]


def _search_back(beats: np.ndarray, found: list[np.ndarray], fs_hz: float) -> np.ndarray:
    """Pan-Tompkins' search-back across detectors: in a gap longer than ``SEARCH_BACK_GAP`` x the
    median beat interval, a beat only one detector found is taken when it keeps ``SEARCH_BACK_SEP`` x
    that interval (and the refractory 150 ms) from the beats on both sides. Wide complexes are what
    one detector alone finds, and the gap they leave in the majority is what marks them."""
    if len(beats) < 3:
        return beats
    rr = np.diff(beats)
    med = float(np.median(rr))
    gaps = np.flatnonzero(rr > SEARCH_BACK_GAP * med)
    if not len(gaps):
        return beats
    sep = max(REFRACTORY_S * fs_hz, SEARCH_BACK_SEP * med)
    cands = np.unique(np.concatenate(found))
    extra = []
    for g in gaps:
        last, right = beats[g], beats[g + 1]
        for c in cands[(cands > last + sep) & (cands < right - sep)]:
            if c - last >= sep:
                extra.append(c)
                last = c
    return np.sort(np.concatenate([beats, np.asarray(extra, dtype=np.int64)])) if extra else beats


def _blocks(n: int, fs_hz: float) -> list[tuple[int, int]]:
    """10-s blocks covering 0..n; a last piece shorter than 5 s joins the block before it."""
    size = int(round(BLOCK_S * fs_hz))
    edges = list(range(0, n, size)) + [n]
    if len(edges) > 2 and n - edges[-2] < size // 2:
        del edges[-2]
    return list(zip(edges[:-1], edges[1:]))


def detect_beats_multilead(leads: dict[str, np.ndarray], model_lead: str, fs_hz: float) -> BeatDetection:
    """Beats of one gap-free segment from every ECG lead (name -> band-passed signal, equal lengths).

    ``model_lead`` names the lead the model reads; beats are placed on its deflections. See the
    module docstring for how detectors and leads are combined.
    """
    tol = int(round(MATCH_S * fs_hz))
    names = list(leads)
    found = {(n, m): detect_with(leads[n], fs_hz, m) for n in names for m in DETECTORS}
    n_samples = len(leads[model_lead])
    chosen, src, agree = [], [], []
    for a, b in _blocks(n_samples, fs_hz):
        if not any(np.sum((found[(n, PRESENCE_DETECTOR)] >= a) & (found[(n, PRESENCE_DETECTOR)] < b))
                   >= PRESENCE_MIN_BEATS for n in names):
            continue                          # asystole (or no QRS at all): the adaptive detectors chase noise
        per_lead = {}
        for n in names:
            inblock = [found[(n, m)][(found[(n, m)] >= a) & (found[(n, m)] < b)] for m in DETECTORS]
            # the best-agreeing pair: one detector failing on wide complexes (neurokit's does) must not
            # cost a lead whose two other detectors find the same beats
            # (two detectors that both find nothing agree on nothing: that is no evidence for the lead)
            score = max((beat_agreement(p, q, tol) for i, p in enumerate(inblock) for q in inblock[i + 1:]
                         if len(p) + len(q)), default=0.0)
            per_lead[n] = (score, _search_back(_majority_beats(inblock, tol), inblock, fs_hz))
        order = sorted(per_lead, key=lambda n: (-per_lead[n][0], -len(per_lead[n][1])))
        top = per_lead[order[0]][0]
        primary = max((n for n in order if per_lead[n][0] >= top - AGREEMENT_TIE),
                      key=lambda n: len(per_lead[n][1]))
        taken = per_lead[primary][1]
        parts = [(primary, taken)]
        for n in order:                       # other trusted leads fill the primary lead's gaps (missed beats)
            s, beats = per_lead[n]
            if n == primary or s < LEAD_TRUSTED or len(beats) < 2:
                continue
            if len(taken) == 0:
                parts.append((n, beats))
                taken = beats
                continue
            min_gap = max(REFRACTORY_S * fs_hz, FILL_SPACING * float(np.median(np.diff(beats))))
            j = np.clip(np.searchsorted(taken, beats), 1, len(taken) - 1) if len(taken) > 1 else None
            near = (np.abs(beats - taken[0]) if j is None
                    else np.minimum(np.abs(beats - taken[j]), np.abs(beats - taken[j - 1])))
            extra = beats[near >= min_gap]
            if len(extra):
                parts.append((n, extra))
                taken = np.sort(np.concatenate([taken, extra]))
        for n, beats in parts:
            chosen.append(beats)
            src += [n] * len(beats)
            agree += [per_lead[n][0]] * len(beats)
    if not chosen:
        e = np.empty(0)
        return BeatDetection(np.empty(0, np.int64), np.empty(0, dtype=object), e, np.empty(0, np.int8), e)
    raw = np.concatenate(chosen)
    src_arr, agree_arr = np.asarray(src, dtype=object), np.asarray(agree, dtype=np.float64)
    # classes on the lead each beat was found in (its own apex), before moving it to the model lead
    classes = np.full(len(raw), -1, dtype=np.int8)
    widths = np.full(len(raw), np.nan)
    radius = int(round(SNAP_S * fs_hz))
    for n in set(src):
        # every beat of the segment measured on this lead: its dominant beat is the segment's, not
        # that of the few beats this lead contributed (a lead may contribute only the VT run)
        rows = src_arr == n
        c, w = classify_beats(leads[n], snap_to_deflection(leads[n], raw, radius), fs_hz)
        classes[rows], widths[rows] = c[rows], w[rows]
    peaks = snap_to_deflection(leads[model_lead], raw, radius)
    by_time = np.argsort(peaks, kind="stable")
    peaks, src_arr, agree_arr = peaks[by_time], src_arr[by_time], agree_arr[by_time]
    classes, widths = classes[by_time], widths[by_time]
    keep = np.ones(len(peaks), dtype=bool)
    gap = int(round(REFRACTORY_S * fs_hz))
    # one beat seen in two leads or two blocks: keep the version from the lead whose detectors agreed best
    start = 0
    for i in range(1, len(peaks) + 1):
        if i == len(peaks) or peaks[i] - peaks[i - 1] >= gap:
            if i - start > 1:
                best = start + int(np.argmax(agree_arr[start:i]))
                keep[start:i] = False
                keep[best] = True
            start = i
    return BeatDetection(peaks[keep], src_arr[keep], agree_arr[keep], classes[keep], widths[keep])


def window_agreement(peaks: np.ndarray, agreement: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """Per window: mean detector agreement of its beats (0 with fewer than 3 beats)."""
    out = np.zeros(len(starts))
    lo = np.searchsorted(peaks, starts, side="left")
    hi = np.searchsorted(peaks, starts + width, side="left")
    for i, (a, b) in enumerate(zip(lo, hi)):
        if b - a >= 3:
            out[i] = float(np.mean(agreement[a:b]))
    return out


def model_lead_name(rec_meta: dict, ecg: np.ndarray, leads: dict[str, np.ndarray] | None) -> str | None:
    """Which entry of ``leads`` is the model's input lead ``ecg`` (by ``meta["lead"]``, else by equal
    samples); None when none is (the model lead then stands beside the others as "ECG")."""
    if not leads:
        return None
    name = rec_meta.get("lead")
    if isinstance(name, str) and name in leads:
        return name
    for n, x in leads.items():
        if len(x) == len(ecg) and np.array_equal(x, ecg, equal_nan=True):
            return n
    return None
