"""CPU checks of the fused kernel's layouts: the numpy model of its fragment dataflow
(tests/kernels/kernel_model.py, same stages and index math as longconv_models/kernels/fftconv/fftconv_kernel.cuh)
computes the convolution, and the shared-memory swizzle is bank-conflict free."""

import numpy as np
import pytest
import torch

from kernel_model import Kernel, swizzle
from longconv_models.ops.fftconv.fused import (
    DFT_FRAGMENT_SCALE,
    fft_plan,
    kernel_spectrum,
    slot_frequencies,
    spectrum_grad_from_slots,
)
from longconv_models.ops.fftconv import FUSED_FFT_SIZES


@pytest.mark.parametrize("N", FUSED_FFT_SIZES)
def test_slots_are_a_permutation(N):
    assert np.array_equal(np.sort(slot_frequencies(N)), np.arange(N))
    r0, r1 = fft_plan(N)
    assert r0 * r1 * 256 == N and r0 in (1, 2, 4, 8) and r1 in (1, 16)


@pytest.mark.parametrize("dft_scale", [1.0, DFT_FRAGMENT_SCALE[torch.bfloat16]])
@pytest.mark.parametrize("N", [256, 512, 1024, 2048, 4096, 8192])
def test_model_computes_the_convolution(N, dft_scale):
    rng = np.random.default_rng(N)
    L, Lk = N // 2 - 3, N // 2 + 1
    x0, x1, k = rng.standard_normal(L), rng.standard_normal(L), rng.standard_normal(Lk)
    k_f = torch.fft.rfft(torch.tensor(k), n=N)[None]
    slots = torch.view_as_complex(kernel_spectrum(k_f, N)[0]).numpy().astype(np.complex128)
    y0, y1 = Kernel(N, dft_scale=dft_scale).conv(x0, x1, slots)
    for x, y in ((x0, y0), (x1, y1)):
        ref = np.fft.irfft(np.fft.rfft(x, N) * np.fft.rfft(k, N), N)[:L]
        assert np.linalg.norm(y - ref) / np.linalg.norm(ref) < 1e-6  # fp32 filter spectrum


@pytest.mark.parametrize("dft_scale", [1.0, DFT_FRAGMENT_SCALE[torch.bfloat16]])
@pytest.mark.parametrize("N", [256, 1024, 4096])
def test_model_spectrum_is_the_slots(N, dft_scale):
    """The model's forward half (what the taps route computes for a filter) gives the slots of
    kernel_spectrum, up to their sqrt(N) normalisation."""
    k = np.random.default_rng(N).standard_normal(N // 2)
    slots = torch.view_as_complex(kernel_spectrum(torch.fft.rfft(torch.tensor(k), n=N)[None], N)[0]).numpy()
    spectrum = Kernel(N, dft_scale=dft_scale).spectrum(k, np.zeros(N // 2)) * np.sqrt(N)
    assert np.linalg.norm(spectrum - slots) / np.linalg.norm(slots) < 1e-6


def test_model_precision_bf16_fp16():
    """With the kernel's 16-bit rounding of stored intermediates the error stays well inside the
    targets (bf16 <= 1e-2, fp16 <= 3e-3); bf16 needs its scaled DFT fragments for 4e-3."""
    N = 4096
    rng = np.random.default_rng(1)
    x0, x1 = rng.standard_normal(N // 2), rng.standard_normal(N // 2)
    k = rng.standard_normal(N // 2) * np.exp(-np.arange(N // 2) / 256)
    k_f = torch.fft.rfft(torch.tensor(k), n=N)[None]
    slots = torch.view_as_complex(kernel_spectrum(k_f, N)[0]).numpy().astype(np.complex128)
    for dtype, tol in ((torch.bfloat16, 4e-3), (torch.float16, 8e-4)):  # bf16 unscaled fragments: 4.6e-3
        rnd = lambda a: torch.tensor(np.asarray(a, np.float32)).to(dtype).double().numpy()  # noqa: E731
        y0, _ = Kernel(N, rnd, rnd, DFT_FRAGMENT_SCALE[dtype]).conv(rnd(x0), rnd(x1), slots)
        ref = np.fft.irfft(np.fft.rfft(rnd(x0), N) * np.fft.rfft(k, N), N)[: N // 2]
        assert np.linalg.norm(y0 - ref) / np.linalg.norm(ref) < tol


def test_spectrum_grad_from_slots():
    """The kernel's accumulator sum_pairs conj(Z_x) Z_dc (unitary transforms, two rows packed as
    real/imag) maps back to the same spectrum gradient as the per-row formula."""
    N, L = 512, 200
    x = torch.randn(2, L, dtype=torch.float64)
    dc = torch.randn(2, L, dtype=torch.float64)
    zx = torch.fft.fft(torch.complex(x[0], x[1]), n=N) / N**0.5
    zd = torch.fft.fft(torch.complex(dc[0], dc[1]), n=N) / N**0.5
    acc = (zx.conj() * zd)[torch.from_numpy(slot_frequencies(N))]  # slot order
    got = spectrum_grad_from_slots(torch.view_as_real(acc.to(torch.complex64))[None], N)[0]
    from longconv_models.ops.fftconv.reference import irfft_grad_weights

    want = (torch.fft.rfft(x, N).conj() * torch.fft.rfft(dc, N)).sum(0) * irfft_grad_weights(N, "cpu", torch.float64)
    assert torch.allclose(got.to(torch.complex128), want, rtol=1e-5, atol=1e-5 * want.abs().max().item())


def _banks(elems):
    """Bank groups (4-byte words) touched by 16-bit elements at these swizzled offsets."""
    return (swizzle(np.asarray(elems)) * 2 // 4) % 32


def test_swizzle_is_a_bijection():
    e = np.arange(32768)
    assert np.array_equal(np.sort(swizzle(e)), e)


@pytest.mark.parametrize("stride,base", [(16, 0), (16, 256 * 5), (256, 0), (256, 16 * 7), (256, 4096 * 3 + 48)])
def test_ldmatrix_rows_conflict_free(stride, base):
    # each 8x8 matrix: 8 rows of 16 bytes at `stride` elements; all 32 banks distinct
    for m in range(4):
        rows = base + (np.arange(8) + 8 * (m & 1)) * stride + 8 * (m >> 1)
        banks = np.concatenate([_banks(r + np.arange(0, 8, 2)) for r in rows])
        assert len(set(banks.tolist())) == 32, (stride, base, m)


@pytest.mark.parametrize("stride,base", [(16, 256 * 3), (256, 4096 + 32)])
def test_accumulator_stores_conflict_free(stride, base):
    g, t = np.arange(32) // 4, np.arange(32) % 4
    for nt in range(2):
        for q in range(2):
            banks = _banks(base + (g + 8 * q) * stride + 8 * nt + 2 * t)
            assert len(set(banks.tolist())) == 32
