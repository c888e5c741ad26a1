"""The route planner of fftconv (ops/fftconv/plan.py): one decision per call, from the call's facts."""

import pytest
import torch

from longconv_models.ops.fftconv.plan import TAPS_ROUTE_MAX_FFT_SIZE, Route, plan_route

BF16, FP16 = torch.bfloat16, torch.float16


def route(dtype=BF16, n=4096, eager_kernel=True, taps=True, anti_causal=False, low_band=False, needs_grad=False):
    return plan_route(dtype, n, eager_kernel=eager_kernel, taps=taps, anti_causal=anti_causal,
                      low_band=low_band, needs_grad=needs_grad)


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
