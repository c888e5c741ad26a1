"""Frequency-sparse convolutions: the low-pass filter against a direct convolution with the
low-passed taps, gradients, validation, and the layer / model switch."""

import pytest
import torch

from helpers import direct_conv, rel_err
from longconv_models import fftconv, frequency_sparse, prepare_filter
from longconv_models.layers import HyenaOperator
from longconv_models.ops import frequency_sparse_mask


@pytest.mark.parametrize("keep", [1.0, 0.5, 0.25, 0.1])
@pytest.mark.parametrize("with_bias", [False, True])
def test_frequency_sparse_equals_direct_conv_with_lowpassed_taps(keep, with_bias):
    torch.manual_seed(0)
    B, H, L, N = 2, 3, 100, 256
    u = torch.randn(B, H, L, dtype=torch.float64)
    k = torch.randn(H, L, dtype=torch.float64)
    bias = torch.randn(H, dtype=torch.float64) if with_bias else None
    y = fftconv(u, frequency_sparse(k, keep, L, bias=bias, fft_size=N))
    # oracle: the N-point circular filter whose spectrum is the masked one, applied directly
    mask = frequency_sparse_mask(N, keep)
    k_low = torch.fft.irfft(torch.fft.rfft(k, n=N) * mask, n=N)
    u_pad = torch.nn.functional.pad(u, (0, N - L))
    ref = direct_conv(u_pad, k_low, circular_n=N)[..., :L]
    if bias is not None:  # D stays a pointwise term
        ref = ref + bias[None, :, None] * u
    assert rel_err(y, ref) < 1e-10
    assert mask.sum().item() == max(1, int(keep * (N // 2 + 1)))


def test_frequency_sparse_gradients_flow_to_taps_and_bias():
    u = torch.randn(2, 3, 64, dtype=torch.float64)
    k = torch.randn(3, 64, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(3, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda k_, b_: fftconv(u, frequency_sparse(k_, 0.3, 64, bias=b_)), (k, bias))


def test_frequency_sparse_validation():
    k = torch.randn(3, 16)
    spec = prepare_filter(k, 16)
    for bad in (0.0, 1.5, -0.1, True, "half"):
        with pytest.raises(ValueError, match="keep"):
            frequency_sparse(spec, bad)
    with pytest.raises(ValueError, match="seq_len"):
        frequency_sparse(k, 0.5)
    with pytest.raises(ValueError, match="folded"):
        frequency_sparse(spec, 0.5, bias=torch.zeros(3))
    with pytest.raises(TypeError):
        frequency_sparse([1, 2], 0.5)


def test_hyena_operator_frequency_sparse_switch():
    torch.manual_seed(0)
    op = HyenaOperator(8, max_seq_len=64).double()
    x = torch.randn(2, 64, 8, dtype=torch.float64)
    dense = op(x)
    op.filter_fn.sparsify_frequencies(0.25)
    sparse = op(x)
    assert not torch.allclose(dense, sparse)
    op.filter_fn.sparsify_frequencies(1.0)
    assert torch.equal(op(x), dense)
    with pytest.raises(ValueError):
        op.filter_fn.sparsify_frequencies(0)


@pytest.mark.parametrize("keep", [0.5, 0.25, 0.1, 0.51])
def test_low_band_flag(keep):
    """At >= 50% sparsity without a separate D term the spectrum is marked low-band, and it is
    zero from bin N/4 up; with a D term (flat over all frequencies) it is not."""
    N, H = 512, 3
    k = torch.randn(H, 200, dtype=torch.float64)
    spec = frequency_sparse(k, keep, 200, fft_size=N)
    assert spec.low_band == (keep <= 0.5)
    if spec.low_band:
        assert spec.spectrum[:, N // 4 :].abs().max() == 0
    assert not frequency_sparse(k, keep, 200, bias=torch.randn(H, dtype=torch.float64), fft_size=N).low_band
    assert frequency_sparse(prepare_filter(k, 200, fft_size=N), keep).low_band == (keep <= 0.5)  # D folded: masked too


@pytest.mark.parametrize("N,outer", [(256, 1), (4096, 1), (32768, 1), (65536, 8), (2**22, 512)])
def test_low_band_layout_puts_the_band_in_one_mma_tile(N, outer):
    """In the low-band slot order, slots s < 4 of every lane (the core's first 8-column tile) hold
    exactly the frequencies |f| < N/4 and slots s >= 4 the rest."""
    import numpy as np

    from longconv_models.ops.fftconv.fused import LANE_SLOT, slot_frequencies

    freq = slot_frequencies(N, outer, low_band=True)
    assert np.array_equal(np.sort(freq), np.arange(N))
    in_band = np.minimum(freq, N - freq) < N // 4
    in_first_slots = np.zeros(256, bool)
    in_first_slots[LANE_SLOT[:, :4]] = True
    first_tile = np.tile(in_first_slots, N // 256)
    assert np.array_equal(in_band | (freq == 3 * N // 4), first_tile)  # 3N/4: the tile's edge, a zero bin


def test_low_band_flag_is_checked():
    """A hand-built FilterSpectrum claiming low_band must be zero from bin N/4 up."""
    from longconv_models import FilterSpectrum

    N = 256
    spec = prepare_filter(torch.randn(2, 100), 100, fft_size=N)
    with pytest.raises(ValueError, match="low_band"):
        FilterSpectrum(spec.spectrum, N, low_band=True)
    low = spec.spectrum.clone()
    low[:, N // 4 :] = 0
    assert FilterSpectrum(low, N, low_band=True).low_band
