"""Lean FFT-conv timings for A/B runs of two source trees in one device session (GPU).

Times, per size of the issue-#21 table (bf16, causal, L = N/2, k fp32 taps), the forward from taps
and the training call (forward + backward for u and k) with CUDA events, plus the copy floor, and
prints one JSON line per size. ``benchmarks/device_ab.sh`` runs it alternately under two trees
(``PYTHONPATH``) so that their ratios come from the same machine and minute:

    PYTHONPATH=baselines/head python benchmarks/ab_fftconv.py --tag head
"""

from __future__ import annotations

import argparse
import json

import torch

from bench_fftconv import CONFIGS
from timing import median_ms

SHAPES = {N: (B, H) for N, _, B, H in CONFIGS}  # the anchor table's batch and channels per size


def main(argv=None) -> None:
    import longconv_models as lcm

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="256,1024,4096,16384,65536,1048576")
    ap.add_argument("--tag", default="")
    ap.add_argument("--reps", type=int, default=20)
    args = ap.parse_args(argv)
    for N in map(int, args.sizes.split(",")):
        B, H = SHAPES[N]
        L = N // 2
        us = [torch.randn(B, H, L, device="cuda").bfloat16() for _ in range(2)]  # alternate: > L2 at 2 sets
        k = torch.randn(H, L, device="cuda") * torch.exp(-torch.arange(L, device="cuda") / (0.1 * L))[None]
        row = {"tag": args.tag, "N": N, "B": B, "H": H, "module": lcm.__file__}
        out = torch.empty_like(us[0])
        it = iter(range(10**9))
        row["floor_ms"] = median_ms(lambda: out.copy_(us[next(it) % 2]), reps=args.reps)
        row["fwd_ms"] = median_ms(lambda: lcm.fftconv(us[next(it) % 2], k, fft_size=N), reps=args.reps)
        ug = [u.clone().requires_grad_() for u in us]
        kg, dy = k.clone().requires_grad_(), torch.randn_like(us[0])
        row["fwdbwd_ms"] = median_ms(lambda: lcm.fftconv(ug[next(it) % 2], kg, fft_size=N).backward(dy),
                                     reps=args.reps)
        row["fwd_floor"] = row["fwd_ms"] / row["floor_ms"]
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
