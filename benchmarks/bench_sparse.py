"""Frequency-sparse convolutions: the low-band kernels against the dense kernels on the same filter.

    python benchmarks/bench_sparse.py [--out sparse.json] [--sizes 1024,4096] [--dtype bf16]

For each FFT size (B, H as in bench_fftconv.py), a filter spectrum sparsified to keep 50% / 25% /
10% of its rfft bins runs the forward (no grad) twice on the same inputs: as a ``FilterSpectrum``
marked ``low_band`` (the kernels skip half of the core's last DFT stage) and unmarked (the dense
kernels, the same arithmetic result). Spectra are prepared once, as at
inference, so both times are the convolution alone. Medians of CUDA-event timings (eager) and of
CUDA-graph replays (device time), side by side with the copy floor; relative error of both
against the float64 reference on one slice.
"""

import argparse
import dataclasses
import json

import torch

import longconv_models as lcm
from bench_fftconv import CONFIGS, L2_BYTES, Timer, graph_ms


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out")
    ap.add_argument("--sizes", default="1024,4096,16384,65536,262144")
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "fp16"])
    ap.add_argument("--keeps", default="0.5,0.25,0.1")
    ap.add_argument("--reps", type=int, default=30)
    args = ap.parse_args()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    device = torch.device("cuda")
    timer = Timer(device, warmup=10, reps=args.reps)
    sizes = {int(s) for s in args.sizes.split(",")}
    rows = []
    for N, L, B, H in CONFIGS:
        if N not in sizes:
            continue
        n_sets = max(1, min(4, -(-2 * L2_BYTES // (B * H * L * 2))))
        us = [torch.randn(B, H, L, device=device).to(dtype) for _ in range(n_sets)]
        out = torch.empty_like(us[0])
        t = torch.arange(L, device=device)
        k = torch.randn(H, L, device=device) * torch.exp(-t / (0.1 * L))[None]
        floor = timer(lambda i: out.copy_(us[i]), n_sets)
        for keep in (float(s) for s in args.keeps.split(",")):
            sparse = lcm.frequency_sparse(k, keep, L, fft_size=N)
            dense = dataclasses.replace(sparse, low_band=False)
            row = {"N": N, "L": L, "B": B, "H": H, "dtype": args.dtype, "keep": keep, "floor_ms": floor}
            with torch.no_grad():
                for name, spec in (("dense", dense), ("sparse", sparse)):
                    lcm.fftconv(us[0], spec)  # slot layout cached before timing
                    row[f"{name}_ms"] = timer(lambda i: lcm.fftconv(us[i], spec), n_sets)
                    row[f"{name}_graph_ms"] = graph_ms(timer, lambda: lcm.fftconv(us[0], spec))
                    row[f"{name}_backend"] = lcm.last_backend()[1] or "dense"
                    ref = lcm.fftconv(us[0][:1, :4].double(), lcm.frequency_sparse(k[:4].double(), keep, L, fft_size=N))
                    y = lcm.fftconv(us[0], spec)[:1, :4]
                    row[f"{name}_err"] = ((y.double() - ref).norm() / ref.norm()).item()
            row["speedup"] = row["dense_ms"] / row["sparse_ms"]
            row["speedup_graph"] = row["dense_graph_ms"] / row["sparse_graph_ms"]
            rows.append(row)
            print(f"N={N} keep={keep} dense {row['dense_ms']:.3f} ms sparse {row['sparse_ms']:.3f} ms "
                  f"x{row['speedup']:.3f} (graph x{row['speedup_graph']:.3f}) err {row['sparse_err']:.1e}",
                  flush=True)
        del us
        torch.cuda.empty_cache()
    print(f"{'N':>8} {'keep':>5} {'floor':>7} {'dense':>7} {'sparse':>7} {'x':>6} {'dense_gr':>8} "
          f"{'sparse_gr':>9} {'x_gr':>6} {'err_d':>8} {'err_s':>8}")
    for r in rows:
        print(f"{r['N']:>8} {r['keep']:>5} {r['floor_ms']:7.3f} {r['dense_ms']:7.3f} {r['sparse_ms']:7.3f} "
              f"{r['speedup']:6.3f} {r['dense_graph_ms']:8.3f} {r['sparse_graph_ms']:9.3f} {r['speedup_graph']:6.3f} "
              f"{r['dense_err']:8.1e} {r['sparse_err']:8.1e}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"device": torch.cuda.get_device_name(), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
