"""Cached generation (CPU, fp32): the incremental long convolution (direct and tiled) against the
direct float64 sum; greedy tokens and logits with the cache equal those without it at several
prompt lengths; left-padded batches equal each row alone; assisted decoding rolls back; beam
search reorders; decoding continues past the trained length with the partial-convolution rule."""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.testing_utils import CaptureLogger
from transformers.utils import logging

import longconv_models as lcm
from longconv_models.layers.incremental_conv import IncrementalConv
from longconv_models.models import HyenaDNAConfig, HyenaDNAForCausalLM
from longconv_models.models.hyena import modeling_hyena
from longconv_models.models.hyena.cache_hyena import HyenaCache

from helpers import emphasise_long_range


def direct(u, h, bias):
    """float64 y[t] = sum_{s<=t} h[t-s] u[s] + bias u[t]."""
    u, h = u.double(), h.double()
    L = u.shape[-1]
    y = torch.stack([(u[..., : t + 1] * h[:, : t + 1].flip(-1)).sum(-1) for t in range(L)], -1)
    return y + bias.double()[:, None] * u


def zero_padded(h):
    """taps(n) of a filter h: its first n taps, zeros past its length."""
    return lambda n: torch.nn.functional.pad(h, (0, max(0, n - h.shape[1])))[:, :n]


@pytest.mark.parametrize("block,prefix", [(64, 0), (1, 0), (1, 37), (8, 7), (16, 100), (4, 300), (64, 129)])
def test_incremental_conv_matches_the_direct_sum(block, prefix):
    torch.manual_seed(0)
    B, D, L = 3, 5, 400  # tiles up to 256 inputs: the FFT tile path too
    h, bias, u = torch.randn(D, 512), torch.randn(D), torch.randn(B, D, L)
    ref = direct(u, h, bias)
    conv = IncrementalConv(zero_padded(h), bias, B, D, "cpu", torch.float32, block=block)
    conv.append(u[:, :, :prefix])
    y = torch.stack([conv.step(u[:, :, t]) for t in range(prefix, L)], -1)
    assert torch.allclose(y.double(), ref[:, :, prefix:], rtol=1e-5, atol=1e-4)
    for back_to in (prefix + 11, L - 3, prefix + 70):  # roll back (within the block and across), then again
        conv.crop(back_to)
        y = torch.stack([conv.step(u[:, :, t]) for t in range(back_to, L)], -1)
        assert torch.allclose(y.double(), ref[:, :, back_to:], rtol=1e-5, atol=1e-4)


def test_incremental_conv_with_fewer_taps_than_the_sequence():
    """A filter shorter than the sequence (taps_length: extend_context's partial convolution):
    the tiles read only the nonzero taps."""
    torch.manual_seed(1)
    B, D, L, taps = 2, 3, 700, 100
    h = torch.randn(D, taps)
    u, bias = torch.randn(B, D, L), torch.randn(D)
    ref = direct(u, zero_padded(h)(L), bias)
    conv = IncrementalConv(zero_padded(h), bias, B, D, "cpu", torch.float32, block=16, taps_length=taps)
    conv.append(u[:, :, :300])
    y = torch.stack([conv.step(u[:, :, t]) for t in range(300, L)], -1)
    assert torch.allclose(y.double(), ref[:, :, 300:], rtol=1e-5, atol=1e-4)
    assert conv.h.shape[1] <= 2 * 64  # never more taps than the filter has (or the Toeplitz floor)


@pytest.mark.parametrize("prefix", [0, 37, 1008, 2047, 2500])  # 1008 = 63 blocks: a rebuild of 6 tiles
def test_incremental_conv_state_is_bounded_by_the_filter_not_the_prefix(prefix):
    """With F nonzero taps an input reaches F - 1 positions: the tiles read their last F inputs
    and write their first F targets, older inputs are dropped, so the stored inputs and the
    accumulator stay O(F) over a 3000-input sequence; exact throughout and after a roll-back of 64;
    a deeper roll-back is a clear error."""
    torch.manual_seed(2)
    B, D, L, taps, block = 2, 3, 3000, 100, 16
    h, u, bias = torch.randn(D, taps), torch.randn(B, D, L), torch.randn(D)
    ref = direct(u, zero_padded(h)(L), bias)
    conv = IncrementalConv(zero_padded(h), bias, B, D, "cpu", torch.float32, block=block, taps_length=taps)
    conv.append(u[:, :, :prefix])
    ys, stored = [], []
    for t in range(prefix, L):
        ys.append(conv.step(u[:, :, t]))
        stored.append(max(conv.u.shape[2], conv.acc.shape[2]))
    assert torch.allclose(torch.stack(ys, -1).double(), ref[:, :, prefix:], rtol=1e-5, atol=1e-4)
    assert max(stored[200:]) < 6 * taps and conv.u_base > L - 6 * taps  # (not the 3000 inputs)
    conv.crop(L - 64)
    y = torch.stack([conv.step(u[:, :, t]) for t in range(L - 64, L)], -1)
    assert torch.allclose(y.double(), ref[:, :, L - 64:], rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match="roll back"):
        conv.crop(L - 1000)


def test_incremental_conv_keeps_its_per_token_buffers_in_place():
    """What a CUDA graph of the step records must not move: same storage after blocks, roll-backs
    and a beam reorder of the same batch size; a different batch size bumps the version."""
    D = 4
    conv = IncrementalConv(lambda n: torch.randn(D, n), torch.randn(D), 2, D, "cpu", torch.float32, block=8)
    conv.append(torch.randn(2, D, 21))
    buffers = [t.data_ptr() for t in (conv.window, conv.window_acc, conv.toeplitz, conv.position)]
    for _ in range(40):
        conv.step(torch.randn(2, D))
    conv.crop(50)
    conv.select(torch.tensor([1, 0]))
    assert [t.data_ptr() for t in (conv.window, conv.window_acc, conv.toeplitz, conv.position)] == buffers
    assert conv.buffers_version == 0
    conv.select(torch.tensor([1]))
    assert conv.buffers_version == 1 and conv.window.shape[0] == 1


def dna_model(max_seq_len=8192):
    torch.manual_seed(0)
    return emphasise_long_range(HyenaDNAForCausalLM(HyenaDNAConfig(
        d_model=16, n_layer=2, max_seq_len=max_seq_len, emb_dim=5, filter_order=8, embed_dropout=0.0)).eval())


@pytest.mark.parametrize("prompt_len,block", [(1, 64), (7, 64), (1000, 64), (5000, 64), (200, 4), (63, 64)])
def test_cached_decoding_equals_full_recompute(prompt_len, block):
    model = dna_model()
    prompt = torch.randint(7, 12, (2, prompt_len))
    new = 12
    cache = HyenaCache(model, block=block)
    with torch.no_grad():
        out = model.generate(prompt, max_new_tokens=new, do_sample=False, cache=cache, output_logits=True,
                             return_dict_in_generate=True)
        full = model(out.sequences).logits[:, prompt_len - 1: -1]
    V = model.config.vocab_size  # generate's logits cover the vocabulary only
    cached, full = torch.stack(out.logits, 1)[..., :V], full[..., :V]
    assert cache.get_seq_length() == prompt_len + new - 1
    assert torch.allclose(cached, full, atol=1e-4, rtol=1e-4), (cached - full).abs().max()
    with torch.no_grad():
        plain = model.generate(prompt, max_new_tokens=new, do_sample=False, use_cache=False)
    assert torch.equal(out.sequences, plain)


def test_left_padded_batch_equals_each_row_alone():
    model = dna_model(256)
    rows = [torch.randint(7, 12, (n,)) for n in (13, 5, 9)]
    L = max(len(r) for r in rows)
    ids = torch.full((3, L), 4)
    mask = torch.zeros(3, L, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, L - len(r):], mask[i, L - len(r):] = r, 1
    with torch.no_grad():
        batch = model.generate(ids, attention_mask=mask, max_new_tokens=8, do_sample=False, output_logits=True,
                               return_dict_in_generate=True)
        scores = model(ids, attention_mask=mask).logits
        for i, r in enumerate(rows):
            alone = model.generate(r[None], max_new_tokens=8, do_sample=False, output_logits=True,
                                   return_dict_in_generate=True)
            assert torch.equal(batch.sequences[i, L:], alone.sequences[0, len(r):])
            V = model.config.vocab_size
            assert torch.allclose(torch.stack(batch.logits, 1)[i, :, :V], torch.stack(alone.logits, 1)[0, :, :V],
                                  atol=1e-5)
            assert torch.allclose(scores[i, L - len(r):], model(r[None]).logits[0], atol=1e-5)


@pytest.mark.parametrize("use_cache", [True, False])
def test_generate_from_inputs_embeds_equals_generate_from_ids(use_cache):
    """A soft prompt (embeddings instead of ids; peft's prompt tuning): the new tokens and their
    logits are those of the same prompt given as ids, cached or recomputed, in a left-padded batch."""
    model = dna_model(256)
    ids = torch.randint(7, 12, (2, 11))
    ids[1, :4] = 4
    mask = torch.ones_like(ids)
    mask[1, :4] = 0
    kw = dict(attention_mask=mask, max_new_tokens=9, do_sample=False, output_logits=True,
              return_dict_in_generate=True, use_cache=use_cache)
    with torch.no_grad():
        from_ids = model.generate(ids, **kw)
        from_embeds = model.generate(inputs_embeds=model.get_input_embeddings()(ids), **kw)
    assert torch.equal(from_embeds.sequences, from_ids.sequences[:, ids.shape[1]:])
    V = model.config.vocab_size
    torch.testing.assert_close(torch.stack(from_embeds.logits, 1)[..., :V], torch.stack(from_ids.logits, 1)[..., :V],
                               atol=1e-5, rtol=1e-5)


def test_assisted_decoding_and_beam_search():
    path = lcm.checkpoints.path("hyena-char-pydocs")
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    tok = AutoTokenizer.from_pretrained(path)
    ids = tok(["Return the number of the number of the "], return_tensors="pt", add_special_tokens=False).input_ids
    with torch.no_grad():
        greedy = model.generate(ids, max_new_tokens=30, do_sample=False, use_cache=False)
        lookup = model.generate(ids, max_new_tokens=30, do_sample=False, prompt_lookup_num_tokens=5)
        beams = model.generate(ids, max_new_tokens=10, do_sample=False, num_beams=3)
        beams_plain = model.generate(ids, max_new_tokens=10, do_sample=False, num_beams=3, use_cache=False)
    assert torch.equal(lookup, greedy)
    assert torch.equal(beams, beams_plain)


def test_prefill_in_row_chunks_equals_one_batch(monkeypatch):
    """A large prompt batch is prefilled a few rows at a time and the states joined; the FFT tiles
    convolve rows in groups: the same logits, and the same decoding after, as in one piece."""
    from longconv_models.layers import incremental_conv

    model = dna_model(2048)
    rows = [torch.randint(7, 12, (n,)) for n in (300, 280, 300, 150, 299)]
    L = 300
    ids = torch.full((5, L), 4)
    mask = torch.zeros(5, L, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, L - len(r):], mask[i, L - len(r):] = r, 1
    new = torch.randint(7, 12, (5, 70))  # crosses a block boundary and a 64-input FFT tile

    def run():
        cache = HyenaCache(model)
        with torch.no_grad():
            first = model(ids, attention_mask=mask, cache=cache, use_cache=True).logits
            steps = [model(new[:, t: t + 1], cache=cache, use_cache=True).logits for t in range(new.shape[1])]
        return first, torch.cat(steps, 1), cache

    first, steps, whole = run()
    monkeypatch.setattr(modeling_hyena, "PREFILL_CHUNK_TOKENS", 2 * L)  # 2 rows per chunk: 3 chunks
    monkeypatch.setattr(incremental_conv, "TILE_CHUNK_ELEMENTS", 1)  # one row per FFT tile call
    joins = []
    original_join = HyenaCache.join
    monkeypatch.setattr(HyenaCache, "join", lambda self, parts: (joins.append(len(parts)), original_join(self, parts)))
    chunked_first, chunked_steps, joined = run()
    assert joins == [3]
    assert joined.layers[0].conv.batch == 5 and joined.get_seq_length() == L + new.shape[1]
    assert torch.allclose(chunked_first, first, atol=1e-5)
    assert torch.allclose(chunked_steps, steps, atol=1e-5)


def test_logits_to_keep_in_the_prefill():
    model = dna_model(512)
    ids = torch.randint(7, 12, (2, 40))
    with torch.no_grad():
        full = model(ids).logits
        # (the head's GEMM on fewer rows may take another BLAS kernel: equal up to rounding)
        assert torch.allclose(model(ids, logits_to_keep=1).logits, full[:, -1:], rtol=1e-5, atol=1e-6)
        kept = model(ids, logits_to_keep=torch.tensor([3, 7])).logits
        assert kept.shape[1] == 2 and torch.allclose(kept, full[:, [3, 7]], rtol=1e-5, atol=1e-6)
        calls = []
        hook = model.lm_head.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[1]))
        model.generate(ids, max_new_tokens=3, do_sample=False)
        hook.remove()
    assert calls == [1, 1, 1]  # the prompt's 40 positions never reach the head


def test_bad_cache_and_head_arguments_are_clear_errors():
    model = dna_model(256)
    for block in (0, 3, -4, 2.0):
        with pytest.raises(ValueError, match="power of two"):
            HyenaCache(model, block=block)
    with pytest.raises(ValueError, match="logits_to_keep"):
        model(torch.randint(7, 12, (1, 10)), logits_to_keep=-1)


def test_beam_search_with_a_padded_vocabulary():
    """12 tokens, 16 embedding rows: generate sees 12 logits (beam search reshapes by vocab_size)."""
    model = dna_model(512)
    assert model.config.padded_vocab_size > model.config.vocab_size
    prompt = torch.randint(7, 12, (2, 30))
    with torch.no_grad():
        out = model.generate(prompt, max_new_tokens=12, do_sample=False, num_beams=3, output_logits=True,
                             return_dict_in_generate=True)
        plain = model.generate(prompt, max_new_tokens=12, do_sample=False, num_beams=3, use_cache=False)
    assert torch.equal(out.sequences, plain)
    assert out.logits[0].shape[-1] == model.config.vocab_size


def test_decoding_past_the_trained_length_warns_and_follows_extend_context():
    model = dna_model(64)
    prompt = torch.randint(7, 12, (1, 50))
    logger = logging.get_logger(modeling_hyena.__name__)
    with CaptureLogger(logger) as cl, torch.no_grad():
        out = model.generate(prompt, max_new_tokens=30, do_sample=False)
    assert out.shape[1] == 80 and "extend_context" in cl.out
    model.extend_context(128)  # the same rule, explicitly: the full recompute agrees
    with torch.no_grad():
        assert torch.equal(model.generate(prompt, max_new_tokens=30, do_sample=False, use_cache=False), out)


def test_extended_model_decodes_long_prompts_exactly_in_a_filter_sized_cache():
    """Trained at 64, extended to 4096 (64 taps): a 1500-token prompt and 100 new tokens, cached
    vs the full recompute (fp32: tokens equal, logits within 1e-4); the cache holds about the
    filter's reach per layer, not the prompt."""
    model = dna_model(64)
    model.extend_context(4096)
    prompt = torch.randint(7, 12, (2, 1500))
    with torch.no_grad():
        kw = dict(max_new_tokens=100, do_sample=False, output_logits=True, return_dict_in_generate=True)
        cache = HyenaCache(model)
        cached = model.generate(prompt, cache=cache, **kw)
        plain = model.generate(prompt, use_cache=False, **kw)
    assert torch.equal(cached.sequences, plain.sequences)
    a, b = torch.stack(cached.logits, 1), torch.stack(plain.logits, 1)
    assert (a - b).abs().max() <= 1e-4 * b.abs().max()
    for layer in cache.layers:  # inputs and accumulator: positions held, against the 1600 decoded
        assert max(layer.conv.u.shape[2], layer.conv.acc.shape[2]) < 800 and layer.conv.u_base > 800


def test_per_token_work_does_not_grow_with_the_prefix():
    """Per token: one row of the block's Toeplitz matrix; per block: O(log t) tiles. Count the
    inputs the tiles read."""
    D, block = 4, 16
    conv = IncrementalConv(lambda n: torch.ones(D, n), None, 1, D, "cpu", torch.float32, block=block)
    conv.append(torch.randn(1, D, 4096))
    sizes = []
    orig = conv._add_tile
    conv._add_tile = lambda m, first_target=None: (sizes.append((m & -m) * block), orig(m, first_target))[1]
    tokens = 1024
    for _ in range(tokens):
        conv.step(torch.randn(1, D))
    assert len(sizes) == tokens // block
    assert sum(sizes) / tokens < 12  # amortised tile inputs per token: log-ish, not the 4096-token prefix
