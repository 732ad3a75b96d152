"""Whole simulated records (``m2ae.Record``) and cohorts of them written to disk with a manifest.

>>> rec = simulate_record("AF", duration_s=20, seed=3)
>>> rec.fs, rec.n_samples, rec.meta["labels"]["rhythm"]
(125.0, 2500, 'AF')
"""
from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ..contract import RHYTHM_CODES
from ..errors import InputError
from ..record import Record
from .core import synthesize
from .subject import SubjectParams, sample_subject, subjects_to_table

_T = TypeVar("_T")

SOURCE = "m2ae.simulate"
FORMATS = ("npz", "csv", "wfdb", "edf")
MAX_DURATION_S = 24 * 3600.0
MAX_COHORT = 100_000
LABEL_COLUMNS = ("rhythm", "rhythm_name", "hypertension", "age", "sex", "sbp_mmhg", "dbp_mmhg", "hr_bpm",
                 "pat_ms", "pep_ms", "ptt_ms", "device_delay_ms", "pwv_m_s", "pvc_burden")


def simulate_record(
    subject: SubjectParams | str | None = None,
    duration_s: float = 60.0,
    fs_hz: float = 125.0,
    seed: int = 0,
    noise: bool = True,
    annotate: bool = False,
) -> Record:
    """One paired ECG (lead II, mV) + PPG (au) record of ``duration_s`` at ``fs_hz``.

    subject : a :class:`SubjectParams`, a rhythm code (``m2ae.contract.ALL_RHYTHM_CODES``) to draw a
        subject with that rhythm, or None to draw any subject (all from ``seed``).
    noise : add baseline wander, EMG/mains noise, motion bursts and amplitude changes.
    annotate : also store the true beat times in ``meta["annotations"]`` (``r_peak_s``,
        ``pulse_peak_s``, ``pvc``), for checks and evaluation.
    ``meta["labels"]`` holds the subject's labels; ``hr_bpm`` and ``pat_ms`` there are measured on
    this record's beats (mean rate from the R peaks, median R→PPG-peak delay of normal beats).
    Deterministic for (subject, duration_s, fs_hz, seed, noise).
    """
    duration_s = float(duration_s)
    if not 1.0 <= duration_s <= MAX_DURATION_S:
        raise InputError(f"simulate_record: duration {duration_s} s outside 1 s - 24 h")
    if not 20.0 <= float(fs_hz) <= 2000.0:
        raise InputError(f"simulate_record: fs_hz {fs_hz} outside 20-2000 Hz")
    subject_seq, render_seq = np.random.SeedSequence(seed).spawn(2)
    if subject is None or isinstance(subject, str):
        subject = sample_subject(np.random.default_rng(subject_seq), rhythm=subject,
                                 subject_id=f"sim-s{seed}")
    elif not isinstance(subject, SubjectParams):
        raise InputError(f"simulate_record: subject must be SubjectParams, a rhythm code or None, "
                         f"got {type(subject).__name__}")
    out = synthesize(subjects_to_table([subject]), duration_s, float(fs_hz), np.random.default_rng(render_seq),
                     noise=noise, return_beats=annotate)
    labels = subject.labels()
    labels["hr_bpm"] = round(float(out["hr_bpm"][0]), 1)
    labels["pat_ms"] = round(float(out["pat_ms"][0]), 1)
    meta = {
        "source": SOURCE,
        "subject_id": subject.subject_id,
        "record_id": f"{subject.subject_id}-seed{seed}",
        "lead": "II",
        "units": {"ecg": "mV", "ppg": "au"},
        "labels": labels,
        "notes": ["simulated by m2ae.simulate (not a recording of a person)"],
    }
    if annotate:
        r, pulse, pvc = out["r_times"][0], out["pulse_times"][0], out["is_pvc"][0]
        keep = np.isfinite(r) & (r >= 0)
        meta["annotations"] = {"r_peak_s": r[keep].round(4).tolist(), "pulse_peak_s": pulse[keep].round(4).tolist(),
                               "pvc": pvc[keep].tolist()}
    return Record(ecg=out["ecg"][0].astype(np.float64), ppg=out["ppg"][0].astype(np.float64), fs=float(fs_hz),
                  meta=meta)


def _progress(iterable: Iterable[_T], total: int, desc: str) -> Iterable[_T]:
    try:
        from tqdm.auto import tqdm
    except ImportError:  # a bare training box: no bar, same work
        return iterable
    return tqdm(iterable, total=total, desc=desc, unit="record", leave=False)


def cohort_subjects(n_subjects: int, seed: int = 0) -> list[tuple[SubjectParams, int]]:
    """The subjects (and per-record seeds) of a simulated cohort, as ``m2ae simulate`` and
    ``m2ae index build --simulate`` both draw them: rhythms cycle NSR, AF, SB, ST, PVC.

    Subject ids are ``sim000000``... for seed 0 and ``sim-s<seed>-000000``... otherwise, so cohorts
    drawn with different seeds never share an id.
    """
    subject_seq, record_seq = np.random.SeedSequence(seed).spawn(2)
    subject_rng = np.random.default_rng(subject_seq)
    record_seeds = record_seq.generate_state(n_subjects, dtype=np.uint32)
    cohort = []
    for i in range(n_subjects):
        subject_id = f"sim{i:06d}" if seed == 0 else f"sim-s{seed}-{i:06d}"
        subject = sample_subject(subject_rng, rhythm=RHYTHM_CODES[i % len(RHYTHM_CODES)], subject_id=subject_id)
        cohort.append((subject, int(record_seeds[i])))
    return cohort


def write_cohort(
    n_subjects: int,
    out_dir: str | Path,
    seed: int = 0,
    duration_s: float = 60.0,
    fmt: str = "npz",
    fs_hz: float = 125.0,
) -> dict[str, Any]:
    """Write ``n_subjects`` simulated records (one per subject) plus ``manifest.json`` and ``labels.csv``.

    Rhythms cycle NSR, AF, SB, ST, PVC so any cohort of 5k subjects is balanced. Files are named by
    subject id (``sim000003.npz``, ``sim000003.hea`` + ``.dat``, ...); ``labels.csv`` has a ``path``
    column (relative to ``out_dir``) and one column per label, the layout ``m2ae heads fit`` reads.
    Returns the manifest dict.
    """
    n_subjects = int(n_subjects)
    if not 1 <= n_subjects <= MAX_COHORT:
        raise InputError(f"simulate: --subjects must be 1-{MAX_COHORT}, got {n_subjects}")
    fmt = str(fmt).lower()
    if fmt not in FORMATS:
        raise InputError(f"simulate: unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    if not 10.0 <= float(duration_s) <= MAX_DURATION_S:
        raise InputError(f"simulate: --duration {duration_s} s outside 10 s - 24 h (one window is 10 s)")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)

    rows = []
    cohort = cohort_subjects(n_subjects, seed)
    for subject, record_seed in _progress(cohort, n_subjects, "simulate"):
        rec = simulate_record(subject, duration_s=duration_s, fs_hz=fs_hz, seed=record_seed)
        path = _write(rec, out / subject.subject_id, fmt)
        rows.append({"path": path.relative_to(out).as_posix(), "subject_id": subject.subject_id,
                     "record_id": rec.meta["record_id"], "seed": record_seed, **rec.meta["labels"]})
    manifest = {
        "generator": SOURCE,
        "command": (f"m2ae simulate --subjects {n_subjects} --out {out} --seed {seed} --duration {duration_s:g} "
                    f"--fs {fs_hz:g} --format {fmt}"),
        "seed": seed,
        "n_subjects": n_subjects,
        "duration_s": float(duration_s),
        "fs_hz": float(fs_hz),
        "format": fmt,
        "units": {"ecg": "mV", "ppg": "au"},
        "lead": "II",
        "note": "simulated paired ECG+PPG (m2ae.simulate); not recordings of people",
        "records": rows,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    with open(out / "labels.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["path", "subject_id", "record_id", *LABEL_COLUMNS], extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return manifest


def _write(rec: Record, stem: Path, fmt: str) -> Path:
    from ..io.writers import write_record

    return write_record(rec, stem, fmt)
