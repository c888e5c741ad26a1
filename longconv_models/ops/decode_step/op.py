"""The decoding step's route: the Triton kernel (``kernels/hyena_decode.py``: one launch instead
of about fifteen) where possible (an eager CUDA call, Triton importable) unless turned off, else the
reference. Both update the same buffers the same way, so a state may switch between them."""

from __future__ import annotations

from torch import Tensor

from .. import dispatch
from .reference import hyena_decode_step_ref

def hyena_decode_step(p: Tensor, ring: Tensor, short_weight: Tensor, short_bias: Tensor | None, window: Tensor,
                      window_acc: Tensor, toeplitz: Tensor, position: Tensor, fused: bool = True) -> Tensor:
    """See :func:`.reference.hyena_decode_step_ref`. ``fused``: take the Triton kernel where possible."""
    reason = None
    if not fused:
        reason = "turned off (HyenaCache(fused_step=False))"
    elif not dispatch.eager_cuda_call(p, ring, window, window_acc, toeplitz, position):
        reason = "not an eager CUDA call" if p.is_cuda else f"device {p.device.type}"
    elif dispatch.triton_kernels("hyena_decode") is None:
        reason = dispatch.triton_error("hyena_decode")
    if reason is not None:
        dispatch.record("hyena_decode_step", "reference", reason)
        return hyena_decode_step_ref(p, ring, short_weight, short_bias, window, window_acc, toeplitz, position)
    dispatch.record("hyena_decode_step", "cuda")
    out = dispatch.triton_kernels("hyena_decode").hyena_decode(p.contiguous(), ring, short_weight, short_bias, window, window_acc, toeplitz,
                                  position)
    position.add_(1)
    return out
