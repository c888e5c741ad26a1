"""Models on the GPU: the fused-kernel path agrees with the reference path (bf16 tolerance),
forward and backward (run on a GPU; skipped elsewhere)."""

import pytest
import torch

import longconv_models as lcm
from helpers import rel_err
from longconv_models.models import HyenaDNAConfig, HyenaDNAForCausalLM, M2BertConfig, M2BertForMaskedLM

pytestmark = pytest.mark.cuda


@pytest.mark.parametrize(
    "model,L",
    [
        (lambda: HyenaDNAForCausalLM(HyenaDNAConfig(d_model=64, n_layer=2, max_seq_len=4098, emb_dim=5,
                                                    filter_order=32, activation_freq=10)), 4096),
        (lambda: M2BertForMaskedLM(M2BertConfig(vocab_size=1000, hidden_size=64, num_hidden_layers=2,
                                                intermediate_size=128, max_position_embeddings=2048,
                                                hyena_filter_order=32)), 2048),
    ],
)
def test_fast_path_matches_reference(model, L):
    torch.manual_seed(0)
    m = model().cuda().to(torch.bfloat16)
    ids = torch.randint(0, min(m.config.vocab_size, 12), (3, L), device="cuda")
    if isinstance(m, HyenaDNAForCausalLM):
        ids = ids % 4 + 7
    logits = m(ids, labels=ids)
    assert lcm.last_backend("fftconv") == ("cuda", "") and lcm.last_backend("short_conv") == ("cuda", "")
    logits.loss.backward()
    grads = [p.grad.float().clone() for p in m.parameters() if p.grad is not None]
    m.zero_grad()
    with lcm.reference_path():
        ref = m(ids, labels=ids)
        ref.loss.backward()
        assert lcm.last_backend("fftconv")[0] == "reference"
    ref_grads = [p.grad.float() for p in m.parameters() if p.grad is not None]
    assert rel_err(logits.logits, ref.logits) < 2e-2
    total = torch.cat([g.flatten() for g in grads])
    total_ref = torch.cat([g.flatten() for g in ref_grads])
    assert rel_err(total, total_ref) < 5e-2
