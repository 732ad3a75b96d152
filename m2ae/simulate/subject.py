"""Subject-level parameters of the coupled ECG+PPG simulator: the labels and the hidden physiology.

A subject is drawn once (rhythm, hypertension, age, sex) and carries everything that stays fixed
across that person's windows: mean heart rate, heart-rate variability, ECG morphology in lead II,
blood pressure, arterial stiffness, pulse transit, the recording device's ECG→PPG delay, PPG pulse
shape, and how noisy their recordings are. Parameters are drawn vectorised
(:func:`sample_subject_table`) so that a training batch of thousands of fresh subjects costs
microseconds each; :func:`sample_subject` returns one as a :class:`SubjectParams`.

Physiology encoded (the couplings the model can learn and the heads can be probed on):

- rhythm → heart rate (SB < 60 bpm, ST > 100 bpm, NSR 60–100), RR regularity (AF: irregularly
  irregular, no P waves, fibrillatory baseline), ectopy (PVC: premature wide beats, compensatory
  pause, weak pulse);
- age → less HRV, stiffer arteries, smaller dicrotic wave; hypertension → higher SBP → stiffer,
  faster pulse wave → shorter pulse transit time;
- pulse arrival (R-peak → PPG systolic peak) = pre-ejection period + transit time + pulse rise time
  + a device delay, spanning about −0.2 to 1.0 s across subjects as real devices do.

>>> import numpy as np
>>> s = sample_subject(np.random.default_rng(0), rhythm="AF")
>>> s.rhythm, s.labels()["rhythm_name"]
('AF', 'atrial fibrillation')
"""
from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from ..contract import ALL_RHYTHM_CODES, RHYTHM_CODES, RHYTHM_NAMES
from ..errors import InputError

# The R-peak → PPG-peak delay real devices show spans about this range (BIDMC 01: 0.64 s,
# MIMIC/PhysioNet a103l: 0.12 s); the simulator covers it so training sees every device delay.
PAT_RANGE_S: tuple[float, float] = (-0.2, 1.0)
AGE_RANGE_Y: tuple[float, float] = (18.0, 90.0)
HR_RANGE_BPM: dict[str, tuple[float, float]] = {
    "NSR": (60.0, 98.0),
    "AF": (65.0, 130.0),   # ventricular response rate
    "SB": (40.0, 58.0),
    "ST": (102.0, 145.0),
    "PVC": (60.0, 95.0),   # underlying sinus rate
    # alarm rhythms (PhysioNet/CinC 2015 criteria: VT > 100 bpm, extreme brady < 40, extreme tachy > 140)
    "VT": (120.0, 250.0),  # wide complexes, one per "beat"
    "VF": (60.0, 60.0),    # no beats: the rate only sets the (unrendered) beat grid; waves at VF_WAVE_HZ
    "ASY": (60.0, 60.0),   # no beats
    "XB": (25.0, 39.0),
    "XT": (145.0, 200.0),
}
BEATLESS_RHYTHMS: tuple[str, ...] = ("VF", "ASY")  # no QRS complexes and no pulse
VF_WAVE_HZ: tuple[float, float] = (4.0, 7.0)       # flutter / fibrillation waves, 240-420 per minute


@dataclass
class SubjectParams:
    """One simulated subject. Times in s unless the name says ms; ECG amplitudes in mV; PPG in au.

    Labels: ``rhythm`` (code from ``m2ae.contract.RHYTHM_CODES``), ``hypertension``, ``age`` (years),
    ``sex`` ("F"/"M"), ``subject_id``. Everything else is hidden physiology.
    """

    subject_id: str
    rhythm: str
    hypertension: bool
    age: float
    sex: str
    # heart rate and its variability
    hr_bpm: float
    resp_rate_hz: float
    rsa_frac: float            # respiratory sinus arrhythmia: RR modulation amplitude, fraction of RR
    lf_frac: float             # ~0.1 Hz (Mayer wave) RR modulation, fraction of RR
    rr_jitter_frac: float      # beat-to-beat white RR noise, fraction of RR
    af_rr_cv: float            # AF only: coefficient of variation of RR (0 otherwise)
    pvc_burden: float          # PVC only: fraction of beats that are premature ventricular (0 otherwise)
    pvc_coupling: float        # PVC coupling interval as a fraction of the sinus RR
    # ECG morphology (lead II, McSharry-style sum of Gaussians around each R peak)
    qrs_axis_deg: float
    p_mv: float
    q_mv: float
    r_mv: float
    s_mv: float
    t_mv: float
    pr_s: float                # P-wave peak to R peak
    p_sigma_s: float
    qrs_sigma_s: float         # R-wave Gaussian sigma (QRS duration ≈ 7-8 sigma)
    qs_offset_s: float         # Q and S centre offsets from R
    t_sigma_s: float
    qtc_s: float               # corrected QT (Fridericia)
    pvc_sign: float            # polarity of the ectopic QRS in lead II (+1/-1)
    pvc_mv: float
    pvc_sigma_s: float
    af_f_mv: float             # fibrillatory-wave amplitude (AF f waves; VF: the fibrillation / flutter wave)
    af_f_hz: float
    # haemodynamics and pulse arrival
    sbp_mmhg: float
    dbp_mmhg: float
    pwv_m_s: float             # pulse wave velocity (arterial stiffness)
    path_m: float              # heart-to-finger arterial path length
    pep_ms: float              # pre-ejection period
    ptt_ms: float              # pulse transit time, aortic valve → finger pulse foot
    rise_ms: float             # pulse foot → systolic peak
    device_delay_ms: float     # acquisition delay of the PPG channel relative to the ECG (may be < 0)
    pat_ms: float              # R peak → PPG systolic peak = pep + ptt + rise + device delay
    pvc_pep_extra_ms: float    # a premature beat ejects later and weaker
    # PPG pulse shape
    ppg_amp: float
    ppg_offset: float
    sys_fall_s: float          # systolic decay sigma
    dicrotic_ratio: float      # diastolic wave height / systolic height: falls with age and stiffness
    dicrotic_delay_s: float    # systolic peak → diastolic peak (earlier reflection when stiff)
    dicrotic_sigma_s: float
    # respiration coupling and artefacts
    ecg_resp_am: float         # ECG amplitude modulation by breathing (fraction)
    ppg_resp_am: float         # PPG amplitude modulation by breathing (fraction)
    ppg_resp_bw: float         # PPG baseline modulation by breathing (fraction of pulse amplitude)
    ecg_wander_mv: float
    ppg_wander: float          # fraction of pulse amplitude
    ecg_noise_mv: float        # EMG-like broadband noise
    ppg_noise: float           # fraction of pulse amplitude
    mains_mv: float
    mains_hz: float
    ecg_motion_per_min: float
    ppg_motion_per_min: float

    @property
    def rhythm_index(self) -> int:
        """Index of ``rhythm`` in ``m2ae.contract.ALL_RHYTHM_CODES`` (the rhythm head's class index)."""
        return ALL_RHYTHM_CODES.index(self.rhythm)

    def labels(self) -> dict[str, Any]:
        """The labels a record of this subject carries (``Record.meta['labels']``)."""
        return {
            "rhythm": self.rhythm,
            "rhythm_name": RHYTHM_NAMES[self.rhythm],
            "hypertension": bool(self.hypertension),
            "age": round(float(self.age), 1),
            "sex": self.sex,
            "sbp_mmhg": round(float(self.sbp_mmhg), 1),
            "dbp_mmhg": round(float(self.dbp_mmhg), 1),
            "hr_bpm": round(float(self.hr_bpm), 1),
            "pat_ms": round(float(self.pat_ms), 1),
            "pep_ms": round(float(self.pep_ms), 1),
            "ptt_ms": round(float(self.ptt_ms), 1),
            "device_delay_ms": round(float(self.device_delay_ms), 1),
            "pwv_m_s": round(float(self.pwv_m_s), 2),
            "pvc_burden": round(float(self.pvc_burden), 3),
        }

    def to_dict(self) -> dict[str, Any]:
        """Every field by name (units as in the field names and comments above)."""
        return asdict(self)


def _check_choice(value: object, allowed: Collection[object], what: str) -> None:
    if value is not None and value not in allowed:
        raise InputError(f"simulate: unknown {what} {value!r} (choose from {', '.join(map(str, allowed))})")


def sample_subject_table(
    rng: np.random.Generator,
    n: int,
    rhythm: str | None = None,
    hypertension: bool | None = None,
    age: float | None = None,
    sex: str | None = None,
    id_start: int = 0,
    id_prefix: str = "sim",
    rhythms: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """Draw ``n`` subjects at once as a struct of arrays (one key per :class:`SubjectParams` field).

    rhythm / hypertension / age (years, 18-90) / sex fix that label for all ``n`` (None: drawn).
    Rhythms are drawn uniformly from ``rhythms`` (default the five subject rhythms
    ``m2ae.contract.RHYTHM_CODES``; pass ``ALL_RHYTHM_CODES`` to add the ICU alarm rhythms VT, VF,
    ASY, XB, XT); hypertension becomes likelier with age. Subject ids are ``id_prefix`` + a six-digit
    counter starting at ``id_start``.
    """
    _check_choice(rhythm, ALL_RHYTHM_CODES, "rhythm")
    pool = tuple(rhythms) if rhythms is not None else RHYTHM_CODES
    for code in pool:
        _check_choice(code, ALL_RHYTHM_CODES, "rhythm")
    if not pool:
        raise InputError("simulate: empty rhythm list")
    _check_choice(sex, ("F", "M"), "sex")
    if n < 0:
        raise InputError(f"simulate: number of subjects must be >= 0, got {n}")
    u = lambda lo, hi: rng.uniform(lo, hi, n)  # noqa: E731

    codes = (np.full(n, rhythm) if rhythm is not None else np.array(pool)[rng.integers(0, len(pool), n)])
    codes = codes.astype(f"<U{max(len(c) for c in ALL_RHYTHM_CODES)}")
    is_af, is_pvc = codes == "AF", codes == "PVC"
    is_vt, beatless = codes == "VT", np.isin(codes, BEATLESS_RHYTHMS)

    if age is not None:
        if not AGE_RANGE_Y[0] <= age <= AGE_RANGE_Y[1]:
            raise InputError(f"simulate: age {age} outside {AGE_RANGE_Y[0]:.0f}-{AGE_RANGE_Y[1]:.0f} years")
        age_y = np.full(n, float(age))
    else:
        # AF is a disease of older hearts; other rhythms span adult life.
        age_y = np.where(is_af, u(50.0, AGE_RANGE_Y[1]), u(*AGE_RANGE_Y))
    male = (np.full(n, sex == "M") if sex is not None else rng.random(n) < 0.5)
    htn = (np.full(n, bool(hypertension)) if hypertension is not None
           else rng.random(n) < 0.08 + 0.55 * (age_y - AGE_RANGE_Y[0]) / (AGE_RANGE_Y[1] - AGE_RANGE_Y[0]))
    a01 = (age_y - AGE_RANGE_Y[0]) / (AGE_RANGE_Y[1] - AGE_RANGE_Y[0])  # 0 young … 1 old

    lo = np.array([HR_RANGE_BPM[c][0] for c in codes])
    hi = np.array([HR_RANGE_BPM[c][1] for c in codes])
    hr = lo + (hi - lo) * rng.random(n)

    resp = u(0.15, 0.40)
    hrv_scale = (1.25 - 0.75 * a01) * np.where(np.isin(codes, ("ST", "XT")), 0.5, 1.0)
    # a ventricular rhythm does not follow breathing or the autonomic waves: no RSA / Mayer modulation
    rsa = np.where(is_af | is_vt, 0.0, u(0.015, 0.06) * hrv_scale)
    lf = np.where(is_af | is_vt, 0.0, u(0.005, 0.03) * hrv_scale)
    jitter = u(0.004, 0.015)
    af_cv = np.where(is_af, u(0.12, 0.28), 0.0)
    pvc_burden = np.where(is_pvc, u(0.10, 0.30), 0.0)
    pvc_coupling = u(0.50, 0.72)

    # Lead II sees the QRS best when the axis points along it (+60°).
    axis = np.clip(rng.normal(45.0, 25.0, n), -40.0, 100.0)
    along = np.cos(np.deg2rad(axis - 60.0))
    r_base = u(0.6, 1.8) * np.where(male, 1.1, 1.0)
    r_mv = r_base * (0.3 + 0.7 * np.clip(along, 0.0, None))
    s_mv = -u(0.05, 0.25) * (1.0 + 2.0 * (1.0 - along))
    q_mv = -u(0.02, 0.15)
    p_mv = np.where(is_af | is_vt | beatless, 0.0, u(0.08, 0.25))  # VT: dissociated P waves, not drawn
    t_mv = u(0.10, 0.45) * np.where(rng.random(n) < 0.05, -0.5, 1.0)  # a few flat/inverted T waves
    pr = u(0.13, 0.19)
    p_sigma = u(0.018, 0.032)
    qrs_sigma = u(0.008, 0.013)
    qs_off = qrs_sigma * u(2.0, 2.8)
    t_sigma = u(0.040, 0.065)
    qtc = u(0.37, 0.44) + np.where(male, 0.0, 0.01)
    pvc_sign = np.where(rng.random(n) < 0.6, 1.0, -1.0)
    pvc_mv = u(1.0, 2.2)
    pvc_sigma = u(0.022, 0.035)
    # the same fields carry the ventricular fibrillation / flutter wave of a VF subject (coarse, 0.2-1 mV)
    af_f = np.where(is_af, u(0.02, 0.10), np.where(codes == "VF", u(0.2, 1.0), 0.0))
    af_hz = np.where(codes == "VF", u(*VF_WAVE_HZ), u(4.5, 8.0))

    # Blood pressure → stiffness → transit time.
    sbp = np.where(htn,
                   np.clip(rng.normal(152.0 + 0.15 * (age_y - 18), 12.0, n), 140.0, 200.0),
                   np.clip(rng.normal(112.0 + 0.25 * (age_y - 18), 8.0, n), 92.0, 138.0))
    dbp = np.clip(0.5 * sbp + rng.normal(22.0, 5.0, n) + np.where(htn, 8.0, 0.0), 50.0, 120.0)
    pwv = np.clip(4.5 + 0.07 * (age_y - 18) + 0.05 * (sbp - 120.0) + rng.normal(0.0, 0.6, n), 4.0, 16.0)
    path = 0.72 + np.where(male, 0.06, 0.0) + rng.normal(0.0, 0.04, n)
    ptt_ms = 1000.0 * path / pwv + u(40.0, 90.0)  # + slower small-artery/arteriolar segment
    pep_ms = np.clip(u(70.0, 115.0) - 0.4 * (hr - 70.0), 40.0, 140.0)
    rise_ms = u(70.0, 160.0) * (1.0 - 0.15 * a01)
    phys_ms = pep_ms + ptt_ms + rise_ms
    # Device delay: half the subjects on "aligned" devices, half with a sizeable ECG/PPG offset,
    # kept so the total R→PPG-peak delay stays within the range real devices show.
    device_ms = np.where(rng.random(n) < 0.5, rng.normal(0.0, 25.0, n), u(-600.0, 600.0))
    pat_ms = np.clip(phys_ms + device_ms, 1000 * PAT_RANGE_S[0], 1000 * PAT_RANGE_S[1])
    device_ms = pat_ms - phys_ms
    pvc_pep_extra = u(20.0, 60.0)

    stiff = (pwv - 4.0) / 12.0
    dicrotic_ratio = np.clip(0.45 - 0.30 * a01 - 0.20 * stiff + rng.normal(0.0, 0.05, n), 0.02, 0.5)
    dicrotic_delay = np.clip(0.32 - 0.12 * stiff + rng.normal(0.0, 0.025, n), 0.14, 0.40)

    table: dict[str, np.ndarray] = {
        "subject_id": np.array([f"{id_prefix}{i:06d}" for i in range(id_start, id_start + n)]),
        "rhythm": codes,
        "hypertension": htn.astype(bool),
        "age": age_y,
        "sex": np.where(male, "M", "F"),
        "hr_bpm": hr,
        "resp_rate_hz": resp,
        "rsa_frac": rsa,
        "lf_frac": lf,
        "rr_jitter_frac": jitter,
        "af_rr_cv": af_cv,
        "pvc_burden": pvc_burden,
        "pvc_coupling": pvc_coupling,
        "qrs_axis_deg": axis,
        "p_mv": p_mv, "q_mv": q_mv, "r_mv": r_mv, "s_mv": s_mv, "t_mv": t_mv,
        "pr_s": pr, "p_sigma_s": p_sigma, "qrs_sigma_s": qrs_sigma, "qs_offset_s": qs_off,
        "t_sigma_s": t_sigma, "qtc_s": qtc,
        "pvc_sign": pvc_sign, "pvc_mv": pvc_mv, "pvc_sigma_s": pvc_sigma,
        "af_f_mv": af_f, "af_f_hz": af_hz,
        "sbp_mmhg": sbp, "dbp_mmhg": dbp, "pwv_m_s": pwv, "path_m": path,
        "pep_ms": pep_ms, "ptt_ms": ptt_ms, "rise_ms": rise_ms, "device_delay_ms": device_ms,
        "pat_ms": pat_ms, "pvc_pep_extra_ms": pvc_pep_extra,
        # VT ejects little (weak pulses); VF / asystole eject nothing (no pulse is rendered at all)
        "ppg_amp": np.exp(rng.normal(np.log(0.4), 0.5, n)) * np.where(is_vt, u(0.15, 0.5), 1.0),
        "ppg_offset": u(0.2, 0.8),
        "sys_fall_s": u(0.07, 0.18),  # real finger pulses (BIDMC, MIMIC) fall within ~0.1-0.2 s
        "dicrotic_ratio": dicrotic_ratio,
        "dicrotic_delay_s": dicrotic_delay,
        "dicrotic_sigma_s": u(0.045, 0.09),
        "ecg_resp_am": u(0.03, 0.15),
        "ppg_resp_am": u(0.03, 0.20),
        "ppg_resp_bw": u(0.05, 0.40) * np.where(beatless, 0.3, 1.0),  # no perfusion: little breathing swing
        "ecg_wander_mv": u(0.02, 0.30),
        "ppg_wander": u(0.05, 0.50) * np.where(beatless, 0.3, 1.0),
        "ecg_noise_mv": np.exp(rng.uniform(np.log(0.003), np.log(0.08), n)),  # up to ICU-monitor EMG
        "ppg_noise": np.exp(rng.uniform(np.log(0.003), np.log(0.04), n)),
        "mains_mv": np.where(rng.random(n) < 0.3, u(0.0, 0.05), 0.0),
        "mains_hz": np.where(rng.random(n) < 0.5, 50.0, 60.0),
        "ecg_motion_per_min": u(0.0, 0.6),
        "ppg_motion_per_min": u(0.0, 2.0),
    }
    return table


FAINT_P_RANGE: tuple[float, float] = (0.0, 0.3)  # P-wave amplitude factor of a "faint P" subject


def faint_p_wave_factors(rng: np.random.Generator, n: int, share: float) -> np.ndarray:
    """Per-subject P-wave amplitude factors [n]: ``share`` of subjects get U(0, 0.3) (faint or absent
    P waves, as many monitor leads show them in sinus rhythm), the rest 1. Multiply a subject table's
    ``p_mv`` by them so "no visible P wave" stops meaning "atrial fibrillation".

    >>> f = faint_p_wave_factors(np.random.default_rng(0), 1000, 0.25)
    >>> bool(0.2 < np.mean(f < 1) < 0.3 and f.max() == 1.0 and f.min() >= 0.0)
    True
    """
    if not 0.0 <= share <= 1.0:
        raise InputError(f"simulate: faint-P-wave share must be within 0-1, got {share}")
    return np.where(rng.random(n) < share, rng.uniform(*FAINT_P_RANGE, n), 1.0)


def table_row(table: dict[str, np.ndarray], i: int) -> SubjectParams:
    """Row ``i`` of a subject table as a :class:`SubjectParams`."""
    kw: dict[str, Any] = {}
    for f in fields(SubjectParams):
        v = table[f.name][i]
        if f.name in ("subject_id", "rhythm", "sex"):
            kw[f.name] = str(v)
        elif f.name == "hypertension":
            kw[f.name] = bool(v)
        else:
            kw[f.name] = float(v)
    return SubjectParams(**kw)


def subjects_to_table(subjects: list[SubjectParams]) -> dict[str, np.ndarray]:
    """Stack subjects into a struct of arrays (the inverse of :func:`table_row`)."""
    if not subjects:
        raise InputError("simulate: empty subject list")
    for s in subjects:
        if not isinstance(s, SubjectParams):
            raise InputError(f"simulate: subjects must be SubjectParams, got {type(s).__name__}")
        _check_choice(s.rhythm, ALL_RHYTHM_CODES, "rhythm")
    return {f.name: np.array([getattr(s, f.name) for s in subjects]) for f in fields(SubjectParams)}


def sample_subject(
    rng: np.random.Generator | int | None = None,
    rhythm: str | None = None,
    subject_id: str | None = None,
    hypertension: bool | None = None,
    age: float | None = None,
    sex: str | None = None,
) -> SubjectParams:
    """Draw one subject; fix any of rhythm / hypertension / age (years) / sex to condition on it.

    ``rng``: a Generator, or a seed for one (None: fresh entropy).

    >>> s = sample_subject(np.random.default_rng(1), rhythm="SB", hypertension=True)
    >>> s.hr_bpm < 60 and s.sbp_mmhg >= 140
    True
    """
    rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    s = table_row(sample_subject_table(rng, 1, rhythm, hypertension, age, sex), 0)
    if subject_id is not None:
        s.subject_id = str(subject_id)
    return s
