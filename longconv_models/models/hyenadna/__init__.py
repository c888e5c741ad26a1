from .configuration_hyenadna import HyenaDNAConfig
from .modeling_hyenadna import (
    HyenaDNAForCausalLM,
    HyenaDNAForSequenceClassification,
    HyenaDNAModel,
    HyenaDNAPreTrainedModel,
)
from .tokenization_hyenadna import CharacterTokenizer, CharacterTokenizerFast, HyenaDNATokenizer, HyenaDNATokenizerFast

__all__ = [
    "CharacterTokenizer",
    "CharacterTokenizerFast",
    "HyenaDNAConfig",
    "HyenaDNAForCausalLM",
    "HyenaDNAForSequenceClassification",
    "HyenaDNAModel",
    "HyenaDNAPreTrainedModel",
    "HyenaDNATokenizer",
    "HyenaDNATokenizerFast",
]
