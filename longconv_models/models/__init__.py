"""Hugging Face models, registered with the ``Auto*`` classes on import:

| model_type | config | AutoModel | heads |
|---|---|---|---|
| ``hyena`` | HyenaConfig | HyenaModel | CausalLM, SequenceClassification |
| ``hyenadna`` | HyenaDNAConfig | HyenaDNAModel | CausalLM, SequenceClassification (+ HyenaDNATokenizer) |
| ``m2_bert`` | M2BertConfig | M2BertModel | MaskedLM, SequenceClassification |
"""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
)

from .hyena import HyenaConfig, HyenaForCausalLM, HyenaForSequenceClassification, HyenaModel
from .hyenadna import (
    CharacterTokenizer,
    HyenaDNAConfig,
    HyenaDNAForCausalLM,
    HyenaDNAForSequenceClassification,
    HyenaDNAModel,
    HyenaDNATokenizer,
)
from .m2_bert import (
    M2BertConfig,
    M2BertForMaskedLM,
    M2BertForSequenceClassification,
    M2BertForTextEncoding,
    M2BertModel,
)


def _register():
    for cfg, base, heads in (
        (HyenaConfig, HyenaModel, {AutoModelForCausalLM: HyenaForCausalLM,
                                   AutoModelForSequenceClassification: HyenaForSequenceClassification}),
        (HyenaDNAConfig, HyenaDNAModel, {AutoModelForCausalLM: HyenaDNAForCausalLM,
                                         AutoModelForSequenceClassification: HyenaDNAForSequenceClassification}),
        (M2BertConfig, M2BertModel, {AutoModelForMaskedLM: M2BertForMaskedLM,
                                     AutoModelForSequenceClassification: M2BertForSequenceClassification}),
    ):
        AutoConfig.register(cfg.model_type, cfg, exist_ok=True)
        AutoModel.register(cfg, base, exist_ok=True)
        for auto, cls in heads.items():
            auto.register(cfg, cls, exist_ok=True)
    AutoTokenizer.register(HyenaDNAConfig, slow_tokenizer_class=HyenaDNATokenizer, exist_ok=True)
    AutoTokenizer.register(HyenaConfig, slow_tokenizer_class=CharacterTokenizer, exist_ok=True)


_register()

__all__ = [
    "CharacterTokenizer",
    "HyenaConfig",
    "HyenaDNAConfig",
    "HyenaDNAForCausalLM",
    "HyenaDNAForSequenceClassification",
    "HyenaDNAModel",
    "HyenaDNATokenizer",
    "HyenaForCausalLM",
    "HyenaForSequenceClassification",
    "HyenaModel",
    "M2BertConfig",
    "M2BertForMaskedLM",
    "M2BertForSequenceClassification",
    "M2BertForTextEncoding",
    "M2BertModel",
]
