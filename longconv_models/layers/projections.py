"""The linear layers around the gated long convolutions (Hyena, Monarch Mixer), in the layouts
the models and the kernels use, without layout copies in the forward or the backward pass.

The model's activations are (B, L, d) rows; the convolution kernels read (B, d, L) rows. The
input projection writes each channel group (B, d_g, L) directly (W_g @ x^T, the transposed operand
read in place by a batched GEMM) and the output projection reads the kernel's (B, d, L) output
in place (y^T @ W^T). Autograd through the plain torch expressions would hand the gradients back
transposed (strided copies and strided adds, about a fifth of a HyenaDNA train step), so both are
autograd functions whose backward GEMMs write every gradient in its tensor's own layout.

Under ``torch.autocast`` they compute like ``nn.Linear``: inputs, weights and bias in the autocast
dtype, the output in that dtype.

Only a plain ``nn.Linear`` / ``nn.Conv1d`` is read through its ``weight`` and ``bias``. Anything
else in its place (an adapter such as peft's LoRA layers, whose ``weight`` is the frozen base
weight; a quantized linear) is called as a module, so that what it adds is not silently skipped.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..ops import short_conv


def _compute_dtype(x: Tensor, weight: Tensor) -> torch.dtype:
    """The dtype nn.Linear would compute in: the autocast dtype if autocast is on (fp64 aside)."""
    if torch.is_autocast_enabled(x.device.type) and x.dtype != torch.float64:
        return torch.get_autocast_dtype(x.device.type)
    return weight.dtype


def _cast(dtype: torch.dtype, *tensors: Tensor | None) -> tuple:
    return tuple(t if t is None or t.dtype == dtype else t.to(dtype) for t in tensors)


class _ChannelsFirstGroups(torch.autograd.Function):
    """x (B, L, d_in) -> ``groups`` contiguous (B, d_out / groups, L) tensors, W_g x^T + b_g."""

    @staticmethod
    def forward(ctx, x, weight, bias, groups):
        xt = x.transpose(1, 2)
        outs = []
        for w, b in zip(weight.chunk(groups), (None,) * groups if bias is None else bias.chunk(groups)):
            w = w.expand(x.shape[0], -1, -1)  # stride 0 over the batch
            outs.append(torch.bmm(w, xt) if b is None else torch.baddbmm(b[:, None], w, xt))
        ctx.save_for_backward(x, weight)
        ctx.groups, ctx.has_bias = groups, bias is not None
        return tuple(outs)

    @staticmethod
    def backward(ctx, *grads):
        x, weight = ctx.saved_tensors
        B = x.shape[0]
        dx = dw = db = None
        parts = [(g.contiguous(), w) for g, w in zip(grads, weight.chunk(ctx.groups)) if g is not None]
        if ctx.needs_input_grad[0]:
            # dx (B, L, d_in) = sum_g grad_g^T W_g: one GEMM per group accumulating into dx's layout
            for g, w in parts:
                term = (g.transpose(1, 2), w.expand(B, -1, -1))
                dx = torch.bmm(*term) if dx is None else dx.baddbmm_(*term)
        if ctx.needs_input_grad[1]:
            dw = torch.cat([torch.bmm(g, x).sum(0) if g is not None else torch.zeros_like(w)
                            for g, w in zip(grads, weight.chunk(ctx.groups))])
        if ctx.has_bias and ctx.needs_input_grad[2]:
            db = torch.cat([g.sum((0, 2)) if g is not None else weight.new_zeros(weight.shape[0] // ctx.groups)
                            for g in grads])
        return dx, dw, db, None


class _LinearFromChannelsFirst(torch.autograd.Function):
    """y (B, d, L) -> (B, L, d_out) = y^T W^T + b; the gradient of y comes back (B, d, L)."""

    @staticmethod
    def forward(ctx, y, weight, bias):
        wt = weight.t().expand(y.shape[0], -1, -1)
        out = torch.bmm(y.transpose(1, 2), wt) if bias is None else torch.baddbmm(bias, y.transpose(1, 2), wt)
        ctx.save_for_backward(y, weight)
        ctx.has_bias = bias is not None
        return out

    @staticmethod
    def backward(ctx, g):
        y, weight = ctx.saved_tensors
        g = g.contiguous()
        dy = dw = db = None
        if ctx.needs_input_grad[0]:
            dy = torch.bmm(weight.t().expand(y.shape[0], -1, -1), g.transpose(1, 2))  # (B, d, L)
        if ctx.needs_input_grad[1]:
            dw = torch.bmm(g.transpose(1, 2), y.transpose(1, 2)).sum(0)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            db = g.sum((0, 1))
        return dy, dw, db


def is_plain(module: nn.Module, cls: type) -> bool:
    """Whether ``module`` computes exactly ``cls``'s function of its weight and bias (so that
    reading those is the same as calling it)."""
    return type(module) is cls


def project_channels_first(x: Tensor, linear: nn.Linear, groups: int = 1) -> tuple[Tensor, ...]:
    """``linear(x).transpose(1, 2)`` for x (B, L, d_in), split into ``groups`` channel groups, each
    a contiguous (B, d_out / groups, L) tensor."""
    if not is_plain(linear, nn.Linear):
        return tuple(g.transpose(1, 2).contiguous() for g in linear(x).chunk(groups, dim=-1))
    dtype = _compute_dtype(x, linear.weight)
    x, weight, bias = _cast(dtype, x, linear.weight, linear.bias)
    with torch.autocast(x.device.type, enabled=False):
        return _ChannelsFirstGroups.apply(x, weight, bias, groups)


def linear_from_channels_first(y: Tensor, linear: nn.Linear) -> Tensor:
    """``linear(y.transpose(1, 2))`` for y (B, d, L): a (B, L, d_out) tensor, y read in place."""
    if not is_plain(linear, nn.Linear):
        return linear(y.transpose(1, 2))
    dtype = _compute_dtype(y, linear.weight)
    y, weight, bias = _cast(dtype, y, linear.weight, linear.bias)
    with torch.autocast(y.device.type, enabled=False):
        return _LinearFromChannelsFirst.apply(y, weight, bias)


def projected_groups(x: Tensor, linear: nn.Linear, short_filter: nn.Conv1d, groups: int) -> list[Tensor]:
    """``short_conv(linear(x))`` (causal) split into ``groups`` equal channel groups, each a
    contiguous (B, d_out / groups, L) tensor."""
    return masked_projected_groups(x, linear, short_filter, groups, None)[0]


def masked_projected_groups(x: Tensor, linear: nn.Linear, short_filter: nn.Conv1d, groups: int,
                            mask: Tensor | None) -> tuple[list[Tensor], list[Tensor]]:
    """:func:`projected_groups` with the padding (``mask`` (B, L) == 0) zeroed in the short
    convolution's inputs, so that it reaches no real position; also returns those inputs."""
    pre = list(project_channels_first(x, linear, groups))
    if mask is not None:
        keep = mask[:, None, :].to(pre[0].dtype)
        pre = [p * keep for p in pre]
    if not is_plain(short_filter, nn.Conv1d):  # (padding K - 1: the causal conv is its first L outputs)
        L = pre[0].shape[-1]
        return list(short_filter(torch.cat(pre, dim=1))[..., :L].chunk(groups, dim=1)), pre
    d = pre[0].shape[1]
    w, b = short_filter.weight, short_filter.bias
    out = [short_conv(p, w[g * d:(g + 1) * d], None if b is None else b[g * d:(g + 1) * d], padding="causal")
           for g, p in enumerate(pre)]
    return out, pre
