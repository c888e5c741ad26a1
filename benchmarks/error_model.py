"""Where the fused kernel's bf16 error comes from, and what fp16 intermediates would give (CPU).

    python benchmarks/error_model.py [--sizes 256,1024,4096] [--rows 4]

Runs the numpy model of the kernel's dataflow (``tests/kernels/kernel_model.py``: same stages,
fragments and stored intermediates) with the roundings the kernel makes, on the inputs
``bench_fftconv.py`` measures the GPU error with (u ~ N(0, 1) in bf16, L = N / 2, a decaying
random filter), and reports ||y - y_ref|| / ||y_ref|| against float64 for:

* ``filter bf16`` / ``filter fp16``: the error of the filter's slots alone, made by the kernel's
  own FFT of the taps in bf16 (the prologue transform, bf16 calls above 4K) or in fp16 with the taps scaled by a power
  of two to max |k| = 1;
* ``bf16 prologue``: what the kernel does for bf16 inputs with fp32 taps and its prologue
  transform (every stored intermediate and the DFT fragments in bf16, fp32 accumulation, the
  bf16-made filter slots, bf16 output);
* ``exact filter``: the same with exact filter slots (the fp32 transform of the taps route up to
  4K); ``F unscaled``: the same with the DFT fragments rounded unscaled (the kernel before it
  scaled them by c = 145/128); ``+ exact DFT``: unrounded DFT fragments (their share);
* ``fp16 filter``: the bf16 data path with the fp16 filter slots;
* ``fp16 scaled``: fp16 intermediates and fragments, each row scaled by a power of two to
  max |u| = 1 (exact for bf16 values), the fp16 filter slots scaled to max |K| = 1, the output
  unscaled and rounded to bf16;
* ``output only``: the float64 result rounded to bf16 (the floor of any bf16-output kernel).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "kernels"))
from kernel_model import Kernel  # noqa: E402

from longconv_models.ops.fftconv.fused import DFT_FRAGMENT_SCALE, kernel_spectrum  # noqa: E402


def rounder(dtype):
    return lambda a: torch.tensor(np.asarray(a, np.float32)).to(dtype).double().numpy()


BF16, FP16 = rounder(torch.bfloat16), rounder(torch.float16)
EXACT = lambda a: np.asarray(a, np.float64)  # noqa: E731


def kernel(N, rnd, const_rnd, scaled_dft=True):
    """The kernel model; bf16 fragments hold c F as the kernel's do (``scaled_dft``)."""
    c = DFT_FRAGMENT_SCALE[torch.bfloat16] if const_rnd is BF16 and scaled_dft else 1.0
    return Kernel(N, rnd, const_rnd, c)


def pow2_scale(m: float) -> float:
    return 2.0 ** -math.ceil(math.log2(m)) if m > 0 else 1.0


def filter_slots(N, k, rnd, scaled):
    """The filter's slots as the taps route makes them: the kernel's own forward FFT of the taps
    (``rnd`` its 16-bit rounding; ``scaled``: the taps first scaled so that max |k| = 1), times
    sqrt(N) (the slots' normalisation), in fp32."""
    s = pow2_scale(np.abs(k).max()) if scaled else 1.0
    spec = kernel(N, rnd, rnd).spectrum(k * s, np.zeros(len(k)))
    return spec * math.sqrt(N) / s


def errors(N: int, rows: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    L = N // 2
    k = rng.standard_normal(L) * np.exp(-np.arange(L) / (0.1 * L))
    k_f = torch.fft.rfft(torch.tensor(k), n=N)[None]
    exact_slots = torch.view_as_complex(kernel_spectrum(k_f, N)[0]).numpy().astype(np.complex128)
    us = [BF16(rng.standard_normal(L)) for _ in range(rows)]
    refs = [np.fft.irfft(np.fft.rfft(u, N) * np.fft.rfft(k, N), N)[:L] for u in us]

    def rel(ys):
        return float(np.sqrt(sum(np.sum((y - r) ** 2) for y, r in zip(ys, refs)) / sum(np.sum(r ** 2) for r in refs)))

    def run(rnd, const_rnd, slots, scale_rows=False, scaled_dft=True):
        model = kernel(N, rnd, const_rnd, scaled_dft)
        k_scale = pow2_scale(np.abs(slots).max()) if scale_rows else 1.0
        out = []
        for i in range(0, rows, 2):  # two rows per complex FFT, each plane with its own scale
            pair = us[i:i + 2] + ([np.zeros(L)] if i + 1 >= rows else [])
            s = [pow2_scale(np.abs(u).max()) if scale_rows else 1.0 for u in pair]
            y0, y1 = model.conv(rnd(pair[0] * s[0]), rnd(pair[1] * s[1]), slots * k_scale)
            out += [BF16(y0 / (s[0] * k_scale)), BF16(y1 / (s[1] * k_scale))][: len(us[i:i + 2])]
        return rel(out)

    bf16_slots = filter_slots(N, BF16(k), BF16, scaled=False)
    fp16_slots = filter_slots(N, k, FP16, scaled=True)
    return {
        "N": N,
        "filter_bf16": float(np.linalg.norm(bf16_slots - exact_slots) / np.linalg.norm(exact_slots)),
        "filter_fp16": float(np.linalg.norm(fp16_slots - exact_slots) / np.linalg.norm(exact_slots)),
        "bf16_taps_route": run(BF16, BF16, bf16_slots),
        "bf16_exact_filter": run(BF16, BF16, exact_slots),
        "bf16_exact_filter_unscaled_dft": run(BF16, BF16, exact_slots, scaled_dft=False),
        "bf16_exact_filter_dft": run(BF16, EXACT, exact_slots),
        "bf16_fp16_filter": run(BF16, BF16, fp16_slots),
        "fp16_scaled": run(FP16, FP16, fp16_slots, scale_rows=True),
        "output_only": rel([BF16(r) for r in refs]),
    }


COLUMNS = [("filter_bf16", "filter bf16"), ("filter_fp16", "filter fp16"), ("bf16_taps_route", "bf16 prologue"),
           ("bf16_exact_filter", "exact filter"), ("bf16_exact_filter_unscaled_dft", "F unscaled"),
           ("bf16_exact_filter_dft", "+ exact DFT"),
           ("bf16_fp16_filter", "fp16 filter"), ("fp16_scaled", "fp16 scaled"), ("output_only", "output only")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="256,1024,4096")
    ap.add_argument("--rows", type=int, default=4)
    ap.add_argument("--out")
    args = ap.parse_args()
    rows = []
    print(f"{'N':>6} " + " ".join(f"{title:>13}" for _, title in COLUMNS))
    for N in (int(x) for x in args.sizes.split(",")):
        r = errors(N, args.rows)
        rows.append(r)
        print(f"{N:>6} " + " ".join(f"{r[key]:>13.2e}" for key, _ in COLUMNS), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
