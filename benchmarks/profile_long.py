"""Time the stages of the long-sequence path separately (device time, CUDA events, medians).

    python benchmarks/profile_long.py --sizes 65536,4194304 [--inner 4096,8192]

Per size (B, H as in bench_fftconv): copy floor, filter rfft, filter -> inner slot layout, the
taps route's filter transform (whole; cast, outer pass over the taps, rows -> slots), outer
forward pass, inner fused kernel, outer inverse pass, and the whole op with a precomputed
spectrum, for each inner size M2 asked for.
"""

from __future__ import annotations

import argparse
import json

import torch

from bench_fftconv import CONFIGS, Timer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="65536,262144,1048576,4194304")
    ap.add_argument("--inner", default="", help="comma-separated inner sizes M2 to try (default: the plan's)")
    ap.add_argument("--reps", type=int, default=10)
    args = ap.parse_args()
    import longconv_models as lcm
    from longconv_models import extension
    from longconv_models.ops.fftconv import long as kl
    from longconv_models.ops.fftconv.fused import twiddle_tables
    from longconv_models.ops.fftconv import filter_spectrum

    mod = extension.load_extension()
    timer = Timer(torch.device("cuda"), 2, args.reps)
    rows = []
    for N, L, B, H in CONFIGS:
        if str(N) not in args.sizes.split(","):
            continue
        u = torch.randn(B, H, L, device="cuda").bfloat16()
        k = torch.randn(H, L, device="cuda") / L
        y = torch.empty_like(u)
        floor = timer(lambda i: y.copy_(u))
        t_rfft = timer(lambda i: filter_spectrum(k, N))
        k_f = filter_spectrum(k, N)
        plan_inner = kl.long_plan(N)[1]
        for inner in [int(s) for s in args.inner.split(",")] if args.inner else [plan_inner]:
            if N // inner > kl.MAX_OUTER or inner > 16384:
                continue
            kl.MIN_INNER = kl.MAX_INNER = inner
            kl.chunk_plan.cache_clear()
            M1, M2 = kl.long_plan(N)
            t_slots = timer(lambda i: mod.spectrum_to_slots(k_f, N, M1))
            k_slots = mod.spectrum_to_slots(k_f, N, M1)
            spec = lcm.FilterSpectrum(k_f.clone(), N)  # a new tensor: the slot cache is per tensor
            lcm.fftconv(u, spec)  # fills the slot cache for this M2
            bad = torch.zeros(B, H, dtype=torch.int32, device="cuda")
            tw_stage, tw_core = twiddle_tables(u.device)
            plan = kl.chunk_plan(B, H, N, False, 2 * kl._workspace_bytes())  # as long_fwd_cuda
            p0, pairs, h0, hs = plan[0]
            rows_a = torch.empty(2 * pairs, hs * M1, M2, dtype=torch.bfloat16, device="cuda")
            k_chunk = k_slots[h0:h0 + hs].view(hs * M1, M2, 2)
            t_a = timer(lambda i: mod.fftconv_outer(u, None, rows_a, bad, N, M1, p0, h0, False))
            t_in = timer(lambda i: mod.fftconv_fwd(rows_a, k_chunk, None, None, tw_stage, tw_core, M2))
            rows_c = mod.fftconv_fwd(rows_a, k_chunk, None, None, tw_stage, tw_core, M2)
            t_c = timer(lambda i: mod.fftconv_outer(y, None, rows_c, bad, N, M1, p0, h0, True))
            # the taps route's filter transform (inference): outer pass over the bf16 taps, then the
            # rows' forward FFT into slots
            t_taps = timer(lambda i: kl.long_filter_slots(mod, k, None, N, M1))
            taps16 = k.to(torch.bfloat16)[None]
            t_cast = timer(lambda i: k.to(torch.bfloat16))
            bad_k = torch.zeros(1, H, dtype=torch.int32, device="cuda")
            rows_k = torch.empty(2, H * M1, M2, dtype=torch.bfloat16, device="cuda")
            t_touter = timer(lambda i: mod.fftconv_outer(taps16, None, rows_k, bad_k, N, M1, 0, 0, False))
            slots16 = torch.empty(H, M1, M2, 2, dtype=torch.bfloat16, device="cuda")  # the route's layout
            t_trows = timer(lambda i: mod.filter_rows_to_slots(rows_k, bad_k[0], None, slots16, tw_stage, tw_core, N))
            k_chunk16 = slots16[h0:h0 + hs].view(hs * M1, M2, 2)
            t_in16 = timer(lambda i: mod.fftconv_fwd(rows_a, k_chunk16, None, None, tw_stage, tw_core, M2))
            del rows_k
            t_spec = timer(lambda i: lcm.fftconv(u, spec))
            t_full = timer(lambda i: lcm.fftconv(u, k, fft_size=N))
            frac = len(plan)  # stage times are for one chunk
            row = dict(N=N, B=B, H=H, M1=M1, M2=M2, chunks=frac, floor=floor, filter_rfft=t_rfft,
                       filter_slots=t_slots, filter_taps=t_taps, taps_cast=t_cast, taps_outer=t_touter,
                       taps_rows=t_trows, outer_fwd=t_a * frac, inner=t_in * frac,
                       inner_bf16_slots=t_in16 * frac, outer_inv=t_c * frac,
                       op_spectrum=t_spec, op=t_full)
            rows.append(row)
            print(" ".join(f"{k_}={v:.3f}" if isinstance(v, float) else f"{k_}={v}" for k_, v in row.items()),
                  flush=True)
        del u, y
        torch.cuda.empty_cache()
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
