"""HyenaDNA models: the Hyena architecture (see ``models/hyena``) with the HyenaDNA config, under
the class names of the published ``-hf`` checkpoints (``HyenaDNAModel``, ``HyenaDNAForCausalLM``,
``HyenaDNAForSequenceClassification``; parameters under ``hyena.backbone.*``)."""

from __future__ import annotations

from ..hyena.modeling_hyena import HyenaForCausalLM, HyenaForSequenceClassification, HyenaModel, HyenaPreTrainedModel
from .configuration_hyenadna import HyenaDNAConfig


class HyenaDNAPreTrainedModel(HyenaPreTrainedModel):
    config_class = HyenaDNAConfig


class HyenaDNAModel(HyenaModel):
    config_class = HyenaDNAConfig


class HyenaDNAForCausalLM(HyenaForCausalLM):
    config_class = HyenaDNAConfig


class HyenaDNAForSequenceClassification(HyenaForSequenceClassification):
    config_class = HyenaDNAConfig
