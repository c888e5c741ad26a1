"""End-to-end model benchmark (GPU): train steps and inference forwards, fused kernels vs the
PyTorch reference path in the same run, the way users run the models (fp32 weights under bf16
autocast, as ``Trainer(bf16=True)`` and accelerate do).

    python benchmarks/bench_models.py [--models hyenadna-tiny-1k,m2-bert-80m] [--out results.json]

Per model and length: a train step (forward + backward + AdamW step) and an inference forward
(``eval()``, ``no_grad``), each on the fused path and on ``longconv_models.reference_path()``;
tokens/s, median ms (CUDA events), peak memory, the share of device time in the convolution
kernels (the extension's kernels, from one profiled step of the fused path; the reference path's
share is derived: its step time minus the fused step's non-convolution time), and which backend
every convolution call took (``count_backends``: the fused rows must say ``cuda`` only).
Optionally ``--compile``: the fused path under ``torch.compile`` as a third column.

Configurations are the published ones: HyenaDNA tiny-1k, small-32k, medium-160k, large-1m
(``LongSafari/hyenadna-*-seqlen``) at their training lengths, Hyena small (``hyena-small-150b``,
L = 2048), M2-BERT-80M at 128 / 2K / 8K / 32K. ``--long`` adds the memory rows: HyenaDNA
large-1m train step at L = 1M, B = 1 with gradient checkpointing, inference at 1M and at 4M
tokens (``extend_context``).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import longconv_models as lcm
from longconv_models.models import (
    HyenaConfig,
    HyenaDNAConfig,
    HyenaDNAForCausalLM,
    HyenaForCausalLM,
    M2BertConfig,
    M2BertForMaskedLM,
)
from timing import median_ms

HYENADNA = dict(vocab_size=12, emb_dim=5, filter_order=64, activation_freq=10, embed_dropout=0.1)
M2_80M = dict(hidden_size=768, num_hidden_layers=12, intermediate_size=3072, hyena_filter_order=128)


def hyenadna(d_model, n_layer, max_seq_len):
    return lambda: HyenaDNAForCausalLM(HyenaDNAConfig(d_model=d_model, n_layer=n_layer, d_inner=4 * d_model,
                                                      max_seq_len=max_seq_len, **HYENADNA))


def m2_bert(L):
    return lambda: M2BertForMaskedLM(M2BertConfig(max_position_embeddings=L, long_conv_l_max=L, **M2_80M))


# name -> (model factory, [(L, B), ...], gradient checkpointing in the train step)
MODELS = {
    "hyenadna-tiny-1k": (hyenadna(128, 2, 1026), [(1024, 256)], False),
    "hyenadna-small-32k": (hyenadna(256, 4, 32770), [(16384, 16), (32768, 8)], False),
    "hyenadna-medium-160k": (hyenadna(256, 8, 160002), [(160000, 2)], True),
    "hyenadna-large-1m": (hyenadna(256, 8, 1000002), [(1000000, 1)], True),
    "hyena-small-150b": (lambda: HyenaForCausalLM(HyenaConfig(d_inner=1728)), [(2048, 16)], False),
    "m2-bert-80m-128": (m2_bert(128), [(128, 512)], False),
    "m2-bert-80m-2k": (m2_bert(2048), [(2048, 32)], False),
    "m2-bert-80m-8k": (m2_bert(8192), [(8192, 8)], False),
    "m2-bert-80m-32k": (m2_bert(32768), [(32768, 2)], True),  # (without checkpointing: out of memory on 80 GB)
}


def peak_gb(fn) -> float:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() / 2**30


def conv_kernel_ms(fn) -> tuple[float, float]:
    """(device ms in the extension's kernels, device ms in all kernels) of one call of fn."""
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    conv = total = 0.0
    for e in prof.events():
        if e.device_type == torch.autograd.DeviceType.CUDA:
            us = e.device_time
            total += us
            if "longconv::" in e.name:
                conv += us
    return conv / 1e3, total / 1e3


def backends(fn) -> dict:
    with lcm.count_backends() as calls:
        fn()
    torch.cuda.synchronize()
    out: dict[str, int] = {}
    for (op, backend, reason), n in calls.items():
        key = f"{op}:{backend}" + (f"({reason})" if reason else "")
        out[key] = out.get(key, 0) + n
    return out


def bench_one(name, factory, L, B, checkpointing, args) -> dict:
    torch.manual_seed(0)
    model = factory().cuda()
    vocab = model.config.vocab_size
    ids = torch.randint(0, vocab, (B, L), device="cuda")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    row = {"model": name, "L": L, "B": B, "tokens": B * L, "checkpointing": checkpointing}

    def train_step(m=model):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = m(ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def infer(m=model):
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
            m(ids)

    compiled = torch.compile(model) if args.compile else None
    paths = [("fused", None), ("reference", lcm.reference_path)]
    if compiled is not None:
        paths.append(("compiled", None))
    for kind, fn in (("train", train_step), ("infer", infer)):
        if kind == "train":
            model.train()
            if checkpointing:
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.eval()
        reps = args.reps if B * L <= 2**20 else max(3, args.reps // 2)
        for path, ctx in paths:
            call = (lambda: fn(compiled)) if path == "compiled" else fn
            key = f"{kind}_{path}"
            try:
                if ctx is None:
                    ms = median_ms(call, args.warmup, reps)
                    mem = peak_gb(call)
                    if path == "fused":
                        row[f"{key}_backends"] = backends(call)
                        row[f"{key}_conv_ms"], row[f"{key}_kernels_ms"] = conv_kernel_ms(call)
                else:
                    with ctx():
                        ms = median_ms(call, args.warmup, reps)
                        mem = peak_gb(call)
            except torch.OutOfMemoryError:
                ms, mem = float("nan"), float("nan")
                opt.zero_grad(set_to_none=True)
                torch.cuda.empty_cache()
            row[f"{key}_ms"], row[f"{key}_peak_gb"] = ms, mem
            row[f"{key}_tok_s"] = B * L / ms * 1e3
        fused, ref = row[f"{kind}_fused_ms"], row[f"{kind}_reference_ms"]
        row[f"{kind}_speedup"] = ref / fused
        # share of device time in the convolutions: measured on the fused path (the extension's
        # kernels), derived on the reference path (same non-convolution work); NaN if it ran out of memory
        conv_ms, kernels_ms = row.get(f"{kind}_fused_conv_ms", float("nan")), row.get(f"{kind}_fused_kernels_ms", 1.0)
        rest = fused - conv_ms * fused / max(kernels_ms, 1e-9)
        row[f"{kind}_fused_conv_share"] = 1 - rest / fused
        row[f"{kind}_reference_conv_share"] = 1 - rest / ref
        if checkpointing:
            model.gradient_checkpointing_disable()
    model = opt = compiled = None  # (the closures above hold them: free before the next model)
    torch.cuda.empty_cache()
    return row


def long_rows(args) -> list[dict]:
    """HyenaDNA large-1m: train step at 1M (B = 1, gradient checkpointing) and inference at 1M and
    4M tokens: peak memory and time, fused path only (the reference path's numbers for 1M are in
    the table above)."""
    rows = []
    torch.manual_seed(0)
    model = MODELS["hyenadna-large-1m"][0]().cuda()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    for kind, L in (("train", 2**20), ("infer", 2**20), ("infer", 2**22)):
        if L > model.config.max_seq_len:
            model.extend_context(L)
        ids = torch.randint(0, 12, (1, L), device="cuda")

        def step():
            if kind == "train":
                model.train()
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    loss = model(ids, labels=ids).loss
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
            else:
                model.eval()
                with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
                    model(ids)

        step()
        torch.cuda.synchronize()
        t = time.perf_counter()
        mem = peak_gb(step)
        ms = (time.perf_counter() - t) * 1e3
        rows.append({"model": "hyenadna-large-1m", "kind": kind, "L": L, "B": 1, "ms": ms, "peak_gb": mem,
                     "backends": backends(step)})
    return rows


def save(path, rows, extra) -> None:
    if path:
        with open(path, "w") as f:
            json.dump({"device": torch.cuda.get_device_name(), "rows": rows, "long": extra}, f, indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--reps", type=int, default=8)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--long", action="store_true", help="also the 1M / 4M memory rows")
    ap.add_argument("--out")
    args = ap.parse_args()
    rows, extra = [], []
    for name in filter(None, args.models.split(",")):  # (--models "" with --long: the long rows only)
        factory, shapes, checkpointing = MODELS[name]
        for L, B in shapes:
            rows.append(bench_one(name, factory, L, B, checkpointing, args))
            r = rows[-1]
            print(f"{name} L={L} B={B}: train {r['train_fused_ms']:.1f} / {r['train_reference_ms']:.1f} ms, "
                  f"infer {r['infer_fused_ms']:.1f} / {r['infer_reference_ms']:.1f} ms", flush=True)
            save(args.out, rows, extra)  # after every row: a long run cut short keeps what it measured
    if args.long:
        extra = long_rows(args)
        save(args.out, rows, extra)
    print(f"\n{'model':<22} {'L':>8} {'B':>4} | {'train tok/s':>11} {'x ref':>6} {'conv%':>6} {'ref conv%':>9} "
          f"{'GB':>6} | {'infer tok/s':>11} {'x ref':>6} {'conv%':>6} {'GB':>6}" + (" | compiled x" if args.compile else ""))
    for r in rows:
        line = (f"{r['model']:<22} {r['L']:>8} {r['B']:>4} | {r['train_fused_tok_s']:>11.3g} {r['train_speedup']:>6.2f} "
                f"{100 * r['train_fused_conv_share']:>6.1f} {100 * r['train_reference_conv_share']:>9.1f} "
                f"{r['train_fused_peak_gb']:>6.1f} | {r['infer_fused_tok_s']:>11.3g} {r['infer_speedup']:>6.2f} "
                f"{100 * r['infer_fused_conv_share']:>6.1f} {r['infer_fused_peak_gb']:>6.1f}")
        if args.compile:
            line += f" | {r['train_reference_ms'] / r['train_compiled_ms']:.2f} / {r['infer_reference_ms'] / r['infer_compiled_ms']:.2f}"
        print(line)
    for r in extra:
        print(f"{r['model']} {r['kind']} L={r['L']}: {r['ms']:.0f} ms, peak {r['peak_gb']:.1f} GB, {r['backends']}")


if __name__ == "__main__":
    main()
