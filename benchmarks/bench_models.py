"""End-to-end HyenaDNA forward / forward+backward time: fused kernels vs the reference path.

    python benchmarks/bench_models.py [--out results.json]

HyenaDNA-small shaped model (d_model 256, 4 layers, bf16), B x L = 256K tokens per call, at
L = 1K, 16K (fused kernel) and 128K, 1M (the long-sequence path). Medians of CUDA-event timings.
"""

import argparse
import json

import torch

import longconv_models as lcm
from timing import median_ms as _median_ms
from longconv_models.models import HyenaDNAConfig, HyenaDNAForCausalLM


def median_ms(fn, warmup=2, reps=8):
    try:
        return _median_ms(fn, warmup, reps)
    except torch.OutOfMemoryError:
        torch.cuda.empty_cache()
        return float("nan")  # reported as nan: this path does not fit in memory


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out")
    ap.add_argument("--lengths", default="1024,16384,131072,1048576")
    args = ap.parse_args()
    rows = []
    for L in (int(x) for x in args.lengths.split(",")):
        B = max(1, 262144 // L)
        cfg = HyenaDNAConfig(d_model=256, n_layer=4, max_seq_len=L + 2, emb_dim=5, filter_order=64, activation_freq=10)
        model = HyenaDNAForCausalLM(cfg).cuda().to(torch.bfloat16)
        ids = torch.randint(7, 11, (B, L), device="cuda")
        row = {"L": L, "B": B}
        for name, ctx in (("fast", None), ("reference", lcm.reference_path)):
            def fwd():
                with torch.no_grad():
                    model(ids)

            def fwdbwd():
                model(ids, labels=ids).loss.backward()

            if ctx is None:
                row[f"{name}_fwd_ms"], row[f"{name}_fwdbwd_ms"] = median_ms(fwd), median_ms(fwdbwd)
                row["fast_backend"] = "/".join(x for x in lcm.last_backend("fftconv") if x)
            else:
                with ctx():
                    row[f"{name}_fwd_ms"], row[f"{name}_fwdbwd_ms"] = median_ms(fwd), median_ms(fwdbwd)
            torch.cuda.empty_cache()
        row["speedup_fwd"] = row["reference_fwd_ms"] / row["fast_fwd_ms"]
        row["speedup_fwdbwd"] = row["reference_fwdbwd_ms"] / row["fast_fwdbwd_ms"]
        rows.append(row)
        del model
        torch.cuda.empty_cache()
    print(f"{'L':>8} {'B':>4} {'fast fwd':>9} {'ref fwd':>9} {'x':>5} {'fast f+b':>9} {'ref f+b':>9} {'x':>5}  fast path")
    for r in rows:
        print(f"{r['L']:>8} {r['B']:>4} {r['fast_fwd_ms']:9.2f} {r['reference_fwd_ms']:9.2f} {r['speedup_fwd']:5.2f} "
              f"{r['fast_fwdbwd_ms']:9.2f} {r['reference_fwdbwd_ms']:9.2f} {r['speedup_fwdbwd']:5.2f}  {r['fast_backend']}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
