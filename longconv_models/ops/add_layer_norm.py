"""Fused residual add + LayerNorm, the norm of the pre-norm (Hyena, HyenaDNA) and post-norm
(M2-BERT) blocks::

    s = x + residual          (residual_out: the next block's residual)
    y = LayerNorm(s)          (the next GEMM's input)

with s in the dtype ``x + residual`` would have (fp32 for an fp32 model under autocast: the
residual stream stays fp32, as in the original HyenaDNA's ``residual_in_fp32``) and y in the
dtype the next layer computes in (the autocast dtype under autocast, else the weight's dtype).
Unfused, the same is four passes over the activations (add, LayerNorm, cast; and the backward's
add of the two gradients of s); fused on CUDA (Triton) it is one each way. The reference is the
plain PyTorch expression; :func:`~longconv_models.ops.dispatch.last_backend` tells which ran.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import dispatch

def _kernels():
    """The Triton kernels, or None (``dispatch.triton_error`` says why)."""
    return dispatch.triton_kernels("add_layer_norm")


def add_layer_norm_ref(x, residual, weight, bias, eps, out_dtype, residual_dtype):
    s = x.to(residual_dtype) if residual is None else x.to(residual_dtype) + residual.to(residual_dtype)
    real = torch.float64 if s.dtype == torch.float64 else torch.float32
    with torch.autocast(x.device.type, enabled=False):
        y = F.layer_norm(s.to(real), (s.shape[-1],), weight.to(real), None if bias is None else bias.to(real), eps)
    return y.to(out_dtype), s


class _AddLayerNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, residual, weight, bias, eps, out_dtype, residual_dtype):
        shape = x.shape
        x2 = x.reshape(-1, shape[-1]).contiguous()
        r2 = None if residual is None else residual.reshape(-1, shape[-1]).contiguous()
        y, s, mean, rstd = _kernels().forward(x2, r2, weight, bias, eps, out_dtype, residual_dtype)
        ctx.save_for_backward(s, weight, mean, rstd)
        ctx.has_bias, ctx.x_dtype = bias is not None, x.dtype
        ctx.residual_dtype = None if residual is None else residual.dtype
        return y.view(shape), s.view(shape)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy, ds_out):
        s, weight, mean, rstd = ctx.saved_tensors
        shape = dy.shape
        dispatch.record("add_layer_norm_bwd", "cuda")
        dx, dr, dw, db = _kernels().backward(
            dy.reshape(-1, shape[-1]).contiguous(),
            None if ds_out is None else ds_out.reshape(-1, shape[-1]).contiguous(),
            s, weight, ctx.has_bias, mean, rstd, ctx.x_dtype, ctx.residual_dtype)
        return dx.view(shape), None if dr is None else dr.view(shape), dw, db, None, None, None


def add_layer_norm(x: Tensor, residual: Tensor | None, norm: nn.LayerNorm) -> tuple[Tensor, Tensor]:
    """``(norm(x + residual), x + residual)`` in one pass (``residual=None``: ``norm(x), x``).

    dtypes: the sum has the dtype ``x + residual`` has; the normed output the autocast dtype
    under ``torch.autocast`` (fp64 aside), else the norm's weight dtype."""
    weight, bias = norm.weight, norm.bias
    residual_dtype = x.dtype if residual is None else torch.promote_types(x.dtype, residual.dtype)
    out_dtype = dispatch.autocast_dtype(x) or weight.dtype
    if residual_dtype == torch.float64:
        out_dtype = torch.float64
    reason = None
    if not norm.elementwise_affine or weight is None or len(norm.normalized_shape) != 1:
        reason = "LayerNorm without a 1-D affine weight"
    elif residual is not None and residual.shape != x.shape:
        reason = "residual shape differs"
    elif x.dtype == torch.float64 or residual_dtype == torch.float64:
        reason = "dtype torch.float64"
    elif not dispatch.kernels_enabled():
        reason = "kernels disabled (reference_path)"
    elif not dispatch.eager_cuda_call(x, residual, weight, bias):
        reason = "not an eager CUDA call" if x.is_cuda else f"device {x.device.type}"
    elif _kernels() is None:
        reason = dispatch.triton_error("add_layer_norm")
    if reason is None:
        dispatch.record("add_layer_norm", "cuda")
        return _AddLayerNorm.apply(x, residual, weight, bias, norm.eps, out_dtype, residual_dtype)
    dispatch.record("add_layer_norm", "reference", reason)
    return add_layer_norm_ref(x, residual, weight, bias, norm.eps, out_dtype, residual_dtype)
