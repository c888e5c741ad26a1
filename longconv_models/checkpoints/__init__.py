"""Small checkpoints trained with this library and shipped with it (Hugging Face format).

* ``hyena-char-pydocs``: character-level Hyena LM (1.36M parameters) on the docstrings of the
  Python standard library; 2.24 bits/char on held-out text.
* ``hyenadna-tiny-synthetic``: HyenaDNA (0.87M parameters, 1K context) on a synthetic genome
  (``examples/data/corpora.py``); 1.67 bits/base on held-out DNA (uniform: 2.0).
* ``m2-bert-tiny-pydocs``: M2-BERT masked LM (1.14M parameters, 128 tokens) with its own
  lower-cased WordPiece tokenizer, on the same docstrings; 6.83 bits per masked token held out.

Model cards: ``model_cards/``. Reproduce with ``examples/train_embedded.py``.
"""

from pathlib import Path

NAMES = ("hyena-char-pydocs", "hyenadna-tiny-synthetic", "m2-bert-tiny-pydocs")


def path(name: str) -> str:
    """Directory of an embedded checkpoint, for ``AutoModel*.from_pretrained``."""
    if name not in NAMES:
        raise ValueError(f"unknown embedded checkpoint {name!r}; available: {', '.join(NAMES)}")
    return str(Path(__file__).parent / name)
