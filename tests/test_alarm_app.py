"""Every head output in the app says whether its head learnt from real or simulated labels: the shipped
demo heads (simulator) and an alarm head (real labels) side by side on the Predictions page, and the
Model card page's heads table."""
from __future__ import annotations

import numpy as np
import pytest

from m2ae.model import load_model, save_checkpoint
from m2ae.model.card import LABEL_SOURCES, head_labels_source, write_card
from m2ae.train.alarm import fit_alarm_heads
from m2ae.train.alarm_data import AlarmRecord

from test_app_pages import APP, TIMEOUT_S, assert_ok

AppTest = pytest.importorskip("streamlit.testing.v1").AppTest


class _Planted:
    """Stand-in fingerprints (the window mean planted in dimension 0) of the shipped model's width."""

    fingerprint_dim = 256

    def fingerprint(self, ecg=None, ppg=None, batch_size=256):
        x = np.asarray(ecg if ecg is not None else ppg, np.float64)
        out = np.random.default_rng(len(x)).standard_normal((len(x), self.fingerprint_dim)) * 0.1
        out[:, 0] = x.mean(1)
        return out.astype(np.float32)


@pytest.fixture(scope="module")
def with_alarm(tmp_path_factory):
    rng = np.random.default_rng(0)
    recs = [AlarmRecord(name=f"r{k}", split=("train", "validation")[k % 2], alarm_type=("VT", "other")[k % 4 // 2],
                        true_alarm=bool(k % 3), ecg=(rng.standard_normal((2, 1250)) + (k % 3)).astype(np.float32),
                        starts_s=np.array([280.0, 290.0])) for k in range(48)]
    heads, card_heads = fit_alarm_heads(_Planted(), recs)  # type: ignore[arg-type]
    shipped = load_model(device="cpu")
    card = dict(shipped.card)
    card["heads"] = {**card.get("heads", {}), **card_heads}
    path = tmp_path_factory.mktemp("alarm_app") / "with_alarm.pt"
    save_checkpoint(path, shipped.net, {**shipped.heads, **heads}, card)
    write_card(path, card)
    # the shipped checkpoint's own alarm heads are replaced; its other heads keep their card's label source
    others = {name: head_labels_source(card["heads"].get(name)) for name in set(shipped.heads) - set(heads)}
    return path, set(heads), others


@pytest.fixture
def fresh_app_caches():
    """The app caches predictions by weights version, and this checkpoint shares the shipped weights:
    clear the process-wide caches and the record store before and after, so no other app test sees
    these extra heads."""
    import streamlit as st
    from m2ae_ui import state

    st.cache_data.clear()
    st.cache_resource.clear()
    state.STORE.clear()  # per-record outputs (predictions …) live in the app's record store
    yield
    st.cache_data.clear()
    st.cache_resource.clear()
    state.STORE.clear()


def test_predictions_and_model_card_say_real_or_simulated_labels(with_alarm, monkeypatch, fresh_app_caches):
    path, alarm_names, others = with_alarm
    monkeypatch.setenv("M2AE_MODEL", str(path))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S)
    at.run()
    at.switch_page("views/predictions.py").run()
    assert_ok(at)
    captions = [c.value for c in at.caption]
    for name in alarm_names:
        assert f"{name} · {LABEL_SOURCES['real']}" in captions
    assert "simulated" in others.values()  # the demo heads (hypertension, sex, age, risk) learnt from the simulator
    for name, source in others.items():
        assert f"{name} · {LABEL_SOURCES[source]}" in captions
    at.switch_page("views/model_card.py").run()
    assert_ok(at)
    tables = [df.value for df in at.dataframe]
    heads_table = next(t for t in tables if "labels" in t.columns and "head" in t.columns)
    labels = dict(zip(heads_table["head"], heads_table["labels"]))
    assert all(labels[n] == "real" for n in alarm_names) and all(labels[n] == s for n, s in others.items())
