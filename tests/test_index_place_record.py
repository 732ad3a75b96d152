"""place_record: the cold-start placement path (no neurokit2, no umap) agrees with query_record."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data" / "af_csv" / "af.csv"


def test_place_record_matches_query_record_map_position():
    from m2ae.index import place_record, query_record

    placed = place_record(SAMPLE)
    queried = query_record(SAMPLE, k=3)
    assert placed["windows_xy"].shape == (queried["query"]["n_windows"], 2)
    assert queried["query"]["n_low_quality"] == 0  # so both record positions average the same windows
    np.testing.assert_allclose(placed["record_xy"], queried["query"]["map_xy"], atol=1e-3)


def test_place_record_imports_neither_neurokit2_nor_umap():
    code = (f"import sys, m2ae.index as I; I.place_record({str(SAMPLE)!r}); "
            "print('neurokit2' in sys.modules, 'umap' in sys.modules, 'numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-500:]
    assert out.stdout.split() == ["False", "False", "False"]
