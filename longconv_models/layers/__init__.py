"""Long-convolution layers (``nn.Module``s) on top of :mod:`longconv_models.ops`."""

from .hyena import HyenaOperator
from .hyena_filter import ExponentialModulation, HyenaFilter, PositionalEmbedding, Sin
from .long_conv import LongConv
from .monarch_mixer import BlockdiagLinear, MonarchMixerSequenceMixing

__all__ = [
    "BlockdiagLinear",
    "ExponentialModulation",
    "HyenaFilter",
    "HyenaOperator",
    "LongConv",
    "MonarchMixerSequenceMixing",
    "PositionalEmbedding",
    "Sin",
]
