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
from longconv_models.models import HyenaDNAConfig, HyenaDNAForCausalLM, HyenaForCausalLM
from longconv_models.models.hyena import modeling_hyena
from longconv_models.models.hyena.cache_hyena import HyenaCache


def direct(u, h, bias):
    """float64 y[t] = sum_{s<=t} h[t-s] u[s] + bias u[t]."""
    u, h = u.double(), h.double()
    L = u.shape[-1]
    y = torch.stack([(u[..., : t + 1] * h[:, : t + 1].flip(-1)).sum(-1) for t in range(L)], -1)
    return y + bias.double()[:, None] * u


@pytest.mark.parametrize("direct_max,prefix", [(10**9, 0), (0, 0), (0, 37), (50, 7), (64, 100), (5, 300)])
def test_incremental_conv_matches_the_direct_sum(direct_max, prefix):
    torch.manual_seed(0)
    B, D, L = 3, 5, 400  # tiles up to 256 inputs: the FFT tile path too
    h, bias, u = torch.randn(D, 512), torch.randn(D), torch.randn(B, D, L)
    ref = direct(u, h, bias)
    conv = IncrementalConv(lambda n: torch.nn.functional.pad(h, (0, max(0, n - 512)))[:, :n], bias, B, D, "cpu",
                           torch.float32, direct_max=direct_max)
    conv.append(u[:, :, :prefix])
    y = torch.stack([conv.step(u[:, :, t]) for t in range(prefix, L)], -1)
    assert torch.allclose(y.double(), ref[:, :, prefix:], rtol=1e-5, atol=1e-4)
    conv.crop(prefix + 11)  # roll back, then the same outputs again
    y = torch.stack([conv.step(u[:, :, t]) for t in range(prefix + 11, L)], -1)
    assert torch.allclose(y.double(), ref[:, :, prefix + 11:], rtol=1e-5, atol=1e-4)


def dna_model(max_seq_len=8192):
    torch.manual_seed(0)
    return HyenaDNAForCausalLM(HyenaDNAConfig(d_model=16, n_layer=2, max_seq_len=max_seq_len, emb_dim=5,
                                              filter_order=8, embed_dropout=0.0)).eval()


@pytest.mark.parametrize("prompt_len,direct_max", [(1, 256), (7, 256), (1000, 256), (5000, 256), (200, 10**9)])
def test_cached_decoding_equals_full_recompute(prompt_len, direct_max):
    model = dna_model()
    prompt = torch.randint(7, 12, (2, prompt_len))
    new = 12
    cache = HyenaCache(model, direct_max=direct_max)
    with torch.no_grad():
        out = model.generate(prompt, max_new_tokens=new, do_sample=False, cache=cache, output_logits=True,
                             return_dict_in_generate=True)
        full = model(out.sequences).logits[:, prompt_len - 1: -1]
    V = model.config.vocab_size  # generate masks the padded vocabulary rows
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


def test_per_token_work_does_not_grow_with_the_prefix_in_tiled_mode():
    """The tiled state touches O(log t) tiles per token: count the positions it reads."""
    D = 4
    conv = IncrementalConv(lambda n: torch.ones(D, n), None, 1, D, "cpu", torch.float32, direct_max=0)
    conv.append(torch.randn(1, D, 4096))
    sizes = []
    orig = conv._add_tile
    conv._add_tile = lambda m, first_target=None: (sizes.append(m & -m), orig(m, first_target))[1]
    for _ in range(256):
        conv.step(torch.randn(1, D))
    assert sum(sizes) / len(sizes) < 10  # amortised tile size: log-ish, not the 4096-token prefix
