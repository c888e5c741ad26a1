"""Plot forward time vs FFT size: memory floor, torch.fft, the official FlashFFTConv (anchor
file, its own run) and this library (eager, and CUDA-graph device time).

    python benchmarks/plot_results.py [--json A.json,B.json] [--out benchmarks/fftconv_h100.png]

Default: the fused-kernel sizes (256..32K) and the long-sequence run (64K..4M).
"""

import argparse
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv=None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ap = argparse.ArgumentParser()
    default = ",".join(str(HERE / "results" / f) for f in ("fftconv_bf16_h100_session7.json", "fftconv_long_bf16_h100_session7.json"))
    ap.add_argument("--json", default=default, help="comma-separated bench_fftconv.py outputs")
    ap.add_argument("--out", default=str(HERE / "fftconv_h100.png"))
    args = ap.parse_args(argv)
    rows = sorted((r for f in args.json.split(",") for r in json.loads(Path(f).read_text())["rows"]),
                  key=lambda r: r["N"])
    anchor = {r["N"]: r for r in json.loads((HERE / "anchor_official_flashfftconv_h100_bf16.json").read_text())}
    N = [r["N"] for r in rows]
    per_elem = lambda ms, r: 1e6 * ms / (r["B"] * r["H"] * r["L"])  # noqa: E731  (ns per output element)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, label, style in [
        ("floor_ms", "memory floor (copy in+out)", "k--"),
        ("torch_fwd_ms", "torch fp32 rfft conv", "C3-o"),
        ("fwd_ms", "longconv-models (eager, incl. filter FFT)", "C0-o"),
        ("fwd_graph_ms", "longconv-models (CUDA graph)", "C0:s"),
    ]:
        ax.plot(N, [per_elem(r[key], r) for r in rows], style, label=label)
    a = [(n, 1e6 * anchor[n]["official_ms"] / (anchor[n]["B"] * anchor[n]["H"] * anchor[n]["L"]))
         for n in N if n in anchor]
    ax.plot([x for x, _ in a], [y for _, y in a], "C1-^", label="official FlashFFTConv (anchor run)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("FFT size N (causal, L = N/2)")
    ax.set_ylabel("ns per output element")
    ax.set_title("Forward FFT convolution, bf16, H100 (B x H as in the anchor file)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
