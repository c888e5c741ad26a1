from .configuration_hyenadna import HyenaDNAConfig
from .modeling_hyenadna import (
    HyenaDNAForCausalLM,
    HyenaDNAForSequenceClassification,
    HyenaDNAModel,
    HyenaDNAPreTrainedModel,
)
from .tokenization_hyenadna import CharacterTokenizer, HyenaDNATokenizer

__all__ = [
    "CharacterTokenizer",
    "HyenaDNAConfig",
    "HyenaDNAForCausalLM",
    "HyenaDNAForSequenceClassification",
    "HyenaDNAModel",
    "HyenaDNAPreTrainedModel",
    "HyenaDNATokenizer",
]
