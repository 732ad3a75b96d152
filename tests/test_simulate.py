"""Physiology and API checks of the coupled ECG+PPG simulator (m2ae.simulate).

Peaks are found here on the contract-filtered signals (R peaks: a slope-energy detector on
scipy.signal.find_peaks; pulse peaks: neurokit2's Elgendi detector), independently of the
simulator's own beat bookkeeping, so a check fails when the waveforms stop matching the labels.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import find_peaks

from m2ae import InputError, Record
from m2ae.contract import RHYTHM_CODES, WINDOW_SAMPLES
from m2ae.signal.filters import ecg_bandpass, ppg_bandpass
from m2ae.simulate import (PAT_RANGE_S, SubjectParams, sample_subject, sample_subject_table, simulate_record,
                           simulate_windows, window_stream, write_cohort)

ROOT = Path(__file__).resolve().parents[1]


def r_peaks(rec: Record) -> np.ndarray:
    """R-peak sample indices: tallest deflections of the band-passed ECG, ≥ 0.25 s apart."""
    return ecg_peaks(ecg_bandpass(rec.ecg, rec.fs), rec.fs)


def ecg_peaks(x: np.ndarray, fs: float) -> np.ndarray:
    """QRS detector in the Pan–Tompkins spirit: slope energy over 0.1 s, then the largest |x| nearby.

    Steep QRS slopes stand out from T waves and AF f-waves, which are slower.
    """
    slope = np.convolve(np.diff(x, prepend=x[0]) ** 2, np.ones(int(0.1 * fs)) / int(0.1 * fs), mode="same")
    blocks = slope[: len(slope) // int(2 * fs) * int(2 * fs)].reshape(-1, int(2 * fs))
    cand = find_peaks(slope, height=0.1 * np.median(blocks.max(1)), distance=int(0.25 * fs))[0]
    half = int(0.06 * fs)
    peaks = np.array([max(0, c - half) + np.argmax(np.abs(x[max(0, c - half):c + half + 1])) for c in cand], dtype=int)
    height = np.abs(x[peaks])
    return peaks[height >= 0.5 * np.percentile(height, 75)]  # drops f-waves/T waves that passed the slope test


def pulse_peaks(rec: Record) -> np.ndarray:
    """Systolic peaks of the band-passed PPG by Elgendi's two-moving-average method (neurokit2),
    which does not take a young subject's distinct diastolic peak for a beat."""
    import neurokit2 as nk

    y = ppg_bandpass(rec.ppg, rec.fs)
    return np.asarray(nk.ppg_findpeaks(y, sampling_rate=int(round(rec.fs)), method="elgendi")["PPG_Peaks"])


def hr_bpm(peaks: np.ndarray, fs: float) -> float:
    return 60.0 * fs / float(np.median(np.diff(peaks)))


# --- subjects ----------------------------------------------------------------------------------

def test_subject_labels_and_ranges():
    tab = sample_subject_table(np.random.default_rng(0), 4000)
    assert set(tab["rhythm"]) == set(RHYTHM_CODES)
    assert tab["age"].min() >= 18 and tab["age"].max() <= 90
    for code, (lo, hi) in {"SB": (0, 60), "ST": (100, 300), "NSR": (60, 100)}.items():
        hr = tab["hr_bpm"][tab["rhythm"] == code]
        assert lo <= hr.min() and hr.max() <= hi, code
    pat_s = tab["pat_ms"] / 1000
    assert PAT_RANGE_S[0] <= pat_s.min() < 0.0 and 0.9 < pat_s.max() <= PAT_RANGE_S[1]
    # most subjects sit near the physiological 0.25–0.55 s, the device-delayed ones span the rest
    assert 0.35 < np.mean((pat_s > 0.2) & (pat_s < 0.6)) < 0.9
    # PAT = PEP + PTT + pulse rise + device delay, exactly
    np.testing.assert_allclose(tab["pep_ms"] + tab["ptt_ms"] + tab["rise_ms"] + tab["device_delay_ms"], tab["pat_ms"])
    # P waves only where the atria contract in an organised way; ectopy only in PVC subjects
    assert (tab["p_mv"][tab["rhythm"] == "AF"] == 0).all() and (tab["p_mv"][tab["rhythm"] != "AF"] > 0).all()
    assert (tab["pvc_burden"][tab["rhythm"] != "PVC"] == 0).all() and (tab["pvc_burden"][tab["rhythm"] == "PVC"] > 0).all()


def test_hypertension_raises_sbp_and_shortens_transit():
    rng = np.random.default_rng(1)
    htn = sample_subject_table(rng, 500, hypertension=True, age=55.0)
    norm = sample_subject_table(rng, 500, hypertension=False, age=55.0)
    assert htn["sbp_mmhg"].min() >= 135 and norm["sbp_mmhg"].max() < 140
    assert htn["sbp_mmhg"].mean() - norm["sbp_mmhg"].mean() > 25
    assert htn["pwv_m_s"].mean() > norm["pwv_m_s"].mean() + 1.0
    assert htn["ptt_ms"].mean() < norm["ptt_ms"].mean() - 10


def test_age_stiffens_arteries_and_flattens_dicrotic_wave():
    rng = np.random.default_rng(2)
    young = sample_subject_table(rng, 400, age=25.0, hypertension=False)
    old = sample_subject_table(rng, 400, age=80.0, hypertension=False)
    assert old["pwv_m_s"].mean() > young["pwv_m_s"].mean() + 2.0
    assert old["dicrotic_ratio"].mean() < young["dicrotic_ratio"].mean() - 0.15


def test_sample_subject_conditioning_and_bad_input():
    s = sample_subject(np.random.default_rng(3), rhythm="ST", subject_id="p1", sex="F", age=40.0)
    assert isinstance(s, SubjectParams) and (s.rhythm, s.subject_id, s.sex, s.age) == ("ST", "p1", "F", 40.0)
    assert s.hr_bpm > 100 and s.labels()["rhythm_name"] == "sinus tachycardia"
    with pytest.raises(InputError, match="unknown rhythm"):
        sample_subject(0, rhythm="torsades")
    with pytest.raises(InputError, match="age"):
        sample_subject(0, age=120.0)


# --- records: the ECG drives the PPG -----------------------------------------------------------

@pytest.mark.parametrize("rhythm", ["NSR", "SB", "ST", "AF"])
def test_heart_rates_agree_between_ecg_and_ppg(rhythm):
    for seed in range(3):
        rec = simulate_record(rhythm, duration_s=40, seed=seed, noise=False)
        r, p = r_peaks(rec), pulse_peaks(rec)
        hr_e, hr_p = hr_bpm(r, rec.fs), hr_bpm(p, rec.fs)
        # AF: a very early beat fills little and its pulse may not reach the finger (pulse deficit)
        assert abs(hr_e - hr_p) / hr_e < (0.10 if rhythm == "AF" else 0.05), (rhythm, seed, hr_e, hr_p)
        assert abs(len(r) - len(p)) <= (0.15 * len(r) if rhythm == "AF" else 2)
        assert abs(hr_e - rec.meta["labels"]["hr_bpm"]) / hr_e < 0.08


def test_rate_ranges_per_rhythm():
    for seed in range(4):
        sb = simulate_record("SB", duration_s=30, seed=seed, noise=False)
        st = simulate_record("ST", duration_s=30, seed=seed, noise=False)
        assert hr_bpm(r_peaks(sb), sb.fs) < 61
        assert hr_bpm(r_peaks(st), st.fs) > 99


def _rr_stats(rec):
    rr = np.diff(r_peaks(rec)) / rec.fs
    return rr.std() / rr.mean(), np.sqrt(np.mean(np.diff(rr) ** 2))


def test_af_is_irregularly_irregular():
    af = [_rr_stats(simulate_record("AF", duration_s=60, seed=s, noise=False)) for s in range(4)]
    nsr = [_rr_stats(simulate_record("NSR", duration_s=60, seed=s, noise=False)) for s in range(4)]
    assert min(cv for cv, _ in af) > 0.10
    assert max(cv for cv, _ in nsr) < 0.08
    assert min(r for _, r in af) > 2.5 * max(r for _, r in nsr)


def test_pulse_arrival_matches_label():
    """Measured R→next-PPG-peak delay equals the subject's PAT (checked where PAT is within one beat)."""
    rng = np.random.default_rng(5)
    checked = 0
    while checked < 6:
        s = sample_subject(rng, rhythm="NSR")
        if not 0.05 < s.pat_ms / 1000 < 0.8 * 60 / s.hr_bpm:
            continue
        rec = simulate_record(s, duration_s=30, seed=checked, noise=False)
        r, p = r_peaks(rec), pulse_peaks(rec)
        j = np.searchsorted(p, r)
        ok = j < len(p)
        delay_ms = 1000 * np.median((p[j[ok]] - r[ok]) / rec.fs)
        assert abs(delay_ms - rec.meta["labels"]["pat_ms"]) < 40, (delay_ms, rec.meta["labels"])
        checked += 1


def test_negative_and_long_device_delays_shift_the_ppg():
    """A subject whose PPG lags by ~0.9 s and one whose PPG leads the ECG are both rendered so."""
    rng = np.random.default_rng(6)
    tab = sample_subject_table(rng, 3000, rhythm="SB")
    for want in (tab["pat_ms"] < -100, tab["pat_ms"] > 850):
        i = int(np.flatnonzero(want)[0])
        s = sample_subject(0, rhythm="SB")
        for key in ("pat_ms", "device_delay_ms", "hr_bpm"):
            setattr(s, key, float(tab[key][i]))
        rec = simulate_record(s, duration_s=30, seed=1, noise=False, annotate=True)
        ann = rec.meta["annotations"]
        r, p = r_peaks(rec) / rec.fs, pulse_peaks(rec) / rec.fs
        # every annotated pulse peak has a detected PPG peak within 40 ms
        for t in np.asarray(ann["pulse_peak_s"]):
            if 0.5 < t < 29.5:
                assert np.min(np.abs(p - t)) < 0.04
        lag = np.median(np.asarray(ann["pulse_peak_s"]) - np.asarray(ann["r_peak_s"]))
        assert abs(1000 * lag - s.pat_ms) < 15
        assert np.min(np.abs(r[:, None] - np.asarray(ann["r_peak_s"])[None, :]), axis=0).max() < 0.03


def test_pvc_beats_are_premature_with_pause_and_weak_pulse():
    rec = simulate_record("PVC", duration_s=60, seed=4, noise=False, annotate=True)
    ann = rec.meta["annotations"]
    r_true, is_pvc = np.asarray(ann["r_peak_s"]), np.asarray(ann["pvc"])
    assert is_pvc.sum() >= 3
    rr_before = np.diff(r_true)  # interval ending at beat k+1
    normal_rr = np.median(rr_before[~is_pvc[1:] & ~is_pvc[:-1]])
    assert (rr_before[is_pvc[1:]] < 0.8 * normal_rr).all()          # premature
    after = np.flatnonzero(is_pvc[:-1])
    assert (rr_before[after] > 1.2 * normal_rr).all()                # compensatory pause
    # the detector sees the premature beats in the ECG
    r = r_peaks(rec) / rec.fs
    for t in r_true[is_pvc]:
        assert np.min(np.abs(r - t)) < 0.05
    # the PPG pulse of a premature beat is small next to the normal pulses
    y = ppg_bandpass(rec.ppg, rec.fs)
    pulse_t = np.asarray(ann["pulse_peak_s"])
    idx = np.clip(np.round(pulse_t * rec.fs).astype(int), 0, len(y) - 1)
    amp = y[idx] - np.array([y[max(0, i - int(0.25 * rec.fs)):i + 1].min() for i in idx])
    assert np.median(amp[is_pvc]) < 0.6 * np.median(amp[~is_pvc])
    # wide ectopic QRS: more samples above half its peak than a normal QRS
    x = np.abs(ecg_bandpass(rec.ecg, rec.fs))

    def width(t):
        i = int(round(t * rec.fs))
        seg = x[i - 15:i + 16]
        return (seg > 0.5 * seg.max()).sum()
    assert np.median([width(t) for t in r_true[is_pvc][1:-1]]) > np.median([width(t) for t in r_true[~is_pvc][2:-2]])


def test_record_meta_determinism_and_noise():
    a = simulate_record("NSR", duration_s=20, fs_hz=250, seed=7)
    b = simulate_record("NSR", duration_s=20, fs_hz=250, seed=7)
    c = simulate_record("NSR", duration_s=20, fs_hz=250, seed=8)
    assert isinstance(a, Record) and a.fs == 250.0 and a.n_samples == 5000
    np.testing.assert_array_equal(a.ecg, b.ecg)
    np.testing.assert_array_equal(a.ppg, b.ppg)
    assert not np.allclose(a.ecg, c.ecg)
    m = a.meta
    assert m["source"] == "m2ae.simulate" and m["lead"] == "II" and m["units"] == {"ecg": "mV", "ppg": "au"}
    assert {"rhythm", "hypertension", "age", "sex", "sbp_mmhg", "pat_ms", "hr_bpm"} <= set(m["labels"])
    assert m["subject_id"] and m["record_id"]
    clean = simulate_record("NSR", duration_s=20, fs_hz=250, seed=7, noise=False)
    # artefacts add broadband and low-frequency power on top of the same heartbeat
    assert np.std(a.ecg - clean.ecg) > 0.005
    assert 0.1 < np.max(np.abs(clean.ecg)) < 5.0  # mV


def test_record_bad_input():
    with pytest.raises(InputError):
        simulate_record(duration_s=0.1)
    with pytest.raises(InputError):
        simulate_record(fs_hz=5)
    with pytest.raises(InputError):
        simulate_record(subject=42)


# --- contract windows --------------------------------------------------------------------------

def test_simulate_windows_shapes_labels_determinism():
    b = simulate_windows(40, seed=3)
    assert b["ecg"].shape == b["ppg"].shape == (40, WINDOW_SAMPLES)
    assert b["ecg"].dtype == b["ppg"].dtype == np.float32
    assert np.isfinite(b["ecg"]).all() and np.isfinite(b["ppg"]).all()
    for key, dtype in {"subject_id": np.int64, "rhythm": np.int64, "hypertension": np.bool_, "age": np.float32,
                       "sex": np.int64, "pat_ms": np.float32, "hr_bpm": np.float32, "sbp_mmhg": np.float32}.items():
        assert b[key].shape == (40,) and b[key].dtype == dtype, key
    # robust normalisation: median ≈ 0, 1–99 % range ≈ 4.65
    assert np.abs(np.median(b["ecg"], axis=1)).max() < 1e-3
    span = np.percentile(b["ppg"], 99, axis=1) - np.percentile(b["ppg"], 1, axis=1)
    np.testing.assert_allclose(span, 4.6527, rtol=1e-3)
    again = simulate_windows(40, seed=3)
    for k in b:
        np.testing.assert_array_equal(b[k], again[k])
    other = simulate_windows(40, seed=4)
    assert not np.allclose(b["ecg"], other["ecg"])


def test_window_labels_reflect_signals():
    b = simulate_windows(300, seed=11)
    rhythm = np.asarray(RHYTHM_CODES)[b["rhythm"]]
    assert (b["hr_bpm"][rhythm == "SB"] < 61).all() and (b["hr_bpm"][rhythm == "ST"] > 99).all()
    assert (b["n_pvc"][rhythm == "PVC"] >= 1).all() and (b["n_pvc"][rhythm != "PVC"] == 0).all()
    # heart rate from the normalised ECG window itself matches the label (noise-free windows)
    clean = simulate_windows(60, seed=12, noise=False)
    errors = []
    for x, hr, rh in zip(clean["ecg"], clean["hr_bpm"], clean["rhythm"]):
        if RHYTHM_CODES[rh] in ("NSR", "SB", "ST"):
            pk = ecg_peaks(x, 125.0)
            errors.append(abs(60 * 125 / np.median(np.diff(pk)) - hr) / hr)
    assert len(errors) > 20 and np.median(errors) < 0.03


def test_windows_from_subject_pool_and_rates():
    subjects = [sample_subject(i, rhythm=r, subject_id=f"p{i}") for i, r in enumerate(RHYTHM_CODES)]
    b = simulate_windows(30, seed=0, subjects=subjects)
    assert set(b["subject_id"]) <= set(range(5))
    for sid, rh in zip(b["subject_id"], b["rhythm"]):
        assert RHYTHM_CODES[rh] == subjects[sid].rhythm
    pool = simulate_windows(50, seed=0, n_subjects=7)
    assert len(set(pool["subject_id"])) <= 7
    hi = simulate_windows(6, seed=0, fs_hz=500.0)  # rendered at 500 Hz, resampled by the contract
    assert hi["ecg"].shape == (6, WINDOW_SAMPLES)
    with pytest.raises(InputError):
        simulate_windows(0)
    with pytest.raises(InputError):
        simulate_windows(4, n_subjects=0)


def test_window_stream_is_endless_and_deterministic():
    s1, s2 = window_stream(seed=5, batch_size=8), window_stream(seed=5, batch_size=8)
    a = [next(s1) for _ in range(3)]
    b = [next(s2) for _ in range(3)]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x["ecg"], y["ecg"])
    assert not np.allclose(a[0]["ecg"], a[1]["ecg"])
    assert a[2]["subject_id"].tolist() == list(range(16, 24))
    pooled = next(window_stream(seed=5, batch_size=16, n_subjects=3))
    assert set(pooled["subject_id"]) <= {0, 1, 2}


def test_imports_without_neurokit2_wfdb_or_torch():
    """The GPU training box has numpy/scipy/torch only: the simulator must not need the rest."""
    code = ("import sys\n"
            "for m in ('neurokit2', 'wfdb', 'pyedflib', 'pandas', 'h5py'): sys.modules[m] = None\n"
            "from m2ae.simulate import simulate_windows, window_stream\n"
            "b = next(window_stream(seed=0, batch_size=4)); print(b['ecg'].shape, 'torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "(4, 1250) False" in out.stdout


# --- cohorts and the CLI -------------------------------------------------------------------------

def test_write_cohort_npz_roundtrip(tmp_path):
    m = write_cohort(5, tmp_path / "c", seed=2, duration_s=12)
    assert [r["rhythm"] for r in m["records"]] == list(RHYTHM_CODES)
    assert json.loads((tmp_path / "c" / "manifest.json").read_text())["n_subjects"] == 5
    header = (tmp_path / "c" / "labels.csv").read_text().splitlines()[0].split(",")
    assert header[:4] == ["path", "subject_id", "record_id", "rhythm"]
    with np.load(tmp_path / "c" / m["records"][1]["path"], allow_pickle=False) as z:
        assert float(z["fs"]) == 125.0 and z["ecg"].shape == z["ppg"].shape == (1500,)
        meta = json.loads(str(z["meta_json"]))
    assert meta["labels"]["rhythm"] == "AF" and meta["subject_id"] == "sim-s2-000001"


def _cli(*args, cwd):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "m2ae.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=180)


def test_cli_simulate_wfdb_and_errors(tmp_path):
    out = _cli("simulate", "--subjects", "2", "--out", str(tmp_path / "w"), "--seed", "1", "--duration", "15",
               "--fs", "250", "--format", "wfdb", "--json", cwd=ROOT)
    assert out.returncode == 0, out.stderr
    manifest = json.loads(out.stdout)
    assert manifest["format"] == "wfdb" and manifest["fs_hz"] == 250.0 and len(manifest["records"]) == 2
    for row in manifest["records"]:
        hea = tmp_path / "w" / row["path"]
        assert hea.suffix == ".hea" and hea.exists() and hea.with_suffix(".dat").exists()
    try:
        from m2ae.io import load_record
    except ImportError:
        load_record = None
    if load_record is not None:
        rec = load_record(tmp_path / "w" / manifest["records"][0]["path"])
        assert rec.fs == 250.0 and rec.ecg is not None and rec.ppg is not None and rec.n_samples == 3750
    bad = _cli("simulate", "--subjects", "0", "--out", str(tmp_path / "x"), cwd=ROOT)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and len(bad.stderr.strip().splitlines()) == 1
    (tmp_path / "file").write_text("x")
    bad = _cli("simulate", "--subjects", "1", "--out", str(tmp_path / "file"), cwd=ROOT)
    assert bad.returncode == 2 and "not a folder" in bad.stderr


def test_noise_free_ppg_is_smooth_and_ecg_waves_complete():
    """No seams where the beat templates are cut: the noise-free PPG never jumps by a large step per
    sample, and a beat's ECG (with its T wave) returns to baseline before its template support ends."""
    for i, rhythm in enumerate(RHYTHM_CODES):
        rec = simulate_record(rhythm, duration_s=20, seed=20 + i, noise=False)
        span = np.percentile(rec.ppg, 99) - np.percentile(rec.ppg, 1)
        assert np.abs(np.diff(rec.ppg)).max() < 0.25 * span, rhythm
        assert np.abs(np.diff(rec.ecg, 2)).max() < 1.5 * np.abs(rec.ecg).max(), rhythm


def test_cohort_ids_differ_across_seeds_and_match_the_index_builder(tmp_path):
    from m2ae.index.sources import simulated_items
    from m2ae.simulate import write_cohort
    from m2ae.simulate.record import cohort_subjects

    ids0 = [s.subject_id for s, _ in cohort_subjects(3, seed=0)]
    ids4 = [s.subject_id for s, _ in cohort_subjects(3, seed=4)]
    assert ids0 == ["sim000000", "sim000001", "sim000002"]
    assert not set(ids0) & set(ids4)
    manifest = write_cohort(3, tmp_path / "c4", seed=4, duration_s=10)
    assert [r["subject_id"] for r in manifest["records"]] == ids4
    assert [it.payload[0].subject_id for it in simulated_items(3, seed=4)] == ids4


def test_p_wave_scale_removes_p_waves_and_nothing_else():
    """The stress-test knob: the same sinus subjects without P waves differ only before each R peak."""
    from m2ae.simulate.labelled import subject_windows

    with_p = subject_windows(6, 1, 31337, rhythm="NSR", noise=False)
    without = subject_windows(6, 1, 31337, rhythm="NSR", noise=False, p_wave_scale=0.0)
    assert list(with_p["rhythm"]) == ["NSR"] * 6
    np.testing.assert_array_equal(with_p["subject_id"], without["subject_id"])
    diff = np.abs(with_p["ecg"] - without["ecg"])
    assert diff.max() > 0.05                                     # the P waves were there
    np.testing.assert_allclose(with_p["ppg"], without["ppg"], atol=1e-5)   # the pulse is untouched


# --- ICU alarm rhythms (issue 15): VT, VF / flutter, asystole, extreme brady- and tachycardia ---------

def _pulse_power(ppg: np.ndarray, fs: float) -> float:
    """Share of the band-passed PPG's power at 0.7-4 Hz (where a pulse train lives) over its variance (mV²)."""
    from scipy.signal import welch

    f, pxx = welch(ppg_bandpass(ppg, fs), fs=fs, nperseg=int(8 * fs))
    return float(pxx[(f >= 0.7) & (f <= 4.0)].sum() * (f[1] - f[0]))


def test_alarm_rhythm_codes_sit_beside_the_subject_rhythms():
    from m2ae.contract import ALARM_RHYTHM_CODES, ALL_RHYTHM_CODES, RHYTHM_NAMES

    assert ALL_RHYTHM_CODES[:5] == RHYTHM_CODES == ("NSR", "AF", "SB", "ST", "PVC")  # old indices kept
    assert set(ALARM_RHYTHM_CODES) == {"VT", "VF", "ASY", "XB", "XT"} and set(RHYTHM_NAMES) == set(ALL_RHYTHM_CODES)
    # drawn only on request: the default subject pool is unchanged
    assert set(sample_subject_table(np.random.default_rng(0), 300)["rhythm"]) == set(RHYTHM_CODES)
    tab = sample_subject_table(np.random.default_rng(0), 400, rhythms=ALL_RHYTHM_CODES)
    assert set(tab["rhythm"]) == set(ALL_RHYTHM_CODES)
    with pytest.raises(InputError):
        sample_subject_table(np.random.default_rng(0), 3, rhythms=["VT", "torsades"])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_simulated_vt_is_wide_fast_and_weakly_perfused(seed):
    from m2ae.eval.alarm_rules import qrs_widths_s

    vt = simulate_record("VT", duration_s=30, seed=seed)
    nsr = simulate_record("NSR", duration_s=30, seed=seed)
    x = ecg_bandpass(vt.ecg, vt.fs)
    pk = ecg_peaks(x, vt.fs)
    rate = 60 * vt.fs / np.median(np.diff(pk))
    assert 120 <= rate <= 250 and abs(rate - vt.meta["labels"]["hr_bpm"]) / rate < 0.05
    widths = qrs_widths_s(x, pk, vt.fs)
    assert np.nanmedian(widths) >= 0.12  # wide complexes (the clinical 120-ms bound)
    assert np.nanmedian(qrs_widths_s(ecg_bandpass(nsr.ecg, nsr.fs), ecg_peaks(ecg_bandpass(nsr.ecg, nsr.fs), nsr.fs),
                                     nsr.fs)) < 0.12
    assert _pulse_power(vt.ppg, vt.fs) < 0.5 * _pulse_power(nsr.ppg, nsr.fs)  # weak pulses


def test_simulated_vt_pulses_vary_in_height():
    rec = simulate_record("VT", duration_s=60, seed=4, noise=False, annotate=True)
    t = np.asarray(rec.meta["annotations"]["pulse_peak_s"])
    idx = np.round(t[(t > 1) & (t < 59)] * rec.fs).astype(int)
    h = ppg_bandpass(rec.ppg, rec.fs)[idx]
    assert np.std(h) / np.mean(np.abs(h)) > 0.2  # irregular stroke volume beat to beat


@pytest.mark.parametrize("code", ["VF", "ASY"])
def test_simulated_vf_and_asystole_have_no_beats_and_no_pulse(code):
    from m2ae.eval.alarm_rules import vf_band_share

    for seed in range(3):
        rec = simulate_record(code, duration_s=30, seed=seed, annotate=True)
        nsr = simulate_record("NSR", duration_s=30, seed=seed)
        assert rec.meta["annotations"]["r_peak_s"] == [] and not np.isfinite(rec.meta["labels"]["hr_bpm"])
        assert _pulse_power(rec.ppg, rec.fs) < 0.2 * _pulse_power(nsr.ppg, nsr.fs)  # no pulse
        x = ecg_bandpass(rec.ecg, rec.fs)
        share = vf_band_share(x[: int(10 * rec.fs)], rec.fs)
        if code == "VF":  # fibrillation / flutter: most power at 4-7 Hz, a large oscillation
            assert share >= 0.6 and np.std(x) > 0.1
        else:  # flat line with noise: far smaller than a sinus ECG
            assert np.std(x) < 0.5 * np.std(ecg_bandpass(nsr.ecg, nsr.fs))


@pytest.mark.parametrize("code,lo,hi", [("XB", 20, 40), ("XT", 140, 210)])
def test_simulated_extreme_rates_are_sinus_beyond_the_alarm_limits(code, lo, hi):
    from m2ae.eval.alarm_rules import qrs_widths_s

    for seed in range(3):
        rec = simulate_record(code, duration_s=60, seed=seed)
        x = ecg_bandpass(rec.ecg, rec.fs)
        pk = ecg_peaks(x, rec.fs)
        rate = 60 * rec.fs / np.median(np.diff(pk))
        assert lo < rate < hi, (code, seed, rate)
        assert np.nanmedian(qrs_widths_s(x, pk, rec.fs)) < 0.12  # narrow, supraventricular


def test_alarm_rhythm_windows_carry_their_labels():
    from m2ae.contract import ALL_RHYTHM_CODES
    from m2ae.simulate.labelled import subject_windows

    d = subject_windows(20, 1, seed=5, rhythms=("VT", "VF", "ASY", "XB", "XT"))
    assert set(d["rhythm"]) <= {"VT", "VF", "ASY", "XB", "XT"} and len(set(d["rhythm"])) >= 4
    assert np.isfinite(d["ecg"]).all() and np.isfinite(d["ppg"]).all()
    b = simulate_windows(4, seed=0, subjects=[sample_subject(0, rhythm="VT"), sample_subject(1, rhythm="ASY")])
    assert {ALL_RHYTHM_CODES[i] for i in b["rhythm"]} <= {"VT", "ASY"}
