"""Published checkpoint formats through the converter and the Auto classes: safari Hyena without
a config or with its nested YAML, raw HyenaDNA Lightning checkpoints (restricted unpickler, tied
head, shift 0.0), -hf classifiers, M2-BERT retrieval and bert-typed folders, corrupt files."""

import json
import os

import pytest
import torch
from safetensors.torch import save_file
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    AutoModelForTextEncoding,
    BertConfig,
)

from longconv_models.convert import CheckpointError, convert, main as convert_main
from longconv_models.models import (
    HyenaConfig,
    HyenaDNAConfig,
    HyenaDNAForCausalLM,
    HyenaDNAForSequenceClassification,
    HyenaForCausalLM,
    M2BertConfig,
    M2BertForMaskedLM,
    M2BertForTextEncoding,
)
from longconv_models import restricted_pickle

torch.manual_seed(0)


def tiny_safari(**kw):
    # hyena-small-150b's shape rules at a small size: d_inner = 2 x d_model, no modulation
    return HyenaConfig(vocab_size=50257, d_model=16, n_layer=2, d_inner=32, max_seq_len=32, emb_dim=5,
                       filter_order=8, modulate=False, **kw)


def tiny_hyenadna(**kw):
    return HyenaDNAConfig(d_model=32, n_layer=2, max_seq_len=66, emb_dim=5, filter_order=16, activation_freq=10, **kw)


def tiny_m2(**kw):
    return M2BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, intermediate_size=64,
                        max_position_embeddings=32, hyena_filter_order=16, **kw)


def safari_state(model):
    """As safari saves it: no ``hyena.`` prefix, lm_head stored once with the embedding."""
    return {k.removeprefix("hyena."): v.clone() for k, v in model.state_dict().items() if k != "lm_head.weight"}


def test_safari_without_config_reads_sizes_from_shapes(tmp_path):
    src = HyenaForCausalLM(tiny_safari()).eval()
    torch.save(safari_state(src), tmp_path / "hyena_small_150b_tok.ckpt")
    notes = []
    model = convert(tmp_path / "hyena_small_150b_tok.ckpt", tmp_path / "out", notes=notes).eval()
    assert model.config.d_inner == 32 and model.config.modulate is False and model.config.vocab_size == 50257
    assert model.lm_head.weight is model.get_input_embeddings().weight
    assert any("tensor shapes" in n for n in notes)
    ids = torch.randint(0, 50257, (2, 20))
    assert torch.equal(model(ids).logits, src(ids).logits)


SAFARI_YAML = """model_name: hyena-small
tokenizer_name: gpt2
model_config:
  _name_: lm
  d_model: 16
  d_inner: 32
  n_layer: 2
  vocab_size: 50257
  embed_dropout: 0.0
  layer:
    _name_: hyena
    emb_dim: 5
    filter_order: 8
    local_order: 3
    l_max: 32
    modulate: False
    w: 14
  fused_mlp: True
  fused_dropout_add_ln: True
  residual_in_fp32: True
  pad_vocab_size_multiple: 8
"""


def test_safari_nested_yaml_config(tmp_path):
    src = HyenaForCausalLM(tiny_safari()).eval()
    torch.save(safari_state(src), tmp_path / "w.ckpt")
    (tmp_path / "hyena_small_150b.yaml").write_text(SAFARI_YAML)
    convert_main([str(tmp_path / "w.ckpt"), str(tmp_path / "out"), "--config", str(tmp_path / "hyena_small_150b.yaml")])
    model = HyenaForCausalLM.from_pretrained(tmp_path / "out").eval()
    assert (model.config.d_inner, model.config.max_seq_len, model.config.activation_freq) == (32, 32, 14)
    ids = torch.randint(0, 50257, (1, 32))
    assert torch.equal(model(ids).logits, src(ids).logits)


@pytest.mark.parametrize("edit,match", [
    (lambda y: y.replace("    w: 14", "    w: 14\n    mystery: 1"), r"unknown keys in the config's model.layer section: \['mystery'\]"),
    (lambda y: y.replace("  d_inner: 32", "  d_inner: 32\n  colour: red"), r"unknown keys.*model section.*colour"),
    (lambda y: y.replace("    w: 14", "    w: 14\n    num_heads: 2"), r"model.layer.num_heads = 2 is not supported"),
])
def test_nested_config_refuses_unknown_keys(tmp_path, edit, match):
    torch.save(safari_state(HyenaForCausalLM(tiny_safari())), tmp_path / "w.ckpt")
    (tmp_path / "c.yaml").write_text(edit(SAFARI_YAML))
    with pytest.raises(CheckpointError, match=match):
        convert(tmp_path / "w.ckpt", None, config_path=tmp_path / "c.yaml")


class Payload:
    """A pickle that would create a file when unpickled by a plain unpickler."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def lightning_checkpoint(path, model, payload_marker=None, checkpointed_blocks=True):
    """A HyenaDNA training checkpoint as PyTorch Lightning writes it: ``model.``-prefixed state
    dict with the tied head stored twice (one storage), OmegaConf hyper-parameters, optimizer
    state, and optionally a payload."""
    omegaconf = pytest.importorskip("omegaconf")
    c = model.config
    sd = {}
    for k, v in model.state_dict().items():
        k = "model." + k.removeprefix("hyena.")
        if checkpointed_blocks:  # checkpoint_mixer / checkpoint_mlp add a .layer segment
            k = k.replace(".mixer.", ".mixer.layer.").replace(".mlp.", ".mlp.layer.")
        sd[k] = v
    sd["model.lm_head.weight"] = sd["model.backbone.embeddings.word_embeddings.weight"]
    hparams = omegaconf.OmegaConf.create({
        "train": {"seed": 2222, "global_batch_size": 256},
        "model": {"_name_": "lm", "d_model": c.d_model, "n_layer": c.n_layer, "d_inner": c.d_inner, "vocab_size": 12,
                  "resid_dropout": 0.0, "embed_dropout": 0.1, "fused_mlp": False, "fused_dropout_add_ln": True,
                  "checkpoint_mixer": checkpointed_blocks, "checkpoint_mlp": checkpointed_blocks,
                  "residual_in_fp32": True, "pad_vocab_size_multiple": 8,
                  "layer": {"_name_": "hyena", "emb_dim": c.emb_dim, "filter_order": c.filter_order, "local_order": 3,
                            "l_max": c.max_seq_len, "modulate": True, "w": 10, "lr": 6e-4, "wd": 0.0, "lr_pos_emb": 0.0}},
        "dataset": {"max_length": c.max_seq_len - 2}})
    ckpt = {"epoch": 3, "global_step": 1000, "pytorch-lightning_version": "1.8.6", "state_dict": sd,
            "optimizer_states": [{"state": {0: {"exp_avg": torch.zeros(3)}}, "param_groups": [{"lr": 6e-4}]}],
            "hyper_parameters": hparams, "hparams_type": type(hparams)}
    if payload_marker is not None:
        ckpt["callbacks"] = {"Payload": Payload(payload_marker)}
    torch.save(ckpt, path)


def test_raw_lightning_checkpoint_loads_tied_with_shift_zero(tmp_path):
    src = HyenaDNAForCausalLM(tiny_hyenadna(tie_word_embeddings=True, modulation_shift=0.0)).eval()
    marker = tmp_path / "payload_ran"
    lightning_checkpoint(tmp_path / "weights.ckpt", src, payload_marker=marker)
    with pytest.raises(Exception):  # what torch offers by default refuses it
        torch.load(tmp_path / "weights.ckpt", weights_only=True)
    notes = []
    model = convert(tmp_path / "weights.ckpt", tmp_path / "out", notes=notes).eval()
    assert not marker.exists(), "the restricted unpickler ran the checkpoint's payload"
    assert any("posix.system" in n or "nt.system" in n for n in notes) and any("hyper-parameters" in n for n in notes)
    assert model.config.modulation_shift == 0.0 and model.config.tie_word_embeddings
    reloaded = HyenaDNAForCausalLM.from_pretrained(tmp_path / "out").eval()
    assert reloaded.lm_head.weight is reloaded.get_input_embeddings().weight
    ids = torch.randint(7, 12, (2, 40))
    assert torch.equal(reloaded(ids).logits, src(ids).logits)


def test_restricted_unpickler_never_runs_code(tmp_path):
    marker = tmp_path / "ran"
    torch.save({"w": torch.ones(2), "evil": Payload(marker)}, tmp_path / "x.pt")
    obj, unresolved = restricted_pickle.torch_load(tmp_path / "x.pt")
    assert not marker.exists() and torch.equal(obj["w"], torch.ones(2))
    assert isinstance(obj["evil"], restricted_pickle.Placeholder) and unresolved
    import pickle
    blob = pickle.dumps(Payload(marker))
    assert isinstance(restricted_pickle.loads(blob), restricted_pickle.Placeholder) and not marker.exists()


def test_hf_sequence_classifier_converts(tmp_path):
    src = HyenaDNAForSequenceClassification(tiny_hyenadna(num_labels=3)).eval()
    (tmp_path / "hf").mkdir()
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(tmp_path / "hf" / "model.safetensors"))
    (tmp_path / "hf" / "config.json").write_text(json.dumps(tiny_hyenadna(num_labels=3).to_dict()))
    model = convert(tmp_path / "hf", tmp_path / "out").eval()
    assert type(model) is HyenaDNAForSequenceClassification and model.config.num_labels == 3
    ids = torch.randint(7, 12, (2, 30))
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "out").eval()
    assert torch.equal(loaded(ids).logits, src(ids).logits)


def test_hf_safetensors_without_config_uses_hf_defaults(tmp_path):
    src = HyenaDNAForCausalLM(tiny_hyenadna()).eval()  # -hf numerics: shift 0.05, untied head
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(tmp_path / "model.safetensors"))
    model = convert(tmp_path, None).eval()
    assert model.config.modulation_shift == 0.05 and not model.config.tie_word_embeddings
    ids = torch.randint(7, 12, (2, 30))
    assert torch.equal(model(ids).logits, src(ids).logits)


def test_m2_without_config_names_the_option(tmp_path):
    torch.save(M2BertForMaskedLM(tiny_m2()).state_dict(), tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="--config"):
        convert(tmp_path, None, family="m2_bert")


def test_corrupt_files_are_checkpoint_errors(tmp_path):
    src = HyenaDNAForCausalLM(tiny_hyenadna())
    sd = {k: v.contiguous() for k, v in src.state_dict().items()}
    (tmp_path / "cfg.json").write_text(json.dumps(tiny_hyenadna().to_dict()))
    save_file(sd, str(tmp_path / "model.safetensors"))
    data = (tmp_path / "model.safetensors").read_bytes()
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        convert(tmp_path / "t", None, config_path=tmp_path / "cfg.json")
    torch.save(sd, tmp_path / "full.pt")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "full.pt").read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="cannot read cut.pt"):
        convert(tmp_path / "cut.pt", None, config_path=tmp_path / "cfg.json")
    key = "hyena.backbone.ln_f.weight"
    for bad, match in ((sd[key].long(), "dtype torch.int64"), (sd[key] * float("nan"), "NaN or Inf")):
        save_file({**sd, key: bad}, str(tmp_path / "t" / "model.safetensors"))
        with pytest.raises(CheckpointError, match=match):
            convert(tmp_path / "t", None, config_path=tmp_path / "cfg.json")


def retrieval_folder(path, model, model_type):
    """An M2 retrieval repo as published: bert.* weights in pytorch_model.bin, the config naming
    BertForSequenceClassification and mapping AutoModelForSequenceClassification to remote code."""
    path.mkdir()
    sd = {k: v for k, v in model.state_dict().items()}
    sd["bert.encoder.flashfft.f_16_fft"] = torch.zeros(4, dtype=torch.bfloat16)
    torch.save(sd, path / "pytorch_model.bin")
    cfg = model.config.to_dict()
    cfg.update(model_type=model_type, architectures=["BertForSequenceClassification"],
               auto_map={"AutoConfig": "configuration_bert.BertConfig", "AutoModel": "bert_layers.BertModel",
                         "AutoModelForSequenceClassification": "bert_layers.BertForTextEncoding"})
    (path / "config.json").write_text(json.dumps(cfg))
    return path


@pytest.mark.parametrize("model_type", ["m2_bert", "bert"])
def test_m2_retrieval_usage_as_published(tmp_path, model_type):
    src = M2BertForTextEncoding(tiny_m2()).eval()
    folder = retrieval_folder(tmp_path / "repo", src, model_type)
    inputs = {"input_ids": torch.randint(0, 64, (2, 32))}
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    assert type(model) is M2BertForTextEncoding
    emb = model(**inputs)["sentence_embedding"]
    assert emb.shape == (2, 32) and torch.equal(emb, src(**inputs).sentence_embedding)
    assert type(AutoModelForTextEncoding.from_pretrained(folder)) is M2BertForTextEncoding
    converted = convert(folder, tmp_path / "out")
    assert type(converted) is M2BertForTextEncoding
    again = AutoModelForSequenceClassification.from_pretrained(tmp_path / "out").eval()
    assert torch.equal(again(**inputs)["sentence_embedding"], emb)


def test_bert_typed_m2_folder_loads_as_m2_never_stock_bert(tmp_path):
    src = M2BertForMaskedLM(tiny_m2()).eval()
    (tmp_path / "m2").mkdir()
    torch.save(src.state_dict(), tmp_path / "m2" / "pytorch_model.bin")
    cfg = dict(src.config.to_dict(), model_type="bert", architectures=["BertForMaskedLM"])
    (tmp_path / "m2" / "config.json").write_text(json.dumps(cfg))
    assert isinstance(AutoConfig.from_pretrained(tmp_path / "m2"), M2BertConfig)
    model = AutoModelForMaskedLM.from_pretrained(tmp_path / "m2").eval()
    ids = torch.randint(0, 64, (2, 32))
    assert type(model) is M2BertForMaskedLM and torch.equal(model(ids).logits, src(ids).logits)
    # stock BERT is untouched
    BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
               intermediate_size=32).save_pretrained(tmp_path / "bert")
    cfg = AutoConfig.from_pretrained(tmp_path / "bert")
    assert type(cfg) is BertConfig and type(AutoModel.from_config(cfg)).__name__ == "BertModel"
