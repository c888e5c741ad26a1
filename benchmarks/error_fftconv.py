"""Relative error of the FFT convolution vs float64, per route and per gradient (GPU).

The issue-#21 measurement (bf16, causal, L = N/2, k fp32 (H, L) decaying), split by where the
error comes from: the default route from time-domain taps (``taps``: bf16 calls transform the
filter in fp32 up to 4K, above on the kernel's own bf16 FFT; ``prologue``: that bf16 transform at
every fused size), the same call from an exact fp32 spectrum (``spectrum``:
``prepare_filter``, so only the data path's rounding remains), the gradients du and dk of a
training call, fp16 inputs, and the bf16 rounding of the exact result (the floor any bf16
output has). Errors: ||y - y64|| / ||y64||.

    python benchmarks/error_fftconv.py --out err.json
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

import longconv_models as lcm

SIZES = (256, 1024, 4096, 16384, 32768, 65536, 262144, 1048576, 4194304)


def rel(a: torch.Tensor, ref: torch.Tensor) -> float:
    return ((a.double() - ref).norm() / ref.norm()).item()


def measure(N: int, dtype: torch.dtype, device: str, elements: int, seed: int = 0) -> dict:
    L = N // 2
    rows = max(2, elements // L)
    B = 2
    H = max(1, rows // B)
    g = torch.Generator(device=device).manual_seed(seed + N)
    u = torch.randn(B, H, L, device=device, generator=g).to(dtype)
    t = torch.arange(L, device=device)
    k = torch.randn(H, L, device=device, generator=g) * torch.exp(-t / (0.1 * L))[None]
    dy = torch.randn(B, H, L, device=device, generator=g).to(dtype)
    row = {"N": N, "L": L, "B": B, "H": H, "dtype": str(dtype).replace("torch.", "")}

    u64, k64 = u.double().requires_grad_(), k.double().requires_grad_()
    y64 = lcm.fftconv(u64, k64, fft_size=N)
    du64, dk64 = torch.autograd.grad(y64, (u64, k64), dy.double())
    y64 = y64.detach()

    y = lcm.fftconv(u, k, fft_size=N)
    row["route"] = "/".join(x for x in lcm.last_backend() if x)
    row["err_fwd_taps"] = rel(y, y64)
    spec = lcm.prepare_filter(k, L, fft_size=N)
    row["err_fwd_spectrum"] = rel(lcm.fftconv(u, spec), y64)
    if dtype == torch.bfloat16 and N <= 16384:  # the filter transformed in the kernel's prologue
        from longconv_models.ops import dispatch
        from longconv_models.ops.fftconv import fused

        mod = dispatch.cuda_module("fftconv")
        slots = fused.filter_spectrum_slots_cuda(mod, k, None, None, N)
        row["err_fwd_prologue"] = rel(fused.fftconv_fwd_slots(mod, u, slots, None, None, N), y64)
    row["err_out_rounding"] = rel(y64.to(dtype), y64)

    ug, kg = u.clone().requires_grad_(), k.clone().requires_grad_()
    du, dk = torch.autograd.grad(lcm.fftconv(ug, kg, fft_size=N), (ug, kg), dy)
    row["bwd_route"] = "/".join(x for x in (lcm.last_backend("fftconv_bwd") or ()) if x)
    row["err_du"] = rel(du, du64)
    row["err_dk"] = rel(dk, dk64)
    return row


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)))
    ap.add_argument("--dtypes", default="bfloat16,float16")
    ap.add_argument("--elements", type=int, default=2**23, help="B * H * L per size")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    rows = []
    for dt in args.dtypes.split(","):
        for N in map(int, args.sizes.split(",")):
            r = measure(N, getattr(torch, dt), args.device, args.elements)
            rows.append(r)
            print(json.dumps(r), file=sys.stderr, flush=True)
    cols = ("err_fwd_taps", "err_fwd_spectrum", "err_fwd_prologue", "err_du", "err_dk", "err_out_rounding")
    print(f"{'dtype':>8} {'N':>8} " + " ".join(f"{c[4:]:>13}" for c in cols) + "  route")
    for r in rows:
        print(f"{r['dtype']:>8} {r['N']:>8} " + " ".join(f"{r.get(c, float('nan')):>13.2e}" for c in cols) + f"  {r['route']}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
                       "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
