"""Batched synthesis of paired ECG+PPG: every beat of every row generated at once.

One call turns ``n`` subjects (a struct-of-arrays table, see :mod:`.subject`) into ``n`` paired
traces of the same length. The heart drives both channels beat by beat:

1. RR intervals per row: sinus rhythm modulated by respiration (RSA) and Mayer waves plus jitter;
   AF draws irregularly irregular RR; PVC subjects get premature beats (coupling interval) each
   followed by a full compensatory pause. ICU alarm rhythms: VT makes every beat ventricular (wide,
   no P, 120-250 bpm, weak pulses of varying height); VF / flutter and asystole render no beat and
   no pulse at all (VF adds a 4-7 Hz oscillation, asystole leaves noise and wander); extreme
   brady- / tachycardia are sinus rhythms below 40 / above 140 bpm.
2. ECG: each beat is a McSharry-style sum of five Gaussians (P, Q, R, S, T) around its R time,
   QT shortening with rate (Fridericia), amplitude modulated by breathing; premature ventricular
   beats are wide, tall, without P and with a discordant T; AF adds fibrillatory f-waves.
3. PPG: each beat ejects a pulse whose systolic peak arrives ``pat`` after its R peak
   (pre-ejection + transit + rise + device delay); its height follows the preceding RR
   (a premature beat fills little → weak pulse; the beat after the pause is potentiated) and
   breathing; the diastolic wave's prominence and timing come from age and stiffness.
4. Artefacts (``noise=True``): baseline wander, EMG noise, mains, motion bursts (mostly PPG),
   slow perfusion changes.

Beats are rendered on a short local grid each and scattered into the rows with one
``np.bincount``, so cost grows with beats, not with trace length × beats; there is no Python loop
over beats, rows or samples.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..contract import ALL_RHYTHM_CODES
from .subject import BEATLESS_RHYTHMS, HR_RANGE_BPM

TWO_PI = np.float32(2.0 * np.pi)
LEAD_IN_S = 2.4       # beats start this long before t = 0 so pulses with long delays are complete
# Support of each wave around its event (R peak / systolic peak), in s: beyond ±3.5 sigma of the
# widest parameters the simulator draws, a wave is below 0.3 % of its height and is not computed.
ECG_SPAN_S = (-0.35, 0.65)
ECG_WAVE_SPANS_S = ((-0.35, 0.0), (-0.08, 0.03), (-0.13, 0.13), (-0.07, 0.22), (0.03, 0.65))  # P Q R S T
PPG_SPAN_S = (-0.32, 1.00)
DIASTOLIC_SPAN_S = (-0.25, 1.0)
REF_RR_S = 60.0 / 70.0


def _scatter(rows: np.ndarray, starts: np.ndarray, values: np.ndarray, n: int, T: int) -> np.ndarray:
    """Add ``values[v, j]`` into ``out[rows[v], starts[v] + j]``; samples outside [0, T) are dropped."""
    L = values.shape[1]
    idx = starts[:, None] + np.arange(L)[None, :]
    np.clip(idx, -1, T, out=idx)
    idx += 1  # columns 0 and T+1 collect what falls outside the trace
    flat = (rows[:, None] * (T + 2) + idx).ravel()
    out = np.bincount(flat, weights=values.ravel(), minlength=n * (T + 2))
    return out.reshape(n, T + 2)[:, 1:-1]


def _local_grid(t_event: np.ndarray, span_s: tuple[float, float], fs: float) -> tuple[np.ndarray, np.ndarray]:
    """First sample index of each event's local grid and the grid times relative to the event, [V, L] float32."""
    start = np.floor((t_event + span_s[0]) * fs).astype(np.int64)
    L = int(np.ceil((span_s[1] - span_s[0]) * fs)) + 1
    offset = (start / fs - t_event).astype(np.float32)
    return start, offset[:, None] + (np.arange(L) / fs).astype(np.float32)[None, :]


def _cols(grid_start_s: float, wave_span_s: tuple[float, float], fs: float) -> slice:
    """Columns of a local grid (starting at ``grid_start_s``) that cover ``wave_span_s`` (±1 sample)."""
    return slice(max(0, int(np.floor((wave_span_s[0] - grid_start_s) * fs))),
                 int(np.ceil((wave_span_s[1] - grid_start_s) * fs)) + 2)


def _gauss_sum(tau: np.ndarray, amps: np.ndarray, centres: np.ndarray, sigmas: np.ndarray,
               cols: list[slice]) -> np.ndarray:
    """Σ_w amps[:, w] · exp(-½((tau - centres[:, w]) / sigmas[:, w])²) for tau [V, L] → [V, L].

    Wave ``w`` is evaluated only on the columns ``cols[w]`` (where it is not negligible), which
    keeps the narrow QRS from costing a whole second of samples per beat.
    """
    out = np.zeros_like(tau)
    for w, c in enumerate(cols):  # five waves at most
        z = (tau[:, c] - centres[:, w:w + 1]) * (np.float32(1.0) / sigmas[:, w:w + 1])
        out[:, c] += amps[:, w:w + 1] * np.exp(np.float32(-0.5) * z * z)
    return out


def _bursts(rng: np.random.Generator, rate_per_min: np.ndarray, amp: np.ndarray, duration_s: float, fs: float,
            n: int, T: int) -> np.ndarray | None:
    """Motion artefacts: Poisson bursts of 0.5–3 s, Hann-windowed low-frequency oscillation + step."""
    counts = rng.poisson(rate_per_min * duration_s / 60.0)
    total = int(counts.sum())
    if total == 0:
        return None
    rows = np.repeat(np.arange(n), counts)
    length_s = rng.uniform(0.5, 3.0, total)
    start_s = rng.uniform(-1.0, duration_s, total)
    L = int(np.ceil(3.0 * fs))
    tau = (np.arange(L, dtype=np.float32)[None, :] / np.float32(fs))  # [1, L]
    frac = tau / length_s[:, None].astype(np.float32)
    env = np.where(frac < 1.0, 0.5 - 0.5 * np.cos(TWO_PI * np.minimum(frac, 1.0)), 0.0).astype(np.float32)
    f1, f2 = rng.uniform(0.3, 3.0, (2, total, 1)).astype(np.float32)
    p1, p2 = rng.uniform(0, 2 * np.pi, (2, total, 1)).astype(np.float32)
    wave = np.sin(TWO_PI * f1 * tau + p1) + 0.6 * np.sin(TWO_PI * f2 * tau + p2)
    wave += rng.uniform(-1.0, 1.0, (total, 1)).astype(np.float32) * frac.clip(0, 1)  # a shift in contact
    vals = (amp[rows, None] * rng.uniform(0.3, 1.0, (total, 1)) * env * wave).astype(np.float32)
    starts = np.floor(start_s * fs).astype(np.int64)
    return _scatter(rows, starts, vals, n, T)


def _vf_wave(rng: np.random.Generator, f0_hz: np.ndarray, amp_mv: np.ndarray, t: np.ndarray,
             cdt: type[np.floating[Any]]) -> np.ndarray:
    """Ventricular flutter / fibrillation ECG [V, T] (mV): a 4-7 Hz oscillation without QRS complexes.

    About a third of rows are flutter (one near-sinusoidal wave, steady rate and height); the rest are
    fibrillation: the rate wanders by up to ±25 % and the height swells and fades (coarse to fine).
    """
    v = len(f0_hz)
    two_pi = cdt(2 * np.pi)
    flutter = rng.random((v, 1)) < 1 / 3
    f0 = f0_hz.astype(cdt)[:, None]
    fm = rng.uniform(0.2, 0.8, (2, v, 1)).astype(cdt)
    ph = rng.uniform(0, 2 * np.pi, (4, v, 1)).astype(cdt)
    depth = np.where(flutter, rng.uniform(0.0, 0.05, (v, 1)), rng.uniform(0.1, 0.25, (v, 1))).astype(cdt)
    # instantaneous rate f0 (1 + depth sin(2π fm t)): its phase integral in closed form
    phase = two_pi * f0 * t - f0 * depth / fm[0] * np.cos(two_pi * fm[0] * t + ph[0]) + ph[1]
    wave = np.sin(phase) + cdt(0.25) * np.sin(2 * phase + ph[2])  # a harmonic: sharper, less sine-like
    swell = np.where(flutter, 1.0, 0.6 + 0.4 * np.sin(two_pi * fm[1] * t + ph[3])).astype(cdt)
    return (amp_mv.astype(cdt)[:, None] * swell * wave).astype(cdt)


def synthesize(
    p: dict[str, np.ndarray],
    duration_s: float,
    fs_hz: float,
    rng: np.random.Generator,
    noise: bool = True,
    label_span_s: tuple[float, float] | None = None,
    return_beats: bool = False,
) -> dict[str, np.ndarray]:
    """Render ``n = len(p['hr_bpm'])`` paired traces of ``duration_s`` at ``fs_hz``.

    p : subject table, one row per output trace (rows may repeat a subject: each row still gets
        its own heart-rate drift, breathing phase and noise).
    label_span_s : (start, stop) in s over which the per-row labels ``hr_bpm`` and ``pat_ms`` are
        measured (default: the whole trace).

    Returns ecg [n, T] float32 (mV), ppg [n, T] float32 (au), hr_bpm [n] (from the R peaks in the
    span), pat_ms [n] (median R→PPG-peak delay of the normal beats in the span), n_pvc [n]; with
    ``return_beats`` also r_times [n, M] (s, NaN-padded), pulse_times [n, M], is_pvc [n, M].
    """
    fs = float(fs_hz)
    n = len(p["hr_bpm"])
    T = int(round(duration_s * fs))
    f32 = np.float32
    codes = p["rhythm"]
    is_af = codes == "AF"
    is_vt = codes == "VT"
    beatless = np.isin(codes, BEATLESS_RHYTHMS)

    # --- heart-rate drift between windows of one subject, kept inside the rhythm's range ---------
    lo, hi = np.empty(n), np.empty(n)
    for code in ALL_RHYTHM_CODES:
        lo[codes == code], hi[codes == code] = HR_RANGE_BPM[code]
    # (a hand-made subject outside its class range keeps its own rate: the range widens to include it)
    hr = np.clip(p["hr_bpm"] * np.exp(rng.normal(0.0, 0.03, n)), np.minimum(lo, p["hr_bpm"]),
                 np.maximum(hi, p["hr_bpm"]))
    rr_mean = 60.0 / hr
    resp_hz = p["resp_rate_hz"] * np.exp(rng.normal(0.0, 0.05, n))
    resp_phase = rng.uniform(0, 2 * np.pi, n)
    lf_hz = rng.uniform(0.08, 0.12, n)
    lf_phase = rng.uniform(0, 2 * np.pi, n)

    # --- RR intervals [n, M]: rr[:, k] is the interval ending at beat k --------------------------
    M = int(np.ceil((duration_s + LEAD_IN_S + 1.0) / (0.4 * rr_mean.min()))) + 2
    k = np.arange(M)
    t_approx = -LEAD_IN_S + k[None, :] * rr_mean[:, None]
    rr = rr_mean[:, None] * (
        1.0
        + p["rsa_frac"][:, None] * np.sin(2 * np.pi * resp_hz[:, None] * t_approx + resp_phase[:, None])
        + p["lf_frac"][:, None] * np.sin(2 * np.pi * lf_hz[:, None] * t_approx + lf_phase[:, None])
        + p["rr_jitter_frac"][:, None] * rng.standard_normal((n, M))
    )
    if is_af.any():
        sig = np.sqrt(np.log1p(p["af_rr_cv"] ** 2))[:, None]
        rr_af = rr_mean[:, None] * np.exp(sig * rng.standard_normal((n, M)) - 0.5 * sig**2)
        rr = np.where(is_af[:, None], rr_af, rr)
    # a 0.25-s floor for supraventricular rhythms (AV-node refractoriness); VT runs up to 250 bpm (0.24 s)
    rr = np.maximum(rr, np.where(is_vt, 0.4 * rr_mean, np.maximum(0.4 * rr_mean, 0.25))[:, None])
    pvc = rng.random((n, M)) < p["pvc_burden"][:, None]
    pvc[:, 1:] &= ~pvc[:, :-1]  # no couplets: every PVC is followed by a sinus beat
    pvc[:, 0] = False
    # A PVC subject's window must show ectopy, else its rhythm label would be noise: force one
    # premature beat somewhere inside the labelled span of every PVC row.
    span_a, span_b = label_span_s if label_span_s is not None else (0.0, duration_s)
    t0 = -LEAD_IN_S - rng.uniform(0, 1, n) * rr_mean
    ectopic_rows = np.nonzero(p["pvc_burden"] > 0)[0]
    if len(ectopic_rows):
        at = rng.uniform(span_a + 1.0, max(span_a + 1.0, span_b - 1.5), len(ectopic_rows))
        kf = np.clip(np.round((at - t0[ectopic_rows]) / rr_mean[ectopic_rows]).astype(np.int64), 2, M - 2)
        pvc[ectopic_rows, kf - 1] = False
        pvc[ectopic_rows, kf + 1] = False
        pvc[ectopic_rows, kf] = True
    after = np.zeros_like(pvc)
    after[:, 1:] = pvc[:, :-1]
    c = p["pvc_coupling"][:, None]
    rr = rr * np.where(pvc, c, 1.0) * np.where(after, 2.0 - c, 1.0)  # full compensatory pause
    # VT: every beat is ventricular (wide, no P, discordant T) at the row's own regular rate
    pvc |= is_vt[:, None]
    times = t0[:, None] + np.concatenate([np.zeros((n, 1)), np.cumsum(rr[:, 1:], axis=1)], axis=1)

    # Per-beat pulse arrival: device + physiology, later for premature beats, breathing-modulated
    # (BP, hence transit time, swings with respiration), a few ms of beat-to-beat jitter.
    resp_at_beat = np.sin(2 * np.pi * resp_hz[:, None] * times + resp_phase[:, None])
    pat = (p["pat_ms"][:, None]
           + np.where(pvc, p["pvc_pep_extra_ms"][:, None], 0.0)
           + 0.02 * p["ptt_ms"][:, None] * resp_at_beat
           + rng.normal(0.0, 4.0, (n, M)))
    pulse_times = times + pat / 1000.0
    # VF / asystole: no QRS and no pulse at all (the beat grid above only kept the random stream aligned)
    times = np.where(beatless[:, None], np.inf, times)
    pulse_times = np.where(beatless[:, None], np.inf, pulse_times)

    # --- ECG beats -----------------------------------------------------------------------------
    live = times < duration_s - ECG_SPAN_S[0]
    bi, bk = np.nonzero(live)
    tb = times[bi, bk]
    pv = pvc[bi, bk]
    g = {key: p[key][bi] for key in (
        "p_mv", "q_mv", "r_mv", "s_mv", "t_mv", "pr_s", "p_sigma_s", "qrs_sigma_s", "qs_offset_s",
        "t_sigma_s", "qtc_s", "pvc_sign", "pvc_mv", "pvc_sigma_s", "ecg_resp_am")}
    rr_b = rr_mean[bi]
    cube = np.cbrt(rr_b)
    qt = g["qtc_s"] * cube
    t_sig = g["t_sigma_s"] * cube
    t_peak = qt - 0.04 - 2.0 * t_sig
    gain_ecg = rng.uniform(0.85, 1.15, n) if noise else np.ones(n)
    am = gain_ecg[bi] * (1.0 + g["ecg_resp_am"] * resp_at_beat[bi, bk])
    zero = np.zeros_like(tb)
    sign = g["pvc_sign"]
    amps = np.where(pv[:, None],
                    np.stack([zero, zero, sign * g["pvc_mv"], -0.35 * sign * g["pvc_mv"],
                              -0.25 * sign * g["pvc_mv"]], 1),
                    np.stack([g["p_mv"], g["q_mv"], g["r_mv"], g["s_mv"], g["t_mv"]], 1)) * am[:, None]
    centres = np.where(pv[:, None],
                       np.stack([zero, zero, zero, 1.6 * g["pvc_sigma_s"], 0.30 * cube], 1),
                       np.stack([-g["pr_s"] * rr_b ** 0.2, -g["qs_offset_s"], zero, g["qs_offset_s"], t_peak], 1))
    sigmas = np.where(pv[:, None],
                      np.stack([g["p_sigma_s"], g["pvc_sigma_s"], g["pvc_sigma_s"], 1.3 * g["pvc_sigma_s"],
                                0.075 * cube], 1),
                      np.stack([g["p_sigma_s"], 0.8 * g["qrs_sigma_s"], g["qrs_sigma_s"],
                                0.8 * g["qrs_sigma_s"], t_sig], 1))
    start, tau = _local_grid(tb, ECG_SPAN_S, fs)
    cols = [_cols(ECG_SPAN_S[0], span, fs) for span in ECG_WAVE_SPANS_S]
    ecg = _scatter(bi, start, _gauss_sum(tau, amps.astype(f32), centres.astype(f32), sigmas.astype(f32), cols), n, T)

    # --- PPG pulses ----------------------------------------------------------------------------
    live = (pulse_times < duration_s - PPG_SPAN_S[0]) & (pulse_times > -PPG_SPAN_S[1])
    bi, bk = np.nonzero(live)
    tp = pulse_times[bi, bk]
    pv = pvc[bi, bk]
    rr_b = rr_mean[bi]
    stretch = np.sqrt(rr_b / REF_RR_S).clip(0.7, 1.3)
    filling = np.clip(rr[bi, bk] / rr_b, 0.4, 1.5) ** 1.3  # Frank–Starling: short filling → small stroke
    gain_ppg = np.exp(rng.normal(0.0, 0.15, n)) if noise else np.ones(n)
    height = (p["ppg_amp"][bi] * gain_ppg[bi] * filling * np.where(pv, 0.35, 1.0)
              * (1.0 + p["ppg_resp_am"][bi] * resp_at_beat[bi, bk]))
    if is_vt.any():  # VT: filling varies with AV dissociation, so pulse heights vary beat to beat
        height = height * np.where(is_vt[bi], np.exp(rng.normal(0.0, 0.4, len(bi))), 1.0)
    start, tau = _local_grid(tp, PPG_SPAN_S, fs)
    # Systolic wave: a Gaussian rising edge (foot = peak − 2σ by the tangent method) joined at the
    # peak to a slower Gaussian decay; then the diastolic (reflected) wave.
    inv_sigma = np.where(tau < 0, (2000.0 / p["rise_ms"][bi]).astype(f32)[:, None],
                         (1.0 / (p["sys_fall_s"][bi] * stretch)).astype(f32)[:, None])
    z = tau * inv_sigma
    pulse = np.exp(f32(-0.5) * z * z)
    pulse += _gauss_sum(tau, p["dicrotic_ratio"][bi].astype(f32)[:, None],
                        (p["dicrotic_delay_s"][bi] * stretch).astype(f32)[:, None],
                        p["dicrotic_sigma_s"][bi].astype(f32)[:, None], [_cols(PPG_SPAN_S[0], DIASTOLIC_SPAN_S, fs)])
    pulse *= height.astype(f32)[:, None]
    ppg = _scatter(bi, start, pulse, n, T)

    # --- continuous components ------------------------------------------------------------------
    # float32 is plenty for minutes of signal; long records keep float64 phases (a 24-h time axis
    # in float32 would smear a 60-Hz phase by radians).
    cdt: type[np.floating[Any]] = f32 if duration_s <= 600 else np.float64
    col = lambda key: p[key].astype(cdt)[:, None]  # noqa: E731  (one value per row, broadcast over time)
    ecg, ppg = ecg.astype(cdt), ppg.astype(cdt)
    t = (np.arange(T) / fs).astype(cdt)[None, :]
    two_pi = cdt(2 * np.pi)
    resp = np.sin(two_pi * resp_hz.astype(cdt)[:, None] * t + resp_phase.astype(cdt)[:, None])
    amp = (p["ppg_amp"] * gain_ppg).astype(cdt)[:, None]
    ppg += col("ppg_offset") - (col("ppg_resp_bw") * amp) * resp  # breathing shifts blood volume
    af_rows = np.nonzero(is_af & (p["af_f_mv"] > 0))[0]
    if len(af_rows):
        fm = rng.uniform(0.1, 0.3, (len(af_rows), 1)).astype(cdt)
        beta = (rng.uniform(0.3, 1.0, (len(af_rows), 1)) / fm).astype(cdt)  # ±0.3–1 Hz wander
        ph = rng.uniform(0, 2 * np.pi, (3, len(af_rows), 1)).astype(cdt)
        f0 = p["af_f_hz"][af_rows].astype(cdt)[:, None]
        fwave = np.sin(two_pi * f0 * t + beta * np.sin(two_pi * fm * t + ph[0]) + ph[1])
        fwave *= 1.0 + cdt(0.4) * np.sin(two_pi * cdt(0.25) * t + ph[2])
        ecg[af_rows] += p["af_f_mv"][af_rows].astype(cdt)[:, None] * fwave
    vf_rows = np.nonzero(codes == "VF")[0]
    if len(vf_rows):
        ecg[vf_rows] += _vf_wave(rng, p["af_f_hz"][vf_rows], p["af_f_mv"][vf_rows], t, cdt)
    if noise:
        f_bw = rng.uniform(0.03, 0.3, (2, n, 1)).astype(cdt)
        ph = rng.uniform(0, 2 * np.pi, (2, n, 1)).astype(cdt)
        ecg += col("ecg_wander_mv") * (cdt(0.5) * resp + np.sin(two_pi * f_bw[0] * t + ph[0]))
        # slow perfusion change and drift of the PPG, as a fraction of the pulse amplitude
        ppg += (col("ppg_wander") * amp) * np.sin(two_pi * f_bw[1] * t + ph[1])
        ecg += col("ecg_noise_mv") * rng.standard_normal((n, T), dtype=f32)
        ppg += (col("ppg_noise") * col("ppg_amp")) * rng.standard_normal((n, T), dtype=f32)
        mains_rows = np.nonzero(p["mains_mv"] > 0)[0]
        if len(mains_rows):
            ph = rng.uniform(0, 2 * np.pi, (len(mains_rows), 1)).astype(cdt)
            ecg[mains_rows] += p["mains_mv"][mains_rows].astype(cdt)[:, None] * np.sin(
                two_pi * p["mains_hz"][mains_rows].astype(cdt)[:, None] * t + ph)
        motion = _bursts(rng, p["ppg_motion_per_min"], p["ppg_amp"] * 1.5, duration_s, fs, n, T)
        if motion is not None:
            ppg += motion
        motion = _bursts(rng, p["ecg_motion_per_min"], np.full(n, 0.6), duration_s, fs, n, T)
        if motion is not None:
            ecg += motion

    # --- labels measured over the span the caller keeps ------------------------------------------
    in_span = (times >= span_a) & (times < span_b)
    count = in_span.sum(1)
    first = np.where(in_span, times, np.inf).min(1)
    last = np.where(in_span, times, -np.inf).max(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        hr_bpm = np.where(count >= 2, 60.0 * (count - 1) / (last - first), np.nan)
    normal = in_span & ~pvc
    pat_span = np.where(normal, pat, np.nan)
    pat_ms = np.full(n, np.nan)
    has = normal.any(1)
    pat_ms[has] = np.nanmedian(pat_span[has], axis=1)
    out = {
        "ecg": ecg.astype(f32, copy=False),
        "ppg": ppg.astype(f32, copy=False),
        "hr_bpm": hr_bpm.astype(f32),
        "pat_ms": pat_ms.astype(f32),
        "n_pvc": (in_span & pvc).sum(1).astype(np.int64),
    }
    if return_beats:
        out["r_times"] = np.where(times < duration_s, times, np.nan)
        out["pulse_times"] = np.where(times < duration_s, pulse_times, np.nan)
        out["is_pvc"] = pvc & (times < duration_s)
    return out
