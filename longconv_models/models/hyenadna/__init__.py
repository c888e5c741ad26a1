from .configuration_hyenadna import HyenaDNAConfig
from .modeling_hyenadna import (
    HyenaDNAForCausalLM,
    HyenaDNAForSequenceClassification,
    HyenaDNAModel,
    HyenaDNAPreTrainedModel,
)
from .tokenization_hyenadna import HyenaDNATokenizer

__all__ = [
    "HyenaDNAConfig",
    "HyenaDNAForCausalLM",
    "HyenaDNAForSequenceClassification",
    "HyenaDNAModel",
    "HyenaDNAPreTrainedModel",
    "HyenaDNATokenizer",
]
