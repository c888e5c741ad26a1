"""Cached generation vs full recompute: ms per token and tokens/s against the prefix length.

    python benchmarks/bench_generate.py                 # GPU: HyenaDNA small-32k config, extended
    python benchmarks/bench_generate.py --device cpu    # CPU: the shipped character Hyena LM

Per (prefix length, batch): the prefill of the prompt (fused path), then ``--steps`` decoding
steps with the :class:`HyenaCache` (mean and median ms per step, wall clock with a device sync per
step, what ``generate`` pays; on a GPU with the CUDA graph of the step and without), the cost of one full-recompute step (a forward over prefix + 1 tokens,
what ``generate(use_cache=False)`` pays per token), and the cache's memory. GPU runs use bf16
weights. Also ``generate`` of ``--new`` tokens end to end, cached and recomputing, with the time
spent outside the model's forward (generate's own loop): on the CPU after the quickstart's prompt,
on the GPU after ``--generate-prefix`` tokens. JSON with ``--out``.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import time

import torch

import longconv_models as lcm
from longconv_models.models import HyenaDNAConfig, HyenaDNAForCausalLM
from longconv_models.models.hyena.cache_hyena import HyenaCache


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, reps=3):
    times = []
    for _ in range(reps):
        sync(device)
        t = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def build(device):
    if device == "cuda":  # LongSafari/hyenadna-small-32k-seqlen shape, filters extended
        model = HyenaDNAForCausalLM(HyenaDNAConfig(d_model=256, n_layer=4, max_seq_len=32770, emb_dim=5,
                                                   filter_order=64, activation_freq=10, embed_dropout=0.0))
        return model.to(device, torch.bfloat16).eval(), 12
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(lcm.checkpoints.path("hyena-char-pydocs")).eval()
    return model, model.config.vocab_size


def decode_ms(model, cache, token, device, steps):
    """(median, mean) wall ms of ``steps`` one-token steps after two warm-up steps (the first
    graph-eligible step records the CUDA graph); the mean includes the block steps' tiles."""
    for _ in range(2):
        model(token, cache=cache, use_cache=True)
    times = []
    for _ in range(steps):
        sync(device)
        t = time.perf_counter()
        model(token, cache=cache, use_cache=True)
        sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3, statistics.fmean(times) * 1e3


def generate_ms(model, ids, new, use_cache, device) -> tuple[float, float]:
    """(ms per new token of ``generate``, of which outside the model's forward): what generate's
    own loop (logits processing, stopping criteria, cache bookkeeping) adds per token."""
    inside = [0.0]
    forward = model.forward

    @functools.wraps(forward)  # (generate reads the forward's signature)
    def timed_forward(*args, **kwargs):
        sync(device)
        t = time.perf_counter()
        out = forward(*args, **kwargs)
        sync(device)
        inside[0] += time.perf_counter() - t
        return out

    def run(n):
        return model.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False, use_cache=use_cache)

    model.forward = timed_forward
    try:
        run(4)  # warm-up (the decoding graph is recorded per cache)
        inside[0] = 0.0
        total = timed(lambda: run(new), device, reps=1)
    finally:
        del model.forward  # (the class's forward again)
    return total * 1e3 / new, (total - inside[0]) * 1e3 / new


def pipelined_ms(step, n=128) -> float:
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(n):
        step()
    torch.cuda.synchronize()
    return (time.perf_counter() - t) * 1e3 / n


@torch.no_grad()
def row(model, vocab, device, prefix, batch, steps, recompute):
    lo = 7 if vocab == 12 else 8
    ids = torch.randint(lo, vocab, (batch, prefix), device=device)
    token = torch.randint(lo, vocab, (batch, 1), device=device)
    out = dict(prefix=prefix, batch=batch)
    variants = [("graph", True, False), ("eager", False, False), ("graph_fused", True, True)]
    for tag, graphs, fused in (variants if device == "cuda" else [("eager", False, False)]):  # (graphs need a GPU)
        cache = HyenaCache(model, cuda_graphs=graphs, fused_step=fused)
        prefill_s = timed(lambda: model(ids, cache=cache, use_cache=True), device, reps=1)
        median, mean = decode_ms(model, cache, token, device, steps)
        out.update({f"{tag}_ms_per_token": round(mean, 3), f"{tag}_median_ms": round(median, 3)})
        if graphs and device == "cuda":  # without a sync per step: the host runs ahead of the GPU
            out[f"{tag}_pipelined_ms"] = round(pipelined_ms(lambda: model(token, cache=cache, use_cache=True)), 3)
            out[f"{tag}_replay_only_ms"] = round(pipelined_ms(lambda: cache.graph.replay(token)), 3)
        if tag == "graph" or device != "cuda":
            out.update(prefill_s=round(prefill_s, 4), cache_mib=round(cache.memory_bytes() / 2**20, 1))
        cache = None  # (free the states before the next variant)
    best = min(out["graph_ms_per_token"], out["graph_fused_ms_per_token"]) if device == "cuda" else \
        out["eager_ms_per_token"]
    out.update(cached_ms_per_token=best, cached_tokens_per_s=round(batch * 1e3 / best, 1))
    if recompute and batch * (prefix + 1) <= 2**23:  # (larger: a forward of that size is not a useful baseline)
        full = torch.randint(lo, vocab, (batch, prefix + 1), device=device)
        model(full)  # warm-up (first calls at a new shape build filters and plans)
        rs = timed(lambda: model(full), device, reps=2 if prefix < 2**19 else 1) * 1e3
        out.update(recompute_ms_per_token=round(rs, 2), speedup=round(rs / best, 1))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--prefixes", default=None)
    ap.add_argument("--batches", default=None)
    ap.add_argument("--steps", type=int, default=None, help="decoding steps per row (default 130 GPU, 20 CPU)")
    ap.add_argument("--new", type=int, default=200)
    ap.add_argument("--generate-prefix", type=int, default=16384, help="GPU: prompt length of the generate rows")
    ap.add_argument("--out")
    args = ap.parse_args()
    torch.manual_seed(0)
    model, vocab = build(args.device)
    gpu = args.device == "cuda"
    args.steps = args.steps or (130 if gpu else 20)
    prefixes = [int(x) for x in (args.prefixes or ("1024,16384,131072,1048576" if gpu else "100,1000,4000")).split(",")]
    batches = [int(x) for x in (args.batches or ("1,64" if gpu else "1")).split(",")]
    model.extend_context(max(prefixes) + args.steps + 8)
    rows = []
    print(f"{'prefix':>8} {'batch':>5} {'prefill s':>9} {'graph ms/tok':>12} {'fused':>7} {'eager ms/tok':>12} {'tok/s':>9} "
          f"{'recompute ms':>12} {'speed-up':>8} {'cache MiB':>9}")
    for prefix in prefixes:
        for batch in batches:
            try:
                r = row(model, vocab, args.device, prefix, batch, args.steps, recompute=True)
            except torch.OutOfMemoryError:
                r = dict(prefix=prefix, batch=batch, error="out of memory")
                torch.cuda.empty_cache()
            rows.append(r)
            if "error" in r:
                print(f"{prefix:>8} {batch:>5}  out of memory")
                continue
            graph = f"{r['graph_ms_per_token']:.3f}" if "graph_ms_per_token" in r else "-"
            fused = f"{r['graph_fused_ms_per_token']:.3f}" if "graph_fused_ms_per_token" in r else "-"
            print(f"{prefix:>8} {batch:>5} {r['prefill_s']:>9.3f} {graph:>12} {fused:>7} "
                  f"{r['eager_ms_per_token']:>12.3f} {r['cached_tokens_per_s']:>9.1f} "
                  f"{r.get('recompute_ms_per_token', 0):>12.2f} {r.get('speedup', 0):>8.1f} {r['cache_mib']:>9.1f}",
                  flush=True)
    result = {"device": torch.cuda.get_device_name() if gpu else "cpu", "rows": rows}
    # generate end to end, cached and recomputing: on the CPU the quickstart's prompt, on the GPU
    # a --generate-prefix-token prompt (batch 1)
    if gpu:
        ids = torch.randint(7, vocab, (1, args.generate_prefix), device="cuda")
    else:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(lcm.checkpoints.path("hyena-char-pydocs"))
        ids = tok("Return the ", return_tensors="pt", add_special_tokens=False).input_ids
    for use_cache in (True, False):
        per_token, outside = generate_ms(model, ids, args.new, use_cache, args.device)
        tag = f"generate_{args.new}_{'cached' if use_cache else 'recompute'}"
        result.update({f"{tag}_s": round(per_token * args.new / 1e3, 3), f"{tag}_ms_per_token": round(per_token, 3),
                       f"{tag}_outside_model_ms_per_token": round(outside, 3)})
        print(f"generate {args.new} tokens after {ids.shape[1]}, {'cached' if use_cache else 'recompute'}: "
              f"{per_token * args.new / 1e3:.2f} s ({per_token:.3f} ms/token, {outside:.3f} of it outside the model)")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
