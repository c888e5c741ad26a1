"""One token of a Hyena operator's decoding step between its projections (inference only)."""

from .op import hyena_decode_step
from .reference import block_conv_step_ref, hyena_decode_step_ref, ring_append

__all__ = ["block_conv_step_ref", "hyena_decode_step", "hyena_decode_step_ref", "ring_append"]
