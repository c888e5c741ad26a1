"""Quickstart: load the embedded checkpoints with the transformers Auto classes and use them.

    python -m longconv_models.quickstart [--device cuda] [--max-new-tokens 120]

Generates Python-docs-like text with the character-level Hyena LM, generates and scores DNA with
the HyenaDNA model, fills masks and compares sentence embeddings with the M2-BERT model, and
prints which convolution path ran (fused CUDA kernel or PyTorch reference). Takes seconds on a CPU.
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer, pipeline

import longconv_models as lcm
from longconv_models import checkpoints


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--max-new-tokens", type=int, default=120)
    ap.add_argument("--prompt", default="Return the ")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    dtype = torch.bfloat16 if args.device == "cuda" else torch.float32

    t0 = time.time()
    path = checkpoints.path("hyena-char-pydocs")
    tok = AutoTokenizer.from_pretrained(path)
    lm = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(args.device).eval()
    ids = tok(args.prompt, return_tensors="pt", add_special_tokens=False).input_ids.to(args.device)
    out = lm.generate(ids, max_new_tokens=args.max_new_tokens, do_sample=True, top_k=10, temperature=0.7)
    print(f"== {type(lm).__name__} ({sum(p.numel() for p in lm.parameters()) / 1e6:.2f}M params) from {path}")
    print(tok.decode(out[0], skip_special_tokens=True))
    print(f"   fftconv path: {'/'.join(x for x in lcm.last_backend('fftconv') if x)}; "
          f"short conv path: {'/'.join(x for x in lcm.last_backend('short_conv') if x)}")

    path = checkpoints.path("hyenadna-tiny-synthetic")
    tok = AutoTokenizer.from_pretrained(path)
    dna = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(args.device).eval()
    prompt = tok("ATG", return_tensors="pt", add_special_tokens=False).input_ids.to(args.device)
    gen = dna.generate(prompt, max_new_tokens=60, do_sample=True, top_k=4)
    print(f"\n== {type(dna).__name__} ({sum(p.numel() for p in dna.parameters()) / 1e6:.2f}M params) from {path}")
    print("generated DNA:", tok.decode(gen[0], skip_special_tokens=True))
    seq = "ATG" + "GCT" * 30 + "TAA"
    with torch.no_grad():
        x = tok(seq, return_tensors="pt", add_special_tokens=False).input_ids.to(args.device)
        nll = dna(x, labels=x).loss.item()
    print(f"bits per base of a repetitive coding sequence: {nll / math.log(2):.2f} (uniform: 2.00)")
    print(f"   fftconv path: {'/'.join(x for x in lcm.last_backend('fftconv') if x)}")

    path = checkpoints.path("m2-bert-tiny-pydocs")
    mlm = AutoModelForMaskedLM.from_pretrained(path, dtype=dtype).to(args.device).eval()
    tok = AutoTokenizer.from_pretrained(path)
    print(f"\n== {type(mlm).__name__} ({sum(p.numel() for p in mlm.parameters()) / 1e6:.2f}M params) from {path}")
    fill = pipeline("fill-mask", model=mlm, tokenizer=tok, device=args.device)
    for text in ("Return the [MASK] of the list.", "Return a [MASK] of the string."):
        guesses = ", ".join(f"{g['token_str']} ({g['score']:.2f})" for g in fill(text, top_k=3))
        print(f"{text!r}: {guesses}")

    def embed(text):  # mean of the last hidden states (M2-BERT reads no attention mask: one text per call)
        with torch.no_grad():
            enc = tok(text, return_tensors="pt").to(args.device)
            return mlm(**enc, output_hidden_states=True).hidden_states[-1][0].float().mean(0)

    texts = ["Return a copy of the list.", "Return a shallow copy of the sequence.", "Open the socket connection."]
    e = torch.stack([embed(t) for t in texts])
    sim = torch.nn.functional.cosine_similarity(e[:, None], e[None], dim=-1)
    print(f"embedding cosine similarity: {texts[0]!r} vs {texts[1]!r}: {sim[0, 1]:.2f}; vs {texts[2]!r}: {sim[0, 2]:.2f}")
    print(f"   fftconv path: {'/'.join(x for x in lcm.last_backend('fftconv') if x)}")
    print(f"done in {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()
