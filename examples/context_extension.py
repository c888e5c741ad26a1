"""Context extension at inference with partial convolutions.

The embedded HyenaDNA model was trained on 1,024-base windows. ``model.extend_context(L)``
lets it read longer inputs: each layer keeps the first ``filter_length`` taps of its long filter
(default: all trained taps) and the FFT convolution runs at the new length, so every position
sees a causal window of at most the trained size. This script measures bits per base on held-out
synthetic DNA at increasing context lengths, for several filter lengths.

    python examples/context_extension.py --lengths 1024,4096,16384 --filter-lengths 1024,256
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import longconv_models as lcm
from longconv_models import checkpoints

sys.path.insert(0, str(Path(__file__).parent / "data"))
from corpora import synthetic_genome  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lengths", default="1024,4096,16384")
    ap.add_argument("--filter-lengths", default="1024,256")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args(argv)
    path = checkpoints.path("hyenadna-tiny-synthetic")
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).to(args.device).eval()
    lengths = [int(x) for x in args.lengths.split(",")]
    # the held-out 5% of the training genome (same procedure and seed as examples/train_embedded.py)
    genome = synthetic_genome(4_000_000, seed=0)
    dna = genome[int(0.95 * len(genome)):]
    if args.batch * max(lengths) > len(dna):
        raise SystemExit(f"batch * length must be <= {len(dna)} held-out bases")
    ids = torch.tensor(tok.convert_tokens_to_ids(list(dna)), device=args.device)
    print(f"{'length':>8} {'filter':>7} {'bits/base':>9}   (trained at {model.config.max_seq_len - 2})")
    rows = []
    for flen in (int(x) for x in args.filter_lengths.split(",")):
        for L in lengths:
            model.extend_context(max(L, model.config.max_seq_len), filter_length=min(flen, model.config.max_seq_len))
            x = ids[: args.batch * L].view(args.batch, L)
            with torch.no_grad():
                bpb = model(x, labels=x).loss.item() / math.log(2)
            rows.append((L, flen, bpb))
            print(f"{L:>8} {flen:>7} {bpb:9.3f}   conv path: {'/'.join(v for v in lcm.last_backend() if v)}")
    return rows


if __name__ == "__main__":
    main()
