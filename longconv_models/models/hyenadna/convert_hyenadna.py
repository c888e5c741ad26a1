"""Conversion of the published HyenaDNA checkpoints (``LongSafari/hyenadna-*-seqlen[-hf]``).

Two sources, two sets of defaults (from the published configs and code):

| source | recognised by | tied head | modulation_shift |
|---|---|---|---|
| ``-hf`` port (``model.safetensors``, flat ``config.json`` with ``model_type: hyenadna``) | a flat config, or keys under ``hyena.`` | no (``lm_head`` stored) | 0.05 (its inference code) |
| training code (Lightning ``weights.ckpt``, nested ``config.json`` / hyper-parameters) | a nested config, or keys under ``model.`` | yes | 0.0 (its training code) |

A fine-tuned ``-hf`` sequence classifier (``score.weight``) converts to
``HyenaDNAForSequenceClassification``. Keys and nested configs are handled as for safari Hyena
(``models/hyena/convert_hyena.py``), whose code HyenaDNA forked.
"""

from __future__ import annotations

import torch

from ..hyena.convert_hyena import canonical_keys, config_fields, is_nested
from .configuration_hyenadna import HyenaDNAConfig
from .modeling_hyenadna import HyenaDNAForCausalLM, HyenaDNAForSequenceClassification
from .tokenization_hyenadna import HyenaDNATokenizer

__all__ = ["build_config", "canonical_keys", "model_class", "save_extras"]

# hyena-dna configs/model/layer/hyena.yaml and the published -seqlen config.json files
TRAINING_DEFAULTS = dict(emb_dim=5, filter_order=64, activation_freq=10.0, modulate=True, modulation_shift=0.0,
                         tie_word_embeddings=True, train_pos_emb=False, embed_dropout=0.1, pad_vocab_size_multiple=8)
HF_DEFAULTS = dict(tie_word_embeddings=False, modulation_shift=0.05)


def build_config(raw: dict | None, state: dict[str, torch.Tensor], original_keys) -> tuple[HyenaDNAConfig, list[str]]:
    hf_layout = any(k.startswith("hyena.") for k in original_keys)
    defaults = dict(TRAINING_DEFAULTS, **HF_DEFAULTS) if hf_layout and not raw else TRAINING_DEFAULTS
    source = "-hf port (untied head, modulation_shift 0.05)" if defaults is not TRAINING_DEFAULTS else \
        "HyenaDNA training code (tied head, modulation_shift 0.0)"
    fields, notes = config_fields(raw, state, defaults, HF_DEFAULTS, 12, source)
    if is_nested(raw):
        notes.append("original training config: modulation_shift 0.0 (the -hf inference code uses 0.05)")
    return HyenaDNAConfig(**fields), notes


def model_class(state: dict[str, torch.Tensor], config) -> type:
    return HyenaDNAForSequenceClassification if "score.weight" in state else HyenaDNAForCausalLM


def save_extras(model, out) -> None:
    HyenaDNATokenizer(model_max_length=model.config.max_seq_len).save_pretrained(out)
