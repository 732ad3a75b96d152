"""Shared fixtures. Real data is read from ../shared/data/real and never copied into the repo."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REAL_DIR = Path(os.environ.get("M2AE_REAL_DATA", ROOT.parent / "shared" / "data" / "real"))
CINC_DIR = Path(os.environ.get("M2AE_CINC2015_DATA", ROOT.parent / "shared" / "data" / "cinc2015"))

# Tests share 2 cores with each other; keep torch from busy-waiting.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture(scope="session")
def real_dir() -> Path:
    if not REAL_DIR.is_dir():
        pytest.skip(f"real paired records not available: {REAL_DIR} is absent (fresh clone outside the workspace)")
    return REAL_DIR


@pytest.fixture(scope="session")
def cinc_dir() -> Path:
    """The CinC 2015 corpus (labels.csv + records/), or a skip that says why it is absent."""
    if not (CINC_DIR / "labels.csv").is_file() or not (CINC_DIR / "records").is_dir():
        pytest.skip(f"CinC 2015 corpus not available: {CINC_DIR} has no labels.csv + records/ "
                    f"(fresh clone outside the workspace; set M2AE_CINC2015_DATA)")
    return CINC_DIR


@pytest.fixture(scope="session")
def bidmc_csv(real_dir) -> Path:
    p = real_dir / "bidmc_01_Signals.csv"
    if not p.exists():
        pytest.skip(f"{p} is absent")
    return p


@pytest.fixture(scope="session")
def a103l_hea(real_dir) -> Path:
    p = real_dir / "wfdb" / "a103l.hea"
    if not p.exists():
        pytest.skip(f"{p} is absent")
    return p
