"""``preprocess``: a ``Record`` in any rate and units → contract ``Windows`` with quality and peaks.

Steps, per gap-free segment of the record (windows never cross a gap longer than 1 s):
resample to 125 Hz (polyphase) → band-pass (ECG 0.5–40 Hz, PPG 0.5–8 Hz, zero phase) → PPG made
upright (decided once per record) → R-peaks (three detectors on every ECG lead, see ``beats``) /
pulse peaks (neurokit2), once per segment → 10-s windows → robust normalisation keeping
center/scale → per-window quality, heart rate and R → pulse-peak delay.

Real monitors often record one dead channel (a PPG clip that fell off, a lead switched off). A dead
modality is dropped with a note and the record goes on with the other one (``meta["dropped"]``);
only a record without any usable channel is refused. An ECG without detectable beats is not dead:
asystole looks like that. Its windows are kept and marked (``ecg_no_beats``), heart rate left NaN.

>>> import m2ae
>>> win = m2ae.preprocess(m2ae.load_record("bidmc_01_Signals.csv"))   # doctest: +SKIP
>>> win.ecg.shape, float(np.nanmedian(win.hr_ecg_bpm))                 # doctest: +SKIP
((48, 1250), 91.5)
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..contract import FS_HZ, QUALITY_THRESHOLD, WINDOW_S, WINDOW_SAMPLES
from ..errors import InputError
from ..record import Record, Windows
from . import beats as bt, filters, peaks as pk, quality as ql
from .leads import clean_leads, detect_ecg_beats, lead_advice
from .rate_check import with_rate_note
from .usable import dead_channel_reasons

MAX_GAP_S = 1.0  # NaN runs up to this long are interpolated; longer ones split the record
MAX_WINDOWS = 100_000  # ~1 GB of float32 windows per modality; 11.6 days at the default 10-s stride
MODALITY_NAMES = {"ecg": "ECG", "ppg": "PPG"}
BEAT_METHODS = ("multilead", "single")   # see ``preprocess``'s ``beats``


class _DeadChannels(Exception):
    """Raised inside one preprocessing pass: these channels ({modality: reason}) are dead; rerun without them."""

    def __init__(self, reasons: dict[str, str]):
        super().__init__("; ".join(f"{m}: {r}" for m, r in reasons.items()))
        self.reasons = reasons


def _refusal(name: str, reasons: dict[str, str], rec: Record | None = None) -> str:
    """The one-line InputError text for a record none of whose channels is usable, with the way
    forward when there is one (another ECG lead that carries signal)."""
    advice = lead_advice(rec) if rec is not None and "ecg" in reasons else ""
    return f"{name}: no usable channel — " + "; ".join(
        f"{MODALITY_NAMES[m]}: {r}" for m, r in reasons.items()) + advice


def _drop_note(mod: str, reason: str, kept: tuple[str, ...], rec: Record | None = None) -> str:
    goes_on = " + ".join(MODALITY_NAMES[m] for m in kept)
    advice = lead_advice(rec) if rec is not None and mod == "ecg" else ""
    return f"{MODALITY_NAMES[mod]} dropped: {reason}; the record goes on as {goes_on} only{advice}"


def _window_fraction(mask: np.ndarray, fs_hz: float, n_total: int, starts: np.ndarray) -> np.ndarray:
    """Fraction of each 125-Hz window covered by a boolean mask given at the record's own rate."""
    if not mask.any():
        return np.zeros(len(starts))
    m125 = filters.resample_to(mask.astype(np.float64), fs_hz, FS_HZ)[:n_total] > 0.5
    count = np.concatenate(([0], np.cumsum(np.pad(m125, (0, max(0, n_total - len(m125)))))))
    return (count[starts + WINDOW_SAMPLES] - count[starts]) / WINDOW_SAMPLES


def _segments_of(rec: Record, mods: tuple[str, ...], min_len: int
                 ) -> tuple[dict[str, np.ndarray], list[tuple[int, int]], list[str]]:
    """Gap-fill the channels ``mods``; return filled channels, the gap-free segments common to all, notes.

    A channel whose own gaps leave no stretch of ``min_len`` samples is dead (``_DeadChannels``):
    it would otherwise cut every window out of the other channel too.
    """
    filled, notes, valid = {}, [], np.ones(rec.n_samples, dtype=bool)
    dead = {}
    for mod in mods:
        y, segs, n = filters.fill_gaps(getattr(rec, mod), rec.fs, MAX_GAP_S, name=MODALITY_NAMES[mod])
        longest = max((b - a for a, b in segs), default=0)
        if longest < min_len:
            dead[mod] = (f"no usable 10-s stretch (gaps longer than {MAX_GAP_S:g} s split it into pieces "
                         f"of at most {longest / rec.fs:.1f} s)")
            continue
        filled[mod] = y
        notes += n
        chan_ok = np.zeros(rec.n_samples, dtype=bool)
        for a, b in segs:
            chan_ok[a:b] = True
        valid &= chan_ok
    if dead:
        raise _DeadChannels(dead)
    edges = np.diff(np.concatenate(([0], valid.view(np.int8), [0])))
    segments = list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))
    return filled, segments, notes


def _clean_segments(filled: dict[str, np.ndarray], fs_hz: float, segments: list[tuple[int, int]], n_total: int
                    ) -> tuple[dict[str, np.ndarray], list[tuple[int, int]]]:
    """Resample + band-pass each segment; place it in a NaN-filled 125-Hz record of ``n_total`` samples."""
    up, down = filters.rational_ratio(fs_hz, FS_HZ)
    clean = {mod: np.full(n_total, np.nan) for mod in filled}
    bounds = []                                                   # segments in 125-Hz samples
    for a, b in segments:
        a125 = int(round(a * up / down))
        for mod, x in filled.items():
            y = filters.resample_to(x[a:b], fs_hz, FS_HZ)
            y = filters.ecg_bandpass(y, FS_HZ) if mod == "ecg" else filters.ppg_bandpass(y, FS_HZ)
            y = y[: n_total - a125]
            clean[mod][a125:a125 + len(y)] = y
        bounds.append((a125, a125 + len(y)))
    return clean, bounds


def _unusable_reason(mod: str, flat: np.ndarray, amp: np.ndarray, clip: np.ndarray, interp: np.ndarray,
                     usable: np.ndarray) -> str | None:
    """Why no window of a channel is usable (each window counted once, by its first problem), or None."""
    if usable.any():
        return None
    if flat.all():
        return (f"flat line in every window (the {MODALITY_NAMES[mod]} spans fewer than {ql.FLAT_STEPS:g} "
                f"ADC steps: sensor off or disconnected)")
    causes = {"flat": flat, "clipped": ~flat & (clip <= 0),
              "mostly missing samples": ~flat & (clip > 0) & (interp <= 0),
              "amplitude far off the record's typical one": ~flat & (clip > 0) & (interp > 0) & (amp <= 0)}
    parts = [f"{what} in {int(m.sum())}" for what, m in causes.items() if m.any()]
    return f"unusable in every window ({', '.join(parts)} of {len(flat)})"


def _no_pulse_reason(n: int, locked: float) -> str:
    """Why a PPG was judged pulseless (``ql.shows_pulse`` said no), in plain words."""
    why = f"no pulse (in none of {n} windows do the detected beats look alike"
    if np.isfinite(locked):
        return (why + f", and only {100 * locked:.0f}% of R-peaks are followed by a pulse peak at one delay "
                f"(±{1000 * ql.PULSE_LOCK_S:g} ms; a real pulse gives most, noise 10–20%): "
                "noise or no perfusion signal)")
    return why + " and no window has a pulse rate: noise or no perfusion signal)"


def _measure_channel(mod: str, raw: np.ndarray, fs_hz: float, x: np.ndarray, bounds: list[tuple[int, int]],
                     starts: np.ndarray, breaks: np.ndarray, notes: list[str],
                     leads: dict[str, np.ndarray] | None = None, model_lead: str | None = None,
                     beats: str = "multilead") -> dict[str, Any]:
    """Windows, normalisation, peaks, heart rate and quality of one channel (``x``: clean, 125 Hz).

    For the ECG, ``leads`` (every lead, clean, 125 Hz; ``model_lead`` names ``x`` among them) help the
    beat detector (``beats``: "multilead" or "single", see ``preprocess``).

    Raises ``_DeadChannels`` when no window carries usable signal (flat, clipped, mostly missing or
    wildly off-scale everywhere); whether a PPG shows a pulse is judged later, beside the ECG. An
    ECG without any detectable beat is kept: that is what asystole looks like.
    """
    label = MODALITY_NAMES[mod]
    windows = np.lib.stride_tricks.sliding_window_view(x, WINDOW_SAMPLES)[starts]      # [N, 1250] copy
    z, center, scale = filters.robust_normalise(windows, axis=-1)
    classes, agreement = None, None
    if mod == "ecg":                          # detectors run once per gap-free segment, not per window
        peaks_all, classes, agreement = detect_ecg_beats(x, leads, model_lead, bounds, beats)
    else:
        peaks_all = np.concatenate([pk.detect_pulse_peaks(x[a:b], FS_HZ) + a for a, b in bounds]).astype(np.int64)
    beat_r = [ql.beat_template_correlation(x[a:b], peaks_all[(peaks_all >= a) & (peaks_all < b)] - a, FS_HZ)
              for a, b in bounds]
    hr = pk.window_heart_rate(peaks_all, starts, WINDOW_SAMPLES, FS_HZ, breaks)

    flat, _ = ql.flat_windows(windows, ql.adc_step(raw))
    hr[flat] = np.nan                         # "beats" in a window without signal are quantisation noise
    clip_mask = ql.clipped_mask(raw, fs_hz)
    if clip_mask.mean() >= 1e-3:
        notes.append(f"{label}: {100 * clip_mask.mean():.1f}% of samples stuck at the signal's "
                     f"extreme value (clipped)")
    clip = ql.clip_score(_window_fraction(clip_mask, fs_hz, len(x), starts))
    interp = ql.interpolated_score(_window_fraction(~np.isfinite(raw), fs_hz, len(x), starts))
    amp = ql.amplitude_score(scale, flat)
    usable = amp * clip * interp > 0          # signal there, on scale, not clipped, not made up
    why = _unusable_reason(mod, flat, amp, clip, interp, usable)
    if why is not None:
        raise _DeadChannels({mod: why})
    template = ql.window_template_score(peaks_all, np.concatenate(beat_r), starts, WINDOW_SAMPLES)
    beat_score = template
    if agreement is not None and np.isfinite(agreement).any():
        # beats that several detectors find alike are beats, whatever their shape (VT, ectopy)
        # ... and alike among themselves in the window (artefact that fools the detectors is not)
        beat_score = np.maximum(template, ql.agreement_score(
            bt.window_agreement(peaks_all, agreement, starts, WINDOW_SAMPLES))
            * ql.window_local_template_score(x, peaks_all, starts, WINDOW_SAMPLES, FS_HZ))
    n = len(starts)
    no_beats = ~np.isfinite(hr)
    if flat.any():
        notes.append(f"{label}: flat (no signal) in {int(flat.sum())} of {n} windows")
    if no_beats.all() and mod == "ecg":
        notes.append("ECG: no beats detected in any window (asystole, or a lead without QRS complexes?); "
                     "kept, heart rate left blank")
    elif no_beats.any():
        notes.append(f"{label}: no beats detected in {int(no_beats.sum())} of {n} windows "
                     f"(heart rate left blank there)")
    quality = beat_score * amp * clip * interp * ql.heart_rate_score(hr)
    return {"classes": classes, mod: z.astype(np.float32), f"{mod}_center": center.astype(np.float32),
            f"{mod}_scale": scale.astype(np.float32), f"{mod}_quality": quality.astype(np.float32),
            f"hr_{mod}_bpm": hr.astype(np.float32), f"{mod}_no_beats": no_beats, "peaks": peaks_all,
            "template": template, "usable": usable}


def preprocess(rec: Record, stride_s: float = WINDOW_S, quality_threshold: float = QUALITY_THRESHOLD, *,
               beats: str = "multilead") -> Windows:
    """Cut a record to the signal contract and measure it. Returns ``Windows`` (see its docstring).

    rec : a ``Record`` at any rate ≥ 20 Hz, ECG and/or PPG, NaN gaps allowed.
    stride_s : window stride in s (10 = back-to-back windows; 5 = half-overlapping).
    quality_threshold : windows with a present channel below it are flagged ``low_quality`` (kept).
    beats : ECG beat detection. "multilead" (default): three detectors on every lead of
        ``rec.ecg_leads`` (or on the one ECG), combined per 10 s (``m2ae.signal.beats``), beats classed
        normal / ventricular (``r_peak_classes``), and ECG quality that counts beats the detectors agree
        on as beats whatever their shape (a VT run is not noise). "single": the earlier behaviour,
        neurokit2 on the model lead with template-only quality (``bench/bench_alarm_beats.py`` compares).

    Heart rate per window = 60 / mean beat interval (missed/doubled beats dropped); NaN, never 0,
    where no beats are detected (``*_no_beats``). ``pat_ms`` = median over the window's R-peaks of
    the time to that beat's PPG systolic peak (the peak, not the foot: the peak is what
    ``nk.ppg_peaks`` detects reliably; the foot comes ~100–150 ms earlier). Usually that is the
    next pulse peak; when the device delay exceeds a beat interval the pairing shifts (see
    ``peaks.beat_delays_s``).

    A dead channel — no finite samples, a flat, nearly flat or absurdly scaled line
    (``usable.dead_channel_reasons``), no 10-s stretch between long gaps, unusable in every window
    (flat, clipped, mostly missing), or for PPG no pulse (beats alike in no window AND not locked to
    the ECG's R-peaks, see ``quality.shows_pulse``) — is dropped: ``meta["dropped"]`` =
    {modality: reason}, a note says so, and the record goes on with the other channel. Raises
    ``InputError`` (one line naming ``rec.meta['source']``) when no channel is usable (listing each
    channel's reason), for a record shorter than one window, a bad stride, too many windows, or
    channels whose gap-free stretches never overlap for 10 s.
    """
    name = str(rec.meta.get("source", "record"))
    if beats not in BEAT_METHODS:
        raise InputError(f"{name}: beats must be one of {', '.join(BEAT_METHODS)}, got {beats!r}")
    if not np.isfinite(stride_s) or stride_s < 1.0 / FS_HZ:
        raise InputError(f"{name}: window stride must be at least one sample ({1000 / FS_HZ:g} ms), got {stride_s} s")
    if rec.duration_s < WINDOW_S:
        raise InputError(f"{name}: record is {rec.duration_s:.2f} s long; at least {WINDOW_S:g} s "
                         f"(one window) is needed")
    n_windows_max = int((rec.duration_s - WINDOW_S) // stride_s) + 1
    if n_windows_max > MAX_WINDOWS:
        raise InputError(f"{name}: {rec.duration_s:.0f} s at a {stride_s:g}-s stride would give {n_windows_max} "
                         f"windows (limit {MAX_WINDOWS}); use a larger stride or split the record")
    dropped = dead_channel_reasons(rec)       # the cheap checks first: no filtering of a flat line
    while True:
        # Each pass either succeeds or finds more dead channels: at most one pass per channel, plus one.
        kept = tuple(m for m in rec.modalities if m not in dropped)
        if not kept:
            raise InputError(_refusal(name, dropped, rec))
        try:
            return with_rate_note(_preprocess_channels(rec, kept, dropped, name, stride_s, quality_threshold, beats),
                                  rec.fs)  # a declared rate the heart rates contradict gets a note
        except _DeadChannels as dead:
            dropped.update(dead.reasons)


def _preprocess_channels(rec: Record, mods: tuple[str, ...], dropped: dict[str, str], name: str, stride_s: float,
                         quality_threshold: float, beats: str = "multilead") -> Windows:
    """One pass of ``preprocess`` over the channels ``mods`` (the others are ``dropped``: {modality: reason}).

    Raises ``_DeadChannels`` when one of ``mods`` turns out dead; the caller reruns without it, so
    the dead channel's gaps, notes and peaks leave no trace in the result.
    """
    min_len = int(np.ceil(WINDOW_S * rec.fs))
    filled, segments, notes = _segments_of(rec, mods, min_len)
    long_segments = [(a, b) for a, b in segments if b - a >= min_len]
    if not long_segments:
        longest = max((b - a for a, b in segments), default=0) / rec.fs
        raise InputError(f"{name}: no usable 10-s stretch: gaps longer than {MAX_GAP_S:g} s in ECG and PPG "
                         f"together split the record into pieces of at most {longest:.1f} s — way forward: "
                         f"each channel alone has one; leave one out (ppg='none' or ecg='none', --ppg none "
                         f"in m2ae read) to analyse the other")
    if len(long_segments) < len(segments):
        short_s = sum(b - a for a, b in segments if b - a < min_len) / rec.fs
        notes.append(f"{len(segments) - len(long_segments)} piece(s) shorter than 10 s between gaps "
                     f"({short_s:.1f} s) left out")

    up, down = filters.rational_ratio(rec.fs, FS_HZ)
    if up != down:
        notes.append(f"resampled {rec.fs:g} Hz → {FS_HZ:g} Hz (polyphase {up}/{down})")
    n_total = int(np.ceil(rec.n_samples * up / down))
    clean, bounds = _clean_segments(filled, rec.fs, long_segments, n_total)
    leads_clean = clean_leads(rec, long_segments, bounds, n_total) if "ecg" in clean else None
    model_lead = (bt.model_lead_name(rec.meta, rec.ecg, leads_clean)
                  if leads_clean and rec.ecg is not None else None)

    flipped: np.ndarray | bool = False
    if "ppg" in clean:                        # polarity decided once for the whole record
        _, flipped = filters.ppg_fix_polarity(np.concatenate([clean["ppg"][a:b] for a, b in bounds]), FS_HZ)
        if flipped:
            clean["ppg"] = -clean["ppg"]
            notes.append("PPG inverted (systolic upstroke was negative) and flipped upright")

    ecg_inverted = "ecg" in clean and filters.ecg_looks_inverted(
        np.concatenate([clean["ecg"][a:b] for a, b in bounds]), FS_HZ)
    if ecg_inverted:   # reported, not flipped: a lead like aVR is negative by nature
        notes.append("ECG: QRS complexes point mostly downward (an inverted lead or swapped electrodes?); "
                     "the model expects lead II, upright")

    step = int(round(stride_s * FS_HZ))
    starts = np.concatenate([np.arange(a, b - WINDOW_SAMPLES + 1, step) for a, b in bounds]).astype(np.int64)
    if len(starts) == 0:
        raise InputError(f"{name}: no complete 10-s window after resampling to {FS_HZ:g} Hz")
    breaks = np.array([a for a, _ in bounds[1:]], dtype=np.int64)   # where segments 2.. start

    out: dict[str, Any] = {}
    peaks: dict[str, np.ndarray] = {}
    dead: dict[str, str] = {}
    classes = None
    checks: dict[str, tuple[np.ndarray, np.ndarray]] = {}     # per channel: template score, usable windows
    for mod in mods:                          # measure every channel, so all dead ones are found in one pass
        try:
            res = _measure_channel(mod, getattr(rec, mod), rec.fs, clean[mod], bounds, starts, breaks, notes,
                                   leads_clean, model_lead, beats)
        except _DeadChannels as e:
            dead.update(e.reasons)
            continue
        peaks[mod] = res.pop("peaks")
        classes = res.pop("classes") if mod == "ecg" else classes
        checks[mod] = (res.pop("template"), res.pop("usable"))
        out.update(res)
    delays, pairing = None, 0
    if len(peaks) == 2:
        r_s = pk.refine_peak_times_s(clean["ecg"], peaks["ecg"], FS_HZ)
        pulse_s = pk.refine_peak_times_s(clean["ppg"], peaks["ppg"], FS_HZ)
        delays, pairing = pk.beat_delays_s(r_s, pulse_s, breaks / FS_HZ)
    if "ppg" in checks:                       # judged beside the ECG's R-peaks, so after both are measured
        template, usable = checks["ppg"]
        locked = (float("nan") if delays is None
                  else ql.pulse_locked_fraction(delays, peaks["ecg"], starts, usable, WINDOW_SAMPLES))
        if not ql.shows_pulse(template, usable, out["hr_ppg_bpm"], locked):
            dead["ppg"] = _no_pulse_reason(len(starts), locked)
        elif not np.isfinite(locked) and not ql.beats_alike(template, usable, out["hr_ppg_bpm"]):
            # kept for want of an ECG to check it against; say so, as its quality alone cannot
            notes.append(f"PPG: the detected beats look alike in none of {len(starts)} windows (no pulse?); "
                         f"kept, as there are no R-peaks to check it against")
    if dead:
        raise _DeadChannels(dead)

    n = len(starts)
    low = np.zeros(n, dtype=bool)
    for mod in mods:
        low |= out[f"{mod}_quality"] < quality_threshold
    pat = np.full(n, np.nan)
    if delays is not None:
        pat = pk.window_pat_ms(peaks["ecg"], delays, starts, WINDOW_SAMPLES)
        if pairing != 0:
            notes.append(f"pulse peaks paired with R-peaks {pairing:+d} beat(s) from the next one "
                         f"(least varying delay)")
    nan_n = np.full(n, np.nan, dtype=np.float32)

    meta = dict(rec.meta)
    # Drops first: they change what everything after them means.
    drop_notes = [_drop_note(m, dropped[m], mods, rec) for m in rec.modalities if m in dropped]
    meta["notes"] = list(rec.meta.get("notes", [])) + drop_notes + notes
    meta.update(fs_original_hz=rec.fs, duration_s=rec.duration_s, stride_s=float(stride_s),
                quality_threshold=float(quality_threshold), ppg_flipped=bool(flipped), ecg_inverted=bool(ecg_inverted),
                segments_s=[(a / FS_HZ, b / FS_HZ) for a, b in bounds],
                dropped={m: dropped[m] for m in rec.modalities if m in dropped})
    return Windows(
        ecg=out.get("ecg"), ppg=out.get("ppg"), starts_s=starts / FS_HZ,
        ecg_center=out.get("ecg_center"), ecg_scale=out.get("ecg_scale"),
        ppg_center=out.get("ppg_center"), ppg_scale=out.get("ppg_scale"),
        ecg_quality=out.get("ecg_quality", nan_n), ppg_quality=out.get("ppg_quality", nan_n),
        low_quality=low, hr_ecg_bpm=out.get("hr_ecg_bpm", nan_n), hr_ppg_bpm=out.get("hr_ppg_bpm", nan_n),
        pat_ms=pat.astype(np.float32), ecg_clean=clean.get("ecg"), ppg_clean=clean.get("ppg"),
        r_peaks=peaks.get("ecg"), pulse_peaks=peaks.get("ppg"), ecg_leads_clean=leads_clean,
        r_peak_classes=classes if "ecg" in peaks else None,
        ecg_no_beats=out.get("ecg_no_beats"), ppg_no_beats=out.get("ppg_no_beats"), meta=meta, fs=FS_HZ,
    )
