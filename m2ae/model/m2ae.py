"""The Multi-modal Masked Autoencoder (M2AE) for paired 10-s ECG/PPG windows.

One ``nn.Module`` whose methods are the algorithm's verbs (after facebookresearch/mae ``models_mae.py``):

    patchify -> (random|complementary)_masking -> forward_encoder (per modality)
      -> forward_bottleneck (shared, over the visible tokens of both modalities)
      -> fingerprint (mean-pool -> projection -> L2) and forward_decoder (one per modality)
      -> forward_loss (masked-patch MSE + envelope term + symmetric cross-modal InfoNCE)

Shapes: N windows, L = 50 patches of P = 25 samples (0.2 s at 125 Hz), D = model dim.
Visibility is carried as boolean masks ``visible[m]: [N, L]`` (True = the encoder sees that patch)
rather than by gathering kept tokens as in MAE, so every sample in a batch may use a different
scenario (complementary, random, block, one modality dropped) and attention simply ignores hidden
tokens. A modality that is absent for a sample has an all-False row.

Design notes (why, from the prototype on these machines):
- A pure MAE decoder fed only mask tokens sat at the predict-zero loss. Each decoder slot here also
  receives the OTHER modality's bottleneck token for the same time patch when that one is visible,
  plus a context token (mean of all visible bottleneck tokens), so cross-modal rebuilding learns fast.
- MSE blurs PPG->ECG because the R-peak timing given a pulse is uncertain by tens of ms; a second
  loss on the 90-ms energy envelope of the signal tolerates small timing errors and keeps QRS energy.

One concept (the model and its losses, as in MAE's ``models_mae.py``), so one module despite its length.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, cast

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..contract import MODALITIES, N_PATCHES, PATCH_SAMPLES


@dataclass
class M2AEConfig:
    """Architecture of M2AE. Stored as a plain dict in checkpoints (``asdict``)."""

    patch_samples: int = PATCH_SAMPLES   # 25 samples = 0.2 s at 125 Hz
    n_patches: int = N_PATCHES           # 50 patches per 10-s window
    dim: int = 128                       # encoder / bottleneck width
    encoder_depth: int = 3
    bottleneck_depth: int = 2
    n_heads: int = 4
    decoder_dim: int = 96
    decoder_depth: int = 2
    decoder_heads: int = 4
    mlp_ratio: float = 4.0
    fingerprint_dim: int = 256
    envelope_window_samples: int = 11    # 88 ms energy envelope for the timing-tolerant loss
    cross_max_shift_samples: int = 125   # ±1 s lag tolerance when a modality is rebuilt from the other alone
    cross_shift_step_samples: int = 2    # lag grid of that search (16 ms)
    dropout: float = 0.0

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> M2AEConfig:
        """The config stored in a checkpoint; keys this version does not know are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every field (what checkpoints store)."""
        return asdict(self)


def sincos_positions(n: int, dim: int) -> torch.Tensor:
    """Fixed 1-D sine/cosine position table [n, dim] (as in MAE / Transformer)."""
    pos = torch.arange(n, dtype=torch.float64)[:, None]
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2))
    angles = pos * omega[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1).float()


class Attention(nn.Module):
    """Multi-head self-attention (PyTorch SDPA) whose keys can be limited to visible tokens."""

    def __init__(self, dim: int, n_heads: int, dropout: float = 0.0):
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, key_visible: torch.Tensor | None = None) -> torch.Tensor:
        """x: [N, T, D] tokens; key_visible: [N, T] bool, True = this token may be attended to. -> [N, T, D]"""
        n, t, d = x.shape
        q, k, v = self.qkv(x).reshape(n, t, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        attn_mask = None if key_visible is None else key_visible[:, None, None, :]  # [N, 1, 1, T]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(n, t, d))


class Block(nn.Module):
    """Pre-norm Transformer block (ViT/MAE style)."""

    def __init__(self, dim: int, n_heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, n_heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, key_visible: torch.Tensor | None = None) -> torch.Tensor:
        """x: [N, T, D] tokens; key_visible: [N, T] bool keys that may be attended to (None: all). -> [N, T, D]"""
        x = x + self.attn(self.norm1(x), key_visible)                  # a new tensor: ours to update
        if torch.is_grad_enabled():
            return x + self.mlp(self.norm2(x))
        # Without autograd, GELU and the residual add run in place: the same arithmetic with two fewer
        # multi-MB buffers per block, each of which costs fresh-page faults on CPU (measured ~10 % of
        # batched fingerprinting time on 2 cores).
        fc1, act, fc2 = self.mlp
        return x.add_(fc2(torch.ops.aten.gelu_(fc1(self.norm2(x)), approximate=act.approximate)))


def _attendable(visible: torch.Tensor) -> torch.Tensor:
    """Key mask that never leaves a row with nothing to attend to (an absent modality's row would
    give NaN in softmax; its outputs are ignored downstream, so attending to all is harmless)."""
    return visible | ~visible.any(dim=1, keepdim=True)


class M2AE(nn.Module):
    """Modality-specific encoders, a shared bottleneck, a fingerprint projection and two decoders.

    >>> net = M2AE(M2AEConfig())
    >>> ecg = torch.randn(4, 1250); ppg = torch.randn(4, 1250)
    >>> losses = net(ecg, ppg)                # training-style forward with sampled masks
    >>> fp = net.embed(ecg=ecg, ppg=None)     # [4, 256] ECG-only fingerprint
    """

    # Non-persistent buffers (register_buffer), declared so their type is Tensor, not Module.
    pos_embed: torch.Tensor          # [1, L, D] fixed sin/cos positions of the encoders
    decoder_pos_embed: torch.Tensor  # [1, L, Dd] the same for the decoders

    def __init__(self, config: M2AEConfig | None = None):
        super().__init__()
        cfg = self.config = config or M2AEConfig()
        D, L, P = cfg.dim, cfg.n_patches, cfg.patch_samples
        # --- encoders (one per modality) ---
        self.patch_embed = nn.ModuleDict({m: nn.Linear(P, D) for m in MODALITIES})
        self.register_buffer("pos_embed", sincos_positions(L, D)[None], persistent=False)  # [1, L, D]
        self.modality_embed = nn.ParameterDict({m: nn.Parameter(torch.zeros(1, 1, D)) for m in MODALITIES})
        self.encoders = nn.ModuleDict({
            m: nn.ModuleList([Block(D, cfg.n_heads, cfg.mlp_ratio, cfg.dropout) for _ in range(cfg.encoder_depth)])
            for m in MODALITIES})
        self.encoder_norm = nn.ModuleDict({m: nn.LayerNorm(D) for m in MODALITIES})
        # --- shared bottleneck ---
        self.bottleneck = nn.ModuleList(
            [Block(D, cfg.n_heads, cfg.mlp_ratio, cfg.dropout) for _ in range(cfg.bottleneck_depth)])
        self.bottleneck_norm = nn.LayerNorm(D)
        # --- fingerprint ---
        self.fingerprint_proj = nn.Sequential(nn.Linear(D, D), nn.GELU(), nn.Linear(D, cfg.fingerprint_dim))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))  # CLIP-style learnable temperature
        # --- decoders (one per modality) ---
        Dd = cfg.decoder_dim
        self.register_buffer("decoder_pos_embed", sincos_positions(L, Dd)[None], persistent=False)
        self.decoder_embed = nn.ModuleDict({m: nn.Linear(D, Dd) for m in MODALITIES})    # own visible token
        self.decoder_cross = nn.ModuleDict({m: nn.Linear(D, Dd) for m in MODALITIES})    # other modality's token
        self.decoder_context = nn.ModuleDict({m: nn.Linear(D, Dd) for m in MODALITIES})  # pooled context token
        self.mask_token = nn.ParameterDict({m: nn.Parameter(torch.zeros(1, 1, Dd)) for m in MODALITIES})
        self.no_cross_token = nn.ParameterDict({m: nn.Parameter(torch.zeros(1, 1, Dd)) for m in MODALITIES})
        self.decoders = nn.ModuleDict({
            m: nn.ModuleList([Block(Dd, cfg.decoder_heads, cfg.mlp_ratio, cfg.dropout)
                              for _ in range(cfg.decoder_depth)])
            for m in MODALITIES})
        self.decoder_norm = nn.ModuleDict({m: nn.LayerNorm(Dd) for m in MODALITIES})
        self.decoder_pred = nn.ModuleDict({m: nn.Linear(Dd, P) for m in MODALITIES})
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """MAE's initialisation: learned tokens N(0, 0.02), Linear layers Xavier-uniform with zero bias,
        LayerNorms identity."""
        for p in [*self.modality_embed.values(), *self.mask_token.values(), *self.no_cross_token.values()]:
            nn.init.normal_(p, std=0.02)
        for mod in self.modules():
            if isinstance(mod, nn.Linear):
                nn.init.xavier_uniform_(mod.weight)
                if mod.bias is not None:
                    nn.init.zeros_(mod.bias)
            elif isinstance(mod, nn.LayerNorm):
                nn.init.ones_(mod.weight)
                nn.init.zeros_(mod.bias)

    # ---------------------------------------------------------------- patches
    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """[N, 1250] -> [N, 50, 25]"""
        return x.reshape(x.shape[0], self.config.n_patches, self.config.patch_samples)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """[N, 50, 25] -> [N, 1250]"""
        return x.reshape(x.shape[0], -1)

    # ---------------------------------------------------------------- masking
    def random_masking(self, n: int, mask_ratio: float | torch.Tensor, generator: torch.Generator | None = None,
                       device: torch.device | str | None = None) -> torch.Tensor:
        """Hide round(mask_ratio * 50) random patches per sample. Returns hidden [N, L] bool (True = hidden).

        ``mask_ratio`` may be a float or a per-sample tensor [N] in [0, 1].
        """
        L = self.config.n_patches
        device = device or self.pos_embed.device
        ratio = torch.as_tensor(mask_ratio, dtype=torch.float32, device=device).expand(n)
        n_hidden = torch.round(ratio * L).long().clamp(0, L)                                  # [N]
        noise = torch.rand(n, L, generator=generator, device=generator.device if generator else device).to(device)
        rank = noise.argsort(dim=1).argsort(dim=1)                                   # [N, L] rank of each patch
        return rank < n_hidden[:, None]

    def complementary_masking(self, n: int, mask_ratio: float | torch.Tensor = 0.5,
                              generator: torch.Generator | None = None,
                              device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Patches hidden in ECG are visible in PPG and vice versa: every time patch is seen by exactly
        one modality. ECG hides ``mask_ratio`` of its patches, PPG the other ``1 - mask_ratio``.
        Returns (hidden_ecg, hidden_ppg), each [N, L] bool, with hidden_ppg == ~hidden_ecg."""
        hidden_ecg = self.random_masking(n, mask_ratio, generator, device)
        return hidden_ecg, ~hidden_ecg

    def block_masking(self, n: int, mask_ratio: float | torch.Tensor, generator: torch.Generator | None = None,
                      device: torch.device | str | None = None) -> torch.Tensor:
        """Hide one contiguous run of round(mask_ratio * 50) patches per sample (a signal gap)."""
        L = self.config.n_patches
        device = device or self.pos_embed.device
        ratio = torch.as_tensor(mask_ratio, dtype=torch.float32, device=device).expand(n)
        n_hidden = torch.round(ratio * L).long().clamp(0, L)
        u = torch.rand(n, generator=generator, device=generator.device if generator else device).to(device)
        start = (u * (L - n_hidden + 1).float()).long()                                       # [N]
        idx = torch.arange(L, device=device)[None, :]
        return (idx >= start[:, None]) & (idx < (start + n_hidden)[:, None])

    # ---------------------------------------------------------------- encoder / bottleneck
    def forward_encoder(self, modality: str, x: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
        """Encode one modality. x: [N, 1250] normalised window; visible: [N, L] bool -> tokens [N, L, D].

        Hidden patches are still embedded (their content is zeroed first so nothing leaks) but never
        attended to; only visible tokens carry information out of the encoder.
        """
        patches = self.patchify(x) * visible[..., None]                                        # [N, L, P]
        h = self.patch_embed[modality](patches) + self.pos_embed + self.modality_embed[modality]  # [N, L, D]
        keys = _attendable(visible)
        for blk in cast(nn.ModuleList, self.encoders[modality]):
            h = blk(h, keys)
        return self.encoder_norm[modality](h)

    def forward_bottleneck(self, tokens: dict[str, torch.Tensor], visible: dict[str, torch.Tensor]) -> torch.Tensor:
        """Shared Transformer over the concatenated visible tokens of both modalities.

        tokens[m]: [N, L, D]; visible[m]: [N, L] -> latent [N, 2L, D] (ECG slots first, then PPG).
        """
        h = torch.cat([tokens[m] for m in MODALITIES], dim=1)                                   # [N, 2L, D]
        keys = torch.cat([visible[m] for m in MODALITIES], dim=1)                               # [N, 2L]
        for blk in self.bottleneck:
            h = blk(h, keys)
        return self.bottleneck_norm(h)

    @staticmethod
    def _pool(latent: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """Mean over visible tokens: latent [N, T, D], keys [N, T] -> [N, D]."""
        w = keys.to(latent.dtype)[..., None]
        return (latent * w).sum(1) / w.sum(1).clamp_min(1.0)

    def fingerprint(self, latent: torch.Tensor, visible: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean-pool the visible bottleneck tokens -> projection -> L2-normalise. -> [N, fingerprint_dim]"""
        keys = torch.cat([visible[m] for m in MODALITIES], dim=1)
        z = self.fingerprint_proj(self._pool(latent, keys))
        return F.normalize(z.float(), dim=-1)

    # ---------------------------------------------------------------- decoders
    def forward_decoder(self, modality: str, latent: torch.Tensor, visible: dict[str, torch.Tensor]) -> torch.Tensor:
        """Rebuild all 50 patches of ``modality`` from the shared latent. -> [N, L, P]

        Slot i gets the modality's own token i when visible (else the mask token), plus the other
        modality's token i when that one is visible (else a learned 'nothing' token), plus position;
        a leading context token carries the pooled latent so a fully hidden modality still has input.
        """
        L = self.config.n_patches
        other = MODALITIES[1 - MODALITIES.index(modality)]
        own_lat = latent[:, :L] if modality == MODALITIES[0] else latent[:, L:]                 # [N, L, D]
        oth_lat = latent[:, L:] if modality == MODALITIES[0] else latent[:, :L]
        own = torch.where(visible[modality][..., None], self.decoder_embed[modality](own_lat),
                          self.mask_token[modality].to(own_lat.dtype))                          # [N, L, Dd]
        cross = torch.where(visible[other][..., None], self.decoder_cross[modality](oth_lat),
                            self.no_cross_token[modality].to(oth_lat.dtype))                   # [N, L, Dd]
        keys = torch.cat([visible[m] for m in MODALITIES], dim=1)
        context = self.decoder_context[modality](self._pool(latent, keys))[:, None]              # [N, 1, Dd]
        h = torch.cat([context, own + cross + self.decoder_pos_embed], dim=1)                    # [N, 1+L, Dd]
        for blk in cast(nn.ModuleList, self.decoders[modality]):
            h = blk(h)
        h = self.decoder_norm[modality](h[:, 1:])
        return self.decoder_pred[modality](h)                                                    # [N, L, P]

    # ---------------------------------------------------------------- whole passes
    def encode(self, x: Mapping[str, torch.Tensor | None], visible: dict[str, torch.Tensor]) -> torch.Tensor:
        """Encoders + bottleneck. x[m]: [N, 1250] or None (absent: zeros, all hidden). -> latent [N, 2L, D]"""
        ref = next(v for v in x.values() if v is not None)
        tokens = {}
        for m in MODALITIES:
            xm = x[m]
            tokens[m] = self.forward_encoder(m, xm if xm is not None else torch.zeros_like(ref), visible[m])
        return self.forward_bottleneck(tokens, visible)

    def full_visibility(self, ecg: torch.Tensor | None, ppg: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """Visibility masks [N, L] for whole windows [N, 1250]: all True for a given modality, all False
        for an absent (None) one."""
        ref = ecg if ecg is not None else ppg
        if ref is None:
            raise ValueError("full_visibility: give ecg, ppg or both")
        n, L = ref.shape[0], self.config.n_patches
        return {m: torch.full((n, L), x is not None, dtype=torch.bool, device=ref.device)
                for m, x in zip(MODALITIES, (ecg, ppg))}

    def embed(self, ecg: torch.Tensor | None = None, ppg: torch.Tensor | None = None) -> torch.Tensor:
        """Fingerprint of whole windows [N, 1250] (either may be None). -> [N, fingerprint_dim], unit norm.

        The same function as ``fingerprint(encode(x, full_visibility), ...)`` (equal within float
        rounding, see ``embed_reference``) without the work that full visibility makes needless:
        nothing is masked, so attention runs without a key mask (SDPA's unmasked kernel), patches are
        not multiplied by a mask, and pooling is a plain mean. An absent modality is skipped instead of
        encoding zeros: its tokens are never attended to nor pooled, so they cannot change the result.
        """
        if ecg is None and ppg is None:
            raise ValueError("embed: give ecg, ppg or both")
        tokens = [self.encode_visible(m, x) for m, x in zip(MODALITIES, (ecg, ppg)) if x is not None]
        h = tokens[0] if len(tokens) == 1 else torch.cat(tokens, dim=1)                          # [N, T, D]
        for blk in self.bottleneck:
            h = blk(h)
        z = self.fingerprint_proj(self.bottleneck_norm(h).mean(1))                                # [N, F]
        return F.normalize(z.float(), dim=-1)

    def encode_visible(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        """``forward_encoder`` for a fully visible window: x [N, 1250] -> tokens [N, L, D], no masks."""
        h = self.patch_embed[modality](self.patchify(x)) + (self.pos_embed + self.modality_embed[modality])
        for blk in cast(nn.ModuleList, self.encoders[modality]):
            h = blk(h)
        return self.encoder_norm[modality](h)

    def embed_reference(self, ecg: torch.Tensor | None = None, ppg: torch.Tensor | None = None) -> torch.Tensor:
        """``embed`` through the general masked path (encode + fingerprint); kept to test ``embed`` against."""
        visible = self.full_visibility(ecg, ppg)
        return self.fingerprint(self.encode({"ecg": ecg, "ppg": ppg}, visible), visible)

    def reconstruct(self, x: Mapping[str, torch.Tensor | None],
                    hidden: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Decoder predictions [N, 1250] per modality given hidden masks [N, L] (True = hidden)."""
        visible = {m: ~hidden[m] for m in MODALITIES}
        latent = self.encode(x, visible)
        return {m: self.unpatchify(self.forward_decoder(m, latent, visible)) for m in MODALITIES}

    # ---------------------------------------------------------------- training
    def sample_scenarios(self, n: int, device: torch.device | str, generator: torch.Generator | None = None,
                         probs: tuple[float, float, float, float, float] = (0.4, 0.15, 0.1, 0.175, 0.175),
                         ratio_range: tuple[float, float] = (0.3, 0.7),
                         present: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """Per-sample hidden masks for training. Scenarios (probabilities ``probs``):
        complementary | random (independent per modality) | block (same gap in both) |
        ECG only (PPG dropped entirely) | PPG only (ECG dropped entirely).
        ``present[m]`` [N] bool marks samples where a modality exists (single-modality data):
        such samples always drop the missing modality and randomly mask the other.
        Returns hidden[m]: [N, L] bool, and never hides everything of both modalities."""
        gdev = generator.device if generator is not None else device
        lo, hi = ratio_range
        ratio = (lo + (hi - lo) * torch.rand(n, generator=generator, device=gdev)).to(device)   # [N]
        scenario = torch.multinomial(torch.tensor(probs, device=gdev), n, replacement=True,
                                     generator=generator).to(device)                             # [N]
        comp_e, comp_p = self.complementary_masking(n, ratio, generator, device)
        rand_e = self.random_masking(n, ratio, generator, device)
        rand_p = self.random_masking(n, ratio, generator, device)
        block = self.block_masking(n, ratio * 0.6, generator, device)
        single = self.random_masking(n, ratio * 0.8, generator, device)   # lighter masking of the kept modality
        all_hidden = torch.ones_like(rand_e)
        s = scenario[:, None]
        hidden_e = torch.where(s == 0, comp_e, torch.where(s == 1, rand_e, torch.where(
            s == 2, block, torch.where(s == 3, single, all_hidden))))
        hidden_p = torch.where(s == 0, comp_p, torch.where(s == 1, rand_p, torch.where(
            s == 2, block, torch.where(s == 3, all_hidden, single))))
        if present is not None:
            only_e = present["ecg"] & ~present["ppg"]
            only_p = present["ppg"] & ~present["ecg"]
            hidden_e = torch.where(only_e[:, None], single, torch.where(only_p[:, None], all_hidden, hidden_e))
            hidden_p = torch.where(only_p[:, None], single, torch.where(only_e[:, None], all_hidden, hidden_p))
        return {"ecg": hidden_e, "ppg": hidden_p}

    def envelope(self, x: torch.Tensor) -> torch.Tensor:
        """Short-time energy envelope [N, 1250] -> [N, 1250]: mean of x^2 over ~88 ms, then sqrt."""
        k = self.config.envelope_window_samples
        e = F.avg_pool1d(x[:, None].float() ** 2, k, stride=1, padding=k // 2, count_include_pad=False)[:, 0]
        return torch.sqrt(e + 1e-6)

    def lag_tolerant_mse(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-row MSE after the best global lag: pred [N, 1250], target [N, 1250] -> [N].

        The central 1250 - 2S samples of ``pred`` are compared with ``target`` shifted by every lag in
        [-S, S] (S = ``cross_max_shift_samples``, grid ``cross_shift_step_samples``); the minimum counts.
        """
        S, step = self.config.cross_max_shift_samples, self.config.cross_shift_step_samples
        T, K = pred.shape[1], S // step
        core = pred[:, S:T - S].float()                                                           # [N, T-2S]
        off = S - K * step                                    # so that lag 0 lies on the grid
        tgt = target[:, off:off + (T - 2 * S) + 2 * K * step].float()
        lags = tgt.unfold(1, T - 2 * S, step)                                                     # [N, 2K+1, T-2S]
        return ((lags - core[:, None, :]) ** 2).mean(-1).min(dim=1).values                        # [N]

    def subject_contrastive(self, fps: torch.Tensor, group: torch.Tensor, valid: torch.Tensor,
                            temperature: float = 0.1) -> torch.Tensor:
        """Supervised-contrastive loss (SupCon) over fingerprints of several views.

        fps: [V*N, F] unit vectors (V views of N windows, view-major); group: [N] subject index
        (windows of one subject share it); valid: [V*N] bool (views that exist). Positives of a view
        are all other valid views of the same subject: other modalities of the same window and every
        view of the subject's other windows, so fingerprints become subject-specific and modality-agnostic.
        """
        V = fps.shape[0] // group.shape[0]
        g = group.repeat(V)                                                                        # [V*N]
        logits = fps.float() @ fps.float().t() / temperature                                      # [V*N, V*N]
        eye = torch.eye(len(g), dtype=torch.bool, device=fps.device)
        allowed = valid[None, :] & ~eye
        logits = logits.masked_fill(~allowed, float("-inf"))
        pos = (g[:, None] == g[None, :]) & allowed
        log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
        n_pos = pos.sum(1)
        rows = valid & (n_pos > 0)
        per_row = -(log_prob.masked_fill(~pos, 0.0)).sum(1) / n_pos.clamp_min(1)
        return (per_row * rows.float()).sum() / rows.float().sum().clamp_min(1.0)

    def forward_loss(self, x: dict[str, torch.Tensor], pred: dict[str, torch.Tensor], hidden: dict[str, torch.Tensor],
                     present: dict[str, torch.Tensor], fp_ecg: torch.Tensor, fp_ppg: torch.Tensor,
                     pair_valid: torch.Tensor, w_envelope: float = 0.5,
                     w_contrastive: float = 0.1) -> dict[str, torch.Tensor]:
        """Masked-patch MSE per modality + envelope MSE (timing-tolerant) + symmetric InfoNCE.

        x[m], pred[m]: [N, 1250]; hidden[m]: [N, L]; present[m]: [N] (loss only where data exist);
        fp_ecg, fp_ppg: [N, F] ECG-only / PPG-only fingerprints of the same windows; pair_valid: [N].
        """
        out: dict[str, torch.Tensor] = {}
        P = self.config.patch_samples
        total = torch.zeros((), device=fp_ecg.device)
        for m in MODALITIES:
            # Rows where this modality is hidden entirely are cross-modal rebuilds: the R-peak ->
            # pulse delay differs between subjects and devices by more than a heartbeat, so their
            # timing cannot be known from the other signal and plain MSE would teach a flat line.
            # Those rows are scored after the best global lag within ±1 s (as evaluation does);
            # partly hidden rows keep the masked-patch MSE (their timing is in the visible patches).
            cross = hidden[m].all(1) & present[m]                                                   # [N]
            w = (hidden[m] & present[m][:, None] & ~cross[:, None]).float()                         # [N, L]
            denom = w.sum().clamp_min(1.0)
            err = ((self.patchify(pred[m].float()) - self.patchify(x[m].float())) ** 2).mean(-1)     # [N, L]
            out[f"mse_{m}"] = (err * w).sum() / denom
            env_p, env_x = self.envelope(pred[m]), self.envelope(x[m])
            env_err = ((env_p - env_x) ** 2).reshape(-1, self.config.n_patches, P).mean(-1)
            out[f"env_{m}"] = (env_err * w).sum() / denom
            cw = cross.float()
            n_cross = cw.sum().clamp_min(1.0)
            out[f"xmod_{m}"] = (self.lag_tolerant_mse(pred[m], x[m]) * cw).sum() / n_cross
            out[f"xenv_{m}"] = (self.lag_tolerant_mse(env_p, env_x) * cw).sum() / n_cross
            total = (total + out[f"mse_{m}"] + w_envelope * out[f"env_{m}"]
                     + out[f"xmod_{m}"] + w_envelope * out[f"xenv_{m}"])
        # Symmetric InfoNCE: ECG-only and PPG-only fingerprints of the same window are positives.
        scale = self.logit_scale.clamp(max=math.log(100.0)).exp()
        logits = scale * fp_ecg @ fp_ppg.t()                                                       # [N, N]
        target = torch.arange(logits.shape[0], device=logits.device)
        valid = pair_valid.float()
        nce = 0.5 * (F.cross_entropy(logits, target, reduction="none")
                     + F.cross_entropy(logits.t(), target, reduction="none"))
        # Rows without a real pair (single-modality data) are masked out of the columns as well.
        out["infonce"] = (nce * valid).sum() / valid.sum().clamp_min(1.0)
        total = total + w_contrastive * out["infonce"]
        out["loss"] = total
        return out

    def forward(self, ecg: torch.Tensor, ppg: torch.Tensor, present: dict[str, torch.Tensor] | None = None,
                generator: torch.Generator | None = None, scenario_probs: Sequence[float] | None = None,
                w_envelope: float = 0.5, w_contrastive: float = 0.1, group: torch.Tensor | None = None,
                w_subject: float = 0.0, subject_views: str = "all") -> dict[str, torch.Tensor]:
        """One training forward. ecg, ppg: [N, 1250] (zeros where absent, see ``present`` [N] bool);
        group: [N] subject index for the subject-level contrastive term (None: every window its own);
        subject_views: "all" (ECG-only, PPG-only and ECG+PPG fingerprints) or "both" (ECG+PPG only,
        leaving the single-modality fingerprints free to stay window-specific for pair retrieval)."""
        n, device = ecg.shape[0], ecg.device
        if present is None:
            ones = torch.ones(n, dtype=torch.bool, device=device)
            present = {"ecg": ones, "ppg": ones}
        kw: dict[str, Any] = {} if scenario_probs is None else {"probs": tuple(scenario_probs)}
        hidden = self.sample_scenarios(n, device, generator, present=present, **kw)
        # One encoder/bottleneck pass over all views stacked on the batch axis (fewer kernel
        # launches than one pass each): the masked scenario, ECG alone, PPG alone (fully visible),
        # and both fully visible (the fingerprint most users compute) when the subject term is on.
        none = torch.zeros(n, self.config.n_patches, dtype=torch.bool, device=device)
        full = ~none
        views = [{m: ~hidden[m] for m in MODALITIES},
                 {"ecg": full & present["ecg"][:, None], "ppg": none},
                 {"ecg": none, "ppg": full & present["ppg"][:, None]}]
        if w_subject > 0:
            views.append({"ecg": full & present["ecg"][:, None], "ppg": full & present["ppg"][:, None]})
        V = len(views)
        visible = {m: torch.cat([v[m] for v in views]) for m in MODALITIES}                  # [V*N, L]
        xv = {"ecg": ecg.repeat(V, 1), "ppg": ppg.repeat(V, 1)}                                # [V*N, 1250]
        latents = self.encode(xv, visible).split(n)                                          # V x [N, 2L, D]
        pred = {m: self.unpatchify(self.forward_decoder(m, latents[0], views[0])) for m in MODALITIES}
        fps = [self.fingerprint(lat, v) for lat, v in zip(latents[1:], views[1:])]             # [N, F] each
        x = {"ecg": ecg, "ppg": ppg}
        out = self.forward_loss(x, pred, hidden, present, fps[0], fps[1], present["ecg"] & present["ppg"],
                                w_envelope, w_contrastive)
        if w_subject > 0:
            group = torch.arange(n, device=device) if group is None else group
            if subject_views == "both":
                out["supcon"] = self.subject_contrastive(fps[2], group, present["ecg"] | present["ppg"])
            else:
                valid = torch.cat([present["ecg"], present["ppg"], present["ecg"] | present["ppg"]])
                out["supcon"] = self.subject_contrastive(torch.cat(fps), group, valid)
            out["loss"] = out["loss"] + w_subject * out["supcon"]
        return out
