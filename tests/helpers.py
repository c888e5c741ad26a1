"""Test oracles: direct (non-FFT) convolutions in float64, and error measures."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    """||out - ref|| / ||ref||, computed in float64 (NaN if out has NaN)."""
    out, ref = out.double(), ref.double()
    return ((out - ref).norm() / ref.norm().clamp_min(1e-300)).item()


def direct_conv(u, k, k_rev=None, bias=None, pre_gate=None, post_gate=None, circular_n=None):
    """y[t] = post[t] * (sum_j k[j] x[t-j] + sum_j k_rev[j] x[t+1+j] + bias x[t]), x = pre * u,
    as explicit grouped conv1d sums in float64 (indices wrap mod circular_n if given)."""
    x = u.double()
    if pre_gate is not None:
        x = x * pre_gate.double()
    B, H, L = x.shape
    if circular_n is not None:
        assert circular_n == L
        y = torch.zeros_like(x)  # y[t] = sum_j k[j] x[(t - j) mod L]
        for j in range(k.shape[1]):
            y += k[:, j].double()[None, :, None] * torch.roll(x, j, -1)
        if k_rev is not None:
            for j in range(k_rev.shape[1]):
                y += k_rev[:, j].double()[None, :, None] * torch.roll(x, -(j + 1), -1)
    else:
        Lk = k.shape[1]
        # causal: conv1d computes cross-correlation, so flip the filter
        y = F.conv1d(F.pad(x, (Lk - 1, 0)), k.double().flip(-1)[:, None, :], groups=H)
        if k_rev is not None:
            Lr = k_rev.shape[1]
            # y[t] += sum_j k_rev[j] x[t+1+j]: correlation with k_rev shifted by one
            y = y + F.conv1d(F.pad(x, (0, Lr + 1))[..., 1:], k_rev.double()[:, None, :], groups=H)[..., :L]
    if bias is not None:
        y = y + bias.double()[None, :, None] * x
    if post_gate is not None:
        y = y * post_gate.double()
    return y


def emphasise_long_range(model, seed: int = 1):
    """Make a freshly initialised Hyena / HyenaDNA model's outputs depend on its long convolutions.

    transformers-style initialisation (std 0.02 projections, a decaying filter with a unit skip
    term) leaves the long-range part of a small random model at ~1e-5 of its logits, below the
    tolerance of the tests that compare cached decoding with a recompute: an error in the decoding
    state would pass unseen. Unit-variance projections, a 10x filter without its skip term and a
    modulation floor make it ~10-20% (the tests' models call this)."""
    import math

    from longconv_models.layers import HyenaOperator

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for op in model.modules():
            if isinstance(op, HyenaOperator):
                scale = 1 / math.sqrt(op.d_model)
                op.in_proj.weight.copy_(torch.randn(op.in_proj.weight.shape, generator=g) * scale)
                op.out_proj.weight.copy_(torch.randn(op.out_proj.weight.shape, generator=g) * scale)
                f = op.filter_fn
                getattr(f.implicit_filter, str(2 + 2 * f.implicit_filter.num_inner)).weight.mul_(10)
                if f.bias is not None:
                    f.bias.zero_()
                f.modulation.shift = 0.2
    return model


# ---- independent float64 statements of the published models' pieces (test_published_formulation*.py) ----

def positional_embedding(L_max: int, emb_dim: int):
    """The implicit filters' input: z (1, L, emb_dim) = [t, cos(f w), -sin(f w)] with
    t = position / (L - 1), w = 2 pi n / L, bands f = linspace(1e-4, bands - 1, bands); and t (1, L, 1)."""
    import math

    n = torch.arange(L_max, dtype=torch.float64)
    t = n / (L_max - 1)
    bands = (emb_dim - 1) // 2
    f = torch.linspace(1e-4, bands - 1, bands, dtype=torch.float64)
    w = 2 * math.pi * n / L_max
    z = torch.cat([t[:, None], torch.cos(f[None] * w[:, None]), -torch.sin(f[None] * w[:, None])], dim=1)
    return z[None].float(), t[None, :, None].float()


def layer_norm(x, w, b, eps):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * w + b


def implicit_filter_taps(s: dict, f: str, L: int, mlp: str = "implicit_filter", modulate: bool = True,
                         shift: float = 0.0):
    """(L, channels) taps of an implicit filter under key prefix ``f`` of state ``s``:
    Linear -> sin(freq .) x 3 -> Linear (no bias), times exp(-t |delta|) + shift if modulated."""
    z, freq = s[f + "pos_emb.z"][0, :L], s[f + f"{mlp}.1.freq"]
    h = torch.sin(freq * (z @ s[f + f"{mlp}.0.weight"].T + s[f + f"{mlp}.0.bias"]))
    for j in (2, 4):
        h = torch.sin(freq * (h @ s[f + f"{mlp}.{j}.weight"].T + s[f + f"{mlp}.{j}.bias"]))
    h = h @ s[f + f"{mlp}.6.weight"].T
    if modulate:
        h = h * (torch.exp(-s[f + "pos_emb.t"][0, :L] * s[f + "modulation.deltas"][0].abs()) + shift)
    return h
