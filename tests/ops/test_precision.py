"""Precision conventions on the CPU: the ops under torch.autocast (like a matmul: activations in
the autocast dtype, filters fp32), models loaded with ``from_pretrained(dtype=...)``, gradient
checkpointing, and the per-call backend counts (``count_backends``)."""

import pytest
import torch

import longconv_models as lcm
from helpers import direct_conv, rel_err
from longconv_models.models import (
    HyenaConfig,
    HyenaDNAConfig,
    HyenaDNAForCausalLM,
    HyenaForCausalLM,
    M2BertConfig,
    M2BertForMaskedLM,
)
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM


TINY_MODELS = {
    "hyenadna": lambda: HyenaDNAForCausalLM(HyenaDNAConfig(d_model=32, n_layer=2, max_seq_len=66, emb_dim=5,
                                                           filter_order=16, activation_freq=10, embed_dropout=0.0)),
    "hyena": lambda: HyenaForCausalLM(HyenaConfig(vocab_size=40, d_model=32, n_layer=2, max_seq_len=64, emb_dim=5,
                                                  filter_order=16)),
    "m2_bert": lambda: M2BertForMaskedLM(M2BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2,
                                                      intermediate_size=64, max_position_embeddings=64,
                                                      hyena_filter_order=16, hidden_dropout_prob=0.0)),
}
LONG_CONVS_PER_LAYER = {"hyenadna": 1, "hyena": 1, "m2_bert": 2}


@pytest.mark.parametrize("amp", [torch.bfloat16, torch.float16])
def test_fftconv_under_autocast_is_the_conv_of_the_cast_activations(amp):
    u, pre, post = (torch.randn(2, 3, 40) for _ in range(3))
    k = torch.randn(3, 40)
    with torch.autocast("cpu", dtype=amp):
        y = lcm.fftconv(u, k, pre_gate=pre, post_gate=post)
    assert y.dtype == amp
    ref = direct_conv(u.to(amp), k, pre_gate=pre.to(amp), post_gate=post.to(amp))  # the filter stays fp32
    assert rel_err(y, ref) < 1e-2


def test_fftconv_under_autocast_keeps_fp64_and_backpropagates_to_fp32():
    k = torch.randn(3, 20, dtype=torch.float64)
    u64 = torch.randn(2, 3, 20, dtype=torch.float64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert lcm.fftconv(u64, k).dtype == torch.float64  # as autocast leaves fp64 alone
        u = torch.randn(2, 3, 20, requires_grad=True)
        y = lcm.fftconv(u.transpose(1, 2).contiguous().transpose(1, 2), k.float())  # non-contiguous u
    y.float().sum().backward()
    assert u.grad.dtype == torch.float32 and torch.isfinite(u.grad).all()


def test_short_conv_under_autocast():
    x, w = torch.randn(2, 4, 30), torch.randn(4, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = lcm.short_conv(x, w)
    assert y.dtype == torch.bfloat16
    ref = lcm.short_conv(x.bfloat16().float(), w)
    assert rel_err(y, ref) < 1e-2


def test_count_backends_counts_every_call_with_its_reason():
    u, k = torch.randn(1, 2, 16, requires_grad=True), torch.randn(2, 16)
    with lcm.count_backends() as calls:
        for _ in range(3):
            lcm.fftconv(u, k).sum().backward()
        lcm.short_conv(u.detach(), torch.randn(2, 3))
    assert calls[("fftconv", "reference", "device cpu")] == 3
    assert calls[("fftconv_bwd", "reference", "device cpu")] == 3
    assert calls[("short_conv", "reference", "device cpu")] == 1
    lcm.fftconv(u, k)  # outside the context: not counted
    assert sum(calls.values()) == 7


@pytest.mark.parametrize("family", TINY_MODELS)
def test_models_under_autocast_match_fp32(family):
    """fp32 weights under bf16 autocast: every convolution gets bf16 activations (one backend
    record per call, forward and backward) and the loss matches the fp32 run."""
    model = TINY_MODELS[family]()
    ids = torch.randint(5, 12, (2, 48))
    with torch.no_grad():
        ref = model(ids, labels=ids).loss
    with lcm.count_backends() as calls:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(ids, labels=ids).loss
        loss.backward()
    n_layers = model.config.num_hidden_layers
    ffts = LONG_CONVS_PER_LAYER[family]
    assert calls[("fftconv", "reference", "device cpu")] == ffts * n_layers
    assert calls[("fftconv_bwd", "reference", "device cpu")] == ffts * n_layers
    assert calls[("short_conv", "reference", "device cpu")] == 3 * n_layers
    assert abs(loss.item() - ref.item()) < 2e-2 * abs(ref.item())
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("name", ["hyenadna-tiny-synthetic", "hyena-char-pydocs"])
def test_from_pretrained_half_precision(name, dtype):
    path = lcm.checkpoints.path(name)
    fp32 = AutoModelForCausalLM.from_pretrained(path)
    half = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    assert {p.dtype for p in half.parameters()} == {dtype}
    ids = torch.randint(5, 12, (2, 64))
    with torch.no_grad():
        ref, out = fp32(ids).logits, half(ids).logits
    assert torch.isfinite(out).all()
    assert rel_err(out, ref) < (3e-2 if dtype == torch.bfloat16 else 5e-3)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_from_pretrained_half_precision_m2(tmp_path, dtype):
    model = TINY_MODELS["m2_bert"]().eval()
    model.save_pretrained(tmp_path)
    half = AutoModelForMaskedLM.from_pretrained(tmp_path, dtype=dtype)
    assert {p.dtype for p in half.parameters()} == {dtype}
    ids = torch.randint(5, 60, (2, 64))
    with torch.no_grad():
        ref, out = model(ids).logits, half(ids).logits
    assert rel_err(out, ref) < (5e-2 if dtype == torch.bfloat16 else 1e-2)


@pytest.mark.parametrize("family", TINY_MODELS)
@pytest.mark.parametrize("reentrant", [None, True, False])
def test_gradient_checkpointing_same_gradients(family, reentrant):
    model = TINY_MODELS[family]()
    ids = torch.randint(5, 12, (2, 48))
    model.train()
    model(ids, labels=ids).loss.backward()
    ref = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    kwargs = None if reentrant is None else {"use_reentrant": reentrant}
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    assert model.is_gradient_checkpointing
    with lcm.count_backends() as calls:
        model(ids, labels=ids).loss.backward()
    assert calls[("fftconv", "reference", "device cpu")] == 2 * calls[("fftconv_bwd", "reference", "device cpu")]
    got = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert got.keys() == ref.keys()
    for n in ref:
        torch.testing.assert_close(got[n], ref[n], rtol=1e-5, atol=1e-6, msg=n)
