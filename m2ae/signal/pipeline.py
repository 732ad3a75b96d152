"""``preprocess``: a ``Record`` in any rate and units → contract ``Windows`` with quality and peaks.

Steps, per gap-free segment of the record (windows never cross a gap longer than 1 s):
resample to 125 Hz (polyphase) → band-pass (ECG 0.5–40 Hz, PPG 0.5–8 Hz, zero phase) → PPG made
upright (decided once per record) → R-peaks / pulse peaks (neurokit2, once per segment) → 10-s
windows → robust normalisation keeping center/scale → per-window quality, heart rate and
R → pulse-peak delay.

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
from . import filters, peaks as pk, quality as ql

MAX_GAP_S = 1.0  # NaN runs up to this long are interpolated; longer ones split the record
MAX_WINDOWS = 100_000  # ~1 GB of float32 windows per modality; 11.6 days at the default 10-s stride
MAX_ABS_VALUE = 1e12  # no unit of ECG/PPG reaches this: a scaling error, and float filters would overflow


def _check_channel(name: str, mod: str, x: np.ndarray) -> None:
    finite = np.isfinite(x)
    if not finite.any():
        raise InputError(f"{name}: {mod.upper()} channel has no finite samples")
    values = x[finite]
    lo, hi = float(values.min()), float(values.max())
    peak = max(abs(lo), abs(hi))
    if peak > MAX_ABS_VALUE:
        raise InputError(f"{name}: {mod.upper()} reaches {peak:.3g}, not a physiological signal in any unit "
                         f"(check the file's scaling)")
    if hi == lo:
        raise InputError(f"{name}: {mod.upper()} is a flat line (every sample = {hi:g}); nothing to analyse")
    if hi - lo <= max(1e-9 * peak, 1e-15):
        raise InputError(f"{name}: {mod.upper()} is a flat line (it varies by only {hi - lo:.3g} around {hi:g}); "
                         f"nothing to analyse")


def _window_fraction(mask: np.ndarray, fs_hz: float, n_total: int, starts: np.ndarray) -> np.ndarray:
    """Fraction of each 125-Hz window covered by a boolean mask given at the record's own rate."""
    if not mask.any():
        return np.zeros(len(starts))
    m125 = filters.resample_to(mask.astype(np.float64), fs_hz, FS_HZ)[:n_total] > 0.5
    count = np.concatenate(([0], np.cumsum(np.pad(m125, (0, max(0, n_total - len(m125)))))))
    return (count[starts + WINDOW_SAMPLES] - count[starts]) / WINDOW_SAMPLES


def _segments_of(rec: Record) -> tuple[dict[str, np.ndarray], list[tuple[int, int]], list[str]]:
    """Gap-fill every channel; return filled channels, the gap-free segments common to all, notes."""
    filled, notes, valid = {}, [], np.ones(rec.n_samples, dtype=bool)
    for mod in rec.modalities:
        y, segs, n = filters.fill_gaps(getattr(rec, mod), rec.fs, MAX_GAP_S, name=mod.upper())
        filled[mod] = y
        notes += n
        chan_ok = np.zeros(rec.n_samples, dtype=bool)
        for a, b in segs:
            chan_ok[a:b] = True
        valid &= chan_ok
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


def _measure_channel(name: str, mod: str, raw: np.ndarray, fs_hz: float, x: np.ndarray,
                     bounds: list[tuple[int, int]], starts: np.ndarray, breaks: np.ndarray,
                     notes: list[str]) -> dict[str, np.ndarray]:
    """Windows, normalisation, peaks, heart rate and quality of one channel (``x``: clean, 125 Hz)."""
    windows = np.lib.stride_tricks.sliding_window_view(x, WINDOW_SAMPLES)[starts]      # [N, 1250] copy
    z, center, scale = filters.robust_normalise(windows, axis=-1)
    detect = pk.detect_r_peaks if mod == "ecg" else pk.detect_pulse_peaks
    peaks, beat_r = [], []
    for a, b in bounds:                       # detectors run once per gap-free segment, not per window
        p = detect(x[a:b], FS_HZ)
        beat_r.append(ql.beat_template_correlation(x[a:b], p, FS_HZ))
        peaks.append(p + a)
    peaks_all = np.concatenate(peaks).astype(np.int64)
    hr = pk.window_heart_rate(peaks_all, starts, WINDOW_SAMPLES, FS_HZ, breaks)

    clip_mask = ql.clipped_mask(raw, fs_hz)
    if clip_mask.mean() >= 1e-3:
        notes.append(f"{mod.upper()}: {100 * clip_mask.mean():.1f}% of samples stuck at the signal's "
                     f"extreme value (clipped)")
    clip_frac = _window_fraction(clip_mask, fs_hz, len(x), starts)
    interp_frac = _window_fraction(~np.isfinite(raw), fs_hz, len(x), starts)
    sanity = (ql.amplitude_score(scale) * ql.clip_score(clip_frac) * ql.interpolated_score(interp_frac)
              * ql.heart_rate_score(hr))
    if not (sanity > 0).any():
        raise InputError(f"{name}: {mod.upper()} is unusable in every window (no beats at 25–240 bpm, "
                         f"clipped, mostly missing samples, or flat)")
    quality = ql.window_template_score(peaks_all, np.concatenate(beat_r), starts, WINDOW_SAMPLES) * sanity
    return {mod: z.astype(np.float32), f"{mod}_center": center.astype(np.float32),
            f"{mod}_scale": scale.astype(np.float32), f"{mod}_quality": quality.astype(np.float32),
            f"hr_{mod}_bpm": hr.astype(np.float32), "peaks": peaks_all}


def preprocess(rec: Record, stride_s: float = WINDOW_S, quality_threshold: float = QUALITY_THRESHOLD) -> Windows:
    """Cut a record to the signal contract and measure it. Returns ``Windows`` (see its docstring).

    rec : a ``Record`` at any rate ≥ 20 Hz, ECG and/or PPG, NaN gaps allowed.
    stride_s : window stride in s (10 = back-to-back windows; 5 = half-overlapping).
    quality_threshold : windows with a present channel below it are flagged ``low_quality`` (kept).

    Heart rate per window = 60 / mean beat interval (missed/doubled beats dropped). ``pat_ms`` =
    median over the window's R-peaks of the time to that beat's PPG systolic peak (the peak, not
    the foot: the peak is what ``nk.ppg_peaks`` detects reliably; the foot comes ~100–150 ms
    earlier). Usually that is the next pulse peak; when the device delay exceeds a beat interval the
    pairing shifts (see ``peaks.beat_delays_s``). Raises ``InputError`` (one line naming
    ``rec.meta['source']``) for a record shorter than one window, a flat, empty or absurdly scaled
    channel, a channel unusable in every window, or no 10-s stretch free of gaps longer than 1 s.
    """
    name = str(rec.meta.get("source", "record"))
    if not np.isfinite(stride_s) or stride_s < 1.0 / FS_HZ:
        raise InputError(f"{name}: window stride must be at least one sample ({1000 / FS_HZ:g} ms), got {stride_s} s")
    if rec.duration_s < WINDOW_S:
        raise InputError(f"{name}: record is {rec.duration_s:.2f} s long; at least {WINDOW_S:g} s "
                         f"(one window) is needed")
    n_windows_max = int((rec.duration_s - WINDOW_S) // stride_s) + 1
    if n_windows_max > MAX_WINDOWS:
        raise InputError(f"{name}: {rec.duration_s:.0f} s at a {stride_s:g}-s stride would give {n_windows_max} "
                         f"windows (limit {MAX_WINDOWS}); use a larger stride or split the record")
    for mod in rec.modalities:
        _check_channel(name, mod, getattr(rec, mod))

    filled, segments, notes = _segments_of(rec)
    min_len = int(np.ceil(WINDOW_S * rec.fs))
    long_segments = [(a, b) for a, b in segments if b - a >= min_len]
    if not long_segments:
        longest = max((b - a for a, b in segments), default=0) / rec.fs
        raise InputError(f"{name}: no usable 10-s stretch: gaps longer than {MAX_GAP_S:g} s split the record "
                         f"into pieces of at most {longest:.1f} s")
    if len(long_segments) < len(segments):
        dropped = sum(b - a for a, b in segments if b - a < min_len) / rec.fs
        notes.append(f"{len(segments) - len(long_segments)} piece(s) shorter than 10 s between gaps "
                     f"({dropped:.1f} s) left out")

    up, down = filters.rational_ratio(rec.fs, FS_HZ)
    if up != down:
        notes.append(f"resampled {rec.fs:g} Hz → {FS_HZ:g} Hz (polyphase {up}/{down})")
    n_total = int(np.ceil(rec.n_samples * up / down))
    clean, bounds = _clean_segments(filled, rec.fs, long_segments, n_total)

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
    for mod in rec.modalities:
        res = _measure_channel(name, mod, getattr(rec, mod), rec.fs, clean[mod], bounds, starts, breaks, notes)
        peaks[mod] = res.pop("peaks")
        out.update(res)

    n = len(starts)
    low = np.zeros(n, dtype=bool)
    for mod in rec.modalities:
        low |= out[f"{mod}_quality"] < quality_threshold
    pat = np.full(n, np.nan)
    if len(peaks) == 2:
        r_s = pk.refine_peak_times_s(clean["ecg"], peaks["ecg"], FS_HZ)
        pulse_s = pk.refine_peak_times_s(clean["ppg"], peaks["ppg"], FS_HZ)
        delays, pairing = pk.beat_delays_s(r_s, pulse_s, breaks / FS_HZ)
        pat = pk.window_pat_ms(peaks["ecg"], delays, starts, WINDOW_SAMPLES)
        if pairing != 0:
            notes.append(f"pulse peaks paired with R-peaks {pairing:+d} beat(s) from the next one "
                         f"(least varying delay)")
    nan_n = np.full(n, np.nan, dtype=np.float32)

    meta = dict(rec.meta)
    meta["notes"] = list(rec.meta.get("notes", [])) + notes
    meta.update(fs_original_hz=rec.fs, duration_s=rec.duration_s, stride_s=float(stride_s),
                quality_threshold=float(quality_threshold), ppg_flipped=bool(flipped), ecg_inverted=bool(ecg_inverted),
                segments_s=[(a / FS_HZ, b / FS_HZ) for a, b in bounds])
    return Windows(
        ecg=out.get("ecg"), ppg=out.get("ppg"), starts_s=starts / FS_HZ,
        ecg_center=out.get("ecg_center"), ecg_scale=out.get("ecg_scale"),
        ppg_center=out.get("ppg_center"), ppg_scale=out.get("ppg_scale"),
        ecg_quality=out.get("ecg_quality", nan_n), ppg_quality=out.get("ppg_quality", nan_n),
        low_quality=low, hr_ecg_bpm=out.get("hr_ecg_bpm", nan_n), hr_ppg_bpm=out.get("hr_ppg_bpm", nan_n),
        pat_ms=pat.astype(np.float32), ecg_clean=clean.get("ecg"), ppg_clean=clean.get("ppg"),
        r_peaks=peaks.get("ecg"), pulse_peaks=peaks.get("ppg"), meta=meta, fs=FS_HZ,
    )


def _median(x: np.ndarray | None) -> float | None:
    if x is None:
        return None
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    return round(float(np.median(x)), 3) if len(x) else None


def summarize(rec: Record, win: Windows) -> dict[str, Any]:
    """The ``m2ae read --json`` summary: what was found, how, and what the signal contract made of it.

    Heart rates and pulse-arrival delay are medians over windows; quality is per channel (median, min).
    """
    meta = rec.meta
    units = meta.get("units") or {}
    matched_by = meta.get("matched_by") or {}
    channels: dict[str, Any] = {}
    for mod in rec.modalities:
        channels[mod] = {
            "column": meta.get(f"{mod}_column"),
            "matched_by": meta.get(f"{mod}_matched_by", matched_by.get(mod) if isinstance(matched_by, dict) else None),
            "lead": meta.get("lead") if mod == "ecg" else None,
            "units": units.get(mod) if isinstance(units, dict) else None,
        }
    quality = {}
    for mod in rec.modalities:
        q = getattr(win, f"{mod}_quality")
        quality[mod] = {"median": _median(q), "min": round(float(np.nanmin(q)), 3) if len(q) else None}
    return {
        "source": meta.get("source"),
        "fs_hz": rec.fs,
        "duration_s": round(rec.duration_s, 3),
        "channels": channels,
        "contract": {"fs_hz": FS_HZ, "window_s": WINDOW_S, "stride_s": win.meta.get("stride_s", WINDOW_S)},
        "n_windows": len(win),
        "n_low_quality": int(np.sum(win.low_quality)) if win.low_quality is not None else 0,
        "quality_threshold": win.meta.get("quality_threshold", QUALITY_THRESHOLD),
        "quality": quality,
        "heart_rate_bpm": {mod: _median(getattr(win, f"hr_{mod}_bpm")) for mod in rec.modalities},
        "pat_ms": _median(win.pat_ms) if len(rec.modalities) == 2 else None,
        "ppg_flipped": win.meta.get("ppg_flipped", False) if rec.ppg is not None else None,
        "ecg_inverted": win.meta.get("ecg_inverted", False) if rec.ecg is not None else None,
        "labels": meta.get("labels") or {},
        "notes": win.meta.get("notes", []),
    }


def format_summary(s: dict[str, Any]) -> str:
    """``summarize``'s dict as a few readable lines (``m2ae read`` without ``--json``)."""
    def num(v: Any, fmt: str) -> str:
        return "n/a" if v is None else format(v, fmt)

    lines = [f"{s['source']}: {s['duration_s']:.1f} s at {s['fs_hz']:g} Hz → {s['n_windows']} windows of "
             f"{s['contract']['window_s']:g} s at {s['contract']['fs_hz']:g} Hz "
             f"({s['n_low_quality']} below quality {s['quality_threshold']:g})"]
    for mod, ch in s["channels"].items():
        how = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in ch.items() if v is not None and k != "column")
        q = s["quality"][mod]
        lines.append(f"  {mod.upper()}  column {ch['column']!r}" + (f" ({how})" if how else "")
                     + f"; quality median {num(q['median'], '.2f')} (min {num(q['min'], '.2f')})"
                     + f"; heart rate {num(s['heart_rate_bpm'][mod], '.1f')} bpm")
    if s.get("pat_ms") is not None:
        lines.append(f"  R-peak → pulse-peak delay {s['pat_ms']:.0f} ms (median over windows)")
    lines += [f"  note: {n}" for n in s.get("notes", [])]
    return "\n".join(lines)
