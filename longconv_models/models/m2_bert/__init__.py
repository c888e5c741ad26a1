from .configuration_m2_bert import M2BertConfig
from .modeling_m2_bert import (
    M2BertForMaskedLM,
    M2BertForSequenceClassification,
    M2BertForTextEncoding,
    M2BertModel,
    M2BertPreTrainedModel,
)

__all__ = [
    "M2BertConfig",
    "M2BertForMaskedLM",
    "M2BertForSequenceClassification",
    "M2BertForTextEncoding",
    "M2BertModel",
    "M2BertPreTrainedModel",
]
