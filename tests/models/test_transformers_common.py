"""transformers' own ``ModelTesterMixin`` run against each family with small configs (CPU).

The mixin comes from the source distribution of the installed transformers (see
``transformers_harness.py``); without network access and no cached copy the module is skipped.
Every skip inside the mixin carries its own reason (``pytest -ra`` prints them).
"""

from __future__ import annotations

import unittest

import pytest
import torch

import longconv_models as lcm  # noqa: F401  (registers the Auto classes)
from longconv_models.models import (
    HyenaConfig,
    HyenaDNAConfig,
    HyenaDNAForCausalLM,
    HyenaDNAForSequenceClassification,
    HyenaDNAModel,
    HyenaForCausalLM,
    HyenaForSequenceClassification,
    HyenaModel,
    M2BertConfig,
    M2BertForMaskedLM,
    M2BertForSequenceClassification,
    M2BertForTextEncoding,
    M2BertModel,
)

pytest.importorskip("parameterized", reason="transformers' common tests need `parameterized` (pip install -e .[dev])")
try:
    from transformers_harness import load_model_tester_mixin

    ModelTesterMixin = load_model_tester_mixin()
except Exception as exc:  # offline and nothing cached
    pytest.skip(f"transformers' common tests unavailable ({type(exc).__name__}: {exc})", allow_module_level=True)

from hf_common_tests.generation.test_utils import GenerationTesterMixin  # the harness' stand-in  # noqa: E402


class _Tester:
    """What ``ModelTesterMixin`` reads from ``self.model_tester``."""

    batch_size = 3
    seq_length = 12
    is_training = True
    num_attention_heads = 1  # read by a few attention tests, which skip for has_attentions=False

    def __init__(self, parent, config):
        self.parent = parent
        self.config = config
        self.vocab_size = config.vocab_size
        self.hidden_size = config.hidden_size
        self.num_hidden_layers = config.num_hidden_layers

    def get_config(self):
        return self.config.__class__.from_dict(self.config.to_dict())

    def prepare_config_and_inputs_for_common(self):
        ids = torch.randint(7 if isinstance(self.config, HyenaConfig) else 1, self.vocab_size,
                            (self.batch_size, self.seq_length))
        inputs = {"input_ids": ids}
        if isinstance(self.config, M2BertConfig):
            inputs["attention_mask"] = torch.ones_like(ids)
        return self.get_config(), inputs


def _hyena_config(cls, **kw):
    # embedding rows == vocab_size (no padding to a multiple of 8), as transformers' resize tests
    # assume; resizing a padded vocabulary and reloading it is tested in test_conventions.py
    return cls(vocab_size=99, pad_vocab_size_multiple=1, d_model=32, n_layer=2, d_inner=64,
               max_seq_len=32, emb_dim=5, filter_order=16, **kw)


class _Common(ModelTesterMixin):
    has_attentions = False
    test_resize_embeddings = True
    # resized position embeddings: filters are implicit; extend_context is the supported way
    test_resize_position_embeddings = False
    test_torch_exportable = False  # ExportTesterMixin is not in the sdist; see test_models.py

    def _config(self):
        raise NotImplementedError

    def setUp(self):
        self.model_tester = _Tester(self, self._config())


class HyenaDNACommonTest(_Common, GenerationTesterMixin, unittest.TestCase):
    all_model_classes = (HyenaDNAModel, HyenaDNAForCausalLM, HyenaDNAForSequenceClassification)

    def _config(self):
        return _hyena_config(HyenaDNAConfig, num_labels=3)


class HyenaCommonTest(_Common, GenerationTesterMixin, unittest.TestCase):
    all_model_classes = (HyenaModel, HyenaForCausalLM, HyenaForSequenceClassification)

    def _config(self):
        return _hyena_config(HyenaConfig, num_labels=3)


class M2BertCommonTest(_Common, unittest.TestCase):
    all_model_classes = (M2BertModel, M2BertForMaskedLM, M2BertForSequenceClassification, M2BertForTextEncoding)

    def _config(self):
        return M2BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, intermediate_size=64,
                            max_position_embeddings=32, hyena_filter_order=16, monarch_mlp_nblocks=4,
                            num_labels=3, hyena_training_additions=True)


# The mixin tells a head's kind (which labels, whether a loss exists) from transformers' tables of
# in-tree class names; list ours there for the duration of this module, as an in-tree model is.
_TABLES = {
    "MODEL_MAPPING_NAMES": {"longconv_hyena": "HyenaModel", "longconv_hyenadna": "HyenaDNAModel",
                            "longconv_m2_bert": "M2BertModel", "longconv_m2_bert_text": "M2BertForTextEncoding"},
    "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES": {"longconv_hyena": "HyenaForCausalLM",
                                          "longconv_hyenadna": "HyenaDNAForCausalLM"},
    "MODEL_FOR_MASKED_LM_MAPPING_NAMES": {"longconv_m2_bert": "M2BertForMaskedLM"},
    "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES": {
        "longconv_hyena": "HyenaForSequenceClassification", "longconv_hyenadna": "HyenaDNAForSequenceClassification",
        "longconv_m2_bert": "M2BertForSequenceClassification"},
}


def setup_module(module):
    from transformers.models.auto import modeling_auto

    for table, entries in _TABLES.items():
        getattr(modeling_auto, table).update(entries)


def teardown_module(module):
    from transformers.models.auto import modeling_auto

    for table, entries in _TABLES.items():
        for key in entries:
            getattr(modeling_auto, table).pop(key, None)
