"""transformers conventions on the CPU, for every family: resize + save + reload, config-driven
outputs, the loss arguments Trainer passes, input-id checks, gradient checkpointing through
``Trainer``, torch.export with a dynamic length."""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, Trainer, TrainingArguments

import longconv_models as lcm  # noqa: F401
from longconv_models.models import (
    HyenaConfig,
    HyenaDNAConfig,
    HyenaDNAForCausalLM,
    HyenaForCausalLM,
    M2BertConfig,
    M2BertForMaskedLM,
)

FAMILIES = {
    "hyenadna": (lambda **kw: HyenaDNAForCausalLM(HyenaDNAConfig(d_model=32, n_layer=2, max_seq_len=64, emb_dim=5,
                                                                 filter_order=16, embed_dropout=0.0, **kw)),
                 AutoModelForCausalLM),
    "hyena": (lambda **kw: HyenaForCausalLM(HyenaConfig(vocab_size=100, d_model=32, n_layer=2, max_seq_len=64,
                                                        emb_dim=5, filter_order=16, **kw)), AutoModelForCausalLM),
    "m2_bert": (lambda **kw: M2BertForMaskedLM(M2BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2,
                                                            intermediate_size=64, max_position_embeddings=64,
                                                            hyena_filter_order=16, hidden_dropout_prob=0.0, **kw)),
                AutoModelForMaskedLM),
}


def ids(model, B=2, L=24):
    lo = 7 if model.config.model_type == "hyenadna" else 1
    return torch.randint(lo, model.config.vocab_size, (B, L))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("new_size", [108, 13])
def test_resize_token_embeddings_saves_and_reloads(tmp_path, family, new_size):
    make, auto = FAMILIES[family]
    model = make().eval()
    model.resize_token_embeddings(new_size)  # no pad_to_multiple_of
    assert model.get_input_embeddings().num_embeddings == new_size == model.config.vocab_size
    model.save_pretrained(tmp_path)
    again = auto.from_pretrained(tmp_path).eval()
    x = torch.randint(7 if family == "hyenadna" else 1, new_size, (2, 20))
    x[0, -1] = new_size - 1  # the last new row is a token
    torch.testing.assert_close(again(x).logits, model(x).logits, rtol=0, atol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_config_output_hidden_states_and_return_dict(family):
    make, _ = FAMILIES[family]
    model = make(output_hidden_states=True).eval()
    x = ids(model)
    out = model(x)
    n = model.config.num_hidden_layers
    assert out.hidden_states is not None and len(out.hidden_states) == n + 1
    model.config.return_dict = False
    as_tuple = model(x)
    assert isinstance(as_tuple, tuple)
    torch.testing.assert_close(as_tuple[0], out.logits)
    torch.testing.assert_close(model(x, return_dict=True).logits, out.logits)  # the argument wins


@pytest.mark.parametrize("family", ["hyenadna", "hyena"])
def test_causal_lm_loss_takes_shift_labels_and_num_items_in_batch(family):
    make, _ = FAMILIES[family]
    model = make().eval()
    x = ids(model)
    labels = x.clone()
    labels[0, :5] = -100
    loss = model(x, labels=labels).loss
    shifted = torch.cat([labels[:, 1:], torch.full_like(labels[:, :1], -100)], 1)
    torch.testing.assert_close(model(x, shift_labels=shifted).loss, loss)
    n = int((shifted != -100).sum())
    summed = model(x, labels=labels, num_items_in_batch=torch.tensor(1)).loss
    torch.testing.assert_close(summed / n, loss)  # a sum over tokens, normalised by the caller's count
    # and a different shift_labels changes the loss (it is not ignored)
    assert not torch.allclose(model(x, shift_labels=torch.roll(shifted, 1, 1)).loss, loss)


@pytest.mark.parametrize("family", FAMILIES)
def test_input_ids_out_of_range_name_the_argument(family):
    make, _ = FAMILIES[family]
    model = make().eval()
    x = ids(model)
    x[1, 3] = model.get_input_embeddings().num_embeddings - 1 if family != "m2_bert" else model.config.vocab_size
    if family != "m2_bert" and x[1, 3] < model.config.vocab_size:
        x[1, 3] = model.config.vocab_size  # a row that only pads the embedding matrix
    with pytest.raises(ValueError, match=r"input_ids contains .* outside the vocabulary"):
        model(x)
    x[1, 3] = -1
    with pytest.raises(ValueError, match="input_ids"):
        model(x)
    with pytest.raises(TypeError, match="input_ids must be an integer"):
        model(x.float())


@pytest.mark.parametrize("family", FAMILIES)
def test_trainer_gradient_checkpointing(tmp_path, family):
    make, _ = FAMILIES[family]
    torch.manual_seed(0)
    model = make()
    data = [{"input_ids": x, "labels": x} for x in ids(model, B=4, L=32)]
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=2, max_steps=2, learning_rate=1e-3,
                             gradient_checkpointing=True, report_to=[], save_strategy="no", use_cpu=True,
                             disable_tqdm=True)
    result = Trainer(model=model, args=args, train_dataset=data).train()
    assert model.is_gradient_checkpointing and torch.isfinite(torch.tensor(result.training_loss))
    # the checkpointed layers recompute in backward: same gradients as without
    x = ids(model, B=2, L=32)
    model.train()
    model.config.hidden_dropout_prob = 0.0
    model(x, labels=x).loss.backward()
    g_ckpt = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    model.zero_grad()
    model.gradient_checkpointing_disable()
    model(x, labels=x).loss.backward()
    g = [p.grad for p in model.parameters() if p.grad is not None]
    for a, b in zip(g_ckpt, g):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_torch_export_with_a_dynamic_length(family):
    """One exported program serves every length up to the filters' (no guards on min(L, ...))."""
    model = FAMILIES[family][0]().eval()
    limit = model.config.max_position_embeddings if family == "m2_bert" else model.config.max_seq_len
    L = torch.export.Dim("L", min=8, max=limit)
    program = torch.export.export(model, (ids(model, 2, 20),), dynamic_shapes=({1: L},), strict=False)
    for n in (9, 31, limit):
        x = ids(model, 2, n)
        assert torch.allclose(program.module()(x).logits, model(x).logits, atol=1e-5, rtol=1e-5), n


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_torch_compile_traces_the_model_whole(family):
    """No graph break (a recorded op or a log call while tracing would split the graph), and the
    compiled graph's custom ops are counted when they run."""
    torch._dynamo.reset()
    model = FAMILIES[family][0]().eval()
    x = ids(model, 2, 32)
    explanation = torch._dynamo.explain(model)(x)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    compiled = torch.compile(model)
    compiled(x)
    with lcm.count_backends() as calls:
        out = compiled(x).logits
    assert {op for (op, _, _) in calls} >= {"fftconv", "short_conv"}
    assert torch.allclose(out, model(x).logits, atol=1e-4, rtol=1e-4)
