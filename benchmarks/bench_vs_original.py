"""This library's HyenaDNA against the original implementation (HazyResearch/hyena-dna's
``standalone_hyenadna.py``, plain PyTorch with ``torch.fft``: what the FlashFFTConv paper's 4.4x
compares against), same weights, side by side in one process.

The original file is not part of this project: put it (unchanged) at
``baselines/hyena-dna/standalone_hyenadna.py`` (git-ignored; e.g. ``git show
d553021:standalone_hyenadna.py`` in a clone of HazyResearch/hyena-dna) or pass ``--original``.
Its imports that newer environments lack are stood in for at load time (``torchvision``'s
StochasticDepth, identity at rate 0; transformers 5's tokenizer module path).

Per configuration: the original model is built, its weights converted into ours with the
library's converter rules, the final hidden states compared in fp32 (``max_abs_diff``), then a
train step (forward + backward + AdamW, bf16 autocast over fp32 weights, tied LM head, next-token
loss) and an inference forward are timed for the original, ours (fused kernels) and ours on the
reference path: median ms (CUDA events), tokens/s, peak memory.

    python benchmarks/bench_vs_original.py [--configs tiny-1k,small-32k] [--out results.json]
    python benchmarks/bench_vs_original.py --device cpu --configs smoke   # equivalence only
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
import types
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import longconv_models as lcm
from longconv_models.convert import FAMILIES, check_against
from longconv_models.models import HyenaDNAConfig, HyenaDNAForCausalLM
from timing import median_ms

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ORIGINAL = ROOT / "baselines" / "hyena-dna" / "standalone_hyenadna.py"

# name -> (d_model, n_layer, L, B): the published HyenaDNA sizes at their training lengths
CONFIGS = {
    "smoke": (32, 2, 256, 2),
    "tiny-1k": (128, 2, 1024, 256),
    "small-32k": (256, 4, 16384, 16),
    "medium-160k": (256, 8, 160000, 2),
    "large-1m": (256, 8, 1000000, 1),
}


def load_original(path: Path) -> types.ModuleType:
    """Import the original file as a module, standing in for the imports it needs and the
    environment may lack (nothing of the original is changed)."""
    if not path.is_file():
        raise SystemExit(f"original implementation not found at {path}; see this script's docstring")
    try:
        import torchvision.ops  # noqa: F401
    except Exception:  # StochasticDepth at rate 0 (the standalone default) is the identity
        class StochasticDepth(nn.Module):
            def __init__(self, p, mode="row"):
                super().__init__()
                if p:
                    raise NotImplementedError("stand-in StochasticDepth: rate 0 only")

            def forward(self, x):
                return x

        tv, ops = types.ModuleType("torchvision"), types.ModuleType("torchvision.ops")
        ops.StochasticDepth, tv.ops = StochasticDepth, ops
        sys.modules.update({"torchvision": tv, "torchvision.ops": ops})
    try:
        import transformers.tokenization_utils  # noqa: F401
    except Exception:  # transformers 5 moved the module; the original imports two names from it
        import transformers

        shim = types.ModuleType("transformers.tokenization_utils")
        shim.AddedToken, shim.PreTrainedTokenizer = transformers.AddedToken, transformers.PreTrainedTokenizer
        sys.modules["transformers.tokenization_utils"] = shim
    spec = importlib.util.spec_from_file_location("standalone_hyenadna", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_pair(original, d_model: int, n_layer: int, L: int, device):
    """(original model, ours) with the same weights. The original's layer settings are its
    standalone defaults for HyenaDNA (emb_dim 5, filter_order 64, w 10, modulation shift 0.05)."""
    torch.manual_seed(0)
    layer = dict(l_max=L + 2, emb_dim=5, filter_order=64, w=10, modulate=True)
    orig = original.HyenaDNAModel(d_model=d_model, n_layer=n_layer, d_inner=4 * d_model, vocab_size=12,
                                  layer=layer, pad_vocab_size_multiple=8, use_head=False)
    shift = orig.backbone.layers[0].mixer.filter_fn.modulation.shift
    config = HyenaDNAConfig(d_model=d_model, n_layer=n_layer, d_inner=4 * d_model, vocab_size=12, max_seq_len=L + 2,
                            emb_dim=5, filter_order=64, activation_freq=10, modulation_shift=shift,
                            embed_dropout=0.1, tie_word_embeddings=True, pad_vocab_size_multiple=8)
    ours = HyenaDNAForCausalLM(config)
    state = FAMILIES["hyenadna"].canonical_keys({f"model.{k}": v for k, v in orig.state_dict().items()})
    state.setdefault("lm_head.weight", state["hyena.backbone.embeddings.word_embeddings.weight"])  # (tied)
    ours.load_state_dict(check_against(ours, state))
    return orig.to(device), ours.to(device)


def original_loss(orig, ids):
    hidden = orig(ids)
    logits = hidden @ orig.backbone.embeddings.word_embeddings.weight.t()  # tied head, as ours
    return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), ids[:, 1:].flatten())


def max_abs_diff(orig, ours, ids) -> float:
    orig.eval(), ours.eval()
    with torch.no_grad():
        a = orig(ids)
        b = ours.hyena(ids).last_hidden_state
    return (a - b).abs().max().item()


def step_ms(fn, device, warmup=2, reps=6) -> float:
    """Median ms of ``fn()``: CUDA events on the GPU (``timing.median_ms``), wall clock elsewhere."""
    if device == "cuda":
        return median_ms(fn, warmup, reps)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def bench(name, original, device, args) -> dict:
    d_model, n_layer, L, B = CONFIGS[name]
    B = max(1, int(B * args.scale))
    orig, ours = build_pair(original, d_model, n_layer, L, device)
    ids = torch.randint(0, 12, (B, L), device=device)
    row = {"config": name, "L": L, "B": B, "max_abs_diff": max_abs_diff(orig, ours, ids[:1, : min(L, 4096)])}
    if args.equivalence_only:
        return row
    amp = dict(device_type=device, dtype=torch.bfloat16)
    candidates = {"original": (orig, lambda: original_loss(orig, ids), None),
                  "ours": (ours, lambda: ours(ids, labels=ids).loss, None),
                  "ours_reference": (ours, lambda: ours(ids, labels=ids).loss, lcm.reference_path)}
    for label, (model, loss_fn, context) in candidates.items():
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def train_step():
            with torch.autocast(**amp):
                loss = loss_fn()
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        def infer():
            with torch.no_grad(), torch.autocast(**amp):
                loss_fn()

        for kind, fn in (("train", train_step), ("infer", infer)):
            model.train(kind == "train")
            try:
                if device == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                if context is None:
                    ms = step_ms(fn, device)
                else:
                    with context():
                        ms = step_ms(fn, device)
                row[f"{kind}_{label}_ms"] = ms
                row[f"{kind}_{label}_tok_s"] = B * L / ms * 1e3
                if device == "cuda":
                    row[f"{kind}_{label}_peak_gb"] = torch.cuda.max_memory_allocated() / 2**30
            except torch.OutOfMemoryError:
                row[f"{kind}_{label}_ms"] = float("nan")
                opt.zero_grad(set_to_none=True)
                torch.cuda.empty_cache()
        opt = None  # (its closures still refer to it: free the state before the next model)
    for kind in ("train", "infer"):
        row[f"{kind}_vs_original"] = row[f"{kind}_original_ms"] / row[f"{kind}_ours_ms"]
        row[f"{kind}_vs_reference"] = row[f"{kind}_ours_reference_ms"] / row[f"{kind}_ours_ms"]
    orig = ours = None
    if device == "cuda":
        torch.cuda.empty_cache()
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--original", type=Path, default=DEFAULT_ORIGINAL)
    ap.add_argument("--configs", default="tiny-1k,small-32k,medium-160k,large-1m")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply the batch sizes")
    ap.add_argument("--equivalence-only", action="store_true")
    ap.add_argument("--out")
    args = ap.parse_args()
    original = load_original(args.original)
    rows = []
    for name in args.configs.split(","):
        rows.append(bench(name, original, args.device, args))
        r = rows[-1]
        line = f"{name:<12} L={r['L']:<8} B={r['B']:<4} max |diff| {r['max_abs_diff']:.2e}"
        if not args.equivalence_only:
            line += (f" | train ms original {r['train_original_ms']:.1f} ours {r['train_ours_ms']:.1f} "
                     f"reference {r['train_ours_reference_ms']:.1f} ({r['train_vs_original']:.2f}x original, "
                     f"{r['train_vs_reference']:.2f}x reference) | infer {r['infer_vs_original']:.2f}x original")
        print(line, flush=True)
        if args.out:
            device = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
            Path(args.out).write_text(json.dumps({"device": device, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
