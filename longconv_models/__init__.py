"""longconv_models: fast long-convolution sequence models.

Layers: kernels (``longconv_models/kernels/``, CUDA) -> :mod:`longconv_models.ops` (functional ops, autograd,
reference path, dispatch) -> :mod:`longconv_models.layers` -> :mod:`longconv_models.models`
(Hugging Face Hyena, HyenaDNA, M2-BERT, registered with the Auto classes on import).
"""

from . import checkpoints, models  # models: registers the Auto classes
from .ops import (
    FFTConv,
    FilterSpectrum,
    count_backends,
    fftconv,
    frequency_sparse,
    last_backend,
    prepare_filter,
    reference_path,
    short_conv,
)
from .version import __version__

__all__ = [
    "FFTConv",
    "FilterSpectrum",
    "__version__",
    "count_backends",
    "fftconv",
    "frequency_sparse",
    "last_backend",
    "prepare_filter",
    "reference_path",
    "short_conv",
]
