"""Input projection + short convolution of the gated long-conv operators (Hyena, Monarch Mixer),
producing the channel groups in the layout the convolution kernels read.

``nn.Linear`` on (B, L, d) activations gives (B, L, 3d); the kernels want (B, d, L) rows, so the
straightforward version transposes (a full copy) and the three groups, slices of one (B, 3d, L)
tensor, are copied again to be contiguous. Here each group's GEMM writes its (B, d, L) output
directly (W_g @ x^T, the transposed operand read in place by the batched GEMM), so no layout copy
is made. Same parameters, same result up to fp rounding.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..ops import short_conv


def project_channels_first(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``linear(x).transpose(1, 2)`` for x (B, L, d_in), as a contiguous (B, d_out, L) tensor.

    An explicit bmm with the weight broadcast over the batch (stride 0): ``torch.matmul`` may fold
    a 2-D @ 3-D product into x @ W^T and return its transpose, which is not contiguous."""
    y = torch.bmm(weight.expand(x.shape[0], -1, -1), x.transpose(1, 2))
    return y if bias is None else y + bias[:, None]


def projected_groups(x: Tensor, linear: nn.Linear, short_filter: nn.Conv1d, groups: int) -> list[Tensor]:
    """``short_conv(linear(x))`` (causal) split into ``groups`` equal channel groups, each a
    contiguous (B, d_out / groups, L) tensor."""
    d = linear.out_features // groups
    out = []
    for g in range(groups):
        rows = slice(g * d, (g + 1) * d)
        p = project_channels_first(x, linear.weight[rows], None if linear.bias is None else linear.bias[rows])
        bias = None if short_filter.bias is None else short_filter.bias[rows]
        out.append(short_conv(p, short_filter.weight[rows], bias, padding="causal"))
    return out
