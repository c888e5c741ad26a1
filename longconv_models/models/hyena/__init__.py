from .configuration_hyena import HyenaConfig
from .modeling_hyena import HyenaForCausalLM, HyenaForSequenceClassification, HyenaModel, HyenaPreTrainedModel

__all__ = ["HyenaConfig", "HyenaForCausalLM", "HyenaForSequenceClassification", "HyenaModel", "HyenaPreTrainedModel"]
