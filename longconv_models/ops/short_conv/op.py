"""Short depthwise conv1d (kernel size 1..8, as Hyena and M2 apply before gating).

    y[b, h, t] = bias[h] + sum_{j < K} weight[h, j] * x[b, h, t + j - pad_left]

with zeros outside [0, L) and output length L. ``padding="causal"`` is pad_left = K - 1 (output t
sees inputs <= t, PyTorch's Conv1d(padding=K-1) truncated to L), ``"same"`` is PyTorch's
padding="same" (pad_left = (K - 1) // 2). Layouts (B, H, L) or, with ``channels_last``, (B, L, H).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from ... import extension
from .. import dispatch
from .._checks import FLOAT_DTYPES, check_same_device, check_tensor, compute_dtypes
from .reference import short_conv_bwd_ref, short_conv_ref

MAX_KERNEL_WIDTH = 8  # widest filter the CUDA kernel takes; wider ones use the reference
KERNEL_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def pad_left_for(padding: str | int, width: int) -> int:
    if padding == "causal":
        return width - 1
    if padding == "same":
        return (width - 1) // 2
    if isinstance(padding, int) and not isinstance(padding, bool) and 0 <= padding < width:
        return padding
    raise ValueError(f"padding must be 'causal', 'same' or an int in [0, {width}), got {padding!r}")


def short_conv(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    *,
    padding: str | int = "causal",
    channels_last: bool = False,
) -> Tensor:
    """Depthwise conv1d with a short filter.

    Args:
        x: (B, H, L), or (B, L, H) with ``channels_last``; fp32 / fp64 / bf16 / fp16.
        weight: (H, K) or nn.Conv1d's (H, 1, K); used in fp32 (fp64 for fp64 input).
        bias: (H,) or None.
        padding: "causal" (default), "same", or the number of left-padding zeros.
    Returns:
        Tensor of x's shape and dtype (under ``torch.autocast``: the autocast dtype; x is cast
        to it like a matmul's input, the weights stay fp32).
    """
    if isinstance(x, Tensor):
        amp = dispatch.autocast_dtype(x)
        if amp is not None:
            (x,) = dispatch.autocast_activations(amp, x)
    check_tensor("x", x, 3, FLOAT_DTYPES)
    H = x.shape[2] if channels_last else x.shape[1]
    if isinstance(weight, Tensor) and weight.dim() == 3:
        if weight.shape[1] != 1:
            raise ValueError(f"weight must be (H, K) or (H, 1, K) (depthwise), got {tuple(weight.shape)}")
        weight = weight[:, 0]
    check_tensor("weight", weight, 2, FLOAT_DTYPES)
    if weight.shape[0] != H:
        raise ValueError(f"weight must have shape ({H}, *), got {tuple(weight.shape)}")
    if bias is not None:
        check_tensor("bias", bias, 1, FLOAT_DTYPES)
        if bias.shape[0] != H:
            raise ValueError(f"bias must have shape ({H},), got {tuple(bias.shape)}")
    pad_left = pad_left_for(padding, weight.shape[1])
    # The eager CUDA route first, with as little Python as possible: at H = 768 the kernel runs
    # ~50 us and the host time before its launch shows in every eager call (the extension checks
    # devices and shapes itself).
    if kernel_unsupported_reason(x, weight) is None:
        mod = dispatch.direct_module(x, weight, bias)
        if mod is not None:
            dispatch.record("short_conv", "cuda")
            x = x.contiguous()
            if weight.dtype != torch.float32 or not weight.is_contiguous():  # the kernel's weights are fp32
                weight = weight.float().contiguous()
            if bias is not None and (bias.dtype != torch.float32 or not bias.is_contiguous()):
                bias = bias.float().contiguous()
            if dispatch.needs_grad(x, weight, bias):
                return _ShortConvFunction.apply(x, weight, bias, pad_left, channels_last)
            return mod.shortconv_fwd(x, weight, bias, pad_left, channels_last, False)
    check_same_device("x", x, weight=weight, bias=bias)
    real, _ = compute_dtypes(x.dtype)
    x, weight = x.contiguous(), weight.to(real).contiguous()
    bias = None if bias is None else bias.to(real).contiguous()
    return torch.ops.longconv.short_conv(x, weight, bias, pad_left, channels_last)


# ---- custom ops ------------------------------------------------------------------------------
def kernel_unsupported_reason(x: Tensor, weight: Tensor) -> str | None:
    """Why the CUDA kernel cannot take this call (``None`` if it can)."""
    if x.dtype not in KERNEL_DTYPES:
        return f"dtype {x.dtype}"
    if weight.shape[-1] > MAX_KERNEL_WIDTH:
        return f"kernel width {weight.shape[-1]} > {MAX_KERNEL_WIDTH}"
    return None


@torch.library.custom_op("longconv::short_conv", mutates_args=())
def _short_conv_op(x: Tensor, weight: Tensor, bias: Tensor | None, pad_left: int, channels_last: bool) -> Tensor:
    dispatch.record("short_conv", "reference", f"device {x.device.type}")
    return short_conv_ref(x, weight, bias, pad_left, channels_last)


@_short_conv_op.register_kernel("cuda")
def _short_conv_cuda(x, weight, bias, pad_left, channels_last):
    mod = dispatch.select("short_conv", kernel_unsupported_reason(x, weight))
    if mod is None:
        return short_conv_ref(x, weight, bias, pad_left, channels_last)
    return mod.shortconv_fwd(x, weight.float().contiguous(), None if bias is None else bias.float().contiguous(),
                             pad_left, channels_last, False)


@_short_conv_op.register_fake
def _(x, weight, bias, pad_left, channels_last):
    return torch.empty_like(x)


@torch.library.custom_op("longconv::short_conv_bwd", mutates_args=())
def _short_conv_bwd_op(
    dy: Tensor, x: Tensor, weight: Tensor, bias: Tensor | None, pad_left: int, channels_last: bool
) -> tuple[Tensor, Tensor, Tensor]:
    dispatch.record("short_conv_bwd", "reference", f"device {x.device.type}")
    dx, dw, db = short_conv_bwd_ref(dy, x, weight, bias, pad_left, channels_last)
    return dx, dw.to(weight.dtype), weight.new_empty(0) if db is None else db.to(weight.dtype)


@_short_conv_bwd_op.register_kernel("cuda")
def _short_conv_bwd_cuda(dy, x, weight, bias, pad_left, channels_last):
    mod = dispatch.select("short_conv_bwd", kernel_unsupported_reason(x, weight))
    if mod is None:
        dx, dw, db = short_conv_bwd_ref(dy, x, weight, bias, pad_left, channels_last)
        return dx, dw.to(weight.dtype), weight.new_empty(0) if db is None else db.to(weight.dtype)
    dx, dw, db = _short_conv_grads(mod, dy, x, weight, bias, pad_left, channels_last)
    # outputs of a custom op must not alias each other: copy the two column ranges out
    return dx, dw.contiguous(), weight.new_empty(0) if db is None else db.contiguous()


def _short_conv_grads(mod, dy, x, weight, bias, pad_left, channels_last):
    """(dx, dw, db or None) from the kernels; dw and db are views of one (H, K + 1) tensor."""
    K = weight.shape[-1]
    dx, partials = mod.shortconv_bwd(x, dy, weight.float().contiguous(), pad_left, channels_last)
    sums = partials.sum(0).to(weight.dtype)  # (H, K + 1)
    return dx, sums[:, :K], None if bias is None else sums[:, K]


@_short_conv_bwd_op.register_fake
def _(dy, x, weight, bias, pad_left, channels_last):
    return torch.empty_like(x), torch.empty_like(weight), weight.new_empty(0) if bias is None else torch.empty_like(bias)


def _setup(ctx, inputs, output):
    x, weight, bias, pad_left, channels_last = inputs
    ctx.save_for_backward(x, weight, bias)
    ctx.pad_left, ctx.channels_last = pad_left, channels_last


def _backward(ctx, dy, short_conv_bwd=None):
    """The op's one backward: through the custom op (traced graphs), or, from the eager Function
    below, straight to the kernels."""
    x, weight, bias = ctx.saved_tensors
    short_conv_bwd = short_conv_bwd or torch.ops.longconv.short_conv_bwd
    grads = short_conv_bwd(dy.contiguous(), x, weight, bias, ctx.pad_left, ctx.channels_last)
    return _needed(ctx, grads, bias)


def _needed(ctx, grads, bias):
    dx, dw, db = grads
    return (
        dx if ctx.needs_input_grad[0] else None,
        dw if ctx.needs_input_grad[1] else None,
        db if bias is not None and ctx.needs_input_grad[2] else None,
        None,
        None,
    )


torch.library.register_autograd("longconv::short_conv", _backward, setup_context=_setup)


class _ShortConvFunction(torch.autograd.Function):
    """The eager CUDA route (see :func:`.dispatch.direct_module`): the custom op's forward and its
    one backward, without the library dispatcher in between (host time)."""

    @staticmethod
    def forward(ctx, x, weight, bias, pad_left, channels_last):
        _setup(ctx, (x, weight, bias, pad_left, channels_last), None)
        return extension.load_extension().shortconv_fwd(x, weight, bias, pad_left, channels_last, False)

    @staticmethod
    @once_differentiable
    def backward(ctx, dy):
        return _backward(ctx, dy, _eager_short_conv_bwd)


def _eager_short_conv_bwd(dy, x, weight, bias, pad_left, channels_last):
    return _short_conv_grads(dispatch.select("short_conv_bwd", None), dy, x, weight, bias, pad_left, channels_last)
