"""The data ``m2ae eval`` scores: ``EvalSet`` (normalised contract windows + what the metrics need),
built from simulated subjects (``simulated_set``) or from real paired records (``real_set``).

Real records are looked up in ``default_real_dir()`` unless the caller names them: the folder in
``$M2AE_REAL_DATA`` when set, else ``../shared/data/real`` relative to the current directory (the
workspace layout: the repository beside a ``shared`` folder).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .baselines import window_peaks

REAL_DATA_ENV = "M2AE_REAL_DATA"
RECORD_SUFFIXES = (".hea", ".csv", ".tsv", ".npz", ".npy", ".edf", ".vital")


def default_real_dir() -> Path:
    """``$M2AE_REAL_DATA`` when set, else ``../shared/data/real`` from the current directory (absolute)."""
    configured = os.environ.get(REAL_DATA_ENV)
    return Path(configured) if configured else Path.cwd().parent / "shared" / "data" / "real"


@dataclass
class EvalSet:
    """Normalised contract windows of one data source plus what each metric needs.

    ecg, ppg : [N, T] windows at ``m2ae.contract.FS_HZ``.
    group : [N] subject id (simulated) or record id (real); lags are searched per group.
    labels : {label: [N]} (simulated only).
    r_peaks, pulse_peaks : per window, beat positions in samples from the window start (detected
        on first use when not given).
    """

    name: str
    description: str
    ecg: np.ndarray
    ppg: np.ndarray
    group: np.ndarray
    labels: dict[str, np.ndarray] = field(default_factory=dict)
    r_peaks: list[np.ndarray] | None = None
    pulse_peaks: list[np.ndarray] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ecg)

    def peaks(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """(R peaks, pulse peaks) per window, in samples; detected once and kept."""
        if self.r_peaks is None:
            self.r_peaks = window_peaks(self.ecg, "ecg")
        if self.pulse_peaks is None:
            self.pulse_peaks = window_peaks(self.ppg, "ppg")
        return self.r_peaks, self.pulse_peaks

    def subset(self, idx: np.ndarray) -> EvalSet:
        """The windows at ``idx`` (with their labels and any peaks already detected)."""
        rp, pp = self.r_peaks, self.pulse_peaks
        return EvalSet(self.name, self.description, self.ecg[idx], self.ppg[idx], self.group[idx],
                       {k: v[idx] for k, v in self.labels.items()},
                       None if rp is None else [rp[i] for i in idx], None if pp is None else [pp[i] for i in idx],
                       dict(self.info))


def simulated_set(name: str, n_subjects: int, windows_per_subject: int, seed: int) -> EvalSet:
    """Simulated paired windows: ``n_subjects`` subjects drawn from ``seed``, ``windows_per_subject``
    independent 10-s windows each, with the labels the heads are defined on (rhythm, hypertension,
    age, sex, risk). Uses the same generator as head fitting (``m2ae.simulate.labelled.subject_windows``,
    the simulator under the signal contract) so labels mean exactly what the heads were trained on."""
    from ..simulate.labelled import subject_windows

    sim = subject_windows(int(n_subjects), int(windows_per_subject), seed=seed)
    labels: dict[str, np.ndarray] = {k: np.asarray(sim[k]) for k in ("rhythm", "hypertension", "age", "sex", "risk")
                                     if k in sim}
    group = np.asarray(sim["subject_id"]).astype(str)
    n_windows = len(group)
    return EvalSet(name, f"simulated: {n_subjects} subjects x {windows_per_subject} windows of 10 s, seed {seed}",
                   np.asarray(sim["ecg"], np.float32), np.asarray(sim["ppg"], np.float32), group, labels,
                   info={"seed": seed, "subjects": int(n_subjects), "windows": n_windows,
                         "windows_per_subject": int(windows_per_subject)})


def _record_paths(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for p in paths:
        if p.is_file():
            found.append(p)
        elif p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.is_file() and f.suffix.lower() in RECORD_SUFFIXES and not f.name.lower().startswith("readme"):
                    found.append(f)
    return found


def _all_or_none(peaks: list[np.ndarray | None]) -> list[np.ndarray] | None:
    """Every window's peaks, or None (detect them all again) when any window lacks them."""
    return None if any(p is None for p in peaks) else [p for p in peaks if p is not None]


def real_set(paths: list[Path]) -> tuple[EvalSet | None, dict[str, Any]]:
    """Windows + peaks of every paired record under ``paths`` (m2ae.preprocess); never raises for data.

    Returns (set or None, info) where info lists the records used, skipped and why.
    """
    from ..io import load_record
    from ..signal import preprocess

    existing = [p for p in paths if p.exists()]
    if not existing:
        return None, {"status": "absent", "paths": [str(p) for p in paths]}
    ecg: list[np.ndarray] = []
    ppg: list[np.ndarray] = []
    group: list[str] = []
    rpk: list[np.ndarray | None] = []
    ppk: list[np.ndarray | None] = []
    used: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    for f in _record_paths(existing):
        try:
            rec = load_record(f)
            if rec.ecg is None or rec.ppg is None:
                skipped.append({"record": f.name, "why": "not paired (needs both ECG and PPG)"})
                continue
            win = preprocess(rec)
        except Exception as e:  # noqa: BLE001 - one unreadable record is reported, never fatal to the run
            why = str(e) if isinstance(e, InputError) else f"{type(e).__name__}: {e}"
            skipped.append({"record": f.name, "why": why})
            continue
        if len(win) == 0:
            skipped.append({"record": f.name, "why": "shorter than one 10-s window"})
            continue
        if win.ecg is None or win.ppg is None:  # preprocess dropped a dead channel: no longer paired
            dropped = "; ".join(f"{m.upper()} dropped: {r}" for m, r in (win.meta.get("dropped") or {}).items())
            skipped.append({"record": f.name, "why": "not paired after preprocessing (" + (dropped or "a channel "
                            "was dropped") + ")"})
            continue
        starts = np.round(np.asarray(win.starts_s) * win.fs).astype(int)
        width = win.ecg.shape[1]
        for s in starts:
            for peaks, out in ((win.r_peaks, rpk), (win.pulse_peaks, ppk)):
                if peaks is None:
                    out.append(None)
                else:
                    pk = np.asarray(peaks)
                    out.append(pk[(pk >= s) & (pk < s + width)] - s)
        ecg.append(win.ecg)
        ppg.append(win.ppg)
        group += [f.stem] * len(win)
        n_low = int(np.sum(win.low_quality)) if win.low_quality is not None else None
        used.append({"record": f.name, "windows": len(win), "low_quality_windows": n_low,
                     "duration_s": round(rec.duration_s, 1)})
    if not used:
        return None, {"status": "no paired records", "paths": [str(p) for p in existing], "skipped": skipped}
    s = EvalSet("real", "real paired records: " + ", ".join(u["record"] for u in used),
                np.concatenate(ecg).astype(np.float32), np.concatenate(ppg).astype(np.float32), np.asarray(group),
                r_peaks=_all_or_none(rpk), pulse_peaks=_all_or_none(ppk))
    info = {"status": "ok", "paths": [str(p) for p in existing], "records": used, "skipped": skipped,
            "windows": len(s), "note": "all windows scored, low-quality ones included"}
    s.info = info
    return s, info
