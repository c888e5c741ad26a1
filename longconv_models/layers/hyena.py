"""The Hyena operator (order 2): projections, a causal short convolution, and an implicitly
parameterised long convolution with multiplicative gating.

Poli et al., "Hyena Hierarchy: Towards Larger Convolutional Language Models" (ICML 2023). Module
names (in_proj, short_filter, filter_fn, out_proj) follow the safari / HyenaDNA checkpoints.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from ..ops import fftconv
from ..ops.decode_step import hyena_decode_step, ring_append
from .hyena_filter import HyenaFilter
from .incremental_conv import ROLLBACK_INPUTS, IncrementalConv
from .projections import linear_from_channels_first, masked_projected_groups, projected_groups

ROLLBACK_MAX = ROLLBACK_INPUTS  # tokens a decoding state can roll back (assisted decoding rejects fewer)


class HyenaState:
    """What one Hyena operator needs to decode token by token after a prefix: the last inputs
    of the short convolution (``ROLLBACK_MAX`` more than its width, to roll back) and the long
    convolution's state (:class:`IncrementalConv`). The per-token buffers keep their addresses
    (a CUDA graph of the decoding step replays against them)."""

    def __init__(self, op: "HyenaOperator", batch: int, device, dtype, block: int = 64, fused_step: bool = True):
        self.width = op.short_filter.kernel_size[0]
        # the last in_proj outputs, newest last; zeros before the first input
        self.pre = torch.zeros(batch, op.in_proj.out_features, ROLLBACK_MAX + self.width, device=device, dtype=dtype)
        self.conv = IncrementalConv(op.filter_fn.causal_taps, op.filter_fn.bias, batch, op.d_model, device, dtype,
                                    block, taps_length=op.filter_fn.causal_taps_length)
        self.graph_recording = False  # set while a CUDA graph of the decoding step is recorded
        self.fused_step = fused_step  # the decoding step's Triton kernel (ops/decode_step)
        # the short filter in fp32 (a copy for half-precision weights: one conversion per state, not per token)
        self.short_weight = op.short_filter.weight.detach()[:, 0, :].float()
        bias = op.short_filter.bias
        self.short_bias = None if bias is None else bias.detach().float()

    @property
    def length(self) -> int:
        return self.conv.n

    @property
    def buffers_version(self) -> int:
        return self.conv.buffers_version

    def advance(self) -> None:
        """The host side of a decoding step (see :meth:`IncrementalConv.advance`)."""
        self.conv.advance()

    def keep_pre(self, pre: Tensor) -> None:
        """Append in_proj outputs (B, 3d, T) to the ring of the last ones (in place)."""
        ring_append(self.pre, pre)

    def crop(self, n: int) -> None:
        back = self.length - n
        if back > self.pre.shape[2] - (self.width - 1) and n > 0:  # the window before n would be lost
            raise ValueError(f"cannot roll a decoding state back by {back} tokens (at most {ROLLBACK_MAX})")
        if back >= self.pre.shape[2] or n == 0:
            self.pre.zero_()
        elif back > 0:  # the inputs before the last `back` move to the end, zeros before them
            self.pre.copy_(torch.cat([torch.zeros_like(self.pre[:, :, :back]), self.pre[:, :, :-back]], dim=2))
        self.conv.crop(n)

    @classmethod
    def concatenate(cls, states: list["HyenaState"]) -> "HyenaState":
        """One state over the rows of several (a prefill run in row chunks)."""
        merged = copy.copy(states[0])
        merged.pre = torch.cat([s.pre for s in states])
        merged.conv = IncrementalConv.concatenate([s.conv for s in states])
        return merged

    def select(self, index: Tensor) -> None:
        if index.numel() == self.pre.shape[0]:
            self.pre.copy_(self.pre.index_select(0, index))
        else:
            self.pre = self.pre.index_select(0, index)
        self.conv.select(index)

    def memory_bytes(self) -> int:
        return self.pre.numel() * self.pre.element_size() + self.conv.memory_bytes()


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
        max_seq_len: int,
        hyena_order: int = 2,
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
        if hyena_order != 2:
            raise NotImplementedError("only order-2 Hyena (the published models) is implemented")
        self.d_model = d_model
        inner = d_model * (hyena_order + 1)
        self.in_proj = nn.Linear(d_model, inner)
        self.out_proj = nn.Linear(d_model, d_model)
        self.short_filter = nn.Conv1d(inner, inner, short_filter_order, groups=inner, padding=short_filter_order - 1)
        self.filter_fn = HyenaFilter(
            d_model * (hyena_order - 1), emb_dim=emb_dim, filter_order=filter_order, max_seq_len=max_seq_len,
            w=activation_freq,
            num_inner_mlps=num_inner_mlps, train_freq=train_freq, train_pos_emb=train_pos_emb,
            modulate=modulate, shift=modulation_shift, use_bias=use_bias,
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, attention_mask: Tensor | None = None, state: HyenaState | None = None) -> Tensor:
        """x (B, L, d). ``attention_mask`` (B, L), 0 at padding: padded positions contribute
        nothing to either convolution, so a left-padded row gives the outputs of the row alone.
        ``state``: empty -> the prefix is processed as usual and recorded; holding a prefix ->
        x holds the next tokens, decoded one at a time."""
        if state is not None and state.length > 0:
            outputs = []
            for i in range(x.shape[1]):
                outputs.append(self.step(x[:, i], state))
                if not state.graph_recording:  # (a CUDA graph's runner advances after each replay)
                    state.advance()
            return torch.stack(outputs, dim=1)
        L = x.shape[1]
        if attention_mask is None and state is None:
            x0, x1, v = projected_groups(x, self.in_proj, self.short_filter, 3)  # each (B, d, L)
        else:
            x0, x1, v = self._masked_groups(x, attention_mask, state)
        y = fftconv(v, **self.filter_fn.conv_args(L), pre_gate=x1, post_gate=x0)  # (B, d, L)
        return linear_from_channels_first(self.dropout(y), self.out_proj)  # (B, L, d), y read in place

    def _masked_groups(self, x: Tensor, mask: Tensor | None, state: HyenaState | None):
        """The gated groups with the padding zeroed before the short convolution (its inputs) and
        before the long one (its value); with a ``state``, the prefix is recorded in it."""
        (x0, x1, v), pre = masked_projected_groups(x, self.in_proj, self.short_filter, 3, mask)
        if mask is not None:
            v = v * mask[:, None, :].to(v.dtype)
        if state is not None:
            state.keep_pre(torch.cat([p[:, :, -(ROLLBACK_MAX + state.width):] for p in pre], dim=1))
            state.conv.append(x1 * v)
        return x0, x1, v

    def step(self, x: Tensor, state: HyenaState) -> Tensor:
        """One token x (B, d) after the prefix in ``state`` -> (B, d), O(d^2 + d block) on fixed
        buffers; the state's host side (:meth:`HyenaState.advance`) follows."""
        p = self.in_proj(x)  # (B, 3d)
        conv = state.conv
        y = hyena_decode_step(p, state.pre, state.short_weight, state.short_bias, conv.window, conv.window_acc,
                              conv.toeplitz, conv.position, fused=state.fused_step)
        return self.out_proj(self.dropout(y))
