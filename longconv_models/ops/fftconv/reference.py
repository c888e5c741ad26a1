"""Pure-PyTorch reference implementations of the ops.

They run on any device (the CPU path, GPUs without the kernels, fp32/fp64 inputs) and are the
oracle of the GPU tests. Low-precision inputs are computed in fp32 and cast back; fp64 stays fp64.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._checks import compute_dtypes


def irfft_grad_weights(fft_size: int, device, dtype) -> Tensor:
    """Adjoint weights of ``irfft``: d(irfft(P))/dP under PyTorch's complex-gradient convention
    is ``rfft(g) * w`` with w = 2/N for the interior bins and 1/N for DC (and Nyquist if N even)."""
    n_bins = fft_size // 2 + 1
    w = torch.full((n_bins,), 2.0 / fft_size, device=device, dtype=dtype)
    w[0] = 1.0 / fft_size
    if fft_size % 2 == 0:
        w[-1] = 1.0 / fft_size
    return w


def fftconv_ref(
    u: Tensor,
    k_f: Tensor,
    pre_gate: Tensor | None,
    post_gate: Tensor | None,
    fft_size: int,
) -> Tensor:
    """y = post_gate * irfft(rfft(pre_gate * u, N) * k_f, N)[..., :L].

    u: (B, H, L); k_f: (H, N//2+1) complex spectrum of the (circular) filter; gates: (B, H, L).
    """
    real, cplx = compute_dtypes(u.dtype)
    L = u.shape[-1]
    x = u.to(real)
    if pre_gate is not None:
        x = x * pre_gate.to(real)
    y = torch.fft.irfft(torch.fft.rfft(x, n=fft_size) * k_f.to(cplx), n=fft_size)[..., :L]
    if post_gate is not None:
        y = y * post_gate.to(real)
    return y.to(u.dtype).contiguous()


def fftconv_bwd_ref(
    dy: Tensor,
    u: Tensor,
    k_f: Tensor,
    pre_gate: Tensor | None,
    post_gate: Tensor | None,
    fft_size: int,
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """Gradients (du, dk_f, dpre_gate, dpost_gate) of :func:`fftconv_ref`.

    With x = pre*u, c = conv(x, k) and y = post*c: dc = post*dy, dx = corr(dc, k) (the conjugate
    filter), dk_f = sum_b conj(X_b) DC_b * w (w: :func:`irfft_grad_weights`), dpost = dy*c,
    du = pre*dx, dpre = u*dx.
    """
    real, cplx = compute_dtypes(u.dtype)
    N, L = fft_size, u.shape[-1]
    k_f = k_f.to(cplx)
    u32, dy32 = u.to(real), dy.to(real)
    x = u32 if pre_gate is None else u32 * pre_gate.to(real)
    dc = dy32 if post_gate is None else dy32 * post_gate.to(real)
    X = torch.fft.rfft(x, n=N)
    DC = torch.fft.rfft(dc, n=N)
    dx = torch.fft.irfft(DC * k_f.conj(), n=N)[..., :L]
    dk_f = (X.conj() * DC).sum(0) * irfft_grad_weights(N, u.device, real)
    dpost = None
    if post_gate is not None:
        c = torch.fft.irfft(X * k_f, n=N)[..., :L]
        dpost = (dy32 * c).to(post_gate.dtype)
    du = dx if pre_gate is None else dx * pre_gate.to(real)
    dpre = None if pre_gate is None else (dx * u32).to(pre_gate.dtype)
    return du.to(u.dtype).contiguous(), dk_f, dpre, dpost
