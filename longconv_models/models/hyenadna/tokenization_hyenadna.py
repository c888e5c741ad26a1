"""Character tokenizers: a generic one (any alphabet) and HyenaDNA's (the published fixed
vocabulary of 12 ids)."""

from __future__ import annotations

import json
import os

from transformers import PreTrainedTokenizer

SPECIAL = ["[CLS]", "[SEP]", "[BOS]", "[MASK]", "[PAD]", "[RESERVED]", "[UNK]"]
DEFAULT_CHARACTERS = ("A", "C", "G", "T", "N")


class CharacterTokenizer(PreTrainedTokenizer):
    """One token per character: [CLS]=0, [SEP]=1, [BOS]=2, [MASK]=3, [PAD]=4, [RESERVED]=5,
    [UNK]=6, then the ``characters`` in order; unknown characters map to [UNK]. Special tokens are
    added as ``sequence + [SEP]``; padding is on the left (for causal models)."""

    vocab_files_names = {"vocab_file": "vocab.json"}
    model_input_names = ["input_ids"]

    def __init__(self, vocab_file=None, characters=(), model_max_length=1024,
                 padding_side="left", uppercase=False, **kwargs):
        if vocab_file is not None:
            with open(vocab_file) as f:
                characters = json.load(f)["characters"]
        self.characters = list(characters)
        self.uppercase = uppercase
        self._vocab = {tok: i for i, tok in enumerate(SPECIAL + self.characters)}
        self._ids = {i: tok for tok, i in self._vocab.items()}
        kwargs.setdefault("bos_token", "[BOS]")
        kwargs.setdefault("eos_token", "[SEP]")
        kwargs.setdefault("sep_token", "[SEP]")
        kwargs.setdefault("cls_token", "[CLS]")
        kwargs.setdefault("pad_token", "[PAD]")
        kwargs.setdefault("mask_token", "[MASK]")
        kwargs.setdefault("unk_token", "[UNK]")
        super().__init__(model_max_length=model_max_length, padding_side=padding_side, **kwargs)

    @property
    def vocab_size(self) -> int:
        return len(self._vocab)

    def get_vocab(self):
        return dict(self._vocab)

    def _tokenize(self, text, **kwargs):
        return list(text.upper() if self.uppercase else text)

    def _convert_token_to_id(self, token):
        return self._vocab.get(token, self._vocab["[UNK]"])

    def _convert_id_to_token(self, index):
        return self._ids.get(index, "[UNK]")

    def convert_tokens_to_string(self, tokens):
        return "".join(tokens)

    def build_inputs_with_special_tokens(self, token_ids_0, token_ids_1=None):
        sep = [self.sep_token_id]
        out = token_ids_0 + sep
        return out if token_ids_1 is None else out + token_ids_1 + sep

    def get_special_tokens_mask(self, token_ids_0, token_ids_1=None, already_has_special_tokens=False):
        if already_has_special_tokens:
            return [1 if t in self.all_special_ids else 0 for t in token_ids_0]
        mask = [0] * len(token_ids_0) + [1]
        return mask if token_ids_1 is None else mask + [0] * len(token_ids_1) + [1]

    def save_vocabulary(self, save_directory, filename_prefix=None):
        path = os.path.join(save_directory, (filename_prefix + "-" if filename_prefix else "") + "vocab.json")
        with open(path, "w") as f:
            json.dump({"characters": self.characters}, f)
        return (path,)


class HyenaDNATokenizer(CharacterTokenizer):
    """HyenaDNA's tokenizer: A=7, C=8, G=9, T=10, N=11 after the 7 special tokens. Case-sensitive,
    as the published tokenizer: lower-case bases map to [UNK] unless ``uppercase=True``."""

    def __init__(self, vocab_file=None, characters=DEFAULT_CHARACTERS, **kwargs):
        super().__init__(vocab_file=vocab_file, characters=characters, **kwargs)
