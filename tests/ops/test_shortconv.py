"""short_conv on its reference path against explicit loops in float64, gradients, errors."""

import pytest
import torch

from helpers import rel_err
from longconv_models import short_conv


def direct_short_conv(x, w, bias, pad_left):
    """y[b,h,t] = bias[h] + sum_j w[h,j] x[b,h,t+j-pad_left], zeros outside, as a loop."""
    x, w = x.double(), w.double()
    B, H, L = x.shape
    y = torch.zeros_like(x) + (0 if bias is None else bias.double()[None, :, None])
    for j in range(w.shape[1]):
        shift = j - pad_left
        src = torch.zeros_like(x)
        lo, hi = max(0, -shift), min(L, L - shift)
        if lo < hi:
            src[..., lo:hi] = x[..., lo + shift:hi + shift]
        y += w[None, :, j, None] * src
    return y


@pytest.mark.parametrize("K", [1, 2, 3, 4, 7, 8, 11])
@pytest.mark.parametrize("padding", ["causal", "same", 0])
@pytest.mark.parametrize("channels_last", [False, True])
def test_matches_loop(K, padding, channels_last):
    B, H, L = 3, 5, 37
    x = torch.randn(B, H, L, dtype=torch.float64)
    w, bias = torch.randn(H, K, dtype=torch.float64), torch.randn(H, dtype=torch.float64)
    pad_left = {"causal": K - 1, "same": (K - 1) // 2, 0: 0}[padding]
    xin = x.transpose(1, 2).contiguous() if channels_last else x
    y = short_conv(xin, w, bias, padding=padding, channels_last=channels_last)
    y = y.transpose(1, 2) if channels_last else y
    assert rel_err(y, direct_short_conv(x, w, bias, pad_left)) < 1e-13


def test_conv1d_weight_layout_and_causality():
    conv = torch.nn.Conv1d(4, 4, 3, groups=4, padding=2).double()
    x = torch.randn(2, 4, 20, dtype=torch.float64)
    y = short_conv(x, conv.weight, conv.bias)
    assert rel_err(y, conv(x)[..., :20]) < 1e-13
    x2 = x.clone()
    x2[..., 10:] = 0
    assert torch.equal(short_conv(x2, conv.weight, conv.bias)[..., :10], y[..., :10])


@pytest.mark.parametrize("channels_last", [False, True])
def test_gradcheck(channels_last):
    x = torch.randn(2, 9, 3, dtype=torch.float64, requires_grad=True) if channels_last else \
        torch.randn(2, 3, 9, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda x, w, b: short_conv(x, w, b, padding="same", channels_last=channels_last), (x, w, b))


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-6), (torch.bfloat16, 1e-2), (torch.float16, 2e-3)])
def test_dtypes(dtype, tol):
    x, w = torch.randn(2, 8, 64), torch.randn(8, 4)
    y = short_conv(x.to(dtype), w)
    assert y.dtype == dtype
    assert rel_err(y, direct_short_conv(x.to(dtype), w, None, 3)) < tol


@pytest.mark.parametrize(
    "args,kwargs,exc,match",
    [
        ((torch.randn(2, 3), torch.randn(3, 3)), {}, ValueError, "x must have 3 dimensions"),
        ((torch.randn(2, 3, 8), torch.randn(4, 3)), {}, ValueError, "weight must have shape"),
        ((torch.randn(2, 3, 8), torch.randn(3, 2, 3)), {}, ValueError, "depthwise"),
        ((torch.randn(2, 3, 8), torch.randn(3, 3)), {"padding": "valid"}, ValueError, "padding must be"),
        ((torch.randn(2, 3, 8), torch.randn(3, 3)), {"padding": 3}, ValueError, "padding must be"),
        ((torch.randn(2, 3, 8), torch.randn(3, 3), torch.randn(2)), {}, ValueError, "bias must have shape"),
        ((torch.randn(2, 3, 8).long(), torch.randn(3, 3)), {}, TypeError, "x has dtype"),
    ],
)
def test_errors(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        short_conv(*args, **kwargs)
