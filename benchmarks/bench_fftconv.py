"""Benchmark the fftconv op against the memory floor and torch.fft, one run, one table.

For each FFT size (B, H as in ../shared/anchors, i.e. the official FlashFFTConv measurements)
this measures, in the same process:

* floor: a device copy of input + output (``y.copy_(u)``), the bytes any implementation moves;
* torch: an fp32 ``rfft -> * -> irfft`` causal conv (fwd, and fwd+bwd through autograd);
* ours: ``fftconv`` with a time-domain filter (fwd; fwd with both gates; fwd+bwd) and with a
  precomputed :class:`FilterSpectrum` (fwd);
* the relative error of ours vs a float64 reference, and peak extra memory.

Times are medians of CUDA-event timings after warm-up; inputs rotate through enough copies to
exceed the L2 cache. Works on the reference path too (``--backend reference``) and on the CPU
(``--device cpu``, wall clock) for a smoke test.

    python benchmarks/bench_fftconv.py --out results.json            # all sizes up to 32K
    python benchmarks/bench_fftconv.py --sizes 65536,262144,1048576,4194304   # long sequences
    python benchmarks/bench_fftconv.py --sizes 256,4096 --reps 10
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from timing import capture_graph

# (N, L, B, H): the anchor file's configurations, plus the sizes between them
CONFIGS = [
    (256, 128, 64, 768),
    (512, 256, 64, 768),
    (1024, 512, 64, 768),
    (2048, 1024, 64, 768),
    (4096, 2048, 64, 768),
    (8192, 4096, 32, 768),
    (16384, 8192, 32, 768),
    (32768, 16384, 16, 768),
    (65536, 32768, 8, 768),
    (262144, 131072, 8, 192),
    (1048576, 524288, 8, 48),
    (4194304, 2097152, 8, 16),
]
ANCHOR = Path(__file__).resolve().parent / "anchor_official_flashfftconv_h100_bf16.json"  # copied from shared/anchors
L2_BYTES = 50 * 2**20


def load_anchor(path: Path) -> dict[int, dict]:
    try:
        return {row["N"]: row for row in json.loads(path.read_text())}
    except (OSError, ValueError):
        return {}


class Timer:
    def __init__(self, device: torch.device, warmup: int, reps: int):
        self.device, self.warmup, self.reps = device, warmup, reps

    def __call__(self, fn, n_sets: int = 1) -> float:
        """Median milliseconds of fn(i) over reps calls, cycling i over n_sets input sets."""
        for i in range(self.warmup):
            fn(i % n_sets)
        times = []
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            for i in range(self.reps):
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn(i % n_sets)
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end))
        else:
            for i in range(self.reps):
                t0 = time.perf_counter()
                fn(i % n_sets)
                times.append(1e3 * (time.perf_counter() - t0))
        return statistics.median(times)


def graph_ms(timer: Timer, fn) -> float:
    """Median replay time of fn captured in a CUDA graph: device time without host overhead."""
    if timer.device.type != "cuda":
        return float("nan")
    graph = capture_graph(fn)
    return timer(lambda i: graph.replay())


def tensor_core_flops(N: int, B: int, H: int) -> float:
    """mma FLOPs the fused kernel executes for one forward call (B*H rows)."""
    from longconv_models.ops.fftconv.fused import fft_plan

    r0, r1 = fft_plan(N)
    mma_per_pair = 32 * (N // 256) + (2 * r0 * 16 * 8 if r1 == 16 else 0)
    return mma_per_pair * 2 * 16 * 8 * 16 * ((B + 1) // 2) * H


def peak_extra_mib(fn, device) -> float:
    if device.type != "cuda":
        return float("nan")
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    out = fn()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    del out
    return peak / 2**20


def bench_size(N, L, B, H, dtype, device, timer, anchor, fwdbwd=True):
    import longconv_models as lcm
    from longconv_models.ops.fftconv.fused import fft_plan

    elem = torch.tensor([], dtype=dtype).element_size()
    n_sets = max(1, min(8, -(-2 * L2_BYTES // (B * H * L * elem))))
    us = [torch.randn(B, H, L, device=device).to(dtype) for _ in range(n_sets)]
    gates = [torch.randn(B, H, L, device=device).to(dtype) for _ in range(2)]
    t = torch.arange(L, device=device)
    k = torch.randn(H, L, device=device) * torch.exp(-t / (0.1 * L))[None]
    out = torch.empty_like(us[0])
    row = {"N": N, "L": L, "B": B, "H": H, "dtype": str(dtype).replace("torch.", ""), "n_input_sets": n_sets}

    row["floor_ms"] = timer(lambda i: out.copy_(us[i]), n_sets)
    row["floor_GBps"] = 2 * us[0].numel() * elem / row["floor_ms"] / 1e6

    # torch fp32 rfft conv
    u32 = [x.float() for x in us[: min(n_sets, 2)]]

    def torch_conv(u, kk):
        return torch.fft.irfft(torch.fft.rfft(u, n=N) * torch.fft.rfft(kk, n=N), n=N)[..., :L]

    row["torch_fwd_ms"] = timer(lambda i: torch_conv(u32[i], k), len(u32))
    row["torch_mem_MiB"] = peak_extra_mib(lambda: torch_conv(u32[0], k), device)
    if fwdbwd:
        kg = k.clone().requires_grad_()
        ug = [x.clone().requires_grad_() for x in u32]
        dy32 = torch.randn(B, H, L, device=device)
        row["torch_fwdbwd_ms"] = timer(lambda i: torch_conv(ug[i], kg).backward(dy32), len(ug))
        del kg, ug, dy32
    del u32

    # ours
    row["fwd_ms"] = timer(lambda i: lcm.fftconv(us[i], k, fft_size=N), n_sets)
    row["backend"] = "/".join(x for x in lcm.last_backend() if x)
    spec = lcm.prepare_filter(k, L, fft_size=N)
    row["fwd_spectrum_ms"] = timer(lambda i: lcm.fftconv(us[i], spec), n_sets)
    row["fwd_gated_ms"] = timer(
        lambda i: lcm.fftconv(us[i], k, fft_size=N, pre_gate=gates[0], post_gate=gates[1]), n_sets
    )
    row["fwd_graph_ms"] = graph_ms(timer, lambda: lcm.fftconv(us[0], k, fft_size=N))
    row["fwd_spectrum_graph_ms"] = graph_ms(timer, lambda: lcm.fftconv(us[0], spec))
    row["fwd_mem_MiB"] = peak_extra_mib(lambda: lcm.fftconv(us[0], k, fft_size=N), device)
    if fwdbwd:
        ug = [x.clone().requires_grad_() for x in us[: min(n_sets, 2)]]
        kg = k.clone().requires_grad_()
        dy = torch.randn(B, H, L, device=device).to(dtype)
        row["fwdbwd_ms"] = timer(lambda i: lcm.fftconv(ug[i], kg, fft_size=N).backward(dy), len(ug))
        row["bwd_backend"] = "/".join(x for x in (lcm.last_backend("fftconv_bwd") or ()) if x)
        row["fwdbwd_mem_MiB"] = peak_extra_mib(lambda: lcm.fftconv(ug[0], kg, fft_size=N).backward(dy), device)
        del ug, kg, dy

    # accuracy vs float64 (on a slice of the batch for the long sizes)
    b_chk = B if B * H * N <= 2**26 else max(2, 2**26 // (H * N))
    u_chk = us[0][:b_chk]
    y = lcm.fftconv(u_chk, k, fft_size=N)
    y_ref = lcm.fftconv(u_chk.double(), k.double(), fft_size=N)
    row["rel_err"] = ((y.double() - y_ref).norm() / y_ref.norm()).item()

    row["ratio_fwd"] = row["fwd_ms"] / row["floor_ms"]
    row["ratio_graph"] = row["fwd_graph_ms"] / row["floor_ms"]
    row["ratio_torch"] = row["torch_fwd_ms"] / row["floor_ms"]
    row["vs_torch"] = row["torch_fwd_ms"] / row["fwd_ms"]  # >1: faster than torch fp32
    if "fwdbwd_mem_MiB" in row:  # peak extra memory of fwd+bwd / (u + y + dy + du)
        row["fwdbwd_mem_ratio"] = row["fwdbwd_mem_MiB"] / (4 * B * H * L * elem / 2**20)
    try:
        fft_plan(N)
        row["tc_tflops"] = tensor_core_flops(N, B, H) / row["fwd_ms"] / 1e9
    except ValueError:
        row["tc_tflops"] = float("nan")
    a = anchor.get(N)
    if a:
        row["official_ms"] = a["official_ms"]
        row["official_ratio"] = a["official_ms"] / a["clone_ms"]
        row["vs_official"] = row["official_ratio"] / row["ratio_fwd"]  # >1: faster than official
    return row


def print_table(rows):
    cols = [
        ("N", "{:>8}"), ("B", "{:>3}"), ("H", "{:>4}"), ("floor_ms", "{:>8.3f}"), ("torch_fwd_ms", "{:>8.3f}"),
        ("fwd_ms", "{:>8.3f}"), ("fwd_spectrum_ms", "{:>8.3f}"), ("fwd_gated_ms", "{:>8.3f}"),
        ("fwd_graph_ms", "{:>8.3f}"), ("fwd_spectrum_graph_ms", "{:>8.3f}"),
        ("fwdbwd_ms", "{:>8.3f}"), ("torch_fwdbwd_ms", "{:>8.3f}"), ("ratio_fwd", "{:>6.2f}"), ("ratio_graph", "{:>6.2f}"),
        ("official_ratio", "{:>6.2f}"), ("vs_official", "{:>6.2f}"), ("tc_tflops", "{:>6.0f}"),
        ("vs_torch", "{:>6.2f}"), ("rel_err", "{:>8.1e}"), ("fwd_mem_MiB", "{:>8.0f}"),
        ("fwdbwd_mem_ratio", "{:>6.2f}"),
    ]
    short = {"floor_ms": "floor", "torch_fwd_ms": "torch", "fwd_ms": "fwd", "fwd_spectrum_ms": "fwd_spec",
             "fwd_gated_ms": "gated", "fwd_graph_ms": "fwd_gr", "fwd_spectrum_graph_ms": "spec_gr", "ratio_graph": "x_gr", "fwdbwd_ms": "fwd+bwd", "torch_fwdbwd_ms": "t_f+b", "ratio_fwd": "x_flr",
             "official_ratio": "off_x", "vs_official": "vs_off", "tc_tflops": "TFLOPs", "rel_err": "rel_err",
             "fwd_mem_MiB": "mem_MiB", "vs_torch": "vs_t", "fwdbwd_mem_ratio": "fb_mem"}
    widths = [len(f.format(0)) if "f" in f or "e" in f else int(f[3:-1]) for _, f in cols]
    print(" ".join(short.get(c, c).rjust(w) for (c, _), w in zip(cols, widths)))
    for r in rows:
        cells = []
        for (c, f), w in zip(cols, widths):
            v = r.get(c)
            cells.append(" " * (w - 1) + "-" if v is None else f.format(v))
        print(" ".join(cells))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="256,512,1024,2048,4096,8192,16384,32768", help="comma-separated N")
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--backend", default="auto", choices=["auto", "reference"])
    ap.add_argument("--scale", type=float, default=1.0, help="multiply the batch size (smoke tests)")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--no-bwd", action="store_true")
    ap.add_argument("--anchor", default=str(ANCHOR))
    ap.add_argument("--out", default=None, help="write the rows as JSON here")
    args = ap.parse_args(argv)
    if args.backend == "reference":
        os.environ["LONGCONV_DISABLE_CUDA_KERNELS"] = "1"
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    sizes = [int(s) for s in args.sizes.split(",")]
    anchor = load_anchor(Path(args.anchor))
    timer = Timer(device, args.warmup, args.reps)
    rows = []
    for N, L, B, H in CONFIGS:
        if N not in sizes:
            continue
        B = max(1, int(B * args.scale))
        row = bench_size(N, L, B, H, dtype, device, timer, anchor, fwdbwd=not args.no_bwd)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if device.type == "cuda":
        print(f"device: {torch.cuda.get_device_name()}  dtype: {args.dtype}  (times in ms, medians)")
    print_table(rows)
    if args.out:
        Path(args.out).write_text(json.dumps({"device": str(device), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
