"""The Hyena implicit long filter: an MLP with sine activations over positional features,
times an exponential decay.

Poli et al., "Hyena Hierarchy: Towards Larger Convolutional Language Models" (ICML 2023); the same
module generates the long filters of HyenaDNA (Nguyen et al., NeurIPS 2023) and M2-BERT (Fu et
al., "Monarch Mixer", NeurIPS 2023). Parameter names follow the published checkpoints
(``pos_emb.z``, ``implicit_filter.{0,1,2,4,6}``, ``modulation.deltas``, ``bias``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..ops.sparse import frequency_sparse, kept_bins
from .projections import is_plain


class PositionalEmbedding(nn.Module):
    """z = [t, cos(f w), -sin(f w)] for L_max positions, with t in [0, 1], w = 2 pi n / L_max and
    (emb_dim - 1) // 2 frequencies f evenly spaced on [1e-4, bands - 1]."""

    def __init__(self, emb_dim: int, max_seq_len: int, trainable: bool = False):
        super().__init__()
        # computed in float64 and stored in fp32 whatever the default dtype (``from_pretrained(dtype=
        # torch.float16)`` builds the model under it; complex half precision has no exp on the CPU)
        f64 = torch.float64
        t = torch.linspace(0, 1, max_seq_len, dtype=f64)[None, :, None]
        bands = (emb_dim - 1) // 2
        w = 2 * math.pi * torch.linspace(0, max_seq_len - 1, max_seq_len, dtype=f64)[None, :, None] / max_seq_len
        f = torch.linspace(1e-4, bands - 1, bands, dtype=f64)[None, None]
        z = torch.cat([t, torch.cos(f * w), -torch.sin(f * w)], dim=-1).float()  # [t, Re, Im] of exp(-i f w)
        t = t.float()
        if trainable:  # a parameter takes the model's dtype (the default dtype while it is built)
            self.z = nn.Parameter(z.to(torch.get_default_dtype()))
        else:
            self.register_buffer("z", z)
        self.register_buffer("t", t)

    def forward(self, L: int) -> tuple[Tensor, Tensor]:
        return self.z[:, :L], self.t[:, :L]


class Sin(nn.Module):
    """sin(freq * w_mod * x) with a (trainable) per-channel frequency."""

    def __init__(self, dim: int, w: float = 10.0, w_mod: float = 1.0, train_freq: bool = True):
        super().__init__()
        freq = w * torch.ones(1, dim)
        if train_freq:
            self.freq = nn.Parameter(freq)
        else:
            self.register_buffer("freq", freq)
        self.w_mod = w_mod

    def forward(self, x: Tensor) -> Tensor:
        return torch.sin(self.w_mod * self.freq * x)


class ExponentialModulation(nn.Module):
    """h <- h * (exp(-t |delta_d|) + shift), decay rates spread over channels."""

    def __init__(self, d_model: int, fast_decay_pct=0.3, slow_decay_pct=1.5, target=1e-2, modulate=True, shift=0.0):
        super().__init__()
        self.modulate, self.shift = modulate, shift
        max_decay = math.log(target) / fast_decay_pct
        min_decay = math.log(target) / slow_decay_pct
        self.register_buffer("deltas", torch.linspace(min_decay, max_decay, d_model, dtype=torch.float32)[None, None])

    def forward(self, t: Tensor, x: Tensor, channels_first: bool = False) -> Tensor:
        """x (1, L, d), or (d, L) with ``channels_first``; t (1, L, 1) positions in [0, 1]."""
        if not self.modulate:
            return x
        rates = self.deltas.abs()
        if channels_first:
            t, rates = t.reshape(1, -1), rates.reshape(-1, 1)
        return x * (torch.exp(-t * rates) + self.shift)


class ImplicitFilterMLP(nn.Module):
    """Linear -> Sin -> (Linear -> Sin) x n -> Linear(no bias), with one Sin module shared by every
    activation (as in the original code). Submodules sit at the indices of the original
    ``nn.Sequential`` (0, 2, 4, 6 linears; the shared Sin at 1) so published weights load
    unchanged; the duplicate names of the shared frequency (3, 5) are folded in on load."""

    def __init__(self, emb_dim: int, width: int, d_out: int, act: Sin, num_inner: int = 2):
        super().__init__()
        self.num_inner = num_inner
        self.add_module("0", nn.Linear(emb_dim, width))
        self.add_module("1", act)
        for i in range(num_inner):
            self.add_module(str(2 + 2 * i), nn.Linear(width, width))
        self.add_module(str(2 + 2 * num_inner), nn.Linear(width, d_out, bias=False))

    def forward(self, z: Tensor, act: Sin | None = None, channels_first: bool = False) -> Tensor:
        """z (1, L, emb_dim) -> (1, L, d_out), or (d_out, L) contiguous with ``channels_first`` (the
        last GEMM writes the layout the convolution reads: no transpose copy of the filter)."""
        act = act or getattr(self, "1")
        first = getattr(self, "0")
        h = act(first(z.to(first.weight.dtype)))  # z is an fp32 buffer in a bf16 / fp16 model too
        for i in range(self.num_inner):
            h = act(getattr(self, str(2 + 2 * i))(h))
        last = getattr(self, str(2 + 2 * self.num_inner))
        if not channels_first:
            return last(h)
        if not is_plain(last, nn.Linear):  # an adapter (LoRA) on the last layer: called, not read
            return last(h)[0].transpose(0, 1).contiguous()
        return torch.mm(last.weight, h[0].transpose(0, 1))


class HyenaFilter(nn.Module):
    """Implicit long filter of a Hyena / M2 layer: ``forward(L)`` returns ``(k, bias)`` with k of
    shape (d_model, L) (and k_rev too when ``bidirectional``) and the per-channel skip ``bias``."""

    def __init__(
        self,
        d_model: int,
        emb_dim: int = 3,
        filter_order: int = 16,
        max_seq_len: int = 1024,
        w: float = 1.0,
        w_mod: float = 1.0,
        num_inner_mlps: int = 2,
        train_freq: bool = True,
        train_pos_emb: bool = False,
        modulate: bool = True,
        shift: float = 0.0,
        bidirectional: bool = False,
        use_bias: bool = True,
    ):
        super().__init__()
        if emb_dim < 3 or emb_dim % 2 == 0:
            raise ValueError(f"emb_dim must be odd and >= 3, got {emb_dim}")
        self.d_model, self.max_seq_len, self.bidirectional = d_model, max_seq_len, bidirectional
        # context extension (partial convolution): longest input, and number of filter taps used
        self.max_length, self.filter_length = max_seq_len, max_seq_len
        self.frequency_keep = 1.0  # frequency-sparse convolution: fraction of rfft bins kept
        self.pos_emb = PositionalEmbedding(emb_dim, max_seq_len, trainable=train_pos_emb)
        act = Sin(filter_order, w, w_mod, train_freq)
        self.implicit_filter = ImplicitFilterMLP(emb_dim, filter_order, d_model, act, num_inner_mlps)
        if bidirectional:
            # the reverse MLP shares the forward MLP's Sin module (and so its frequency)
            self.implicit_filter_rev = ImplicitFilterMLP(emb_dim, filter_order, d_model, act, num_inner_mlps)
            del self.implicit_filter_rev._modules["1"]
        self.modulation = ExponentialModulation(d_model, modulate=modulate, shift=shift)
        self.bias = nn.Parameter(torch.randn(d_model)) if use_bias else None
        self._register_load_state_dict_pre_hook(self._fold_shared_freq)

    def _fold_shared_freq(self, state_dict, prefix, *args, **kwargs):
        """Published checkpoints store the shared Sin frequency under several names (any subset
        of implicit_filter{,_rev}.{1,3,5}.freq). Keep one as implicit_filter.1.freq."""
        names = [f"{prefix}implicit_filter{rev}.{i}.freq" for rev in ("", "_rev") for i in (1, 3, 5)]
        present = [n for n in names if n in state_dict]
        if not present:
            return
        value = state_dict[present[0]]
        for n in present[1:]:
            if not torch.equal(state_dict[n], value):
                raise ValueError(f"{n} differs from {present[0]}: the shared Sin frequency must be equal")
        for n in present:
            del state_dict[n]
        state_dict[f"{prefix}implicit_filter.1.freq"] = value

    def extend_context(self, max_length: int, filter_length: int | None = None) -> None:
        """Accept inputs up to ``max_length`` (> the training length) with a partial convolution:
        the filter keeps its first ``filter_length`` taps (default and maximum: the trained
        length ``max_seq_len``), so positions beyond the training length see a window of that size.
        """
        filter_length = self.max_seq_len if filter_length is None else filter_length
        if not 1 <= filter_length <= self.max_seq_len:
            raise ValueError(f"filter_length must be in [1, {self.max_seq_len}], got {filter_length}")
        if max_length < 1:
            raise ValueError(f"max_length must be positive, got {max_length}")
        self.max_length, self.filter_length = max_length, filter_length

    def sparsify_frequencies(self, keep: float) -> None:
        """Frequency-sparse convolution: keep the lowest ``keep`` fraction of the filter's rfft
        bins (1.0: dense). The D term stays exact, so the kernels compute the dense product (see
        :func:`longconv_models.ops.frequency_sparse`)."""
        kept_bins(2, keep)  # validates keep
        self.frequency_keep = float(keep)

    def conv_args(self, L: int) -> dict:
        """Keyword arguments of :func:`~longconv_models.ops.fftconv` for this filter at length L:
        ``k`` (taps, or a frequency-sparse :class:`FilterSpectrum`), ``k_rev`` and ``bias``."""
        k, k_rev, bias = self(L)
        if self.frequency_keep < 1.0:
            return {"k": frequency_sparse(k, self.frequency_keep, L, k_rev=k_rev, bias=bias)}
        return {"k": k, "k_rev": k_rev, "bias": bias}

    @property
    def causal_taps_length(self) -> int:
        """How many leading causal taps can be nonzero (:meth:`causal_taps` pads with zeros)."""
        return min(self.filter_length, self.max_length)

    def causal_taps(self, L: int) -> Tensor:
        """The first L causal taps (d_model, L), zeros past the filter's taps, also past
        ``max_length``: the partial-convolution rule of :meth:`extend_context` (incremental
        decoding beyond the trained length continues with it)."""
        n = min(L, self.filter_length)
        k = self.filter(min(n, self.max_length))[0]
        return k if k.shape[1] == L else torch.nn.functional.pad(k, (0, L - k.shape[1]))

    def filter(self, L: int) -> tuple[Tensor, Tensor | None]:
        """Filter taps for a sequence of length L: (k, k_rev), each (d_model, min(L, filter_length))."""
        if L > self.max_length:
            raise ValueError(
                f"sequence length {L} exceeds the filter's maximum length {self.max_length}; "
                "extend it with extend_context(max_length) (partial convolution)"
            )
        # Unextended, the check above already bounds L by filter_length: no min(), which keeps a
        # symbolic L (torch.export with a dynamic length) free of Min guards.
        z, t = self.pos_emb(L if self.max_length <= self.filter_length else min(L, self.filter_length))
        act = getattr(self.implicit_filter, "1")
        k = self.modulation(t, self.implicit_filter(z, act, channels_first=True), channels_first=True)  # (d_model, L)
        k_rev = None
        if self.bidirectional:
            k_rev = self.modulation(t, self.implicit_filter_rev(z, act, channels_first=True), channels_first=True)
        return k, k_rev

    def forward(self, L: int) -> tuple[Tensor, Tensor | None, Tensor | None]:
        k, k_rev = self.filter(L)
        return k, k_rev, self.bias


@torch.no_grad()
def init_filter_module(module: nn.Module, sin_freq: float) -> bool:
    """(Re)initialise a filter submodule in place: the deterministic constants (z, t, decay
    rates) get their defined values, Sin frequencies ``sin_freq``, the skip term N(0, 1).
    For ``PreTrainedModel._init_weights`` (tensors missing from a checkpoint). Returns whether
    ``module`` was a filter submodule."""
    if isinstance(module, PositionalEmbedding):
        fresh = PositionalEmbedding(module.z.shape[-1], module.z.shape[1])
        module.z.copy_(fresh.z)
        module.t.copy_(fresh.t)
    elif isinstance(module, ExponentialModulation):
        module.deltas.copy_(ExponentialModulation(module.deltas.shape[-1]).deltas)
    elif isinstance(module, Sin):
        module.freq.fill_(sin_freq)
    elif isinstance(module, HyenaFilter):
        if module.bias is not None:
            nn.init.normal_(module.bias)
    else:
        return False
    return True
