"""The short depthwise convolution op: ``op.py`` (the public function, autograd, the
``torch.library`` custom ops and their CUDA implementations) and ``reference.py``."""

from .op import KERNEL_DTYPES, MAX_KERNEL_WIDTH, kernel_unsupported_reason, pad_left_for, short_conv
from .reference import short_conv_bwd_ref, short_conv_ref

__all__ = ["KERNEL_DTYPES", "MAX_KERNEL_WIDTH", "kernel_unsupported_reason", "pad_left_for", "short_conv",
           "short_conv_bwd_ref", "short_conv_ref"]
