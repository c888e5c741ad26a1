"""Character tokenizers: a generic one (any alphabet) and HyenaDNA's (the published fixed
vocabulary of 12 ids), each as a Python tokenizer and a fast one backed by ``tokenizers``
(the same ids; ``AutoTokenizer`` returns the fast one).

Ids: [CLS]=0, [SEP]=1, [BOS]=2, [MASK]=3, [PAD]=4, [RESERVED]=5, [UNK]=6, then the characters
in order (HyenaDNA: A=7, C=8, G=9, T=10, N=11). A sequence gets no special tokens by default, so
a prompt is continued, not ended; ``append_eos=True`` appends [SEP] (the EOS token) to every
sequence, as the published HyenaDNA tokenizer and its training inputs do. A pair is
``A [SEP] B`` (``A [SEP] B [SEP]`` with ``append_eos``). Padding is on the left (for causal
models); an attention mask comes with every encoding. With
``uppercase=True`` (HyenaDNA's default) lower-case input is upper-cased first: genome files
soft-mask repeats in lower case, and the published vocabulary has upper-case bases only.
Characters outside the alphabet map to [UNK] with a warning that names them.
"""

from __future__ import annotations

import json
import os
import re

import numpy as np

from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import WordLevel
from transformers import PreTrainedTokenizer
from transformers.tokenization_utils_base import BatchEncoding, PaddingStrategy, TruncationStrategy
from transformers.tokenization_utils_tokenizers import TokenizersBackend
from transformers.utils import logging

logger = logging.get_logger(__name__)

SPECIAL = ["[CLS]", "[SEP]", "[BOS]", "[MASK]", "[PAD]", "[RESERVED]", "[UNK]"]
DEFAULT_CHARACTERS = ("A", "C", "G", "T", "N")
SPECIAL_TOKENS = dict(bos_token="[BOS]", eos_token="[SEP]", sep_token="[SEP]", cls_token="[CLS]",
                      pad_token="[PAD]", mask_token="[MASK]", unk_token="[UNK]")
_SPECIAL_RE = re.compile("|".join(re.escape(t) for t in SPECIAL))


def _read_characters(vocab_file, characters):
    if vocab_file is not None:
        with open(vocab_file) as f:
            characters = json.load(f)["characters"]
    return list(characters)


class _CharacterVocabulary:
    """What the Python and the fast tokenizer share: the vocabulary, the special-token rule,
    the unknown-character warning and the vocabulary file."""

    vocab_files_names = {"vocab_file": "vocab.json"}
    model_input_names = ["input_ids", "attention_mask"]

    def _setup(self, characters, uppercase, append_eos):
        self.characters = list(characters)
        self.uppercase, self.append_eos = uppercase, append_eos
        self._vocab = {tok: i for i, tok in enumerate(SPECIAL + self.characters)}
        self._ids = {i: tok for tok, i in self._vocab.items()}
        alphabet = "".join(re.escape(c) for c in self.characters)
        self._unknown = re.compile(f"[^{alphabet}]", re.IGNORECASE if uppercase else 0) if alphabet else None

    def _warn_unknown(self, texts):
        """One regex scan per text (special-token strings aside); warns once per character set."""
        if self._unknown is None:
            return
        for text in texts if isinstance(texts, (list, tuple)) else [texts]:
            if not (isinstance(text, str) and self._unknown.search(text)):
                continue
            bad = sorted(set(self._unknown.findall(_SPECIAL_RE.sub("", text))))
            if bad:
                logger.warning_once(
                    f"{type(self).__name__}: characters outside the vocabulary {''.join(self.characters)} map to "
                    f"[UNK]: {bad[:20]}" + ("" if self.uppercase else " (lower case is not upper-cased: uppercase=False)"))
                return

    @property
    def vocab_size(self) -> int:
        return len(self._vocab)

    def get_vocab(self):
        return dict(self._vocab)

    def save_vocabulary(self, save_directory, filename_prefix=None):
        path = os.path.join(save_directory, (filename_prefix + "-" if filename_prefix else "") + "vocab.json")
        with open(path, "w") as f:
            json.dump({"characters": self.characters}, f)
        return (path,)


class CharacterTokenizer(_CharacterVocabulary, PreTrainedTokenizer):
    """One token per character (Python implementation; see the module docstring for the ids)."""

    def __init__(self, vocab_file=None, characters=(), model_max_length=1024, padding_side="left",
                 uppercase=False, append_eos=False, **kwargs):
        self._setup(_read_characters(vocab_file, characters), uppercase, append_eos)
        for k, v in SPECIAL_TOKENS.items():
            kwargs.setdefault(k, v)
        super().__init__(model_max_length=model_max_length, padding_side=padding_side, uppercase=uppercase,
                         append_eos=append_eos, **kwargs)

    def _tokenize(self, text, **kwargs):
        self._warn_unknown(text)
        return list(text.upper() if self.uppercase else text)

    def _convert_token_to_id(self, token):
        return self._vocab.get(token, self._vocab["[UNK]"])

    def _convert_id_to_token(self, index):
        return self._ids.get(index, "[UNK]")

    def convert_tokens_to_string(self, tokens):
        return "".join(tokens)

    def build_inputs_with_special_tokens(self, token_ids_0, token_ids_1=None):
        eos = [self.sep_token_id] if self.append_eos else []
        if token_ids_1 is None:
            return token_ids_0 + eos
        return token_ids_0 + [self.sep_token_id] + token_ids_1 + eos

    def get_special_tokens_mask(self, token_ids_0, token_ids_1=None, already_has_special_tokens=False):
        if already_has_special_tokens:
            return [1 if t in self.all_special_ids else 0 for t in token_ids_0]
        eos = [1] if self.append_eos else []
        if token_ids_1 is None:
            return [0] * len(token_ids_0) + eos
        return [0] * len(token_ids_0) + [1] + [0] * len(token_ids_1) + eos

    def num_special_tokens_to_add(self, pair=False):
        return int(self.append_eos) + int(pair)


def build_backend(characters, uppercase: bool, append_eos: bool) -> Tokenizer:
    """The ``tokenizers`` pipeline equal to :class:`CharacterTokenizer`: upper-case the letters
    of the alphabet, split into single characters, look each up (unknown -> [UNK]), [SEP] between
    a pair and, with ``append_eos``, after each sequence."""
    vocab = {tok: i for i, tok in enumerate(SPECIAL + list(characters))}
    backend = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    if uppercase:
        lower = sorted({c.lower() for c in characters if c.lower() != c})
        backend.normalizer = normalizers.Sequence([normalizers.Replace(c, c.upper()) for c in lower])
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()
    eos = " [SEP]:{}" if append_eos else ""
    backend.post_processor = processors.TemplateProcessing(
        single="$A:0" + eos.format(0), pair="$A:0 [SEP]:0 $B:1" + eos.format(1),
        special_tokens=[("[SEP]", vocab["[SEP]"])])
    return backend


class CharacterTokenizerFast(_CharacterVocabulary, TokenizersBackend):
    """:class:`CharacterTokenizer` backed by ``tokenizers`` (Rust): the same ids, tens of times
    faster on long sequences."""

    slow_tokenizer_class = CharacterTokenizer

    def __init__(self, vocab_file=None, characters=(), model_max_length=1024, padding_side="left",
                 uppercase=False, append_eos=False, **kwargs):
        for unused in ("vocab", "merges", "tokenizer_file", "tokenizer_object"):  # rebuilt from the characters
            kwargs.pop(unused, None)
        self._setup(_read_characters(vocab_file, characters), uppercase, append_eos)
        self._tokenizer = build_backend(self.characters, uppercase, append_eos)
        for k, v in SPECIAL_TOKENS.items():
            kwargs.setdefault(k, v)
        super().__init__(model_max_length=model_max_length, padding_side=padding_side, uppercase=uppercase,
                         append_eos=append_eos, **kwargs)

        # Code point -> id table for the vectorised path; unknown and larger code points -> [UNK].
        codes = [ord(c) for c in self.characters if len(c) == 1]
        self._table = np.full(max(codes + [255]) + 2, self._vocab["[UNK]"], dtype=np.int64)
        for c in self.characters:
            if len(c) == 1:
                self._table[ord(c)] = self._vocab[c]
                if uppercase and c.lower() != c and len(c.lower()) == 1:
                    self._table[ord(c.lower())] = self._vocab[c]
        # ASCII text with fewer than 256 ids: bytes.translate does the lookup (C, one pass)
        self._bytes_table = bytes(self._table[:256].tolist()) if len(self._vocab) <= 256 else None

    def _save_pretrained(self, save_directory, file_names, legacy_format=None, filename_prefix=None):
        # tokenizer.json for the tokenizers pipeline, and vocab.json, from which both classes load
        files = super()._save_pretrained(save_directory, file_names, legacy_format, filename_prefix)
        return files + self.save_vocabulary(save_directory, filename_prefix)

    def _lookup(self, text: str) -> np.ndarray:
        """Ids of the characters of ``text`` (uint8 for ASCII text and a small vocabulary)."""
        if text.isascii():
            data = text.encode("ascii")
            if self._bytes_table is not None:
                return np.frombuffer(data.translate(self._bytes_table), dtype=np.uint8)
            return self._table[np.frombuffer(data, dtype=np.uint8).astype(np.intp)]
        return np.take(self._table, np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32), mode="clip")

    def _encode_plus(self, text, text_pair=None, add_special_tokens=True, padding_strategy=PaddingStrategy.DO_NOT_PAD,
                     truncation_strategy=TruncationStrategy.DO_NOT_TRUNCATE, max_length=None, stride=0,
                     is_split_into_words=False, pad_to_multiple_of=None, padding_side=None, return_tensors=None,
                     return_attention_mask=None, **kwargs):
        texts = [text] if isinstance(text, str) else text
        simple = (text_pair is None and not is_split_into_words and stride == 0
                  and isinstance(texts, (list, tuple)) and all(isinstance(t, str) and "[" not in t for t in texts)
                  and not any(kwargs.get(k) for k in _BACKEND_ONLY))
        if not simple:  # pairs, offsets, special-token strings in the text, ...: the tokenizers pipeline
            self._warn_unknown(text)
            if text_pair is not None:
                self._warn_unknown(text_pair)
            return super()._encode_plus(
                text, text_pair, add_special_tokens=add_special_tokens, padding_strategy=padding_strategy,
                truncation_strategy=truncation_strategy, max_length=max_length, stride=stride,
                is_split_into_words=is_split_into_words, pad_to_multiple_of=pad_to_multiple_of, padding_side=padding_side,
                return_tensors=return_tensors, return_attention_mask=return_attention_mask, **kwargs)
        # One character per token: the ids are a table lookup (the same ids as the pipeline, which
        # the tests check); then transformers' own truncation rule and padding.
        unk, sep = self._vocab["[UNK]"], self._vocab["[SEP]"]
        eos = 1 if add_special_tokens and self.append_eos else 0
        budget = None
        if truncation_strategy != TruncationStrategy.DO_NOT_TRUNCATE and max_length is not None:
            budget = max_length - eos
        rows = []
        for t in texts:
            if budget is not None and len(t) > budget:
                t = t[:budget] if self.truncation_side == "right" else t[len(t) - budget:]
            ids = self._lookup(t)
            if (ids == unk).any():
                self._warn_unknown(t)
            rows.append(ids)
        if return_attention_mask is None:
            return_attention_mask = "attention_mask" in self.model_input_names
        if padding_strategy == PaddingStrategy.DO_NOT_PAD:  # skip pad(): no per-element Python work
            if return_tensors:
                if len({len(r) for r in rows}) > 1:
                    raise ValueError("sequences of different lengths cannot form one tensor: pass padding=True")
                stacked = np.stack(rows).astype(np.int64)
                data = {"input_ids": np.pad(stacked, ((0, 0), (0, 1)), constant_values=sep) if eos else stacked}
            else:
                lists = [_as_list(r, sep if eos else None) for r in rows]
                data = {"input_ids": lists if not isinstance(text, str) else lists[0]}
            if return_attention_mask:
                ids = data["input_ids"]
                data["attention_mask"] = np.ones_like(ids) if return_tensors else (
                    [[1] * len(r) for r in ids] if not isinstance(text, str) else [1] * len(ids))
            return BatchEncoding(data, tensor_type=return_tensors)
        rows = [_as_list(r, sep if eos else None) for r in rows]
        return self.pad({"input_ids": rows if not isinstance(text, str) or return_tensors else rows[0]},
                        padding=padding_strategy, max_length=max_length, pad_to_multiple_of=pad_to_multiple_of,
                        padding_side=padding_side, return_attention_mask=return_attention_mask,
                        return_tensors=return_tensors)


def _as_list(ids: np.ndarray, eos: int | None) -> list[int]:
    out = ids.tolist()
    if eos is not None:
        out.append(eos)
    return out


# Requests only the tokenizers pipeline answers (offsets, overflow, masks of special tokens, ...).
_BACKEND_ONLY = ("return_overflowing_tokens", "return_special_tokens_mask", "return_offsets_mapping", "return_length",
                 "return_token_type_ids", "sanitize_control_tokens")


class HyenaDNATokenizer(CharacterTokenizer):
    """HyenaDNA's tokenizer (Python): A=7, C=8, G=9, T=10, N=11 after the 7 special tokens. The
    published tokenizer's ids are ``HyenaDNATokenizer(append_eos=True, uppercase=False)``; by
    default prompts get no [SEP] and lower-case (soft-masked) bases are upper-cased."""

    def __init__(self, vocab_file=None, characters=DEFAULT_CHARACTERS, uppercase=True, **kwargs):
        super().__init__(vocab_file=vocab_file, characters=characters, uppercase=uppercase, **kwargs)


class HyenaDNATokenizerFast(CharacterTokenizerFast):
    """:class:`HyenaDNATokenizer` backed by ``tokenizers``."""

    slow_tokenizer_class = HyenaDNATokenizer

    def __init__(self, vocab_file=None, characters=DEFAULT_CHARACTERS, uppercase=True, **kwargs):
        super().__init__(vocab_file=vocab_file, characters=characters, uppercase=uppercase, **kwargs)
