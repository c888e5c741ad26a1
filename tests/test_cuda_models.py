"""Models on the GPU: the fused-kernel path is as accurate as the reference path.

Ground truth is the same model in fp32 on the reference path. The bf16 model on the fused path
must land within a small multiple of the bf16 model's error on the reference path (the precision
floor of running the model in bf16), for the logits and for the parameter gradients.
(Run on a GPU; skipped elsewhere.)
"""

import copy

import pytest
import torch

import longconv_models as lcm
from helpers import rel_err
from longconv_models.models import HyenaDNAConfig, HyenaDNAForCausalLM, M2BertConfig, M2BertForMaskedLM

pytestmark = pytest.mark.cuda


def run(model, ids):
    out = model(ids, labels=ids)
    out.loss.backward()
    grads = torch.cat([p.grad.float().flatten() for p in model.parameters() if p.grad is not None])
    return out.logits.float(), grads


@pytest.mark.parametrize(
    "make,L",
    [
        (lambda: HyenaDNAForCausalLM(HyenaDNAConfig(d_model=64, n_layer=2, max_seq_len=4098, emb_dim=5,
                                                    filter_order=32, activation_freq=10)), 4096),
        (lambda: M2BertForMaskedLM(M2BertConfig(vocab_size=1000, hidden_size=64, num_hidden_layers=2,
                                                intermediate_size=128, max_position_embeddings=2048,
                                                hyena_filter_order=32)), 2048),
    ],
)
def test_fast_path_within_bf16_precision_floor(make, L):
    torch.manual_seed(0)
    fp32 = make().cuda()
    ids = torch.randint(7, 11, (3, L), device="cuda")
    with lcm.reference_path():
        logits_ref32, grads_ref32 = run(fp32, ids)
    bf16 = copy.deepcopy(fp32).to(torch.bfloat16)
    bf16.zero_grad()
    logits_fast, grads_fast = run(bf16, ids)
    assert lcm.last_backend("fftconv") == ("cuda", "") and lcm.last_backend("short_conv") == ("cuda", "")
    bf16.zero_grad()
    with lcm.reference_path():
        logits_ref16, grads_ref16 = run(bf16, ids)
    e_fast, e_ref = rel_err(logits_fast, logits_ref32), rel_err(logits_ref16, logits_ref32)
    g_fast, g_ref = rel_err(grads_fast, grads_ref32), rel_err(grads_ref16, grads_ref32)
    print(f"logits: fast {e_fast:.2e} vs bf16 reference {e_ref:.2e}; grads: fast {g_fast:.2e} vs {g_ref:.2e}")
    assert e_fast < 3 * e_ref + 1e-3
    assert g_fast < 3 * g_ref + 1e-3
