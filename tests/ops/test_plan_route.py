"""The route planner of fftconv (ops/fftconv/plan.py): one decision per call, from the call's facts."""

import pytest
import torch

from longconv_models.ops.fftconv.plan import TAPS_ROUTE_MAX_FFT_SIZE, Route, plan_route

BF16, FP16 = torch.bfloat16, torch.float16


def route(dtype=BF16, n=4096, eager_kernel=True, taps=True, anti_causal=False, low_band=False, needs_grad=False,
          segmented=False):
    return plan_route(dtype, n, eager_kernel=eager_kernel, taps=taps, anti_causal=anti_causal,
                      low_band=low_band, needs_grad=needs_grad, segmented=segmented)


@pytest.mark.parametrize("needs_grad", [False, True])
def test_not_eager_goes_through_the_custom_op(needs_grad):
    for taps in (False, True):
        assert route(eager_kernel=False, taps=taps, needs_grad=needs_grad) is Route.CUSTOM_OP


@pytest.mark.parametrize("dtype", [BF16, FP16])
def test_taps_route_up_to_its_size_per_dtype(dtype):
    limit = TAPS_ROUTE_MAX_FFT_SIZE[dtype]
    assert route(dtype, limit) is Route.TAPS
    assert route(dtype, limit, needs_grad=True, anti_causal=True) is Route.TAPS
    assert route(dtype, 2 * limit) is not Route.TAPS


def test_long_taps_route_only_for_causal_inference():
    assert route(BF16, 1 << 16) is Route.LONG_TAPS
    assert route(BF16, 32768) is Route.LONG_TAPS  # 32K bf16 runs the long path
    assert route(FP16, 32768) is Route.SPECTRUM  # fp16 keeps the fused kernel there
    assert route(BF16, 1 << 16, needs_grad=True) is Route.SPECTRUM
    assert route(BF16, 1 << 16, anti_causal=True) is Route.SPECTRUM


def test_low_band_only_for_spectra_without_grad():
    assert route(taps=False, low_band=True) is Route.LOW_BAND
    assert route(taps=False, low_band=True, needs_grad=True) is Route.SPECTRUM
    assert route(taps=False) is Route.SPECTRUM
    assert route(taps=True, low_band=True) is Route.TAPS  # (low_band is a FilterSpectrum's flag)


def test_segmented_route_and_segment_length():
    from longconv_models.ops.fftconv.plan import MAX_KERNEL_FFT_SIZE, segment_length

    assert route(n=2 * MAX_KERNEL_FFT_SIZE, segmented=True) is Route.SEGMENTED
    assert route(n=2 * MAX_KERNEL_FFT_SIZE, segmented=True, eager_kernel=False) is Route.CUSTOM_OP
    M = MAX_KERNEL_FFT_SIZE
    assert segment_length(M, 1, M) is None  # one kernel FFT holds it
    assert segment_length(M, M // 2 + 1, 2 * M) is None  # segments would be shorter than the filter
    S = segment_length(M, M // 4, 2 * M)
    assert S + M // 4 - 1 == M  # a segment and its tail fill one kernel FFT exactly


@pytest.mark.parametrize("L,Lk,gates,bias", [(1000, 100, True, True), (700, 128, False, False), (256, 64, True, False),
                                             (157, 128, True, True)])
def test_segmented_fftconv_equals_one_linear_convolution(L, Lk, gates, bias):
    """Overlap-add of 256-point circular convolutions = the linear convolution (float64 reference),
    values and gradients."""
    from longconv_models.ops.fftconv.op import segmented_fftconv
    from longconv_models.ops.fftconv.reference import fftconv_ref
    from longconv_models.ops.fftconv.op import filter_spectrum
    from longconv_models.ops.fftconv.plan import default_fft_size

    torch.manual_seed(L)
    B, H = 2, 3
    u = torch.randn(B, H, L, dtype=torch.float64, requires_grad=True)
    k = torch.randn(H, Lk, dtype=torch.float64, requires_grad=True)
    d = torch.randn(H, dtype=torch.float64, requires_grad=True) if bias else None
    pre = torch.randn(B, H, L, dtype=torch.float64, requires_grad=True) if gates else None
    post = torch.randn(B, H, L, dtype=torch.float64, requires_grad=True) if gates else None
    y = segmented_fftconv(u, k, d, pre, post, 256)
    N = default_fft_size(L, Lk)
    ref = fftconv_ref(u, filter_spectrum(k, N, None, d), pre, post, N)
    assert torch.allclose(y, ref, atol=1e-9)
    inputs = [t for t in (u, k, d, pre, post) if t is not None]
    g = torch.randn_like(y)
    grads = torch.autograd.grad(y, inputs, g)
    grads_ref = torch.autograd.grad(ref, inputs, g)
    for a, b in zip(grads, grads_ref):
        assert torch.allclose(a, b, atol=1e-8)


def test_segmented_fftconv_refuses_a_filter_longer_than_half_a_segment():
    from longconv_models.ops.fftconv.op import segmented_fftconv

    with pytest.raises(ValueError, match="too long"):
        segmented_fftconv(torch.randn(1, 1, 500), torch.randn(1, 129), None, None, None, 256)
