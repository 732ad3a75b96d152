"""The shipped index (m2ae/index/default): made by the shipped checkpoint, the promised size and content,
and a sample record finds its own subject and neighbours of its own rhythm far above chance."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "m2ae" / "index" / "default"
SAMPLES = ROOT / "sample_data"


@pytest.fixture(scope="module")
def shipped():
    if not (DEFAULT / "manifest.json").exists():
        pytest.skip("m2ae/index/default is not built in this checkout")
    import m2ae

    model = m2ae.load_model(device="cpu")
    # Raises ModelMismatchError when the checkpoint changed and the index was not rebuilt.
    return m2ae.open_index(model=model), model


def test_manifest_size_and_content(shipped):
    idx, model = shipped
    m = json.loads((DEFAULT / "manifest.json").read_text())
    assert m["model_version"] == model.version
    assert m["build_command"] == 'm2ae index build sample_data/af_csv sample_data/ecg_only_edf sample_data/nsr_wfdb sample_data/ppg_only_csv sample_data/pvc_wfdb sample_data/sb_edf sample_data/st_npz m2ae/simulate/registry_excerpts ../shared/data/cinc2015 --out m2ae/index/default --simulate 2000 --seed 0 --splits train validation'
    assert m["build_command"] in (ROOT / "m2ae" / "index" / "README.md").read_text()
    assert m["model_checkpoint"] == "m2ae/model/m2ae-demo.pt" and m["created"] and m["data"]
    assert idx.count >= 10_000 and idx.metadata["subject_id"].nunique() >= 2_000
    assert set(idx.metadata["label_rhythm"].dropna()) == {"NSR", "AF", "SB", "ST", "PVC"}
    for col in ("label_hypertension", "label_age", "label_sex", "ecg_quality", "ppg_quality", "low_quality",
                "map_x", "map_y"):
        assert col in idx.metadata.columns
    assert m["map"]["method"] == "umap"
    size_mb = sum(f.stat().st_size for f in DEFAULT.iterdir()) / 2**20
    assert size_mb <= 64, size_mb  # 2,000 simulated subjects + 439 real ICU records (train + validation)
    sources = idx.metadata["source"].astype(str)
    assert not sources.str.startswith(("..", "/")).any(), sources[sources.str.startswith(("..", "/"))].unique()[:3]
    assert sources.str.startswith("cinc2015/records/").any()
    w = idx.waveforms([0, idx.count - 1])
    assert w["ecg"].shape == (2, 625)


@pytest.mark.parametrize("sample", ["af_csv/af.csv", "pvc_wfdb/pvc.hea"])
def test_sample_record_query(shipped, sample):
    from m2ae.index import query_record

    idx, model = shipped
    path = SAMPLES / sample
    if not path.exists():
        pytest.skip(f"{path} absent")
    res = query_record(path, index=idx, model=model, k=10)
    assert res["own_subject_neighbours"] >= 1  # the record is in the index: its windows come back
    res = query_record(path, index=idx, model=model, k=10, exclude_subject=True)
    rhythm = res["label_agreement"]["rhythm"]
    assert rhythm["neighbours_same"] >= 2 * rhythm["index_base_rate"], rhythm  # base rate 0.2
