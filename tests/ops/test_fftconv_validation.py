"""Bad input to fftconv gets a clear error naming the argument."""

import pytest
import torch

from longconv_models import fftconv, prepare_filter

U = torch.randn(2, 3, 16)
K = torch.randn(3, 8)


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(u=torch.randn(3, 16), k=K), ValueError, "u must have 3 dimensions"),
        (dict(u=U, k=torch.randn(4, 8)), ValueError, "k has 4 channels"),
        (dict(u=U, k=torch.randn(3, 8, 1)), ValueError, "k must have 2 dimensions"),
        (dict(u=U.int(), k=K), TypeError, "u has dtype torch.int32"),
        (dict(u=U, k=K.to(torch.complex64)), TypeError, "k has dtype"),
        (dict(u=torch.randn(2, 3, 0), k=K), ValueError, "u is empty"),
        (dict(u=U, k=torch.randn(3, 0)), ValueError, "k is empty"),
        (dict(u=U, k=K, pre_gate=torch.randn(2, 3, 15)), ValueError, "pre_gate must have shape"),
        (dict(u=U, k=K, post_gate=torch.randn(2, 3, 16, dtype=torch.float64)), TypeError, "post_gate has dtype"),
        (dict(u=U, k=K, bias=torch.randn(4)), ValueError, "bias must have shape"),
        (dict(u=U, k=K, k_rev=torch.randn(2, 4)), ValueError, "k_rev has 2 channels"),
        (dict(u=U, k=K, fft_size=16), ValueError, "fft_size=16 is too small"),
        (dict(u=U, k=K, fft_size=0), ValueError, "fft_size must be a positive int"),
        (dict(u=U, k=K, fft_size=8, circular=True), ValueError, "L=16 exceeds fft_size=8"),
        (dict(u=U, k=torch.randn(3, 32), circular=True), ValueError, "filter length 32 exceeds fft_size=16"),
        (dict(u="not a tensor", k=K), TypeError, "u must be a torch.Tensor"),
    ],
)
def test_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        fftconv(**kwargs)


def test_filter_spectrum_mismatches():
    spec = prepare_filter(K, 16)
    with pytest.raises(ValueError, match="has 3 channels but u has H=4"):
        fftconv(torch.randn(2, 4, 16), spec)
    with pytest.raises(ValueError, match="exceeds the FilterSpectrum's fft_size"):
        fftconv(torch.randn(2, 3, 1024), spec)
    with pytest.raises(ValueError, match="fold"):
        fftconv(U, spec, bias=torch.randn(3))
    with pytest.raises(ValueError, match="does not match"):
        fftconv(U, spec, fft_size=64)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs two devices (cpu + cuda)")
def test_device_mismatch():
    with pytest.raises(ValueError, match="k is on cuda"):
        fftconv(U, K.cuda())
