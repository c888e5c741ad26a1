"""``model_type: "bert"`` configs that describe M2-BERT (older revisions of the togethercomputer
repos, the hazyresearch V1 retrieval encoders) load as M2-BERT through ``AutoConfig`` /
``AutoModel*``, never as stock BERT with most weights missing.

``AutoConfig`` resolves ``"bert"`` through its mapping; :class:`BertOrM2Config` takes that entry
on ``import longconv_models``. A dict with M2's fields becomes an :class:`M2BertConfig`; anything
else is built by transformers' own ``BertConfig`` exactly as before (the instances are
``BertConfig``, so stock BERT, its Auto classes and remote code behave as without this library).
"""

from __future__ import annotations

from transformers import AutoConfig, BertConfig

from .configuration_m2_bert import M2BertConfig

# Fields only M2-BERT configs carry.
M2_FIELDS = ("monarch_mlp_nblocks", "long_conv_l_max", "hyena_filter_order", "residual_long_conv", "use_monarch_mlp")


def describes_m2(config_dict: dict) -> bool:
    return any(k in config_dict for k in M2_FIELDS)


class BertOrM2Config(BertConfig):
    def __new__(cls, *args, **kwargs):  # direct construction: transformers' BertConfig
        return BertConfig(*args, **kwargs)

    @classmethod
    def from_dict(cls, config_dict, **kwargs):
        if describes_m2(config_dict):
            return M2BertConfig.from_dict({k: v for k, v in config_dict.items() if k != "model_type"}, **kwargs)
        return BertConfig.from_dict(config_dict, **kwargs)


# AutoConfig treats a model type whose class lives outside transformers as local code that
# overrides a repo's remote code; keep transformers' rule for "bert" unchanged.
BertOrM2Config.__module__ = BertConfig.__module__


def register() -> None:
    AutoConfig.register("bert", BertOrM2Config, exist_ok=True)
