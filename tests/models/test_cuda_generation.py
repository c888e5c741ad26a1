"""Cached generation on the GPU (bf16 weights, as served): the prefill runs the CUDA kernels, the
decoding steps (direct and tiled, the tiles' FFT convolutions through the kernels too) give the
full recompute's logits within bf16 tolerance, and left-padded batches equal each row alone.
(Run on a GPU; skipped elsewhere.)"""

import pytest
import torch

import longconv_models as lcm
from longconv_models.models import HyenaDNAConfig, HyenaDNAForCausalLM
from longconv_models.models.hyena.cache_hyena import HyenaCache

pytestmark = pytest.mark.cuda


def model_bf16(max_seq_len=8192):
    torch.manual_seed(0)
    config = HyenaDNAConfig(d_model=64, n_layer=2, max_seq_len=max_seq_len, emb_dim=5, filter_order=32,
                            activation_freq=10, embed_dropout=0.0)
    return HyenaDNAForCausalLM(config).cuda().to(torch.bfloat16).eval()


@pytest.mark.parametrize("prompt_len,direct_max", [(7, 256), (1000, 256), (5000, 256), (300, 10**9)])
@torch.no_grad()
def test_cached_steps_match_the_full_recompute_in_bf16(prompt_len, direct_max):
    model = model_bf16()
    B, new = 3, 24
    seq = torch.randint(7, 12, (B, prompt_len + new), device="cuda")
    cache = HyenaCache(model, direct_max=direct_max)
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
