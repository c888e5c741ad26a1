"""Character tokenizers: the fast (tokenizers-backed) classes give the slow classes' ids on every
kind of input, lower-case DNA is upper-cased, unknown characters are named in a warning."""

import random

import pytest
import torch
from transformers import AutoTokenizer
from transformers.testing_utils import CaptureLogger
from transformers.utils import logging

import longconv_models
from longconv_models.models import CharacterTokenizer, HyenaDNATokenizer, HyenaDNATokenizerFast
from longconv_models.models.hyenadna import tokenization_hyenadna

rng = random.Random(0)


def dna(n, alphabet="ACGTNacgtn"):
    return "".join(rng.choice(alphabet) for _ in range(n))


TEXTS = [  # fast == slow for both settings of append_eos (the pairs below)
    "ACGT", "acgtn", "", "A", dna(3000), "ACGTXUacgu-*", "NNNNnnnn\nACGT", "ΩACG", "AC[MASK]GT[PAD]", "[SEP]",
]
CALLS = [
    {}, {"add_special_tokens": False}, {"padding": True}, {"padding": "max_length", "max_length": 12, "truncation": True},
    {"truncation": True, "max_length": 5}, {"return_attention_mask": True, "padding": True},
    {"padding": True, "return_tensors": "pt"}, {"return_offsets_mapping": False, "padding": "longest"},
]


@pytest.fixture(scope="module")
def pairs():
    pydocs = longconv_models.checkpoints.path("hyena-char-pydocs")
    return [(HyenaDNATokenizer(), HyenaDNATokenizerFast()),
            (HyenaDNATokenizer(uppercase=False, append_eos=True), HyenaDNATokenizerFast(uppercase=False, append_eos=True)),
            (CharacterTokenizer.from_pretrained(pydocs), AutoTokenizer.from_pretrained(pydocs))]


def _same(a, b):
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    return a == b


@pytest.mark.parametrize("kwargs", CALLS)
def test_fast_equals_slow(pairs, kwargs):
    for slow, fast in pairs:
        assert fast.is_fast and not slow.is_fast
        for side in ("right", "left"):
            slow.truncation_side = fast.truncation_side = side
            batch = TEXTS if not kwargs.get("return_tensors") else TEXTS[:2]
            a, b = slow(batch, **kwargs), fast(batch, **kwargs)
            assert a.keys() == b.keys()
            assert all(_same(a[k], b[k]) for k in a), (type(fast).__name__, kwargs, side)
            for t in TEXTS:
                if not kwargs.get("return_tensors"):
                    assert slow(t, **kwargs) == fast(t, **kwargs), (t, kwargs)
        assert slow("ACGT", "GGA")["input_ids"] == fast("ACGT", "GGA")["input_ids"]
        assert slow.decode(slow(TEXTS[4])["input_ids"]) == fast.decode(fast(TEXTS[4])["input_ids"])


def test_vectorised_path_equals_tokenizers_pipeline():
    fast = HyenaDNATokenizerFast()
    for t in TEXTS:
        through_backend = fast(t, return_offsets_mapping=True)  # only the Rust pipeline gives offsets
        assert fast(t)["input_ids"] == through_backend["input_ids"], t
        assert fast.backend_tokenizer.encode(t).ids == through_backend["input_ids"]


def test_soft_masked_bases_are_upper_cased_by_default():
    for tok in (HyenaDNATokenizer(), HyenaDNATokenizerFast()):
        assert tok("acgtn")["input_ids"] == tok("ACGTN")["input_ids"] == [7, 8, 9, 10, 11]
    published = HyenaDNATokenizerFast(uppercase=False, append_eos=True)  # the published tokenizer's ids
    assert published("acgtA")["input_ids"] == [6, 6, 6, 6, 7, 1]


def test_prompts_get_an_attention_mask_and_no_eos():
    for tok in (HyenaDNATokenizer(), HyenaDNATokenizerFast()):
        enc = tok(["ACGT", "AC"], padding=True)
        assert enc["input_ids"] == [[7, 8, 9, 10], [4, 4, 7, 8]] and enc["attention_mask"] == [[1] * 4, [0, 0, 1, 1]]
        training = type(tok)(append_eos=True)  # the published rule for training inputs
        assert training("ACGT")["input_ids"] == [7, 8, 9, 10, 1]


def test_text_generation_pipeline_continues_the_prompt():
    from transformers import pipeline

    path = longconv_models.checkpoints.path("hyena-char-pydocs")
    generate = pipeline("text-generation", model=path, device="cpu")
    out = generate("Return the ", max_new_tokens=12, do_sample=False)[0]["generated_text"]
    assert out.startswith("Return the ") and len(out) == len("Return the ") + 12 and "[SEP]" not in out


@pytest.mark.parametrize("cls", [HyenaDNATokenizer, HyenaDNATokenizerFast])
def test_unknown_characters_are_named(cls):
    logger = logging.get_logger(tokenization_hyenadna.__name__)
    with CaptureLogger(logger) as cl:
        ids = cls()(f"ACGT{cls.__name__[-4:]}Z")["input_ids"]
    assert 6 in ids and "'Z'" in cl.out and "[UNK]" in cl.out


def test_auto_tokenizer_is_fast_and_round_trips(tmp_path):
    path = longconv_models.checkpoints.path("hyenadna-tiny-synthetic")
    tok = AutoTokenizer.from_pretrained(path)
    assert isinstance(tok, HyenaDNATokenizerFast) and tok.padding_side == "left"
    tok.save_pretrained(tmp_path)
    assert (tmp_path / "vocab.json").is_file() and (tmp_path / "tokenizer.json").is_file()
    for cls in (AutoTokenizer, HyenaDNATokenizer):
        again = cls.from_pretrained(tmp_path)
        assert again("ACGTacgt")["input_ids"] == tok("ACGTacgt")["input_ids"]
        assert again.model_max_length == tok.model_max_length
