"""The Monarch Mixer sequence mixer of M2-BERT and its block-diagonal (Monarch) linear layer.

Fu et al., "Monarch Mixer: A Simple Sub-Quadratic GEMM-Based Architecture" (NeurIPS 2023).
Module names (in_linear, short_filter, filter_fn, filter_fn2, out_linear; blockdiag ``weight``
of shape (nblocks, out/nblocks, in/nblocks)) follow the published M2-BERT checkpoints.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..ops import fftconv
from .hyena_filter import HyenaFilter
from .projections import _cast, _compute_dtype, linear_from_channels_first, masked_projected_groups, projected_groups


class BlockdiagLinear(nn.Module):
    """y = x @ blockdiag(W_1..W_nb)^T + b: ``nblocks`` independent (out/nb x in/nb) matmuls."""

    def __init__(self, in_features: int, out_features: int, nblocks: int = 4, bias: bool = True):
        super().__init__()
        if in_features % nblocks or out_features % nblocks:
            raise ValueError(f"features ({in_features}, {out_features}) must be divisible by nblocks={nblocks}")
        self.in_features, self.out_features, self.nblocks = in_features, out_features, nblocks
        self.weight = nn.Parameter(torch.empty(nblocks, out_features // nblocks, in_features // nblocks))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def forward(self, x: Tensor) -> Tensor:
        dtype = _compute_dtype(x, self.weight)
        x, weight, bias = _cast(dtype, x, self.weight, self.bias)
        blocks = x.reshape(-1, self.nblocks, self.in_features // self.nblocks)
        with torch.autocast(x.device.type, enabled=False):
            if torch.compiler.is_compiling() or torch.compiler.is_exporting():  # traced: plain ops (out= is eager-only)
                y = torch.bmm(blocks.transpose(0, 1), weight.transpose(1, 2)).transpose(0, 1)
            else:
                y = _BlockdiagMatmul.apply(blocks, weight)
        y = y.reshape(*x.shape[:-1], self.out_features)  # a view in eager (the GEMM wrote token-major)
        return y if bias is None else y + bias


class _BlockdiagMatmul(torch.autograd.Function):
    """x (T, nb, i) -> y (T, nb, o), y[:, b] = x[:, b] @ W_b^T: one batched GEMM over the blocks
    reading and writing the token-major tensors in place (the block is the GEMM batch, at a batch
    stride of i / o elements), forward and backward; an einsum would transpose x, y and both
    gradients to block-major copies."""

    @staticmethod
    def forward(ctx, x, weight):
        y = x.new_empty(x.shape[0], weight.shape[0], weight.shape[1])
        torch.bmm(x.transpose(0, 1), weight.transpose(1, 2), out=y.transpose(0, 1))
        ctx.save_for_backward(x, weight)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy):
        x, weight = ctx.saved_tensors
        dy = dy.contiguous()
        dx = dw = None
        if ctx.needs_input_grad[0]:
            dx = torch.empty_like(x)
            torch.bmm(dy.transpose(0, 1), weight, out=dx.transpose(0, 1))
        if ctx.needs_input_grad[1]:
            dw = torch.bmm(dy.transpose(0, 1).transpose(1, 2), x.transpose(0, 1))
        return dx, dw


class MonarchMixerSequenceMixing(nn.Module):
    """u (B, L, H) -> y (B, L, H):

        p = short_conv(in_linear(u))          3 channel groups: pre gate x1, post gate x2, value v
        y = x2 * bidir_conv(x1 * v; k_fwd, k_rev, D) + bidir_conv(u; filter_fn2)
        out = out_linear(y)

    Both long convolutions are bidirectional (causal taps k_fwd plus anti-causal taps k_rev,
    the latter weighing x[t+1+j]) and run as fused ``fftconv`` calls.
    """

    def __init__(
        self,
        d_model: int,
        max_seq_len: int,
        hyena_filter_order: int = 128,
        hyena_emb_dim: int = 5,
        hyena_w: float = 10.0,
        hyena_w_mod: float = 1.0,
        short_filter_order: int = 3,
        residual_long_conv: bool = True,
        bidirectional: bool = True,
        train_pos_emb: bool = True,
        training_additions: bool = False,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.d_model = d_model
        self.training_additions = training_additions
        if training_additions:
            self.layernorm = nn.LayerNorm(d_model)
        inner = 3 * d_model
        self.in_linear = nn.Linear(d_model, inner)
        self.out_linear = nn.Linear(d_model, d_model)
        self.short_filter = nn.Conv1d(inner, inner, short_filter_order, groups=inner, padding=short_filter_order - 1)
        kw = dict(emb_dim=hyena_emb_dim, filter_order=hyena_filter_order, max_seq_len=max_seq_len, w=hyena_w, w_mod=hyena_w_mod,
                  train_pos_emb=train_pos_emb, bidirectional=bidirectional)
        self.filter_fn = HyenaFilter(d_model, **kw)
        self.filter_fn2 = HyenaFilter(d_model, **kw) if residual_long_conv else None
        self.dropout = nn.Dropout(dropout)

    def forward(self, u: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """u (B, L, H); ``attention_mask`` (B, L), 0 at padding: then the padding reaches no
        real position through either convolution (the short one's inputs, the gated value and
        the residual branch's input are zeroed there)."""
        if self.training_additions:
            u = self.layernorm(u)
        L = u.shape[1]
        if attention_mask is None:
            x1, x2, v = projected_groups(u, self.in_linear, self.short_filter, 3)  # each (B, H, L)
        else:
            (x1, x2, v), _ = masked_projected_groups(u, self.in_linear, self.short_filter, 3, attention_mask)
            v = v * attention_mask[:, None, :].to(v.dtype)
            u = u * attention_mask[:, :, None].to(u.dtype)
        y = fftconv(v, **self.filter_fn.conv_args(L), pre_gate=x1, post_gate=x2)
        if self.filter_fn2 is not None:
            y = y + fftconv(u.transpose(1, 2), **self.filter_fn2.conv_args(L))  # one copy, with autocast's cast
        return linear_from_channels_first(self.dropout(y), self.out_linear)
