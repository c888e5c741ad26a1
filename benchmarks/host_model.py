"""Host time of a small model forward on the GPU (batch 1): wall time vs device time, and the
Python functions and operators that take the host's time.

    python benchmarks/host_model.py [--L 1024] [--top 25]
"""

import argparse
import cProfile
import io
import pstats
import statistics
import time

import torch

from bench_generate import build


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--L", type=int, default=1024)
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    model, vocab = build("cuda")  # (HyenaDNA small-32k shape, bf16)
    ids = torch.randint(0, vocab, (1, args.L), device="cuda")
    with torch.no_grad():
        for _ in range(5):
            model(ids)
        walls, devs = [], []
        for _ in range(30):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize()
            t = time.perf_counter()
            start.record()
            model(ids)
            end.record()
            host = time.perf_counter() - t
            torch.cuda.synchronize()
            walls.append((time.perf_counter() - t) * 1e3)
            devs.append(start.elapsed_time(end))
            walls[-1] = (walls[-1], host * 1e3)
        print(f"L={args.L} B=1: wall {statistics.median(w for w, _ in walls):.2f} ms, host (until the call returns) "
              f"{statistics.median(h for _, h in walls):.2f} ms, device span {statistics.median(devs):.2f} ms")
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(10):
            model(ids)
        torch.cuda.synchronize()
        prof.disable()
    s = io.StringIO()
    pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(args.top)
    print(s.getvalue())


if __name__ == "__main__":
    main()
