"""The decoding step's reference: plain PyTorch on the state's fixed buffers (every shape and
address the same at every step, the block position read on the device), so that a CUDA graph
can record it too."""

from __future__ import annotations

import torch
from torch import Tensor


def ring_append(ring: Tensor, values: Tensor) -> None:
    """``ring`` (B, C, K) keeps the last K inputs, newest last: append ``values`` (B, C, T) in place."""
    K, T = ring.shape[2], values.shape[2]
    if T >= K:
        ring.copy_(values[:, :, -K:])
    else:
        ring.copy_(torch.cat([ring[:, :, T:], values.to(ring.dtype)], dim=2))


def block_conv_step_ref(u: Tensor, window: Tensor, window_acc: Tensor, toeplitz: Tensor, position: Tensor) -> Tensor:
    """The long convolution's output for one input u (B, d), fp32: u joins the current block's
    inputs ``window`` (B, d, block) at ``position``; y = the block's inputs against row
    ``position`` of ``toeplitz`` (d, block, block) plus what the earlier blocks contribute
    (``window_acc`` at ``position``). The position is not advanced."""
    window.index_copy_(2, position, u.float()[:, :, None])
    row = toeplitz.index_select(1, position)[:, 0]  # (d, block): h[p - j] (+ D at j = p)
    return torch.einsum("bdj,dj->bd", window, row) + window_acc.index_select(2, position)[:, :, 0]


def hyena_decode_step_ref(p: Tensor, ring: Tensor, short_weight: Tensor, short_bias: Tensor | None,
                          window: Tensor, window_acc: Tensor, toeplitz: Tensor, position: Tensor) -> Tensor:
    """p (B, 3d), the new token's in_proj output -> (B, d) in p's dtype: the short convolution
    over ``ring`` (B, 3d, K: the last in_proj outputs, newest last; shifted by one, p written
    last), the gates x0, x1 and value v, and the long convolution of x1 * v (see
    :func:`block_conv_step_ref`), times x0. Advances ``position``."""
    ring_append(ring, p[:, :, None])
    window_inputs = ring[:, :, -short_weight.shape[1]:]
    s = (window_inputs.float() * short_weight).sum(-1)
    if short_bias is not None:
        s = s + short_bias
    x0, x1, v = s.chunk(3, dim=-1)
    y = block_conv_step_ref(x1 * v, window, window_acc, toeplitz, position) * x0
    position.add_(1)
    return y.to(p.dtype)
