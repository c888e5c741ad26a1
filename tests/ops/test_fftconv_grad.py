"""Gradients of fftconv: gradcheck in float64 and agreement with autograd through a direct conv."""

import pytest
import torch

from helpers import direct_conv, rel_err
from longconv_models import fftconv, prepare_filter


@pytest.mark.parametrize("gated,with_bias,with_rev", [(False, False, False), (True, True, False), (True, True, True)])
def test_gradcheck(gated, with_bias, with_rev):
    B, H, L, Lk = 3, 2, 9, 6
    d = dict(dtype=torch.float64, requires_grad=True)
    u, k = torch.randn(B, H, L, **d), torch.randn(H, Lk, **d)
    extra = {}
    if gated:
        extra.update(pre_gate=torch.randn(B, H, L, **d), post_gate=torch.randn(B, H, L, **d))
    if with_bias:
        extra["bias"] = torch.randn(H, **d)
    if with_rev:
        extra["k_rev"] = torch.randn(H, 4, **d)
    names = list(extra)
    torch.autograd.gradcheck(lambda u, k, *e: fftconv(u, k, **dict(zip(names, e))), (u, k, *extra.values()))


def test_grads_match_direct_conv():
    B, H, L, Lk = 4, 3, 70, 40
    d = dict(dtype=torch.float64, requires_grad=True)
    inputs = dict(u=torch.randn(B, H, L, **d), k=torch.randn(H, Lk, **d), k_rev=torch.randn(H, 11, **d),
                  bias=torch.randn(H, **d), pre_gate=torch.randn(B, H, L, **d), post_gate=torch.randn(B, H, L, **d))
    dy = torch.randn(B, H, L, dtype=torch.float64)
    y = fftconv(**inputs)
    grads = torch.autograd.grad(y, list(inputs.values()), dy)
    y_ref = direct_conv(**inputs)
    grads_ref = torch.autograd.grad(y_ref, list(inputs.values()), dy)
    for name, g, gr in zip(inputs, grads, grads_ref):
        assert rel_err(g, gr) < 1e-11, name


def test_grad_through_filter_spectrum():
    u = torch.randn(2, 3, 50, dtype=torch.float64)
    k = torch.randn(3, 20, dtype=torch.float64, requires_grad=True)
    spec = prepare_filter(k, 50)
    g1, = torch.autograd.grad(fftconv(u, spec).square().sum(), k)
    g2, = torch.autograd.grad(direct_conv(u, k).square().sum(), k)
    assert rel_err(g1, g2) < 1e-11


def test_backward_in_eval_and_no_grad_for_frozen_filter():
    u = torch.randn(2, 3, 30, requires_grad=True)
    k = torch.randn(3, 30)  # frozen filter: no gradient requested
    fftconv(u, k).sum().backward()
    assert u.grad is not None and u.grad.shape == u.shape


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
def test_low_precision_grads(dtype, tol):
    B, H, L = 2, 3, 128
    u = torch.randn(B, H, L)
    k = torch.randn(H, L) * torch.exp(-torch.arange(L) / 20.0)
    post = torch.randn(B, H, L)
    dy = torch.randn(B, H, L)
    u_lp, post_lp = u.to(dtype).requires_grad_(), post.to(dtype).requires_grad_()
    k_lp = k.clone().requires_grad_()
    y = fftconv(u_lp, k_lp, post_gate=post_lp)
    gu, gk, gp = torch.autograd.grad(y, (u_lp, k_lp, post_lp), dy.to(dtype))
    assert gu.dtype == dtype and gp.dtype == dtype and gk.dtype == torch.float32
    u64, k64, p64 = (t.double().requires_grad_() for t in (u.to(dtype), k, post.to(dtype)))
    ref = torch.autograd.grad(direct_conv(u64, k64, post_gate=p64), (u64, k64, p64), dy.to(dtype).double())
    for g, gr in zip((gu, gk, gp), ref):
        assert rel_err(g, gr) < tol


@pytest.mark.parametrize("N,Lk,Lr,bias", [(256, 100, 0, False), (512, 512, 37, True), (64, 40, 30, True)])
def test_filter_spectrum_adjoint_matches_autograd(N, Lk, Lr, bias):
    """The eager CUDA route's filter gradient (one irfft) equals autograd through filter_spectrum."""
    from longconv_models.ops.fftconv import filter_spectrum, filter_spectrum_adjoint

    H = 3
    k = torch.randn(H, Lk, dtype=torch.float64, requires_grad=True)
    k_rev = torch.randn(H, Lr, dtype=torch.float64, requires_grad=True) if Lr else None
    b = torch.randn(H, dtype=torch.float64, requires_grad=True) if bias else None
    spec = filter_spectrum(k, N, k_rev, b)
    d_spec = torch.randn_like(spec)
    leaves = [t for t in (k, k_rev, b) if t is not None]
    want = torch.autograd.grad(spec, leaves, d_spec)
    got = [g for g in filter_spectrum_adjoint(d_spec, N, Lk, Lr, bias) if g is not None]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-10)
