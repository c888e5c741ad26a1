"""The shipped checkpoints' model cards carry Hugging Face metadata consistent with their
training metrics, and every checkpoint loads with its own tokenizer."""

import json
from pathlib import Path

import pytest
from huggingface_hub import ModelCard
from transformers import AutoConfig, AutoTokenizer

from longconv_models import checkpoints


@pytest.mark.parametrize("name", checkpoints.NAMES)
def test_card_metadata_matches_training_metrics(name):
    folder = Path(checkpoints.path(name))
    card = ModelCard.load(folder / "README.md")
    data = card.data.to_dict()
    assert data["library_name"] == "transformers" and data["pipeline_tag"] in ("text-generation", "fill-mask")
    metrics = json.loads((folder / "train_metrics.json").read_text())
    reported = data["model-index"][0]["results"][0]["metrics"][0]["value"]
    measured = metrics.get("val_bits_per_char", metrics.get("val_masked_bits_per_token"))
    assert reported == pytest.approx(measured, abs=1e-4)
    assert f"{measured:.2f}" in card.text  # the prose quotes the same number
    assert AutoConfig.from_pretrained(folder).model_type in ("hyena", "hyenadna", "m2_bert")
    assert AutoTokenizer.from_pretrained(folder)("Return the")["input_ids"]
