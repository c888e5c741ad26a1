"""Pure-PyTorch reference of the short depthwise convolution (any device, any float dtype),
forward and backward; the CUDA kernel is tested against it and float64."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import compute_dtypes


def short_conv_ref(x: Tensor, weight: Tensor, bias: Tensor | None, pad_left: int, channels_last: bool) -> Tensor:
    real, _ = compute_dtypes(x.dtype)
    K = weight.shape[-1]
    xt = x.transpose(1, 2) if channels_last else x
    y = F.conv1d(
        F.pad(xt.to(real), (pad_left, K - 1 - pad_left)),
        weight.to(real)[:, None, :],
        None if bias is None else bias.to(real),
        groups=weight.shape[0],
    ).to(x.dtype)
    return y.transpose(1, 2).contiguous() if channels_last else y


def short_conv_bwd_ref(dy, x, weight, bias, pad_left, channels_last):
    real, _ = compute_dtypes(x.dtype)
    K = weight.shape[-1]
    dx = short_conv_ref(dy, weight.flip(-1), None, K - 1 - pad_left, channels_last)
    xt = (x.transpose(1, 2) if channels_last else x).to(real)
    gt = (dy.transpose(1, 2) if channels_last else dy).to(real)
    windows = F.pad(xt, (pad_left, K - 1 - pad_left)).unfold(-1, K, 1)  # (B, H, L, K)
    dw = torch.einsum("bhl,bhlk->hk", gt, windows)
    db = None if bias is None else gt.sum(dim=(0, 2))
    return dx, dw, db


