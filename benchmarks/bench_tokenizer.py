"""Tokenizer speed (CPU): the fast HyenaDNA tokenizer vs the Python one on long sequences.

    python benchmarks/bench_tokenizer.py [--lengths 100000,1000000,10000000]

Median of 5 calls each, same input, ids checked equal; prints a table (and JSON with --out).
"""

import argparse
import json
import random
import statistics
import time

from longconv_models.models import HyenaDNATokenizer, HyenaDNATokenizerFast


def median_s(fn, reps=5):
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lengths", default="100000,1000000,10000000")
    ap.add_argument("--out")
    args = ap.parse_args()
    slow, fast = HyenaDNATokenizer(), HyenaDNATokenizerFast()
    rng = random.Random(0)
    rows = []
    print(f"{'length':>10} {'python s':>10} {'fast s':>10} {'fast pt s':>10} {'speed-up':>9}")
    for n in map(int, args.lengths.split(",")):
        seq = "".join(rng.choice("ACGTNacgtn") for _ in range(n))  # soft-masked DNA
        assert slow(seq)["input_ids"] == fast(seq)["input_ids"]
        s = median_s(lambda: slow(seq))
        f = median_s(lambda: fast(seq))
        fp = median_s(lambda: fast(seq, return_tensors="pt"))
        rows.append(dict(length=n, python_s=s, fast_s=f, fast_pt_s=fp, speedup=s / f))
        print(f"{n:>10} {s:>10.3f} {f:>10.3f} {fp:>10.3f} {s / f:>8.1f}x")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
