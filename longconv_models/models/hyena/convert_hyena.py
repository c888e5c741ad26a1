"""Conversion of safari Hyena LM checkpoints (``Zymrael/hyena-small-150b-tok``) and the config /
key handling shared with HyenaDNA, whose training code is a fork of safari's.

Original configs are nested (safari ``configs/evals/hyena_small_150b.yaml``: ``model_config`` with
a ``layer`` section; hyena-dna ``config.json`` and Lightning hyper-parameters: ``model`` /
top level with ``layer``). Every key is mapped, ignored because it only steers training or the
original implementation, or refused: nothing is dropped silently. Without a config the sizes
are read from the tensor shapes and the rest comes from the source's published defaults.
"""

from __future__ import annotations

import re

import torch

from .._conversion import CheckpointError, fold_shared_freq, strip_wrappers, take_known
from .configuration_hyena import HyenaConfig
from .modeling_hyena import HyenaForCausalLM, HyenaForSequenceClassification

BACKBONE_FIELDS = {k: k for k in ("d_model", "n_layer", "d_inner", "vocab_size", "embed_dropout", "resid_dropout",
                                  "layer_norm_epsilon", "pad_vocab_size_multiple")}
BACKBONE_IGNORED = {"_name_", "fused_mlp", "fused_dropout_add_ln", "residual_in_fp32", "checkpoint_mixer",
                    "checkpoint_mlp", "return_hidden_state", "initializer_cfg", "use_head", "device", "dtype",
                    "process_group", "sequence_parallel"}
BACKBONE_REQUIRED = {"max_position_embeddings": 0, "attn_layer_idx": None, "attn_cfg": None}
LAYER_FIELDS = {"l_max": "max_seq_len", "emb_dim": "emb_dim", "filter_order": "filter_order", "w": "activation_freq",
                "modulate": "modulate", "shift": "modulation_shift", "short_filter_order": "short_filter_order",
                "num_inner_mlps": "num_inner_mlps", "dropout": "hyena_dropout", "filter_dropout": "hyena_filter_dropout",
                "bias": "use_bias", "order": "hyena_order"}
# local_order is accepted by the original HyenaOperator through **kwargs and never used.
LAYER_IGNORED = {"_name_", "lr", "wd", "fused_fft_conv", "jit_filter", "fused_bias_fc", "local_order",
                 "modulation_lr", "return_state"}
LAYER_REQUIRED = {"num_heads": 1, "inner_factor": 1, "num_blocks": 1, "outer_mixing": False, "post_order_ffn": False,
                  "activation": "id", "filter_cls": "hyena-filter", "normalized": False, "fast_decay_pct": 0.3,
                  "slow_decay_pct": 1.5, "target": 1e-2, "bidirectional": False}
FLAT_DROPPED = ("model_type", "auto_map", "architectures", "transformers_version", "_name_or_path")

# hyena-small-150b (safari configs/evals/hyena_small_150b.yaml); sizes not listed come from the shapes.
SAFARI_DEFAULTS = dict(emb_dim=33, filter_order=64, activation_freq=14.0, modulate=False, modulation_shift=0.0,
                       tie_word_embeddings=True, train_pos_emb=True)


def is_nested(raw: dict | None) -> bool:
    return bool(raw) and any(isinstance(raw.get(k), dict) for k in ("model_config", "model", "layer"))


def from_nested(raw: dict) -> dict:
    """Config fields from an original nested config (safari eval YAML, hyena-dna config.json or
    Lightning hyper-parameters)."""
    model = raw.get("model_config") or (raw["model"] if isinstance(raw.get("model"), dict) else raw)
    backbone = {k: v for k, v in model.items() if k != "layer"}
    fields = take_known(backbone, "model", BACKBONE_FIELDS, BACKBONE_IGNORED, BACKBONE_REQUIRED)
    layer = model.get("layer") or {}
    if layer.get("_name_", "hyena") != "hyena":
        raise CheckpointError(f"model.layer._name_ = {layer['_name_']!r}: only Hyena layers are supported")
    lr_pos_emb = layer.get("lr_pos_emb")
    fields.update(take_known({k: v for k, v in layer.items() if k != "lr_pos_emb"}, "model.layer",
                             LAYER_FIELDS, LAYER_IGNORED, LAYER_REQUIRED))
    if lr_pos_emb is not None:  # a learning rate of 0 means z was a fixed buffer
        fields["train_pos_emb"] = bool(lr_pos_emb)
    return fields


def from_shapes(state: dict[str, torch.Tensor]) -> dict:
    """The sizes a Hyena / HyenaDNA state dict implies (canonical key names)."""
    def get(suffix):
        key = f"hyena.backbone.{suffix}"
        if key not in state:
            raise CheckpointError(f"cannot infer the configuration: {key} is missing")
        return state[key]

    emb = get("embeddings.word_embeddings.weight")
    layers = {int(m.group(1)) for k in state if (m := re.match(r"hyena\.backbone\.layers\.(\d+)\.", k))}
    f = "layers.0.mixer.filter_fn."
    z = get(f + "pos_emb.z")
    linears = [k for k in state if re.match(rf"hyena\.backbone\.{re.escape(f)}implicit_filter\.\d+\.weight$", k)]
    return dict(d_model=emb.shape[1], n_layer=len(layers), d_inner=get("layers.0.mlp.fc1.weight").shape[0],
                max_seq_len=z.shape[1], emb_dim=z.shape[2], filter_order=get(f + "implicit_filter.0.weight").shape[0],
                num_inner_mlps=len(linears) - 2, short_filter_order=get("layers.0.mixer.short_filter.weight").shape[-1],
                use_bias=f"hyena.backbone.{f}bias" in state)


def canonical_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Original names -> this library's: wrappers, safari's legacy renames, ``hyena.`` prefix,
    the shared Sin frequency."""
    out = {}
    for key, value in state.items():
        k = strip_wrappers(key).replace("s4seq.encoder.", "backbone.").replace("mixer.output_linear.", "mixer.out_proj.")
        if not k.startswith(("hyena.", "lm_head.", "score.")):
            k = "hyena." + k
        out[k] = value
    return fold_shared_freq(out)


def tie_head(state: dict[str, torch.Tensor], fields: dict) -> list[str]:
    """Tied LM head (the training code stores it once, or twice with the same values)."""
    emb = state.get("hyena.backbone.embeddings.word_embeddings.weight")
    head = state.get("lm_head.weight")
    if emb is None or "score.weight" in state or not fields["tie_word_embeddings"]:
        return []
    if head is not None and not torch.equal(head, emb):
        fields["tie_word_embeddings"] = False
        return ["lm_head.weight differs from the embedding: kept untied"]
    state["lm_head.weight"] = emb
    return []


def padded_vocab(rows: int, published: int) -> int:
    """Unpadded vocabulary of the published model if the rows are its padded size."""
    return published if rows == (published + 7) // 8 * 8 else rows


def config_fields(raw: dict | None, state: dict[str, torch.Tensor], defaults: dict, flat_defaults: dict,
                  published_vocab: int, source: str) -> tuple[dict, list[str]]:
    """Config fields from a flat (transformers) config over ``flat_defaults``, a nested original
    one, or, without a config, the tensor shapes; both of the latter over the ``defaults`` of the
    original training code of the ``source``."""
    notes = []
    if raw and not is_nested(raw):
        fields = {**flat_defaults, **{k: v for k, v in raw.items() if k not in FLAT_DROPPED}}
    else:
        fields = dict(defaults)
        if raw:
            fields.update(from_nested(raw))
        else:
            fields.update(from_shapes(state))
            rows = state["hyena.backbone.embeddings.word_embeddings.weight"].shape[0]
            fields["vocab_size"] = padded_vocab(rows, published_vocab)
            notes.append(f"no config: sizes read from the tensor shapes, the rest from the {source} defaults")
    notes += tie_head(state, fields)
    add_classifier_labels(state, fields)
    return fields, notes


def build_config(raw: dict | None, state: dict[str, torch.Tensor], original_keys) -> tuple[HyenaConfig, list[str]]:
    fields, notes = config_fields(raw, state, SAFARI_DEFAULTS, {"tie_word_embeddings": True}, 50257,
                                  "hyena-small-150b (safari configs/evals/hyena_small_150b.yaml: no decay "
                                  "modulation, tied head)")
    return HyenaConfig(**fields), notes


def add_classifier_labels(state: dict[str, torch.Tensor], fields: dict) -> None:
    """A fine-tuned sequence classifier (``score.weight``, as the ``-hf`` port's head): its rows
    are the labels."""
    if "score.weight" in state:
        n = state["score.weight"].shape[0]
        if len(fields.get("id2label") or {}) != n:
            fields.pop("id2label", None)
            fields.pop("label2id", None)
        fields["num_labels"] = n


def model_class(state: dict[str, torch.Tensor], config) -> type:
    return HyenaForSequenceClassification if "score.weight" in state else HyenaForCausalLM
