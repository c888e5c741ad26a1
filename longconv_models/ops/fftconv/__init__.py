"""The FFT convolution op, in one folder:

| module | what |
|---|---|
| ``op.py`` | the public function, ``FilterSpectrum`` / ``prepare_filter``, autograd, the ``torch.library`` custom ops, the ``FFTConv`` module |
| ``plan.py`` | the route rules: kernel FFT sizes and dtypes, the long path, default FFT sizes |
| ``fused.py`` | host side of the fused kernel (256 .. 32K): layouts, twiddles, calls |
| ``long.py`` | host side of the long path (64K .. 4M, and 32K bf16): outer passes around the fused kernel |
| ``reference.py`` | the pure-PyTorch reference (any device, any float dtype) |
"""

from .op import (
    FFTConv,
    FilterSpectrum,
    fftconv,
    filter_spectrum,
    filter_spectrum_adjoint,
    kernel_unsupported_reason,
    prepare_filter,
)
from .plan import (
    FUSED_FFT_SIZES,
    KERNEL_DTYPES,
    KERNEL_FFT_SIZES,
    LONG_FFT_SIZES,
    MIN_FFT_SIZE,
    default_fft_size,
    min_fft_size,
    takes_long_path,
)
from .reference import fftconv_bwd_ref, fftconv_ref

__all__ = [
    "FFTConv", "FilterSpectrum", "fftconv", "filter_spectrum", "filter_spectrum_adjoint", "kernel_unsupported_reason",
    "prepare_filter", "FUSED_FFT_SIZES", "KERNEL_DTYPES", "KERNEL_FFT_SIZES", "LONG_FFT_SIZES", "MIN_FFT_SIZE",
    "default_fft_size", "min_fft_size", "takes_long_path", "fftconv_bwd_ref", "fftconv_ref",
]
