"""A decoding step of a Hyena language model recorded as a CUDA graph.

One token per row goes through the embedding, every layer's projections, short convolution,
incremental long convolution (the within-block part, :meth:`IncrementalConv.step_on_device`),
MLP and norms, and the LM head: about a hundred small kernels whose launches, not their work,
set the eager step's time. The graph replays them as one launch against the cache's fixed
buffers; after each replay the host advances every layer's state (a completed block moves to the
long convolution's tiles, eagerly, outside the graph).

Recorded at a cache's first one-token decoding step, right after that step has run eagerly on
the recording stream (the warm-up), and replayed from the second step on; recorded again whenever
the cache's states or per-token buffers change (a new prompt, a batch of a different size). If recording fails, the cache decodes eagerly from then on (a
warning says why).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._common import upcast_logits


class DecodingGraph:
    """The recorded step of one cache: ``first_logits`` (the warm-up step's), then :meth:`replay`."""

    def __init__(self, model, cache, input_ids: Tensor):
        self.model, self.cache = model, cache
        self.key = cache.buffers_key()
        self.input_ids = input_ids.clone()
        self.graph = torch.cuda.CUDAGraph()
        self.error: str | None = None
        with torch.cuda.device(input_ids.device):  # (the model may sit on another GPU than the current one)
            self._record(input_ids)

    def _record(self, input_ids: Tensor) -> None:
        stream = torch.cuda.Stream(device=input_ids.device)
        stream.wait_stream(torch.cuda.current_stream(input_ids.device))
        with torch.cuda.stream(stream):
            self.first_logits = self._device_step(input_ids)  # the warm-up is a real step (states advance)
            for state in self.cache.layers:
                state.graph_recording = True
            try:
                with torch.cuda.graph(self.graph, stream=stream):
                    self.logits = self._device_step(self.input_ids)
            except Exception as exc:  # something in the step cannot be recorded: decode eagerly
                self.graph, self.error = None, f"{type(exc).__name__}: {exc}"
            finally:
                for state in self.cache.layers:
                    state.graph_recording = False
        torch.cuda.current_stream(input_ids.device).wait_stream(stream)

    def _device_step(self, input_ids: Tensor) -> Tensor:
        backbone = self.model.hyena.backbone
        embeds = backbone.embeddings.word_embeddings(input_ids)
        hidden, _ = backbone(None, embeds, False, None, self.cache)
        return upcast_logits(self.model.lm_head(hidden))

    def valid_for(self, cache, input_ids: Tensor) -> bool:
        return (self.graph is not None and cache is self.cache and cache.buffers_key() == self.key
                and input_ids.shape == self.input_ids.shape)

    def replay(self, input_ids: Tensor) -> Tensor:
        self.input_ids.copy_(input_ids)
        if torch.cuda.current_device() != self.input_ids.device.index:
            with torch.cuda.device(self.input_ids.device):
                self.graph.replay()
        else:
            self.graph.replay()
        for state in self.cache.layers:
            state.advance()
        return self.logits.clone()
