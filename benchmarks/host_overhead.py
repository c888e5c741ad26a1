"""Host (CPU) time per call of the ops, by route: where eager time goes at short lengths.

    python benchmarks/host_overhead.py [--out host.json] [--shape 4096,64,768]

By default tiny tensors (the GPU never falls behind), so the time per call is Python + dispatcher
+ launch cost; ``--shape N,B,H`` uses real sizes (the calls queue up on the GPU, each call's host
time is still what is measured). Each op is timed on the direct eager route and through the ``torch.library`` dispatcher
(the route torch.compile takes), plus the bare pieces (filter rfft, the extension call alone).
"""

import argparse
import json
import statistics
import time

import torch

import longconv_models as lcm
from longconv_models.ops.fftconv.fused import cached_kernel_spectrum, twiddle_tables
from longconv_models.ops import dispatch


def host_us(fn, calls: int = 100, repeats: int = 5) -> float:
    """Median over ``repeats`` of the mean CPU microseconds per call of ``fn()``."""
    for _ in range(20):
        fn()
    torch.cuda.synchronize()
    means = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        means.append(1e6 * (time.perf_counter() - t0) / calls)
        torch.cuda.synchronize()
    return statistics.median(means)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out")
    ap.add_argument("--shape", default="256,2,8", help="N,B,H of the fftconv cases (L = N/2)")
    args = ap.parse_args()
    N, B, H = (int(v) for v in args.shape.split(","))
    L = N // 2
    u = torch.randn(B, H, L, device="cuda").bfloat16()
    k = torch.randn(H, L, device="cuda")
    spec = lcm.prepare_filter(k, L, fft_size=N)
    ug, kg = u.clone().requires_grad_(), k.clone().requires_grad_()
    dy = torch.randn_like(u)
    x = torch.randn(B, H, 2048, device="cuda").bfloat16()
    w, b = torch.randn(H, 4, device="cuda"), torch.randn(H, device="cuda")
    xg, wg, bg = x.clone().requires_grad_(), w.clone().requires_grad_(), b.clone().requires_grad_()
    dx = torch.randn_like(x)
    mod = dispatch.cuda_module("fftconv")
    tw = twiddle_tables(u.device)
    k_slots = cached_kernel_spectrum(mod, spec.spectrum, N)

    cases = {
        "fftconv fwd": lambda: lcm.fftconv(u, k, fft_size=N),
        "fftconv fwd, FilterSpectrum": lambda: lcm.fftconv(u, spec),
        "fftconv fwd+bwd": lambda: lcm.fftconv(ug, kg, fft_size=N).backward(dy),
        "short_conv fwd": lambda: lcm.short_conv(x, w, b),
        "short_conv fwd+bwd": lambda: lcm.short_conv(xg, wg, bg).backward(dx),
    }
    rows = []
    for name, fn in cases.items():
        direct = host_us(fn)
        with dispatch.through_custom_ops():
            via_ops = host_us(fn)
        rows.append({"case": name, "direct_us": direct, "custom_op_us": via_ops})
    pieces = {
        "torch.fft.rfft of the filter": lambda: torch.fft.rfft(k, n=N),
        "extension fftconv_fwd alone": lambda: mod.fftconv_fwd(u, k_slots, None, None, *tw, N),
        "extension spectrum_to_slots alone": lambda: mod.spectrum_to_slots(spec.spectrum, N, 1),
        "empty_like (one allocation)": lambda: torch.empty_like(u),
        "u.contiguous()": lambda: u.contiguous(),
    }
    for name, fn in pieces.items():
        rows.append({"case": name, "direct_us": host_us(fn), "custom_op_us": float("nan")})

    print(f"{'case':<36} {'direct us':>10} {'custom op us':>13}")
    for r in rows:
        print(f"{r['case']:<36} {r['direct_us']:>10.1f} {r['custom_op_us']:>13.1f}")
    if args.out:
        meta = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "N,B,H": [N, B, H]}
        with open(args.out, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
