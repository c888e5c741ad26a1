"""Generate DNA after a long prompt with the decoding cache.

The embedded HyenaDNA model (trained on 1,024-base windows of a synthetic genome) reads a prompt
of held-out DNA, possibly far longer than its training windows (``extend_context``: partial
convolutions), and continues it with ``generate``: the prompt runs once through the fused
kernels (prefill), then each new base costs the same whatever the prompt's length (the
``HyenaCache``; on a GPU the step replays as a CUDA graph). Printed: prefill time, time per
generated base, the cache's memory, and how often greedy decoding predicts the true next base
(teacher-forced, from the same cache state as the generation).

    python examples/generate_dna.py --prompt-length 16384 --new-tokens 256 [--batch 8] [--no-fused-step]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from longconv_models import checkpoints
from longconv_models.models.hyena.cache_hyena import HyenaCache

sys.path.insert(0, str(Path(__file__).parent / "data"))
from corpora import synthetic_genome  # noqa: E402


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompt-length", type=int, default=16384)
    ap.add_argument("--new-tokens", type=int, default=256)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--no-fused-step", action="store_true", help="the plain decoding step instead of one Triton kernel per layer (GPU)")
    args = ap.parse_args(argv)
    path = checkpoints.path("hyenadna-tiny-synthetic")
    tok = AutoTokenizer.from_pretrained(path)
    dtype = torch.bfloat16 if args.device == "cuda" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(args.device).eval()
    total = args.prompt_length + args.new_tokens
    if total > model.config.max_seq_len:
        model.extend_context(total)  # partial convolution: each position sees at most the trained window
    genome = synthetic_genome(4_000_000, seed=0)
    held_out = genome[int(0.95 * len(genome)):]  # (as examples/train_embedded.py splits it)
    if args.batch * total > len(held_out):
        raise SystemExit(f"batch * (prompt + new) must be <= {len(held_out)} held-out bases")
    rows = [held_out[i * total:(i + 1) * total] for i in range(args.batch)]
    ids = torch.tensor([tok.convert_tokens_to_ids(list(r)) for r in rows], device=args.device)
    prompt, truth = ids[:, : args.prompt_length], ids[:, args.prompt_length:]

    with torch.no_grad():
        # teacher-forced: the cache decodes the true continuation; greedy accuracy of each step
        cache = HyenaCache(model, fused_step=not args.no_fused_step)
        sync(args.device)
        t0 = time.perf_counter()
        logits = model(prompt, cache=cache, use_cache=True, logits_to_keep=1).logits[:, -1]
        sync(args.device)
        prefill_s = time.perf_counter() - t0
        hits, step_times = 0, []
        for t in range(args.new_tokens):
            hits += (logits[:, : model.config.vocab_size].argmax(-1) == truth[:, t]).sum().item()
            sync(args.device)
            t0 = time.perf_counter()
            logits = model(truth[:, t: t + 1], cache=cache, use_cache=True).logits[:, -1]
            sync(args.device)
            step_times.append(time.perf_counter() - t0)
        cache_mib = cache.memory_bytes() / 2**20
        # free generation with generate() (its own cache)
        t0 = time.perf_counter()
        out = model.generate(prompt, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, do_sample=False)
        sync(args.device)
        generate_s = time.perf_counter() - t0

    steady = sorted(step_times)[len(step_times) // 2] * 1e3
    print(f"prompt {args.prompt_length} bases x {args.batch} rows, trained on {model.config.max_seq_len - 2}-base windows")
    print(f"prefill {prefill_s:.3f} s; per generated base {steady:.2f} ms (median), cache {cache_mib:.1f} MiB")
    print(f"greedy next-base accuracy on the true continuation: {hits / (args.batch * args.new_tokens):.3f} (chance 0.25)")
    print(f"generate({args.new_tokens}): {generate_s:.2f} s; first row continues "
          f"{tok.decode(out[0, args.prompt_length: args.prompt_length + 60].tolist()).replace(' ', '')}...")


if __name__ == "__main__":
    main()
