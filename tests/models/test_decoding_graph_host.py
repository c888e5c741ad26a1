"""The host side of the CUDA-graph decoding step (models/hyena/decoding_graph.py), on the CPU with
torch.cuda's graph API stood in for: recording runs the step once without effect (the state is
restored, as a capture executes nothing), a replay runs it again into the recorded output and then
advances the states. The replayed steps must equal eager steps across block boundaries, and the
recording must be reused until the cache's buffers change. (The real capture: test_cuda_generation.)"""

import contextlib

import torch

from longconv_models.models import HyenaDNAConfig, HyenaDNAForCausalLM
from longconv_models.models.hyena import decoding_graph
from longconv_models.models.hyena.cache_hyena import HyenaCache

from helpers import emphasise_long_range


class FakeGraph:
    """A replay runs the recorded step's kernels only: no host code (the states' advance) in it."""

    owner = None

    def replay(self):
        layers = self.owner.cache.layers
        for layer in layers:
            layer.graph_recording = True
        try:
            self.owner.logits.copy_(self.owner._device_step(self.owner.input_ids))
        finally:
            for layer in layers:
                layer.graph_recording = False


def state_tensors(cache):
    for layer in cache.layers:
        yield from (layer.pre, layer.conv.window, layer.conv.window_acc, layer.conv.position)


@contextlib.contextmanager
def fake_capture(graph, stream=None):
    """Runs the recorded block (so that its outputs exist) and undoes its effect on the states."""
    owner = FakeGraph.owner
    saved = [t.clone() for t in state_tensors(owner.cache)]
    graph.owner = owner
    yield
    for t, s in zip(state_tensors(owner.cache), saved):
        t.copy_(s)


def patch_cuda(monkeypatch):
    class Stream:
        def __init__(self, device=None):
            pass

        def wait_stream(self, other):
            pass

    monkeypatch.setattr(torch.cuda, "CUDAGraph", FakeGraph)
    monkeypatch.setattr(torch.cuda, "graph", fake_capture)
    monkeypatch.setattr(torch.cuda, "Stream", Stream)
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: Stream())
    monkeypatch.setattr(torch.cuda, "device", lambda d: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "current_device", lambda: None)
    original_init = decoding_graph.DecodingGraph.__init__

    def init(self, *args, **kwargs):
        FakeGraph.owner = self
        original_init(self, *args, **kwargs)

    monkeypatch.setattr(decoding_graph.DecodingGraph, "__init__", init)


@torch.no_grad()
def test_replayed_steps_equal_eager_steps(monkeypatch):
    patch_cuda(monkeypatch)
    torch.manual_seed(0)
    model = emphasise_long_range(HyenaDNAForCausalLM(HyenaDNAConfig(
        d_model=16, n_layer=2, max_seq_len=512, emb_dim=5, filter_order=8, embed_dropout=0.0)).eval())
    seq = torch.randint(7, 12, (2, 120))
    graphed, eager = HyenaCache(model, block=8), HyenaCache(model, block=8, cuda_graphs=False)
    for cache in (graphed, eager):
        model(seq[:, :30], cache=cache, use_cache=True)
    graph = None
    for t in range(30, 100):  # crosses block boundaries: tiles run between replays
        token = seq[:, t: t + 1]
        if graph is None:
            graph = decoding_graph.DecodingGraph(model, graphed, token)
            a = graph.first_logits
        else:
            assert graph.valid_for(graphed, token)
            a = graph.replay(token)
        b = model(token, cache=eager, use_cache=True).logits
        assert torch.allclose(a, b, atol=1e-5), t
    assert graphed.get_seq_length() == eager.get_seq_length() == 100
    graphed.crop(90)  # same buffers: the recording stays valid
    graphed.reorder_cache(torch.tensor([1, 0]))
    assert graph.valid_for(graphed, seq[:, :1])
    graphed.reorder_cache(torch.tensor([1]))  # another batch size: a new recording is needed
    assert not graph.valid_for(graphed, seq[:1, :1])
