"""Frequency-sparse convolutions: quality of the embedded models when their long filters keep
only the lowest fraction of their frequencies.

``model.sparsify_frequencies(keep)`` zeroes every long filter's rfft bins above ``keep * N/2``
(``keep = 0.1`` is 90% sparsity). This script measures held-out bits per token of the embedded
HyenaDNA model (synthetic genome, trained at 1,024 bases) and the character-level Hyena LM (Python
stdlib docstrings) at several sparsities.

    python examples/frequency_sparse.py --keeps 1,0.5,0.25,0.1 --length 1024
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from longconv_models import checkpoints
from longconv_models.layers import HyenaFilter

sys.path.insert(0, str(Path(__file__).parent / "data"))
from corpora import python_docs_corpus, synthetic_genome  # noqa: E402


def held_out_ids(name: str, tok, n_tokens: int) -> torch.Tensor:
    """The last 5% of the corpus each model was trained on (examples/train_embedded.py)."""
    text = synthetic_genome(4_000_000, seed=0) if name.startswith("hyenadna") else python_docs_corpus()
    held = text[int(0.95 * len(text)):][:n_tokens]
    return torch.tensor(tok.convert_tokens_to_ids(list(held)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keeps", default="1,0.5,0.25,0.1", help="fractions of the frequencies kept")
    ap.add_argument("--length", type=int, default=1024, help="window length (tokens)")
    ap.add_argument("--windows", type=int, default=8)
    ap.add_argument("--models", default="hyenadna-tiny-synthetic,hyena-char-pydocs")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args(argv)
    keeps = [float(k) for k in args.keeps.split(",")]
    rows = []
    print(f"{'model':>24} {'length':>6} {'keep':>5} {'sparsity':>8} {'bits/token':>10}")
    for name in args.models.split(","):
        path = checkpoints.path(name)
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path).to(args.device).eval()
        # windows no longer than the filters were trained for
        length = min([args.length] + [m.max_length for m in model.modules() if isinstance(m, HyenaFilter)])
        ids = held_out_ids(name, tok, args.windows * length)
        x = ids[: args.windows * length].view(-1, length).to(args.device)
        for keep in keeps:
            model.sparsify_frequencies(keep)
            with torch.no_grad():
                bits = model(x, labels=x).loss.item() / math.log(2)
            rows.append({"model": name, "length": length, "keep": keep, "bits_per_token": bits})
            print(f"{name:>24} {length:>6} {keep:>5.2f} {1 - keep:>8.0%} {bits:>10.3f}")
    return rows


if __name__ == "__main__":
    main()
