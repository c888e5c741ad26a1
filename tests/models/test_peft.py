"""PEFT adapters on the models' layers take effect (fine-tuning with LoRA): the adapted model
equals the same model with the adapters merged into its weights, its adapters get gradients, and
its cached generation equals the recompute. (The fast paths read a plain nn.Linear's weight; an
adapter in its place is called, see layers/projections.py.)"""

import copy

import pytest
import torch

from longconv_models.models import HyenaDNAForCausalLM, HyenaForCausalLM, M2BertForMaskedLM
from test_models import tiny_hyena, tiny_hyenadna, tiny_m2

peft = pytest.importorskip("peft")

HYENA_TARGETS = ["in_proj", "out_proj", "fc1", "implicit_filter.6"]  # (6: the filter MLP's last linear)
CASES = [
    (tiny_hyena, HyenaForCausalLM, HYENA_TARGETS),
    (tiny_hyenadna, HyenaDNAForCausalLM, HYENA_TARGETS),
    (tiny_m2, M2BertForMaskedLM, ["in_linear", "out_linear", "implicit_filter.6", "implicit_filter_rev.6"]),
]


def lora(model, targets, **kw):
    return peft.get_peft_model(model, peft.LoraConfig(r=4, target_modules=targets, **kw))


@pytest.mark.parametrize("config,cls,targets", CASES, ids=["hyena", "hyenadna", "m2_bert"])
def test_lora_adapters_take_effect(config, cls, targets):
    torch.manual_seed(0)
    model = cls(config()).double().eval()
    adapted = lora(copy.deepcopy(model), targets, init_lora_weights=False)  # (random B: the adapters do something)
    merged = copy.deepcopy(adapted).merge_and_unload()
    for name in targets:  # every target was wrapped
        assert any(n.endswith(name) and isinstance(m, peft.tuners.lora.LoraLayer) for n, m in adapted.named_modules())
    ids = torch.randint(3, model.config.vocab_size, (2, 24))
    with torch.no_grad():
        base, got, want = (m(ids).logits for m in (model, adapted, merged))
    assert (got - base).abs().max() > 1e-2
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)


def test_lora_adapters_get_gradients():
    torch.manual_seed(0)
    model = lora(HyenaDNAForCausalLM(tiny_hyenadna()), ["in_proj", "out_proj"]).train()
    ids = torch.randint(7, 12, (2, 24))
    model(ids, labels=ids).loss.backward()
    lora_b = {n: p.grad for n, p in model.named_parameters() if "lora_B" in n}
    assert len(lora_b) == 4 and all(g is not None and g.abs().sum() > 0 for g in lora_b.values())  # (A's are 0: B = 0 at init)
    assert all(p.grad is None for n, p in model.named_parameters() if not p.requires_grad)


def test_lora_model_generates_with_the_cache():
    torch.manual_seed(0)
    model = lora(HyenaForCausalLM(tiny_hyena()).double().eval(), ["in_proj", "out_proj"], init_lora_weights=False)
    ids = torch.randint(3, 30, (2, 9))
    cached = model.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=0)
    full = model.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=0, use_cache=False)
    assert torch.equal(cached, full)


def test_prompt_tuning_trains_and_generates_with_the_cache():
    """peft's prompt tuning (virtual tokens as input embeddings before the prompt) finds the
    embeddings (``model.embeddings.word_embeddings``), trains them, and its cached generation
    equals the recompute (the cache holds the virtual tokens, the ids do not)."""
    torch.manual_seed(0)
    model = HyenaForCausalLM(tiny_hyena()).double()
    config = peft.PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=5, num_attention_heads=1,
                                     num_layers=model.config.n_layer, token_dim=model.config.d_model)
    tuned = peft.get_peft_model(model, config)
    assert tuned.word_embeddings is model.get_input_embeddings()
    ids = torch.randint(3, 30, (2, 9))
    tuned.train()
    tuned(input_ids=ids, labels=ids).loss.backward()
    assert tuned.prompt_encoder["default"].embedding.weight.grad.abs().sum() > 0
    tuned.eval()
    with torch.no_grad():
        cached = tuned.generate(input_ids=ids, max_new_tokens=10, do_sample=False, pad_token_id=0)
        full = tuned.generate(input_ids=ids, max_new_tokens=10, do_sample=False, pad_token_id=0, use_cache=False)
    assert torch.equal(cached, full)
