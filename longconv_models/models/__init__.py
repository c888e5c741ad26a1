"""Hugging Face models, registered with the ``Auto*`` classes on import:

| model_type | config | AutoModel | heads |
|---|---|---|---|
| ``hyena`` | HyenaConfig | HyenaModel | CausalLM, SequenceClassification |
| ``hyenadna`` | HyenaDNAConfig | HyenaDNAModel | CausalLM, SequenceClassification (+ HyenaDNATokenizer) |
| ``m2_bert`` | M2BertConfig | M2BertModel | MaskedLM, SequenceClassification (or TextEncoding, by the config's architecture), TextEncoding |

``bert``-typed configs with M2-BERT's fields load as M2-BERT (``m2_bert/bert_typed.py``).
"""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    AutoModelForTextEncoding,
    AutoTokenizer,
)

from .hyena import HyenaConfig, HyenaForCausalLM, HyenaForSequenceClassification, HyenaModel
from .hyenadna import (
    CharacterTokenizer,
    CharacterTokenizerFast,
    HyenaDNAConfig,
    HyenaDNAForCausalLM,
    HyenaDNAForSequenceClassification,
    HyenaDNAModel,
    HyenaDNATokenizer,
    HyenaDNATokenizerFast,
)
from .m2_bert.bert_typed import register as register_bert_typed_m2
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
        # Sequence classification: the class is picked by config.architectures (the published
        # retrieval configs resolve to M2BertForTextEncoding, see configuration_m2_bert.py).
        (M2BertConfig, M2BertModel, {AutoModelForMaskedLM: M2BertForMaskedLM,
                                     AutoModelForSequenceClassification: (M2BertForSequenceClassification,
                                                                          M2BertForTextEncoding),
                                     AutoModelForTextEncoding: M2BertForTextEncoding}),
    ):
        AutoConfig.register(cfg.model_type, cfg, exist_ok=True)
        AutoModel.register(cfg, base, exist_ok=True)
        for auto, cls in heads.items():
            auto.register(cfg, cls, exist_ok=True)
    register_bert_typed_m2()
    AutoTokenizer.register(HyenaDNAConfig, slow_tokenizer_class=HyenaDNATokenizer,
                           fast_tokenizer_class=HyenaDNATokenizerFast, exist_ok=True)
    AutoTokenizer.register(HyenaConfig, slow_tokenizer_class=CharacterTokenizer,
                           fast_tokenizer_class=CharacterTokenizerFast, exist_ok=True)


_register()

__all__ = [
    "CharacterTokenizer",
    "CharacterTokenizerFast",
    "HyenaConfig",
    "HyenaDNAConfig",
    "HyenaDNAForCausalLM",
    "HyenaDNAForSequenceClassification",
    "HyenaDNAModel",
    "HyenaDNATokenizer",
    "HyenaDNATokenizerFast",
    "HyenaForCausalLM",
    "HyenaForSequenceClassification",
    "HyenaModel",
    "M2BertConfig",
    "M2BertForMaskedLM",
    "M2BertForSequenceClassification",
    "M2BertForTextEncoding",
    "M2BertModel",
]
