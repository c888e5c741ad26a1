"""Hyena, HyenaDNA and M2-BERT models: shapes, Auto classes, save/load, training, causality,
generation, context extension, and loading checkpoints in the published layouts."""

import json

import pytest
import torch
from safetensors.torch import save_file
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
)

from longconv_models.convert import CheckpointError, convert, main as convert_main
from longconv_models.models import (
    HyenaConfig,
    HyenaDNAConfig,
    HyenaDNAForCausalLM,
    HyenaDNAForSequenceClassification,
    HyenaDNATokenizer,
    HyenaDNATokenizerFast,
    HyenaForCausalLM,
    M2BertConfig,
    M2BertForMaskedLM,
    M2BertForSequenceClassification,
    M2BertForTextEncoding,
    M2BertModel,
)


def tiny_hyenadna(**kw):
    return HyenaDNAConfig(d_model=32, n_layer=2, max_seq_len=66, emb_dim=5, filter_order=16, activation_freq=10, **kw)


def tiny_hyena(**kw):
    return HyenaConfig(vocab_size=40, d_model=32, n_layer=2, max_seq_len=64, emb_dim=5, filter_order=16, **kw)


def tiny_m2(**kw):
    return M2BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, intermediate_size=64,
                        max_position_embeddings=32, hyena_filter_order=16, **kw)


CASES = [
    (tiny_hyenadna, HyenaDNAForCausalLM, AutoModelForCausalLM),
    (tiny_hyenadna, HyenaDNAForSequenceClassification, AutoModelForSequenceClassification),
    (tiny_hyena, HyenaForCausalLM, AutoModelForCausalLM),
    (tiny_m2, M2BertForMaskedLM, AutoModelForMaskedLM),
    (tiny_m2, M2BertForSequenceClassification, AutoModelForSequenceClassification),
    (tiny_m2, M2BertModel, AutoModel),
]


def ids_for(config, B=3, L=30):
    return torch.randint(0, config.vocab_size, (B, L))


@pytest.mark.parametrize("make_config,cls,auto", CASES)
def test_save_load_roundtrip_bit_exact(tmp_path, make_config, cls, auto):
    config = make_config()
    model = cls(config).eval()
    ids = ids_for(config)
    out = model(ids)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    assert AutoConfig.from_pretrained(tmp_path).model_type == config.model_type
    loaded = auto.from_pretrained(tmp_path).eval()
    assert type(loaded) is cls
    for a, b in zip(out.values(), loaded(ids).values()):
        assert torch.equal(a, b)
    for (ka, va), (kb, vb) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert ka == kb and torch.equal(va, vb), ka


def test_output_shapes():
    c = tiny_hyenadna()
    ids = ids_for(c, 2, 20)
    assert HyenaDNAForCausalLM(c)(ids).logits.shape == (2, 20, c.padded_vocab_size)
    assert HyenaDNAForSequenceClassification(tiny_hyenadna(num_labels=3))(ids).logits.shape == (2, 3)
    m = tiny_m2()
    ids = ids_for(m, 2, 32)
    out = M2BertModel(m)(ids, output_hidden_states=True)
    assert out.last_hidden_state.shape == (2, 32, 32) and out.pooler_output.shape == (2, 32)
    assert len(out.hidden_states) == m.num_hidden_layers + 1
    assert M2BertForTextEncoding(m)(ids).sentence_embedding.shape == (2, 32)
    assert M2BertForMaskedLM(m)(ids).logits.shape == (2, 32, 64)


@pytest.mark.parametrize("make_config,cls", [(tiny_hyenadna, HyenaDNAForCausalLM), (tiny_m2, M2BertForMaskedLM),
                                             (tiny_m2, M2BertForSequenceClassification)])
def test_loss_decreases(make_config, cls):
    torch.manual_seed(0)
    config = make_config()
    model = cls(config)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    # a learnable toy task: repeated short patterns (or a label that is a function of the input)
    ids = torch.tensor([[i % 5 + 1 for i in range(j, j + 30)] for j in range(4)])
    labels = ids if cls is not M2BertForSequenceClassification else torch.tensor([0, 1, 0, 1])
    losses = []
    for _ in range(15):
        loss = model(ids, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


@pytest.mark.parametrize("make_config,cls", [(tiny_hyenadna, HyenaDNAForCausalLM), (tiny_hyena, HyenaForCausalLM)])
def test_causal(make_config, cls):
    model = cls(make_config()).eval()
    ids = ids_for(model.config, 2, 40)
    changed = ids.clone()
    changed[:, 25] = (changed[:, 25] + 1) % model.config.vocab_size
    a, b = model(ids).logits, model(changed).logits
    # an FFT convolution mixes all positions at the float32 round-off level, nothing more
    before = (a[:, :25] - b[:, :25]).abs().max().item()
    after = (a[:, 25:] - b[:, 25:]).abs().max().item()
    assert before < 1e-5 and after > 1e3 * before, (before, after)


def test_generate_matches_stepwise_greedy():
    model = HyenaDNAForCausalLM(tiny_hyenadna()).eval()
    prompt = torch.randint(7, 11, (2, 6))
    out = model.generate(prompt, max_new_tokens=8, do_sample=False)
    seq = prompt
    for _ in range(8):
        nxt = model(seq).logits[:, -1].argmax(-1, keepdim=True)
        seq = torch.cat([seq, nxt], 1)
    assert torch.equal(out, seq)


def test_m2_bidirectional_and_attention_mask():
    model = M2BertModel(tiny_m2()).eval()
    ids = ids_for(model.config, 1, 32)
    changed = ids.clone()
    changed[0, 20] = (changed[0, 20] + 1) % 64
    a, b = model(ids).last_hidden_state, model(changed).last_hidden_state
    assert not torch.allclose(a[:, :20], b[:, :20])  # bidirectional: earlier positions see the change
    mask = torch.ones_like(ids)
    assert torch.equal(model(ids, attention_mask=mask).last_hidden_state, a)
    # right padding with the mask: the real positions equal the unpadded row's (pooler included)
    short = ids[:, :20]
    padded = torch.cat([short, torch.zeros(1, 12, dtype=torch.long)], 1)
    pmask = torch.cat([torch.ones(1, 20, dtype=torch.long), torch.zeros(1, 12, dtype=torch.long)], 1)
    alone, with_pad = model(short), model(padded, attention_mask=pmask)
    assert torch.allclose(with_pad.last_hidden_state[:, :20], alone.last_hidden_state, atol=1e-5)
    assert torch.allclose(with_pad.pooler_output, alone.pooler_output, atol=1e-5)
    # the published checkpoints' configs (remote-code auto_map) keep the original behaviour: mask ignored
    published = M2BertModel(tiny_m2(auto_map={"AutoModel": "bert_layers.BertModel"})).eval()
    published.load_state_dict(model.state_dict())
    assert not published.config.mask_padding
    assert torch.equal(published(padded, attention_mask=pmask).last_hidden_state, published(padded).last_hidden_state)


def test_extend_context_is_saved(tmp_path):
    model = HyenaDNAForCausalLM(tiny_hyenadna()).eval()
    model.extend_context(200, filter_length=40)
    ids = torch.randint(7, 12, (1, 150))
    model.save_pretrained(tmp_path)
    again = HyenaDNAForCausalLM.from_pretrained(tmp_path).eval()
    assert torch.equal(again(ids).logits, model(ids).logits)


def test_extend_context_partial_convolution():
    model = HyenaDNAForCausalLM(tiny_hyenadna()).eval()
    ids = torch.randint(7, 11, (1, 200))
    with pytest.raises(ValueError, match="exceeds the filter's maximum length"):
        model(ids)
    short = model(ids[:, :66]).logits
    model.extend_context(256)
    long = model(ids).logits
    assert long.shape[1] == 200
    assert torch.allclose(long[:, :66], short, atol=1e-5)  # causal + same taps: the prefix is unchanged
    model.extend_context(256, filter_length=16)  # fewer taps: a shorter receptive field
    assert not torch.allclose(model(ids).logits[:, :66], short)


def test_tokenizer_roundtrip(tmp_path):
    tok = HyenaDNATokenizer(model_max_length=1000, append_eos=True)
    enc = tok(["ACGTN", "ACx"], padding=True)
    assert enc["input_ids"] == [[7, 8, 9, 10, 11, 1], [4, 4, 7, 8, 6, 1]]  # x: not a base
    assert tok.decode([7, 8, 9, 10]) == "ACGT"
    tok.save_pretrained(tmp_path)
    HyenaDNAConfig().save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert isinstance(loaded, HyenaDNATokenizerFast) and loaded("GATTACA")["input_ids"] == tok("GATTACA")["input_ids"]
    assert loaded.padding_side == "left" and loaded.model_max_length == 1000


# ---- published checkpoint layouts --------------------------------------------------------------
def _with_shared_freq_names(sd, names=(3, 5)):
    out = dict(sd)
    for k, v in sd.items():
        if k.endswith("implicit_filter.1.freq"):
            del out[k]  # as if safetensors kept another of the shared names
            for i in names:
                out[k.replace(".1.freq", f".{i}.freq")] = v.clone()
                out[k.replace("implicit_filter.1.freq", f"implicit_filter_rev.{i}.freq")] = v.clone()
    return out


def test_convert_hyenadna_hf_safetensors(tmp_path):
    src = HyenaDNAForCausalLM(tiny_hyenadna()).eval()
    sd = {k: v.contiguous() for k, v in _with_shared_freq_names(src.state_dict(), (3,)).items()
          if "implicit_filter_rev" not in k}
    (tmp_path / "hf").mkdir()
    save_file(sd, str(tmp_path / "hf" / "model.safetensors"))
    cfg = tiny_hyenadna().to_dict()
    cfg["auto_map"] = {"AutoModel": "modeling_hyena.HyenaDNAModel"}
    (tmp_path / "hf" / "config.json").write_text(json.dumps(cfg))
    convert_main([str(tmp_path / "hf"), str(tmp_path / "out")])
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "out").eval()
    ids = torch.randint(7, 11, (2, 30))
    assert torch.equal(loaded(ids).logits, src(ids).logits)
    assert isinstance(AutoTokenizer.from_pretrained(tmp_path / "out"), HyenaDNATokenizerFast)


def test_convert_safari_hyena_raw_state_dict(tmp_path):
    config = HyenaConfig(vocab_size=50257, d_model=16, n_layer=1, max_seq_len=32, emb_dim=5, filter_order=8)
    src = HyenaForCausalLM(config).eval()
    sd = {k.removeprefix("hyena."): v for k, v in src.state_dict().items() if k != "lm_head.weight"}
    torch.save(_with_shared_freq_names(sd), tmp_path / "hyena.ckpt")
    (tmp_path / "config.json").write_text(json.dumps({k: v for k, v in config.to_dict().items()
                                                      if k in HyenaConfig().to_dict()}))
    model = convert(tmp_path / "hyena.ckpt", tmp_path / "out", family="hyena")
    ids = torch.randint(0, 50257, (1, 20))
    assert torch.equal(model.eval()(ids).logits, src(ids).logits)
    assert model.config.padded_vocab_size == 50264 and model.lm_head.weight is model.get_input_embeddings().weight


def test_convert_m2_bert_bin(tmp_path):
    src = M2BertForMaskedLM(tiny_m2()).eval()
    sd = _with_shared_freq_names(src.state_dict())
    sd = {("model." + k): v for k, v in sd.items() if k != "cls.predictions.decoder.weight"}
    sd["model.bert.encoder.flashfft.f_16_fft"] = torch.zeros(4, dtype=torch.bfloat16)
    torch.save(sd, tmp_path / "pytorch_model.bin")
    cfg = tiny_m2().to_dict()
    cfg["model_type"] = "bert"  # older M2 repos
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    model = convert(tmp_path, tmp_path / "out")
    ids = ids_for(src.config, 2, 32)
    assert type(model) is M2BertForMaskedLM and torch.equal(model.eval()(ids).logits, src(ids).logits)
    assert AutoConfig.from_pretrained(tmp_path / "out").model_type == "m2_bert"


def _raw_hyenadna(tmp_path, mutate):
    src = HyenaDNAForCausalLM(tiny_hyenadna())
    sd = {"model." + k.removeprefix("hyena."): v for k, v in src.state_dict().items()}
    mutate(sd)
    torch.save({"state_dict": sd}, tmp_path / "weights.ckpt")
    (tmp_path / "config.json").write_text(json.dumps(tiny_hyenadna().to_dict()))
    return tmp_path


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda sd: sd.pop("model.backbone.ln_f.weight"), "missing keys.*ln_f.weight"),
        (lambda sd: sd.update({"model.backbone.extra.weight": torch.zeros(2)}), "unexpected keys.*extra"),
        (lambda sd: sd.update({"model.backbone.ln_f.bias": torch.zeros(7)}), r"ln_f.bias: checkpoint shape \(7,\)"),
        (lambda sd: sd.update({"model.backbone.layers.0.mixer.filter_fn.implicit_filter.3.freq": torch.ones(1, 16)}),
         "shared Sin frequency"),
    ],
)
def test_convert_rejects_mismatched_checkpoints(tmp_path, mutate, match):
    with pytest.raises(CheckpointError, match=match):
        convert(_raw_hyenadna(tmp_path, mutate), tmp_path / "out")


def test_convert_rejects_wrong_model_type_and_pickles(tmp_path):
    path = _raw_hyenadna(tmp_path, lambda sd: None)
    (path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(CheckpointError, match="does not match family"):
        convert(path, tmp_path / "out", family="hyenadna")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "weights.bin").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read weights.bin.*not a PyTorch checkpoint"):
        convert(tmp_path / "bad", tmp_path / "out")
    with pytest.raises(CheckpointError, match="does not exist"):
        convert(tmp_path / "nope", tmp_path / "out")


@pytest.mark.parametrize("config,cls", [(tiny_hyenadna, HyenaDNAForSequenceClassification),
                                        (tiny_m2, M2BertForSequenceClassification)], ids=["hyenadna", "m2_bert"])
@pytest.mark.parametrize("problem", ["regression", "single_label_classification", "multi_label_classification"])
def test_sequence_classification_loss_follows_the_problem_type(config, cls, problem):
    """As transformers' classifiers: the problem type is inferred from the labels (and recorded),
    and multi-label targets get binary cross-entropy, not a softmax."""
    torch.manual_seed(0)
    num_labels = 1 if problem == "regression" else 3
    model = cls(config(num_labels=num_labels)).double()
    ids = torch.randint(3, 8, (4, 12))
    labels = {"regression": torch.randn(4, dtype=torch.float64), "single_label_classification": torch.tensor([0, 2, 1, 2]),
              "multi_label_classification": torch.tensor([[1.0, 0, 1], [0, 0, 0], [1, 1, 1], [0, 1, 0]],
                                                         dtype=torch.float64)}[problem]
    out = model(ids, labels=labels)
    assert model.config.problem_type == problem
    want = {"regression": lambda z: torch.nn.functional.mse_loss(z.view(-1), labels),
            "single_label_classification": lambda z: torch.nn.functional.cross_entropy(z, labels),
            "multi_label_classification": lambda z: torch.nn.functional.binary_cross_entropy_with_logits(z, labels),
            }[problem](out.logits)
    torch.testing.assert_close(out.loss, want, rtol=1e-12, atol=1e-12)
