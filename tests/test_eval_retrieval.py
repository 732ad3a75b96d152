"""Two-stage PPG→ECG retrieval (m2ae.eval.retrieval) on stand-ins where the right answer is known."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from m2ae.errors import InputError
from m2ae.eval import headline, simulated_set
from m2ae.eval import metrics as M
from m2ae.eval.baseline_fit import input_features as _features
from m2ae.eval.baselines import MeanBeatTemplate
from m2ae.eval.retrieval import max_lagged_correlation, paired_retrieval
from m2ae.eval.retrieval_scores import retrieval_section
from m2ae.model import M2AE, M2AEConfig, M2AEModel

FS_HZ, T = 125, 1250
LAG_SAMPLES = 40  # 320 ms: the stand-in's constant pulse-arrival offset


def _ecg_like(rng, rate_hz: float) -> np.ndarray:
    """Narrow Gaussian 'R waves' at irregular beat times (each window its own timing) + a little noise."""
    t = np.arange(T)
    beats = np.cumsum(rng.normal(FS_HZ / rate_hz, 0.12 * FS_HZ, size=30)) - rng.uniform(0, FS_HZ)
    x = sum(np.exp(-0.5 * ((t - b) / 3.0) ** 2) for b in beats if -10 < b < T + 10)
    return (x + 0.05 * rng.standard_normal(T)).astype(np.float32)


class SubjectLevelModel:
    """Stand-in with the shipped model's failure mode and strength.

    fingerprint: one-hot of the subject (identical for every window of a subject, ECG or PPG), so
    fingerprint cosine cannot tell a subject's windows apart. reconstruct(ppg, "ecg_from_ppg"): the
    true paired ECG delayed by ``LAG_SAMPLES`` (right beat timing, constant phase error).
    """

    def __init__(self, ecg, ppg, subject):
        self.ecg, self.subject = ecg, subject
        self._row = {x.tobytes(): i for windows in (ecg, ppg) for i, x in enumerate(windows)}
        self.n_subjects = int(subject.max()) + 1
        self.calls = []

    def _rows(self, x):
        return np.array([self._row[r.tobytes()] for r in np.asarray(x, np.float32)])

    def fingerprint(self, ecg=None, ppg=None):
        self.calls.append("fingerprint")
        rows = self._rows(ecg if ecg is not None else ppg)
        return np.eye(self.n_subjects, dtype=np.float32)[self.subject[rows]]

    def reconstruct(self, ppg=None, mode="complementary", **_):
        assert mode == "ecg_from_ppg" and ppg is not None
        self.calls.append("reconstruct")
        true = self.ecg[self._rows(ppg)]
        shifted = np.zeros_like(true)
        shifted[:, LAG_SAMPLES:] = true[:, :-LAG_SAMPLES]
        return {"ecg": {"prediction": shifted}}


@pytest.fixture(scope="module")
def paired_windows():
    rng = np.random.default_rng(7)
    n_subjects, per_subject = 6, 8
    subject = np.repeat(np.arange(n_subjects), per_subject)
    ecg = np.stack([_ecg_like(rng, rate_hz=1.0 + 0.1 * s) for s in subject])
    ppg = rng.standard_normal(ecg.shape).astype(np.float32)  # only the fake model reads it (as a key)
    return ecg, ppg, subject


def test_two_stage_recovers_pairs_that_fingerprints_cannot(paired_windows):
    ecg, ppg, subject = paired_windows
    model = SubjectLevelModel(ecg, ppg, subject)
    fingerprint_only = M.paired_top1(model.fingerprint(ppg=ppg), model.fingerprint(ecg=ecg))
    assert fingerprint_only <= 1 / 8 + 1e-9  # ties inside a subject: at best one window per subject
    res = paired_retrieval(model, ppg, ecg, shortlist=10, max_lag_s=1.0)
    assert res.top1_accuracy() == 1.0
    assert res.shortlist_recall() == 1.0 and res.stage1_top1_accuracy() == pytest.approx(fingerprint_only)
    # the lag found is the stand-in's constant offset: the candidate (true ECG) is LAG_SAMPLES earlier
    assert np.all(res.lag_samples[:, 0] == -LAG_SAMPLES)
    assert np.all(res.correlation[:, 0] > 0.9)
    # stage 2 only re-orders stage 1's shortlist, which holds only the query's own subject's windows first
    assert np.array_equal(np.sort(res.ranking, 1), np.sort(res.stage1_ranking, 1))
    assert np.all(subject[res.stage1_ranking[:, :8]] == subject[:, None])


def test_lag_range_matters(paired_windows):
    ecg, ppg, subject = paired_windows
    model = SubjectLevelModel(ecg, ppg, subject)
    # a search range shorter than the offset misses the alignment: no longer perfect
    assert paired_retrieval(model, ppg, ecg, shortlist=10, max_lag_s=0.0).top1_accuracy() < 1.0
    assert paired_retrieval(model, ppg, ecg, shortlist=10, max_lag_s=0.5).top1_accuracy() == 1.0


def test_shapes_and_shortlist_clamped(paired_windows):
    ecg, ppg, subject = paired_windows
    model = SubjectLevelModel(ecg, ppg, subject)
    q = ppg[:5]
    res = paired_retrieval(model, q, ecg, shortlist=10_000)
    C = len(ecg)
    assert res.shortlist == C
    for a in (res.ranking, res.stage1_ranking, res.stage1_score, res.correlation, res.lag_samples):
        assert a.shape == (5, C)
    assert res.top1.shape == (5,) and np.array_equal(res.top1, res.ranking[:, 0])
    assert all(sorted(row) == list(range(C)) for row in res.ranking)  # every candidate ranked once
    assert np.all(np.diff(res.correlation, axis=1) <= 1e-12)         # best first
    assert np.all(np.diff(res.stage1_score, axis=1) <= 1e-12)
    one = paired_retrieval(model, q, ecg, shortlist=1)
    assert one.shortlist == 1 and np.array_equal(one.top1, one.stage1_ranking[:, 0])


def test_precomputed_fingerprints_are_used(paired_windows):
    ecg, ppg, subject = paired_windows
    model = SubjectLevelModel(ecg, ppg, subject)
    fq, fc = model.fingerprint(ppg=ppg), model.fingerprint(ecg=ecg)
    model.calls.clear()
    res = paired_retrieval(model, ppg, ecg, shortlist=8, query_fingerprints=fq, candidate_fingerprints=fc)
    assert model.calls == ["reconstruct"] and res.top1_accuracy() == 1.0


def test_max_lagged_correlation_matches_direct_pearson():
    rng = np.random.default_rng(0)
    q, c = rng.standard_normal((3, 200)), rng.standard_normal((4, 200))
    c[2, 7:] = q[1, :-7]  # candidate 2 is query 1 delayed by 7 samples
    pairs = np.array([[0, 1], [2, 3], [3, 0]])
    corr, lag = max_lagged_correlation(q, c, pairs, max_lag_samples=10)
    assert corr.shape == lag.shape == (3, 2)
    assert lag[1, 0] == 7 and corr[1, 0] > 0.95
    # brute force: zero-mean unit-norm rows, overlap sum at each lag (no wrap-around)
    z = lambda x: (x - x.mean()) / np.linalg.norm(x - x.mean())  # noqa: E731
    for i, row in enumerate(pairs):
        for k, j in enumerate(row):
            a, b = z(q[i]), z(c[j])
            direct = [np.dot(a[max(0, -L):200 - max(0, L)], b[max(0, L):200 - max(0, -L)]) for L in range(-10, 11)]
            assert corr[i, k] == pytest.approx(max(direct), abs=1e-5)
            assert lag[i, k] == int(np.argmax(direct)) - 10


def test_bad_inputs(paired_windows):
    ecg, ppg, subject = paired_windows
    model = SubjectLevelModel(ecg, ppg, subject)
    with pytest.raises(InputError, match="shortlist"):
        paired_retrieval(model, ppg, ecg, shortlist=0)
    with pytest.raises(InputError, match="samples"):
        paired_retrieval(model, ppg[:, :100], ecg)
    with pytest.raises(InputError, match="query_ppg"):
        paired_retrieval(model, ppg[0], ecg)
    with pytest.raises(InputError, match="ecg_estimate"):
        paired_retrieval(model, ppg, ecg, ecg_estimate=ecg[:3])


def test_ecg_estimate_replaces_the_reconstruction(paired_windows):
    """A baseline's ECG estimate is used in stage 2 instead of the model's: the true ECG itself is perfect,
    a reversed-order (wrong pair) estimate is not."""
    ecg, ppg, subject = paired_windows
    model = SubjectLevelModel(ecg, ppg, subject)
    model.calls.clear()
    assert paired_retrieval(model, ppg, ecg, shortlist=8, ecg_estimate=ecg).top1_accuracy() == 1.0
    assert "reconstruct" not in model.calls
    wrong = ecg[np.argsort(subject * 100 - np.arange(len(ecg)))]  # same subject, other windows' timing
    assert paired_retrieval(model, ppg, ecg, shortlist=8, ecg_estimate=wrong).top1_accuracy() < 0.5


def test_qrs_band_ignores_slow_waves_that_do_not_identify_a_window(paired_windows):
    """Stage 2 compares in the QRS band. Every candidate carries a broad wave of its own (as P/T waves
    are) and the estimate a wrong one: compared raw, slow waves lined up at some lag decide; in the
    QRS band the beat timing does."""
    ecg, ppg, subject = paired_windows
    rng = np.random.default_rng(3)
    t = np.arange(T) / FS_HZ

    def slow_waves(amplitude):
        phase = rng.uniform(0, 2 * np.pi, (len(ecg), 1))
        return (amplitude * np.sin(2 * np.pi * 0.5 * t[None, :] + phase)).astype(np.float32)

    candidates = ecg + slow_waves(2.0)
    estimate = ecg + slow_waves(2.0)
    model = SubjectLevelModel(ecg, ppg, subject)
    fc = model.fingerprint(ecg=ecg)  # the stand-in knows windows by their bytes: candidates' own
    in_band = paired_retrieval(model, ppg, candidates, shortlist=8, ecg_estimate=estimate, candidate_fingerprints=fc)
    raw = paired_retrieval(model, ppg, candidates, shortlist=8, ecg_estimate=estimate, candidate_fingerprints=fc,
                           compare_band_hz=None)
    assert in_band.top1_accuracy() == 1.0
    assert raw.top1_accuracy() < 0.5
    with pytest.raises(InputError, match="band"):
        paired_retrieval(model, ppg, ecg, ecg_estimate=estimate, compare_band_hz=(30.0, 80.0))


def test_eval_section_and_headline_row():
    """retrieval_section with a real (tiny, untrained) M2AE adds model_two_stage; headline gets its row."""
    torch.manual_seed(0)
    net = M2AE(M2AEConfig(dim=16, encoder_depth=1, bottleneck_depth=1, n_heads=2, decoder_dim=16,
                          decoder_depth=1, decoder_heads=2, fingerprint_dim=16))
    model = M2AEModel(net, device="cpu")
    s = simulated_set("simulated_heldout", 3, 4, seed=123)
    fps = {"both": model.fingerprint(ecg=s.ecg, ppg=s.ppg), "ecg": model.fingerprint(ecg=s.ecg),
           "ppg": model.fingerprint(ppg=s.ppg)}
    feats = _features(s)
    rp, pp = s.peaks()
    template = MeanBeatTemplate().fit(s.ecg, s.ppg, rp, pp)
    sec = retrieval_section(s, fps, feats, feats, n_candidates=10, seed=0, model=model, template=template)
    pair = sec["ppg_to_paired_ecg_top1"]
    two = pair["model_two_stage"]
    assert pair["candidates"] == 10 and two["shortlist"] == 10  # SHORTLIST 50 clamped to the 10 candidates
    assert two["shortlist_recall"] == 1.0 and two["stage1_top1"] == pytest.approx(pair["model"])
    assert 0 <= two["top1"] <= 1 and "cross-correlation" in two["how"]
    res = {"real": {"retrieval": sec, "masked": {m: {"model": 0.5, "linear_interpolation": 0.6} for m in ("ecg", "ppg")},
                    "cross_modal": {t: {k: {"median_r_lagged": 0.1, "median_nmse_lagged": 1.0, "median_r": 0.1}
                                        for k in ("model", "ridge", "mean_beat_template")}
                                    for t in ("ppg_to_ecg", "ecg_to_ppg")}}}
    tpl = pair["mean_beat_template_two_stage"]
    assert tpl["shortlist"] == 10 and 0 <= tpl["top1"] <= 1
    rows = {(r["task"], r["baseline"]): r for r in headline(res)}
    assert rows["ppg_to_paired_ecg_top1", "features"]["model"] == pair["model"]  # fingerprint-only row unchanged
    row = rows["ppg_to_paired_ecg_top1_two_stage", "features"]
    assert row["data"] == "real" and row["model"] == two["top1"] and row["baseline_value"] == pair["features"]
    assert row["model_better"] == (two["top1"] > pair["features"])
    row = rows["ppg_to_paired_ecg_top1_two_stage", "mean_beat_template_two_stage"]
    assert row["model"] == two["top1"] and row["baseline_value"] == tpl["top1"]
