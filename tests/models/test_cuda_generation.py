"""Cached generation on the GPU (bf16 weights, as served): the prefill runs the CUDA kernels, the
decoding steps (direct and tiled, the tiles' FFT convolutions through the kernels too) give the
full recompute's logits within bf16 tolerance, and left-padded batches equal each row alone.
(Run on a GPU; skipped elsewhere.)"""

import pytest
import torch

import longconv_models as lcm
from longconv_models.models import HyenaDNAConfig, HyenaDNAForCausalLM
from longconv_models.models.hyena.cache_hyena import HyenaCache

from helpers import emphasise_long_range

pytestmark = pytest.mark.cuda


def model_bf16(max_seq_len=8192):
    torch.manual_seed(0)
    config = HyenaDNAConfig(d_model=64, n_layer=2, max_seq_len=max_seq_len, emb_dim=5, filter_order=32,
                            activation_freq=10, embed_dropout=0.0)
    return emphasise_long_range(HyenaDNAForCausalLM(config)).cuda().to(torch.bfloat16).eval()


@pytest.mark.parametrize("prompt_len,block,cuda_graphs", [(7, 64, True), (1000, 64, True), (5000, 64, True),
                                                         (300, 4, True), (1000, 64, False)])
@torch.no_grad()
def test_cached_steps_match_the_full_recompute_in_bf16(prompt_len, block, cuda_graphs):
    model = model_bf16()
    B, new = 3, 24
    seq = torch.randint(7, 12, (B, prompt_len + new), device="cuda")
    cache = HyenaCache(model, block=block, cuda_graphs=cuda_graphs)
    with lcm.count_backends() as calls:
        model(seq[:, :prompt_len], cache=cache, use_cache=True)
    assert {b for (op, b, _) in calls if op in ("fftconv", "short_conv")} == {"cuda"}, calls
    steps = [model(seq[:, t: t + 1], cache=cache, use_cache=True).logits[:, 0] for t in range(prompt_len, prompt_len + new)]
    cached = torch.stack(steps, 1).float()[..., :12]
    full = model(seq).logits[:, prompt_len: prompt_len + new].float()[..., :12]
    scale = full.abs().max()
    assert (cached - full).abs().max() / scale < 3e-2, ((cached - full).abs().max(), scale)
    assert (cached.argmax(-1) == full.argmax(-1)).float().mean() > 0.9


@torch.no_grad()
def test_left_padded_generation_on_the_gpu():
    model = model_bf16(512)
    rows = [torch.randint(7, 12, (n,), device="cuda") for n in (40, 17)]
    ids = torch.full((2, 40), 4, device="cuda")
    mask = torch.zeros(2, 40, dtype=torch.long, device="cuda")
    for i, r in enumerate(rows):
        ids[i, 40 - len(r):], mask[i, 40 - len(r):] = r, 1
    batch = model.generate(ids, attention_mask=mask, max_new_tokens=10, do_sample=False, output_logits=True,
                           return_dict_in_generate=True)
    for i, r in enumerate(rows):
        alone = model.generate(r[None], max_new_tokens=10, do_sample=False, output_logits=True,
                               return_dict_in_generate=True)
        a, b = torch.stack(batch.logits, 1)[i, :, :12].float(), torch.stack(alone.logits, 1)[0, :, :12].float()
        assert (a - b).abs().max() / b.abs().max() < 3e-2


@torch.no_grad()
def test_graph_steps_equal_eager_steps_through_blocks_rollback_and_reorder():
    """The CUDA graph replays what the eager step computes, across block boundaries (the tiles run
    between replays), a roll-back and a beam reorder; it is recorded once for the cache's states."""
    model = model_bf16()
    B = 3
    seq = torch.randint(7, 12, (B, 200), device="cuda")
    graphed, eager = HyenaCache(model, block=8), HyenaCache(model, block=8, cuda_graphs=False)
    for cache in (graphed, eager):
        model(seq[:, :50], cache=cache, use_cache=True)

    def steps(cache, lo, hi):
        return torch.stack([model(seq[:, t: t + 1], cache=cache, use_cache=True).logits[:, 0] for t in range(lo, hi)],
                           1).float()

    def close(a, b):
        return (a - b).abs().max() <= 1e-3 * b.abs().max()

    assert close(steps(graphed, 50, 120), steps(eager, 50, 120))
    graph = graphed.graph
    assert graph is not None and eager.graph is None
    for cache in (graphed, eager):
        cache.crop(101)
        cache.reorder_cache(torch.tensor([2, 0, 1], device="cuda"))
    seq = seq[[2, 0, 1]]
    assert close(steps(graphed, 101, 160), steps(eager, 101, 160))
    assert graphed.graph is graph  # same buffers: no new recording
    full = model(seq[:, :160]).logits[:, 101:160].float()
    assert (steps(eager, 160, 161) is not None) and graphed.get_seq_length() == 160
    cached = steps(graphed, 160, 170)
    reference = model(seq[:, :170]).logits[:, 160:170].float()
    assert (cached - reference).abs().max() / reference.abs().max() < 3e-2
    assert full.shape[1] == 59


@torch.no_grad()
def test_generate_with_graphs_matches_without_cache_greedy_and_beams():
    """Greedy: every token the cached generate picks is the full recompute's argmax of that prefix
    within bf16 tolerance (a near-tie may flip one token, and the continuations then differ).
    Beams: the cached and the uncached search find sequences of the same score."""
    model = model_bf16(1024)
    ids = torch.randint(7, 12, (2, 100), device="cuda")
    cached = model.generate(ids, max_new_tokens=40, do_sample=False)
    logits = model(cached).logits[:, 99:-1, : model.config.vocab_size].float()  # the recompute, real tokens only
    new = cached[:, 100:]
    picked = logits.gather(-1, new[..., None])[..., 0]
    eos_id = model.generation_config.eos_token_id
    eos = torch.zeros_like(new) if eos_id is None else (new == eos_id).long()
    chosen = eos.cumsum(1) - eos == 0  # up to a row's end of sequence (padding follows it)
    assert chosen[:, 0].all()
    gap = (logits.max(-1).values - picked)[chosen]
    assert gap.max() <= 3e-2 * logits.abs().max(), gap.max()
    scores = [model.generate(ids, max_new_tokens=40, do_sample=False, num_beams=3, output_scores=True,
                             return_dict_in_generate=True, use_cache=use_cache).sequences_scores
              for use_cache in (True, False)]
    assert (scores[0] - scores[1]).abs().max() <= 3e-2 * scores[1].abs().max(), scores


@torch.no_grad()
def test_prefill_in_row_chunks_then_graph_steps(monkeypatch):
    from longconv_models.models.hyena import modeling_hyena

    model = model_bf16()
    seq = torch.randint(7, 12, (6, 560), device="cuda")
    results = []
    for chunk_tokens in (None, 2 * 500):  # one piece; 2 rows per chunk
        if chunk_tokens:
            monkeypatch.setattr(modeling_hyena, "PREFILL_CHUNK_TOKENS", chunk_tokens)
        cache = HyenaCache(model)
        model(seq[:, :500], cache=cache, use_cache=True)
        steps = [model(seq[:, t: t + 1], cache=cache, use_cache=True).logits[:, 0] for t in range(500, 560)]
        assert cache.graph is not None
        results.append(torch.stack(steps, 1).float())
    assert (results[0] - results[1]).abs().max() <= 1e-2 * results[0].abs().max()


@torch.no_grad()
@pytest.mark.parametrize("cuda_graphs", [True, False])
def test_fused_decoding_step_equals_the_plain_one(cuda_graphs):
    """HyenaCache's default on a GPU: each layer's step between its projections is one Triton
    kernel; the same logits as the plain step (fused_step=False), across block boundaries, and it ran."""
    model = model_bf16()
    seq = torch.randint(7, 12, (3, 300), device="cuda")
    plain, fused = HyenaCache(model, cuda_graphs=cuda_graphs, fused_step=False), HyenaCache(model, cuda_graphs=cuda_graphs)
    outs = []
    for cache in (plain, fused):
        model(seq[:, :170], cache=cache, use_cache=True)
        with lcm.count_backends() as calls:
            steps = [model(seq[:, t: t + 1], cache=cache, use_cache=True).logits[:, 0] for t in range(170, 300)]
        outs.append(torch.stack(steps, 1).float())
        if cache is fused:
            assert {b for (op, b, _) in calls if op == "hyena_decode_step"} == {"cuda"}, calls
    assert (outs[0] - outs[1]).abs().max() <= 1e-2 * outs[0].abs().max()
