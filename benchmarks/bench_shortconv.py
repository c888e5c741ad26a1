"""Short depthwise conv1d: this library's kernel vs torch.nn.functional.conv1d(groups=H).

    python benchmarks/bench_shortconv.py [--out results.json]

B=16, L=2048, H in 768..8192, K in 3, 4 (causal), both layouts, bf16; forward and fwd+bwd;
medians of CUDA-event timings, in the same run as the memory floor (copy of input + output);
the forward also as CUDA-graph replays (device time, no host overhead) for both.
"""

import argparse
import json

import torch
import torch.nn.functional as F

import longconv_models as lcm
from timing import graph_median_ms, median_ms


def torch_causal(x, w, bias, K, channels_last):
    xt = x.transpose(1, 2) if channels_last else x
    y = F.conv1d(xt, w[:, None, :], bias, padding=K - 1, groups=w.shape[0])[..., : xt.shape[-1]]
    return y.transpose(1, 2) if channels_last else y


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out")
    args = ap.parse_args()
    B, L, dtype = 16, 2048, torch.bfloat16
    rows = []
    for H in (768, 2048, 4096, 8192):
        for K in (3, 4):
            for cl in (False, True):
                shape = (B, L, H) if cl else (B, H, L)
                x = torch.randn(shape, device="cuda", dtype=dtype)
                w = torch.randn(H, K, device="cuda")
                bias = torch.randn(H, device="cuda")
                wt, bt = w.to(dtype), bias.to(dtype)
                out = torch.empty_like(x)
                r = {"B": B, "L": L, "H": H, "K": K, "layout": "BLH" if cl else "BHL"}
                r["floor_ms"] = median_ms(lambda: out.copy_(x))
                r["ours_ms"] = median_ms(lambda: lcm.short_conv(x, w, bias, channels_last=cl))
                r["torch_ms"] = median_ms(lambda: torch_causal(x, wt, bt, K, cl))
                r["ours_graph_ms"] = graph_median_ms(lambda: lcm.short_conv(x, w, bias, channels_last=cl))
                r["torch_graph_ms"] = graph_median_ms(lambda: torch_causal(x, wt, bt, K, cl))
                r["speedup_graph"] = r["torch_graph_ms"] / r["ours_graph_ms"]
                xg, wg, bg = x.clone().requires_grad_(), w.clone().requires_grad_(), bias.clone().requires_grad_()
                wtg, btg = wt.clone().requires_grad_(), bt.clone().requires_grad_()
                dy = torch.randn_like(x)
                r["ours_fwdbwd_ms"] = median_ms(lambda: lcm.short_conv(xg, wg, bg, channels_last=cl).backward(dy))
                r["torch_fwdbwd_ms"] = median_ms(lambda: torch_causal(xg, wtg, btg, K, cl).backward(dy))
                r["speedup"] = r["torch_ms"] / r["ours_ms"]
                r["speedup_fwdbwd"] = r["torch_fwdbwd_ms"] / r["ours_fwdbwd_ms"]
                assert lcm.last_backend("short_conv")[0] == "cuda"
                rows.append(r)
    print(f"{'H':>5} {'K':>2} {'lay':>4} {'floor':>7} {'ours':>7} {'torch':>7} {'x':>5} {'ours_gr':>7} {'torch_gr':>8} "
          f"{'x_gr':>5} {'ours_fb':>8} {'torch_fb':>8} {'x_fb':>5}")
    for r in rows:
        print(f"{r['H']:>5} {r['K']:>2} {r['layout']:>4} {r['floor_ms']:7.3f} {r['ours_ms']:7.3f} {r['torch_ms']:7.3f} "
              f"{r['speedup']:5.1f} {r['ours_graph_ms']:7.3f} {r['torch_graph_ms']:8.3f} {r['speedup_graph']:5.1f} "
              f"{r['ours_fwdbwd_ms']:8.3f} {r['torch_fwdbwd_ms']:8.3f} {r['speedup_fwdbwd']:5.1f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
