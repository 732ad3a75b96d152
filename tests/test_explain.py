"""m2ae.explain: Captum IG completeness, shapes, single-modality input, occlusion vs IG, bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from m2ae.errors import InputError
from m2ae.explain import Attribution, explain

T = 1250


class ToyHeads(torch.nn.Module):
    """Stand-in with the model's head interface: a known linear rhythm-like head and a nonlinear one."""

    head_names = ("linear", "mlp", "value")

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        # linear: class 0 reads the first 2 s of ECG, class 1 the PPG's last 2 s (answer known).
        w = torch.zeros(2, 2, T)
        w[0, 0, :250] = 1.0 / 250
        w[1, 1, -250:] = 1.0 / 250
        self.register_buffer("w_linear", w)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(2 * T, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
        self.value = torch.nn.Linear(2 * T, 1)
        for p in self.parameters():
            torch.nn.init.normal_(p, std=0.05, generator=g)

    def head_classes(self, head):
        return {"linear": ["ecg_early", "ppg_late"], "mlp": ["a", "b", "c"]}.get(head)

    def head_logits(self, head, ecg, ppg):
        ref = ecg if ecg is not None else ppg
        e = ecg if ecg is not None else torch.zeros_like(ref)
        p = ppg if ppg is not None else torch.zeros_like(ref)
        if head == "linear":
            return torch.stack([(e * self.w_linear[c, 0]).sum(1) + (p * self.w_linear[c, 1]).sum(1) for c in range(2)], 1)
        x = torch.cat([e, p], dim=1)
        if head == "mlp":
            return self.mlp(x)
        return self.value(x)[:, 0]


@pytest.fixture(scope="module")
def toy():
    return ToyHeads().eval()


@pytest.fixture(scope="module")
def windows():
    rng = np.random.default_rng(1)
    return rng.normal(size=(3, T)).astype(np.float32), rng.normal(size=(3, T)).astype(np.float32)


def test_ig_completeness_and_shapes(toy, windows):
    ecg, ppg = windows
    att = explain(toy, "mlp", ecg=ecg, ppg=ppg, n_steps=64)
    assert isinstance(att, Attribution)
    assert att.ecg.shape == ecg.shape and att.ppg.shape == ppg.shape
    # Completeness checked independently of Captum's own delta: recompute the outputs here.
    with torch.no_grad():
        out = toy.head_logits("mlp", torch.from_numpy(ecg), torch.from_numpy(ppg))
        base = toy.head_logits("mlp", torch.zeros(3, T), torch.zeros(3, T))
    idx = torch.as_tensor(att.target)[:, None]
    diff = (out.gather(1, idx) - base.gather(1, idx)).numpy().ravel()
    total = att.ecg.sum(1) + att.ppg.sum(1)
    np.testing.assert_allclose(total, diff, atol=1e-3 * max(1.0, np.abs(diff).max()))
    assert np.abs(att.convergence_delta).max() < 1e-3
    np.testing.assert_array_equal(att.target, out.argmax(1).numpy())
    np.testing.assert_allclose(att.share["ecg"] + att.share["ppg"], 1.0)
    assert ((att.share["ecg"] > 0) & (att.share["ecg"] < 1)).all()


def test_linear_head_answer_known(toy, windows):
    ecg, ppg = windows
    att = explain(toy, "linear", ecg=ecg, ppg=ppg, target="ecg_early")
    # For a linear head IG is exactly input × weight: only the first 2 s of ECG carry evidence.
    np.testing.assert_allclose(att.ecg[:, :250], ecg[:, :250] / 250, rtol=1e-4, atol=1e-7)
    assert np.abs(att.ecg[:, 250:]).max() < 1e-7 and np.abs(att.ppg).max() < 1e-7
    np.testing.assert_allclose(att.share["ecg"], 1.0)
    att = explain(toy, "linear", ecg=ecg, ppg=ppg, target=1)
    np.testing.assert_allclose(att.share["ppg"], 1.0)


def test_occlusion_agrees_in_sign_with_ig(toy, windows):
    ecg, ppg = windows
    ig = explain(toy, "linear", ecg=ecg, ppg=ppg, target=0)
    occ = explain(toy, "linear", ecg=ecg, ppg=ppg, target=0, method="occlusion")
    assert occ.convergence_delta is None and occ.method == "occlusion"
    ig_patch = ig.ecg.reshape(3, 50, 25).sum(-1)
    occ_patch = occ.ecg.reshape(3, 50, 25).sum(-1)
    active = np.abs(ig_patch) > 1e-6
    assert active.sum() == 3 * 10  # the 10 patches of the first 2 s
    assert (np.sign(occ_patch[active]) == np.sign(ig_patch[active])).all()
    # For a linear head occlusion of a patch drops exactly that patch's IG sum.
    np.testing.assert_allclose(occ_patch, ig_patch, atol=1e-5)


def test_single_modality_and_regression(toy, windows):
    ecg, ppg = windows
    att = explain(toy, "value", ppg=ppg[0])
    assert att.ecg is None and att.ppg.shape == (1, T)
    assert att.target is None
    np.testing.assert_allclose(att.share["ppg"], 1.0)
    np.testing.assert_allclose(att.ppg.sum(1), att.output - att.baseline_output, atol=1e-4)
    att = explain(toy, "mlp", ecg=torch.from_numpy(ecg), method="occlusion")
    assert att.ppg is None and att.ecg.shape == ecg.shape
    np.testing.assert_allclose(att.share["ecg"], 1.0)


@pytest.mark.parametrize("kwargs, match", [
    ({"head": "nope"}, "unknown head 'nope'"),
    ({"head": "mlp", "method": "shap"}, "unknown attribution method"),
    ({"head": "linear", "target": "AF"}, "unknown class 'AF'"),
    ({"head": "linear", "target": 7}, "out of range"),
    ({"head": "mlp", "ecg": np.zeros((2, 100))}, r"\[N, 1250\]"),
    ({"head": "mlp", "ecg": np.full((1, T), np.nan)}, "NaN"),
    ({"head": "mlp", "ecg": None, "ppg": None}, "ecg and/or ppg"),
])
def test_bad_input(toy, windows, kwargs, match):
    args = {"ecg": windows[0], "ppg": windows[1], **kwargs}
    head = args.pop("head")
    with pytest.raises(InputError, match=match):
        explain(toy, head, **args)


def test_completeness_on_the_m2ae_architecture():
    """IG over a (tiny, random) real M2AE + head: attributions sum to output − baseline output."""
    from m2ae.model import M2AE, M2AEConfig, Head, M2AEModel

    torch.manual_seed(0)
    net = M2AE(M2AEConfig(dim=16, encoder_depth=1, bottleneck_depth=1, n_heads=2, decoder_dim=16, decoder_depth=1,
                          decoder_heads=2, fingerprint_dim=16))
    heads = {"rhythm": Head({"name": "rhythm", "kind": "classification", "classes": ["NSR", "AF", "SB", "ST", "PVC"],
                             "input_dim": 16, "hidden": 8}),
             "age": Head({"name": "age", "kind": "regression", "y_mean": 50.0, "y_std": 15.0, "input_dim": 16})}
    model = M2AEModel(net, heads, device="cpu")
    rng = np.random.default_rng(5)
    ecg, ppg = rng.normal(size=(2, T)).astype(np.float32), rng.normal(size=(2, T)).astype(np.float32)
    for head, kw in (("rhythm", {"ecg": ecg, "ppg": ppg}), ("age", {"ppg": ppg}), ("rhythm", {"ecg": ecg})):
        att = explain(model, head, n_steps=64, **kw)
        diff = att.output - att.baseline_output
        total = sum(a.sum(1) for a in (att.ecg, att.ppg) if a is not None)
        assert np.abs(diff).max() > 1e-4  # the check below is not trivially 0 = 0
        np.testing.assert_allclose(total, diff, atol=0.02 * np.abs(diff).max() + 1e-5)
    assert att.classes == ["NSR", "AF", "SB", "ST", "PVC"] and att.target.shape == (2,)
    with pytest.raises(InputError, match="unknown head 'bp'"):
        explain(model, "bp", ecg=ecg)


def test_m2ae_explain_is_callable_after_subpackage_import():
    """The contract's ``m2ae.explain(model, head, …)`` must survive ``import m2ae.explain``."""
    import importlib

    import m2ae

    importlib.import_module("m2ae.explain")
    assert m2ae.explain.explain is not None
    with pytest.raises(m2ae.InputError):
        m2ae.explain(None, "no-such-head", ecg=np.zeros((1, 1250), np.float32))
