"""The safe metadata predicate language, map search and density contours (m2ae.index.search)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from m2ae.errors import InputError
from m2ae.index.search import density_grid, find_windows, needs_density, where_mask

SHIPPED_META = Path(__file__).resolve().parents[1] / "m2ae" / "index" / "default" / "metadata.parquet"


@pytest.fixture
def meta() -> pd.DataFrame:
    return pd.DataFrame({
        "record": ["r001", "r002", "sim000001-seed1", "sim000001-seed1", "af"],
        "subject_id": ["r001", "r002", "sim000001", "sim000001", "sample-af"],
        "source": ["../shared/data/cinc2015/records/r001.hea", "../shared/data/cinc2015/records/r002.hea",
                   "m2ae.simulate", "m2ae.simulate", "sample_data/af_csv/af.csv"],
        "ecg_quality": [0.9, 0.4, 0.8, np.nan, 0.7],
        "label_rhythm": [None, None, "AF", "AF", "AFL"],
        "label_alarm_type": ["VT", "other", None, None, None],
        "label_true_alarm": pd.array([True, False, pd.NA, pd.NA, pd.NA], dtype="boolean"),
        "label_age": [np.nan, np.nan, 70.0, 70.0, 55.0],
        "map_x": [0.0, 1.0, 5.0, 6.0, 10.0],
        "map_y": [0.0, 1.0, 5.0, 7.0, 10.0],
    })


@pytest.mark.parametrize("text, rows", [
    ('source == "cinc2015" and alarm_type == "VT" and true_alarm == true', [0]),
    ('label.rhythm in ["AF", "PVC"]', [2, 3]),
    ('rhythm not in ["AF"]', [4]),
    ("rhythm == 'af'", [2, 3]),                       # text equality ignores case
    ('record contains "SIM"', [2, 3]),
    ("ecg_quality >= 0.7", [0, 2, 4]),                 # NaN never compares true
    ("not ecg_quality >= 0.7", [1, 3]),
    ("ecg_quality == null", [3]),
    ("true_alarm == false or age > 60", [1, 2, 3]),
    ('(rhythm == "AF" or rhythm == "AFL") and age < 60', [4]),
    ('rhythm == "AF" or rhythm == "AFL" and age < 60', [2, 3, 4]),  # and binds tighter than or
])
def test_where_selects_the_rows_the_predicate_names(meta, text, rows):
    assert np.flatnonzero(where_mask(meta, text)).tolist() == rows


@pytest.mark.parametrize("text, says", [
    ("__import__('os')", "where:"),
    ("__import__('os').system('ls')", "unexpected"),
    ("record.__class__ == 1", "unknown column"),
    ('record == "r001"; drop', "unexpected"),
    ("nosuch == 1", "unknown column 'nosuch'"),
    ('record ==', "expected a value"),
    ('record "r001"', "expected an operator"),
    ('(record == "r001"', "expected ')'"),
    ("rhythm in AF", "'[' opening a list"),
    ("age < true", "true/false"),
    ("", "empty predicate"),
    ("(" * 600 + "age > 1" + ")" * 600, "nested deeper"),
    ("not " * 400 + "age > 1", "nested deeper"),
    ("x" * 3000, "longer than"),
])
def test_where_refuses_anything_outside_the_language(meta, text, says):
    with pytest.raises(InputError, match="where") as e:
        where_mask(meta, text)
    assert says in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.skipif(not SHIPPED_META.exists(), reason="shipped index metadata absent")
def test_where_on_the_shipped_index_agrees_with_pandas():
    m = pd.read_parquet(SHIPPED_META)
    got = where_mask(m, 'source == "cinc2015" and alarm_type == "VT" and true_alarm == true')
    want = (m["source"].str.split("/").map(lambda parts: "cinc2015" in parts) & (m["label_alarm_type"] == "VT")
            & m["label_true_alarm"].fillna(False)).to_numpy(bool)
    assert got.sum() > 0 and (got == want).all()


def test_find_windows_by_word_label_and_field(meta):
    res = find_windows(meta, "sim000001")
    assert res["ids"].tolist() == [2, 3] and res["n"] == 2
    assert res["table"]["matched"].tolist() == ["record", "record"]
    assert res["center"] == (5.5, 6.0) and res["bounds"] == (5.0, 6.0, 5.0, 7.0)
    assert find_windows(meta, "label:af")["ids"].tolist() == [2, 3]       # exact: AFL is not AF
    assert find_windows(meta, "label:VT CINC2015")["ids"].tolist() == [0]  # terms are ANDed
    assert find_windows(meta, "source:af_csv")["ids"].tolist() == [4]
    assert find_windows(meta, "record:cinc2015")["n"] == 0                # the record column only
    assert find_windows(meta, "nothing-like-this")["center"] is None
    with pytest.raises(InputError, match="search"):
        find_windows(meta, "   ")


def test_density_grid_peaks_where_points_crowd():
    rng = np.random.default_rng(0)
    xy = np.concatenate([rng.normal(0, 0.3, (9000, 2)), rng.uniform(-5, 5, (2000, 2))])
    d = density_grid(xy, bins=50)
    assert d["z"].shape == (50, 50) and d["n"] == 11_000
    iy, ix = np.unravel_index(np.argmax(d["z"]), d["z"].shape)
    assert abs(d["x"][ix]) < 0.5 and abs(d["y"][iy]) < 0.5
    assert len(d["levels"]) >= 2 and np.all(np.diff(d["levels"]) > 0)
    assert needs_density(10_001) and not needs_density(10_000)
    with pytest.raises(InputError):
        density_grid(np.zeros((3, 3)))
