"""Real ECG / PPG recordings that install from PyPI inside open-source packages, as ``Record``s.

No large paired corpus can be downloaded on the build machines, but two packages on PyPI ship real
recordings inside their wheels (no download at run time):

- ``pyhrv`` 0.5.0 (BSD-3-Clause, © 2018 Pedro Gomes): ``pyhrv/files/SampleECG.txt``, the BITalino
  (r)evolution sample ECG, one lead, 1000 Hz, 22.4 s, OpenSignals text format (10-bit ADC counts).
- ``heartpy`` 1.2.7 (MIT licence file in the wheel, © 2021 Paul van Gent; the wheel's classifier
  still says GPL, the project relicensed to MIT): ``heartpy/data/data.csv`` (finger PPG, 100 Hz,
  24.8 s) and ``heartpy/data/data2.csv`` (PPG with a millisecond timer, ≈117 Hz, 128 s; we keep
  the 60 s after its dropout and settling artefacts).

Neither is paired ECG+PPG and neither carries diagnostic labels, so they serve as single-modality
real inputs (sample records, single-modality evaluation/fine-tuning), not as labelled training data.
The package data ``m2ae/simulate/registry_excerpts/`` holds the excerpts (made by
``sample_data/make_samples.py`` from the wheels; found with ``importlib.resources``, so an
installed wheel has them too); :func:`registry_records` reads them, or the installed packages'
files when the excerpts are absent. numpy only.

>>> recs = registry_records()                    # doctest: +SKIP
>>> [(r.meta["record_id"], r.modalities, r.fs) for r in recs]   # doctest: +SKIP
[('bitalino_ecg', ('ecg',), 1000.0), ('heartpy_ppg_100hz', ('ppg',), 100.0), ...]
"""
from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputError
from ..record import Record

if TYPE_CHECKING:  # importlib.resources.abc is 3.11+; annotations only
    from importlib.resources.abc import Traversable

# The NPZ excerpts ship inside the package (pyproject package-data), wherever it is installed.
REGISTRY_DIR: Traversable = files("m2ae.simulate") / "registry_excerpts"

# BITalino (r)evolution ECG sensor transfer function (sensor datasheet):
# ECG[V] = (ADC / 2**n - 1/2) * VCC / G_ECG, with VCC = 3.3 V and G_ECG = 1100.
BITALINO_VCC_V = 3.3
BITALINO_ECG_GAIN = 1100.0


@dataclass(frozen=True)
class RegistrySource:
    """One real recording shipped inside a PyPI wheel: where it is and under which licence."""

    record_id: str
    package: str
    version: str
    member: str          # path inside the wheel / installed package
    licence: str
    modality: str
    description: str


SOURCES: tuple[RegistrySource, ...] = (
    RegistrySource("bitalino_ecg", "pyhrv", "0.5.0", "pyhrv/files/SampleECG.txt",
                   "BSD-3-Clause (pyhrv, (c) 2018 Pedro Gomes)", "ecg",
                   "BITalino (r)evolution sample ECG as shipped in pyhrv: one lead, 1000 Hz, 22.4 s"),
    RegistrySource("heartpy_ppg_100hz", "heartpy", "1.2.7", "heartpy/data/data.csv",
                   "MIT (heartpy, (c) 2021 Paul van Gent)", "ppg",
                   "HeartPy example finger PPG: 100 Hz, 24.8 s"),
    RegistrySource("heartpy_ppg_117hz", "heartpy", "1.2.7", "heartpy/data/data2.csv",
                   "MIT (heartpy, (c) 2021 Paul van Gent)", "ppg",
                   "HeartPy example PPG with ms timer: 117 Hz, 60 s excerpt (samples 5400-12419, 46-106 s)"),
)
HEARTPY_DATA2_EXCERPT = (5400, 12420)  # 46-106 s: after the dropout (18-25 s) and the settling artefacts


def parse_bitalino_ecg(text: str, name: str = "SampleECG.txt") -> tuple[np.ndarray, float]:
    """OpenSignals (r)evolution text → (ECG in mV, fs in Hz), using the header's rate and resolution."""
    lines = text.splitlines()
    header = next((ln[1:].strip() for ln in lines[:5] if ln.startswith("#") and "{" in ln), None)
    if header is None:
        raise InputError(f"{name}: no OpenSignals JSON header line")
    device = next(iter(json.loads(header).values()))
    fs = float(device["sampling rate"])
    bits = int(device["resolution"][-1])
    data = np.loadtxt([ln for ln in lines if ln and not ln.startswith("#")], ndmin=2)
    adc = data[:, -1]  # the analog channel (A2) is the last column
    ecg_mv = (adc / 2**bits - 0.5) * BITALINO_VCC_V / BITALINO_ECG_GAIN * 1000.0
    return ecg_mv, fs


def parse_heartpy_ppg(text: str, name: str) -> tuple[np.ndarray, float]:
    """HeartPy example CSV → (PPG, fs in Hz): ``data.csv`` is one column at 100 Hz; ``data2.csv`` has
    ``timer`` (ms) and ``hr`` (the PPG) columns, rate from the timer; we keep its documented excerpt."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if lines[0].strip().lower().startswith("timer"):
        data = np.loadtxt(lines[1:], delimiter=",", ndmin=2)
        timer_ms, ppg = data[:, 0], data[:, 1]
        fs = 1000.0 * (len(timer_ms) - 1) / (timer_ms[-1] - timer_ms[0])
        a, b = HEARTPY_DATA2_EXCERPT
        return ppg[a:b], round(fs, 4)
    return np.loadtxt(lines, ndmin=1), 100.0


def _parse(src: RegistrySource, text: str) -> tuple[np.ndarray, float]:
    if src.package == "pyhrv":
        return parse_bitalino_ecg(text, src.member)
    return parse_heartpy_ppg(text, src.member)


def make_record(src: RegistrySource, x: np.ndarray, fs: float) -> Record:
    """A single-modality ``Record`` of ``src`` (ECG in mV, PPG in au) at ``fs`` Hz, with its provenance."""
    meta = {
        "source": f"{src.package}=={src.version}:{src.member}",
        "record_id": src.record_id,
        "subject_id": src.record_id,
        "units": {src.modality: "mV" if src.modality == "ecg" else "au"},
        "labels": {},
        "licence": src.licence,
        "origin": f"real recording shipped in the PyPI package {src.package} {src.version} ({src.member})",
        "notes": [src.description],
    }
    if src.modality == "ecg":
        meta["lead"] = "single lead (BITalino, placement not stated)"
        return Record(ecg=np.asarray(x, dtype=np.float64), ppg=None, fs=fs, meta=meta)
    return Record(ecg=None, ppg=np.asarray(x, dtype=np.float64), fs=fs, meta=meta)


def record_from_package_text(src: RegistrySource, text: str) -> Record:
    """Build the record from the raw file text of the package (what make_samples.py does with wheels)."""
    return make_record(src, *_parse(src, text))


def _installed_member(src: RegistrySource) -> Path | None:
    """The member file of an installed package, located without importing the package."""
    spec = importlib.util.find_spec(src.package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))).parent / src.member
    return path if path.exists() else None


def _load_excerpt(src: RegistrySource, path: Traversable) -> Record:
    with path.open("rb") as f, np.load(f, allow_pickle=False) as z:
        x = z[src.modality]
        fs = float(z["fs"])
    return make_record(src, x, fs)


def registry_records(registry_dir: str | Path | None = None) -> list[Record]:
    """The real registry recordings available here, as ``Record``s (``[]`` when none is).

    Looks in ``registry_dir`` (default: the package's ``registry_excerpts``) for the NPZ excerpts,
    else in installed ``pyhrv`` / ``heartpy`` packages. ``meta`` carries source, licence
    and origin; ``labels`` is empty (these recordings come without diagnoses).
    """
    root: Traversable = Path(registry_dir) if registry_dir is not None else REGISTRY_DIR
    out = []
    for src in SOURCES:
        excerpt = root / f"{src.record_id}.npz"
        if excerpt.is_file():
            out.append(_load_excerpt(src, excerpt))
            continue
        member = _installed_member(src)
        if member is not None:
            out.append(record_from_package_text(src, member.read_text()))
    return out
