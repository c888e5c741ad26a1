"""Functional ops with autograd and ``torch.library`` registration (``torch.ops.longconv.*``).

Each op runs its CUDA kernel when the kernels are built and support the call, else its
PyTorch reference (:mod:`.reference`); :func:`last_backend` tells which one ran last and
:func:`count_backends` counts the calls per backend.
"""

from .dispatch import count_backends, last_backend, reference_path
from .fftconv import FFTConv, FilterSpectrum, default_fft_size, fftconv, filter_spectrum, prepare_filter
from .short_conv import short_conv
from .sparse import frequency_sparse, frequency_sparse_mask

__all__ = [
    "FFTConv",
    "FilterSpectrum",
    "count_backends",
    "default_fft_size",
    "fftconv",
    "filter_spectrum",
    "frequency_sparse",
    "frequency_sparse_mask",
    "last_backend",
    "prepare_filter",
    "reference_path",
    "short_conv",
]
