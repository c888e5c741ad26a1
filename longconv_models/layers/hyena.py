"""The Hyena operator (order 2): projections, a causal short convolution, and an implicitly
parameterised long convolution with multiplicative gating.

Poli et al., "Hyena Hierarchy: Towards Larger Convolutional Language Models" (ICML 2023). Module
names (in_proj, short_filter, filter_fn, out_proj) follow the safari / HyenaDNA checkpoints.
"""

from __future__ import annotations

from torch import Tensor, nn

from ..ops import fftconv
from .hyena_filter import HyenaFilter
from .projections import linear_from_channels_first, projected_groups


class HyenaOperator(nn.Module):
    """x (B, L, d) -> y (B, L, d):

        p = short_conv(in_proj(x))            3 channel groups: post gate x0, pre gate x1, value v
        y = out_proj(x0 * (k * (x1 * v) + D * (x1 * v)))

    with k = filter_fn(L) the long causal filter and D its bias; the long convolution, both gates
    and D run as one fused ``fftconv`` call.
    """

    def __init__(
        self,
        d_model: int,
        l_max: int,
        order: int = 2,
        filter_order: int = 64,
        emb_dim: int = 3,
        short_filter_order: int = 3,
        activation_freq: float = 1.0,
        num_inner_mlps: int = 2,
        train_freq: bool = True,
        train_pos_emb: bool = False,
        modulate: bool = True,
        modulation_shift: float = 0.0,
        use_bias: bool = True,
        dropout: float = 0.0,
    ):
        super().__init__()
        if order != 2:
            raise NotImplementedError("only order-2 Hyena (the published models) is implemented")
        self.d_model, self.l_max = d_model, l_max
        inner = d_model * (order + 1)
        self.in_proj = nn.Linear(d_model, inner)
        self.out_proj = nn.Linear(d_model, d_model)
        self.short_filter = nn.Conv1d(inner, inner, short_filter_order, groups=inner, padding=short_filter_order - 1)
        self.filter_fn = HyenaFilter(
            d_model * (order - 1), emb_dim=emb_dim, order=filter_order, seq_len=l_max, w=activation_freq,
            num_inner_mlps=num_inner_mlps, train_freq=train_freq, train_pos_emb=train_pos_emb,
            modulate=modulate, shift=modulation_shift, use_bias=use_bias,
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        L = x.shape[1]
        x0, x1, v = projected_groups(x, self.in_proj, self.short_filter, 3)  # each (B, d, L)
        y = fftconv(v, **self.filter_fn.conv_args(L), pre_gate=x1, post_gate=x0)  # (B, d, L)
        return linear_from_channels_first(self.dropout(y), self.out_proj)  # (B, L, d), y read in place
