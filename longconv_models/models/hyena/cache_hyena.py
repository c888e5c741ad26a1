"""The decoding cache of the Hyena language models: one :class:`~longconv_models.layers.hyena.HyenaState`
per layer (short-convolution inputs and the incremental long convolution), with the methods
``generate`` uses on a cache (length, roll-back for assisted decoding, beam reordering)."""

from __future__ import annotations

import torch

from ...layers.hyena import ROLLBACK_MAX, HyenaState


class HyenaCache:
    """Per-layer decoding states of a Hyena / HyenaDNA model. The states are built by the first
    forward pass that receives the cache (the prompt: its batch, device and dtype).

    ``block``: the long convolution's block of positions (``layers/incremental_conv.py``): each
    token costs O(d block) within its block, and every ``block`` tokens the completed block joins
    the tiled method. ``cuda_graphs``: on a GPU, one-token decoding steps replay a CUDA graph of
    the whole step (``decoding_graph.py``), recorded at the first step and replayed from the second.
    ``fused_step``: each layer's step between its projections as one Triton kernel
    (``kernels/hyena_decode.py``) instead of about fifteen small ones, where possible (a CUDA
    device with Triton; the plain step elsewhere, same buffers, same results)."""

    is_compileable = False
    is_croppable = True

    def __init__(self, model, block: int = 64, cuda_graphs: bool = True, fused_step: bool = True):
        if not isinstance(block, int) or isinstance(block, bool) or block < 1 or block & (block - 1):
            raise ValueError(f"block must be a positive power of two, got {block!r}")
        self.mixers = [layer.mixer for layer in model.hyena.backbone.layers]
        self.block = block
        self.cuda_graphs = cuda_graphs
        self.fused_step = fused_step
        self.layers: list[HyenaState] = []
        self.graph = None  # the DecodingGraph of the current states
        self._generation = 0

    def begin(self, batch: int, device, dtype) -> None:
        self.layers = [HyenaState(m, batch, device, dtype, self.block, self.fused_step) for m in self.mixers]
        self._generation += 1
        self.graph = None

    def join(self, parts: list["HyenaCache"]) -> None:
        """Take over the states of caches that each prefilled some of the rows (in row order),
        joined layer by layer (each part's tensors released as its layer is joined)."""
        self.layers = [HyenaState.concatenate([part.layers[i] for part in parts]) for i in range(len(self.mixers))]
        for part in parts:
            part.layers = []
        self._generation += 1
        self.graph = None

    def buffers_key(self) -> tuple:
        """Changes whenever a per-token buffer may have moved (a recorded graph is then stale)."""
        return (self._generation, *(layer.buffers_version for layer in self.layers))

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.layers[layer_idx].length if self.layers else 0

    @property
    def max_length(self) -> int:
        """The longest input the filters take (``extend_context`` raises it)."""
        return min(m.filter_fn.max_length for m in self.mixers)

    def get_max_cache_shape(self, layer_idx: int = 0):
        return None  # grows with the sequence

    def crop(self, max_length: int) -> None:
        """Keep the first ``max_length`` tokens (negative: drop that many from the end)."""
        n = self.get_seq_length() + max_length if max_length < 0 else max_length
        for layer in self.layers:
            layer.crop(n)

    def activate_past_recording(self, recurrent_states_to_keep: int | None = None, **kwargs) -> None:
        """Assisted decoding: the states roll back up to ``ROLLBACK_MAX`` tokens anyway."""
        if recurrent_states_to_keep is not None and recurrent_states_to_keep > ROLLBACK_MAX:
            raise ValueError(f"a HyenaCache rolls back at most {ROLLBACK_MAX} tokens, {recurrent_states_to_keep} asked")

    def get_recurrent_states_to_keep(self) -> int:
        return 0

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        for layer in self.layers:
            layer.select(beam_idx.to(layer.pre.device))

    batch_select_indices = reorder_cache

    def memory_bytes(self) -> int:
        return sum(layer.memory_bytes() for layer in self.layers)

    def __len__(self) -> int:
        return len(self.layers)
