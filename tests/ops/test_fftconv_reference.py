"""The fftconv op on its reference path (CPU) against direct float64 convolutions."""

import pytest
import torch

from helpers import direct_conv, rel_err
from longconv_models import FFTConv, fftconv, last_backend, prepare_filter
from longconv_models.ops.fftconv import default_fft_size

SHAPES = [  # (B, H, L, Lk)
    (1, 1, 1, 1),
    (2, 3, 7, 7),
    (3, 5, 100, 37),
    (1, 2, 129, 200),  # Lk > L
    (2, 4, 256, 256),
    (3, 1, 333, 5),
    (1, 3, 1000, 1000),
]


@pytest.mark.parametrize("B,H,L,Lk", SHAPES)
@pytest.mark.parametrize("gated", [False, True])
@pytest.mark.parametrize("with_bias", [False, True])
def test_causal_matches_direct(B, H, L, Lk, gated, with_bias):
    u = torch.randn(B, H, L, dtype=torch.float64)
    k = torch.randn(H, Lk, dtype=torch.float64)
    bias = torch.randn(H, dtype=torch.float64) if with_bias else None
    pre = torch.randn_like(u) if gated else None
    post = torch.randn_like(u) if gated else None
    y = fftconv(u, k, bias=bias, pre_gate=pre, post_gate=post)
    ref = direct_conv(u, k, bias=bias, pre_gate=pre, post_gate=post)
    assert y.dtype == torch.float64 and y.shape == u.shape
    assert rel_err(y, ref) < 1e-12
    assert last_backend() == ("reference", "device cpu")


@pytest.mark.parametrize("B,H,L,Lk,Lr", [(2, 3, 50, 50, 50), (1, 2, 64, 10, 30), (3, 1, 17, 17, 1)])
def test_bidirectional_matches_direct(B, H, L, Lk, Lr):
    u = torch.randn(B, H, L, dtype=torch.float64)
    k, k_rev, bias = torch.randn(H, Lk, dtype=torch.float64), torch.randn(H, Lr, dtype=torch.float64), torch.randn(H)
    y = fftconv(u, k, k_rev=k_rev, bias=bias)
    assert rel_err(y, direct_conv(u, k, k_rev=k_rev, bias=bias)) < 1e-12


def test_m2_style_bidirectional_filter():
    """M2-BERT: one length-2L filter, concat(k_fwd, flip(k_rev)), circular FFT of size 2L."""
    B, H, L = 2, 3, 32
    u = torch.randn(B, H, L, dtype=torch.float64)
    k_fwd, k_rev = torch.randn(H, L, dtype=torch.float64), torch.randn(H, L, dtype=torch.float64)
    k_cat = torch.cat([k_fwd, k_rev.flip(-1)], -1)
    m2 = torch.fft.irfft(torch.fft.rfft(u, 2 * L) * torch.fft.rfft(k_cat, 2 * L), 2 * L)[..., :L]
    # flip(k_rev) at the end of the buffer puts k_rev[j] at lag -(j+1): exactly fftconv's k_rev
    y = fftconv(u, k_fwd, k_rev=k_rev)
    assert rel_err(y, m2) < 1e-12


@pytest.mark.parametrize("L,Lk", [(16, 16), (37, 5), (256, 100)])
def test_circular_matches_direct(L, Lk):
    u = torch.randn(2, 3, L, dtype=torch.float64)
    k, k_rev = torch.randn(3, Lk, dtype=torch.float64), torch.randn(3, 3, dtype=torch.float64)
    y = fftconv(u, k, k_rev=k_rev, circular=True)
    assert rel_err(y, direct_conv(u, k, k_rev=k_rev, circular_n=L)) < 1e-12


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 2e-6), (torch.bfloat16, 2e-2), (torch.float16, 3e-3)])
def test_low_precision_output_dtype_and_error(dtype, tol):
    u = torch.randn(3, 4, 300)
    k = torch.randn(4, 300) * torch.exp(-torch.arange(300) / 50.0)
    y = fftconv(u.to(dtype), k)
    assert y.dtype == dtype
    assert rel_err(y, direct_conv(u.to(dtype), k)) < tol


def test_explicit_fft_size_and_defaults():
    assert default_fft_size(100, 100) == 256
    assert default_fft_size(1000, 1000) == 2048
    assert default_fft_size(1024, 1024, 1024) == 2048
    assert default_fft_size(1000, 5, circular=True) == 1000
    u, k = torch.randn(1, 2, 100, dtype=torch.float64), torch.randn(2, 30, dtype=torch.float64)
    ref = direct_conv(u, k)
    for n in (129, 200, 1024):  # any N >= L + Lk - 1 gives the same linear conv
        assert rel_err(fftconv(u, k, fft_size=n), ref) < 1e-12


def test_prepare_filter_and_module_cache():
    B, H, L = 2, 3, 200
    u = torch.randn(B, H, L, dtype=torch.float64)
    k, bias = torch.randn(H, 64, dtype=torch.float64), torch.randn(H, dtype=torch.float64)
    ref = direct_conv(u, k, bias=bias)
    spec = prepare_filter(k, L, bias=bias)
    assert spec.fft_size == 512 and spec.spectrum.shape == (H, 257)
    assert rel_err(fftconv(u, spec), ref) < 1e-12

    conv = FFTConv()
    with torch.no_grad():
        y1 = conv(u, k, bias=bias)
        cached = conv._cache[2]
        y2 = conv(u, k, bias=bias)
        assert conv._cache[2] is cached  # same tensors, unchanged: spectrum reused
        k.mul_(2)  # in-place change bumps the version: recomputed
        y3 = conv(u, k, bias=bias)
        assert conv._cache[2] is not cached
    assert rel_err(y1, ref) < 1e-12 and torch.equal(y1, y2)
    assert rel_err(y3, direct_conv(u, k, bias=bias)) < 1e-12


def test_module_does_not_cache_when_training():
    conv = FFTConv()
    k = torch.randn(2, 8, requires_grad=True)
    u = torch.randn(1, 2, 16)
    conv(u, k).sum().backward()
    assert conv._cache is None and k.grad is not None


def test_noncontiguous_inputs():
    u = torch.randn(3, 40, 5, dtype=torch.float64).transpose(1, 2)  # (3, 5, 40), strided
    k = torch.randn(40, 5, dtype=torch.float64).t()  # (5, 40), strided
    assert not u.is_contiguous() and not k.is_contiguous()
    assert rel_err(fftconv(u, k), direct_conv(u, k)) < 1e-12


def test_nan_propagates_without_error():
    u = torch.randn(2, 2, 64)
    u[1, 0, 10] = float("nan")
    y = fftconv(u, torch.randn(2, 64))
    assert torch.isnan(y[1, 0]).any()
    assert torch.isfinite(y[0]).all() and torch.isfinite(y[1, 1]).all()
