"""M2AE model: shapes, masking invariants, single-modality paths, checkpoints, the inference API."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from m2ae.errors import InputError
from m2ae.model import M2AE, M2AEConfig, Head, load_model, save_checkpoint, weights_version
from m2ae.model.heads import default_head_specs

TINY = M2AEConfig(dim=32, encoder_depth=1, bottleneck_depth=1, n_heads=2, decoder_dim=32, decoder_depth=1,
                  decoder_heads=2, fingerprint_dim=16)


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return M2AE(TINY).eval()


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory, net):
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    heads = {k: Head(s) for k, s in default_head_specs(TINY.fingerprint_dim).items()}
    save_checkpoint(path, net, heads, {"name": "tiny test model"})
    return path


@pytest.fixture(scope="module")
def model(tiny_ckpt):
    return load_model(tiny_ckpt, device="cpu")


def windows(n=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 1250)).astype(np.float32), rng.standard_normal((n, 1250)).astype(np.float32)


def test_patchify_roundtrip_and_layout(net):
    x = torch.arange(2 * 1250, dtype=torch.float32).reshape(2, 1250)
    p = net.patchify(x)
    assert p.shape == (2, 50, 25)
    assert torch.equal(p[0, 1], x[0, 25:50])  # patch i = samples [25 i, 25 i + 25)
    assert torch.equal(net.unpatchify(p), x)


def test_random_masking_honours_ratio(net):
    g = torch.Generator().manual_seed(1)
    for ratio in (0.0, 0.3, 0.5, 0.75, 1.0):
        hidden = net.random_masking(64, ratio, g)
        assert hidden.shape == (64, 50) and hidden.dtype == torch.bool
        assert (hidden.sum(1) == round(ratio * 50)).all()
    # different samples get different patterns
    hidden = net.random_masking(8, 0.5, g)
    assert len({tuple(r.tolist()) for r in hidden}) > 1


def test_complementary_masks_complement(net):
    g = torch.Generator().manual_seed(2)
    for ratio in (0.5, 0.3):
        he, hp = net.complementary_masking(32, ratio, g)
        assert not (he & hp).any()          # nothing hidden in both
        assert (he | hp).all()              # every time patch is hidden in exactly one modality
        assert (he.sum(1) == round(ratio * 50)).all()


def test_block_masking_is_contiguous(net):
    hidden = net.block_masking(16, 0.4, torch.Generator().manual_seed(3))
    assert (hidden.sum(1) == 20).all()
    for row in hidden.int():
        assert (torch.diff(row) != 0).sum() <= 2  # one run


def test_training_scenarios_never_hide_both_entirely(net):
    g = torch.Generator().manual_seed(4)
    hidden = net.sample_scenarios(512, torch.device("cpu"), g)
    assert not (hidden["ecg"].all(1) & hidden["ppg"].all(1)).any()
    assert hidden["ecg"].all(1).any() and hidden["ppg"].all(1).any()  # whole-modality dropout happens
    present = {"ecg": torch.ones(512, dtype=torch.bool), "ppg": torch.zeros(512, dtype=torch.bool)}
    hidden = net.sample_scenarios(512, torch.device("cpu"), g, present=present)
    assert hidden["ppg"].all()  # a missing modality is always hidden
    assert not hidden["ecg"].all(1).any()


def test_forward_shapes_and_finite_loss(net):
    e, p = (torch.from_numpy(a) for a in windows(6))
    net.train()
    out = net(e, p, generator=torch.Generator().manual_seed(0))
    net.eval()
    for k in ("loss", "mse_ecg", "mse_ppg", "env_ecg", "env_ppg", "infonce"):
        assert out[k].ndim == 0 and torch.isfinite(out[k])
    out["loss"].backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()


def test_hidden_patches_do_not_leak(net):
    """A hidden patch's content must not change the fingerprint or any reconstruction."""
    e, p = (torch.from_numpy(a) for a in windows(3))
    g = torch.Generator().manual_seed(5)
    he, hp = net.complementary_masking(3, 0.5, g)
    x = {"ecg": e, "ppg": p}
    with torch.no_grad():
        a = net.reconstruct(x, {"ecg": he, "ppg": hp})
        e2 = e.clone()
        e2[he.repeat_interleave(25, dim=1)] = 100.0
        b = net.reconstruct({"ecg": e2, "ppg": p}, {"ecg": he, "ppg": hp})
    assert torch.allclose(a["ecg"], b["ecg"], atol=1e-5) and torch.allclose(a["ppg"], b["ppg"], atol=1e-5)


def test_single_modality_embedding_ignores_absent(net):
    e, p = (torch.from_numpy(a) for a in windows(3))
    with torch.no_grad():
        fe = net.embed(ecg=e)
        fb = net.embed(ecg=e, ppg=p)
    assert fe.shape == (3, TINY.fingerprint_dim)
    assert torch.allclose(fe.norm(dim=1), torch.ones(3), atol=1e-5)
    assert not torch.allclose(fe, fb)


def test_api_fingerprint(model):
    e, p = windows(5)
    for kw in ({"ecg": e}, {"ppg": p}, {"ecg": e, "ppg": p}):
        fp = model.fingerprint(**kw)
        assert fp.shape == (5, TINY.fingerprint_dim) and fp.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(fp, axis=1), 1.0, atol=1e-5)
    # batching does not change results; a single window [1250] is accepted
    np.testing.assert_allclose(model.fingerprint(ecg=e, ppg=p, batch_size=2), model.fingerprint(ecg=e, ppg=p), atol=1e-5)
    assert model.fingerprint(ecg=e[0]).shape == (1, TINY.fingerprint_dim)


@pytest.mark.parametrize("mode", ["complementary", "random", "block", "ecg_from_ppg", "ppg_from_ecg"])
def test_api_reconstruct_modes(model, mode):
    e, p = windows(3)
    out = model.reconstruct(ecg=e, ppg=p, mode=mode, mask_ratio=0.4, seed=1)
    for m, x in (("ecg", e), ("ppg", p)):
        r = out[m]
        assert r["mask"].shape == (3, 1250) and r["mask"].dtype == bool
        assert r["reconstruction"].shape == (3, 1250)
        np.testing.assert_array_equal(r["reconstruction"][~r["mask"]], x[~r["mask"]])  # visible = original
        np.testing.assert_array_equal(r["reconstruction"][r["mask"]], r["prediction"][r["mask"]])
    if mode == "complementary":
        assert (out["ecg"]["mask"] ^ out["ppg"]["mask"]).all()
        assert out["ecg"]["mask"].mean() == pytest.approx(0.4)
    if mode == "ecg_from_ppg":
        assert out["ecg"]["mask"].all() and not out["ppg"]["mask"].any()
    again = model.reconstruct(ecg=e, ppg=p, mode=mode, mask_ratio=0.4, seed=1)
    np.testing.assert_array_equal(again["ecg"]["mask"], out["ecg"]["mask"])  # seeded


def test_api_reconstruct_absent_modality_rebuilt(model):
    e, _ = windows(2)
    out = model.reconstruct(ecg=e, mode="complementary")
    assert out["ppg"]["original"] is None and out["ppg"]["mask"].all()
    assert np.isfinite(out["ppg"]["reconstruction"]).all()
    with pytest.raises(InputError, match="needs a PPG"):
        model.reconstruct(ecg=e, mode="ecg_from_ppg")


def test_api_reconstruct_original_units(model):
    from m2ae.record import Windows

    e, p = windows(2)
    win = Windows(ecg=e, ppg=p, starts_s=np.array([0.0, 10.0]), ecg_center=np.array([1.0, 2.0], np.float32),
                  ecg_scale=np.array([0.5, 0.5], np.float32), ppg_center=np.zeros(2, np.float32),
                  ppg_scale=np.full(2, 100.0, np.float32))
    out = model.reconstruct(ecg=e, ppg=p, windows=win)
    np.testing.assert_allclose(out["ecg"]["original_units"], e * 0.5 + np.array([[1.0], [2.0]]), rtol=1e-6)
    np.testing.assert_allclose(out["ppg"]["reconstruction_units"], out["ppg"]["reconstruction"] * 100.0, rtol=1e-5)


def test_api_predict_and_head_logits(model):
    e, p = windows(3)
    pred = model.predict(ecg=e, ppg=p)
    assert set(pred) == {"rhythm", "hypertension", "sex", "risk", "age"}
    assert pred["rhythm"]["probabilities"].shape == (3, 10)  # five subject rhythms + five ICU alarm rhythms
    np.testing.assert_allclose(pred["rhythm"]["probabilities"].sum(1), 1.0, atol=1e-5)
    assert pred["rhythm"]["classes"] == ["NSR", "AF", "SB", "ST", "PVC", "VT", "VF", "ASY", "XB", "XT"]
    assert all(pred[h]["uncertain"].shape == (3,) for h in pred)  # every head says when it is unsure
    iv = pred["age"]["interval"]
    assert iv.shape == (3, 2) and (iv[:, 0] <= pred["age"]["value"]).all() and (pred["age"]["value"] <= iv[:, 1]).all()
    x = torch.from_numpy(e).requires_grad_(True)
    logits = model.head_logits("rhythm", x, None)
    assert logits.shape == (3, 10)
    logits[:, 0].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert model.head_logits("age", x, torch.from_numpy(p)).shape == (3, 1)
    with pytest.raises(InputError, match="unknown head"):
        model.head_logits("mortality", x, None)


@pytest.mark.parametrize("bad, msg", [
    (np.zeros((2, 1000), np.float32), "shape"),
    (np.full((2, 1250), np.nan, np.float32), "NaN"),
    (np.array([["a"] * 1250]), "real numbers"),
    (np.zeros((2, 1250), np.complex64), "real numbers"),
])
def test_api_bad_inputs(model, bad, msg):
    with pytest.raises(InputError, match=msg):
        model.fingerprint(ecg=bad)
    with pytest.raises(InputError, match=msg):
        model.reconstruct(ppg=bad)


def test_api_input_mismatches(model):
    e, p = windows(3)
    with pytest.raises(InputError, match="both are None"):
        model.fingerprint()
    with pytest.raises(InputError, match="3 windows but ppg has 2"):
        model.fingerprint(ecg=e, ppg=p[:2])
    with pytest.raises(InputError, match="unknown mode"):
        model.reconstruct(ecg=e, mode="zigzag")
    with pytest.raises(InputError, match="mask_ratio"):
        model.reconstruct(ecg=e, mask_ratio=1.5)


def test_checkpoint_roundtrip_and_version(tiny_ckpt, net, model):
    assert model.version == weights_version(net.state_dict())
    assert len(model.version) == 12
    again = load_model(tiny_ckpt, device="cpu")
    e, p = windows(2)
    np.testing.assert_array_equal(again.fingerprint(ecg=e, ppg=p), model.fingerprint(ecg=e, ppg=p))
    assert model.card["name"] == "tiny test model" and model.config["dim"] == 32
    other = M2AE(TINY)
    assert weights_version(other.state_dict()) != model.version


def test_bad_checkpoint_files(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_model(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="not a readable"):
        load_model(junk)
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(InputError, match="not an m2ae checkpoint"):
        load_model(tmp_path / "foreign.pt")


def test_shipped_checkpoint_loads():
    m = load_model(device="cpu")
    fp = m.fingerprint(ppg=np.zeros((1, 1250), np.float32))
    assert fp.shape == (1, m.fingerprint_dim)
    assert set(m.heads) >= {"rhythm", "hypertension", "sex", "risk", "age"}


def test_update_card_writes_beside_checkpoint(tiny_ckpt):
    from m2ae.model.card import read_card, update_card

    card = update_card(tiny_ckpt, {"simulated": {"ppg_to_ecg_r": 0.5}})
    assert card["eval"]["simulated"]["ppg_to_ecg_r"] == 0.5
    assert read_card(tiny_ckpt)["eval"] == card["eval"]
    assert tiny_ckpt.with_suffix(".card.md").read_text().count("ppg_to_ecg_r") == 1
    assert load_model(tiny_ckpt, device="cpu").card["eval"]["simulated"]["ppg_to_ecg_r"] == 0.5


def test_subject_contrastive_prefers_subject_structure(net):
    g = torch.tensor([0, 0, 1, 1])
    valid = torch.ones(12, dtype=torch.bool)
    basis = torch.eye(16)[:2]
    aligned = torch.cat([basis[g]] * 3)                       # every view of a subject identical
    shuffled = torch.cat([basis[torch.tensor([0, 1, 0, 1])]] * 3)
    good = net.subject_contrastive(aligned, g, valid)
    bad = net.subject_contrastive(shuffled, g, valid)
    assert good < 0.5 * bad
    # views that do not exist (absent modality) neither anchor nor count as positives
    valid[4:8] = False
    assert torch.isfinite(net.subject_contrastive(aligned, g, valid))


def test_forward_with_subject_term_uses_all_parameters(net):
    e, p = (torch.from_numpy(a) for a in windows(4))
    net.train()
    out = net(e, p, group=torch.tensor([0, 0, 1, 1]), w_subject=0.2, generator=torch.Generator().manual_seed(0))
    net.eval()
    assert torch.isfinite(out["supcon"]) and out["supcon"] > 0
    out["loss"].backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()


def _reference_fingerprint(net: M2AE, ecg: torch.Tensor | None, ppg: torch.Tensor | None) -> torch.Tensor:
    """The fingerprint written out from the weights as originally specified: every modality encoded
    (an absent one as zeros with all keys hidden), explicit softmax attention with a key mask over
    the concatenated tokens, masked mean-pool. Independent of the fast ``embed`` path it checks."""
    ref = ecg if ecg is not None else ppg
    n, L, D, H = ref.shape[0], net.config.n_patches, net.config.dim, net.config.n_heads

    def block(b, x, keys):
        h = b.norm1(x)
        q, k, v = b.attn.qkv(h).chunk(3, dim=-1)                                            # [N, T, D] each
        q, k, v = (t.reshape(n, -1, H, D // H).transpose(1, 2) for t in (q, k, v))          # [N, H, T, dh]
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(D // H)
        scores = scores.masked_fill(~keys[:, None, None, :], float("-inf"))
        y = (scores.softmax(-1) @ v).transpose(1, 2).reshape(n, -1, D)
        x = x + b.attn.proj(y)
        return x + b.mlp[2](torch.nn.functional.gelu(b.mlp[0](b.norm2(x))))

    tokens, keys = [], []
    for m, x in (("ecg", ecg), ("ppg", ppg)):
        present = x is not None
        x = x if present else torch.zeros_like(ref)
        h = net.patch_embed[m](x.reshape(n, L, -1)) + net.pos_embed + net.modality_embed[m]
        vis = torch.full((n, L), present)
        for b in net.encoders[m]:
            h = block(b, h, vis if present else torch.ones_like(vis))
        tokens.append(net.encoder_norm[m](h))
        keys.append(vis)
    h, k = torch.cat(tokens, 1), torch.cat(keys, 1)
    for b in net.bottleneck:
        h = block(b, h, k)
    w = k.float()[..., None]
    pooled = (net.bottleneck_norm(h) * w).sum(1) / w.sum(1)
    return torch.nn.functional.normalize(net.fingerprint_proj(pooled), dim=-1)


def test_fast_fingerprint_matches_reference_computation():
    """The inference path (no masks, absent modality skipped, in-place MLP, CPU sub-batches) gives the
    shipped model's fingerprints within 1e-4 of the reference computation, with and without autograd."""
    m = load_model(device="cpu")
    e, p = windows(70, seed=3)                  # > CPU_BATCH_WINDOWS: several sub-batches
    te, tp = torch.from_numpy(e), torch.from_numpy(p)
    for kw, (re, rp) in (({"ecg": e, "ppg": p}, (te, tp)), ({"ecg": e}, (te, None)), ({"ppg": p}, (None, tp))):
        with torch.no_grad():
            ref = _reference_fingerprint(m.net, re, rp).numpy()
        assert np.abs(m.fingerprint(**kw) - ref).max() <= 1e-4
        assert np.abs(m.fingerprint(**kw, batch_size=5) - ref).max() <= 1e-4
        with torch.no_grad():
            assert np.abs(m.net.embed_reference(re, rp).numpy() - ref).max() <= 1e-4
        grad_path = m.net.embed(re[:4] if re is not None else None, rp[:4] if rp is not None else None)
        assert grad_path.requires_grad and np.abs(grad_path.detach().numpy() - ref[:4]).max() <= 1e-4


def test_update_card_keeps_no_machine_folder(tiny_ckpt, monkeypatch):
    from m2ae.model.card import portable_paths, read_card, update_card

    work = tiny_ckpt.parent / "checkout"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(tiny_ckpt.parent / "home"))
    update_card(tiny_ckpt, {"cinc2015": {"path": f"{work.parent}/shared/data/cinc2015", "model": f"{work}/m2ae/x.pt",
                                         "how": f"windows of {work}/m2ae/index/default", "cache":
                                         f"{tiny_ckpt.parent}/home/.cache/m2ae"}})
    got = read_card(tiny_ckpt)["eval"]["cinc2015"]
    assert got == {"path": "../shared/data/cinc2015", "model": "m2ae/x.pt", "how": "windows of m2ae/index/default",
                   "cache": "~/.cache/m2ae"}
    assert str(tiny_ckpt.parent) not in tiny_ckpt.with_suffix(".card.md").read_text()
    assert portable_paths({"a": ["/"]}, "/", "/") == {"a": ["/"]}  # the root alone is never rewritten
