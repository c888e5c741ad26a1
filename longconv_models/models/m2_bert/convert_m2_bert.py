"""Conversion of the published M2-BERT checkpoints (``danfu09/m2-bert-*``,
``togethercomputer/m2-bert-80M-*[-retrieval]``, ``hazyresearch/M2-BERT-*-Retrieval-Encoder-V1``):
``pytorch_model.bin`` / composer checkpoints with a BERT-style ``config.json`` (``model_type``
``m2_bert``, or ``bert`` on older revisions). The config is required: M2's sizes cannot all be
read from the shapes. FlashFFTConv tables (``encoder.flashfft.*``) are dropped; the MLM decoder
is tied; the head present picks the class (retrieval encoders -> ``M2BertForTextEncoding``).
"""

from __future__ import annotations

import re

import torch

from .._conversion import CheckpointError, fold_shared_freq, strip_wrappers
from .configuration_m2_bert import M2BertConfig
from .modeling_m2_bert import (
    M2BertForMaskedLM,
    M2BertForSequenceClassification,
    M2BertForTextEncoding,
    M2BertModel,
)

__all__ = ["build_config", "canonical_keys", "model_class"]

IGNORED = re.compile(r"(^|\.)flashfft\.")


def canonical_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return fold_shared_freq({strip_wrappers(k): v for k, v in state.items() if not IGNORED.search(k)})


def build_config(raw: dict | None, state: dict[str, torch.Tensor], original_keys) -> tuple[M2BertConfig, list[str]]:
    if not raw:
        raise CheckpointError("M2-BERT needs its config.json (sizes, filter length, MLP blocks): put it next to the "
                              "weights or pass --config")
    fields = {k: v for k, v in raw.items() if k not in ("model_type", "transformers_version", "_name_or_path")}
    notes = ["model_type 'bert' read as m2_bert"] if raw.get("model_type") == "bert" else []
    if "classifier.weight" in state:
        fields["num_labels"] = state["classifier.weight"].shape[0]
    return M2BertConfig(**fields), notes


def model_class(state: dict[str, torch.Tensor], config) -> type:
    if any(k.startswith("cls.predictions") for k in state):
        return M2BertForMaskedLM
    if "classifier.weight" in state:
        return M2BertForSequenceClassification
    if "M2BertForTextEncoding" in (config.architectures or []):
        return M2BertForTextEncoding
    return M2BertModel


def complete(state: dict[str, torch.Tensor], model) -> dict[str, torch.Tensor]:
    """Tied MLM decoder; a bare encoder's keys may carry ``bert.``."""
    if isinstance(model, M2BertModel):
        state = {k.removeprefix("bert."): v for k, v in state.items()}
    if isinstance(model, M2BertForMaskedLM) and "cls.predictions.decoder.weight" not in state:
        emb = state.get("bert.embeddings.word_embeddings.weight")
        if emb is not None:
            state["cls.predictions.decoder.weight"] = emb
    return state
