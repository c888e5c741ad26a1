"""Train the small checkpoints shipped in ``longconv_models/checkpoints`` (on a GPU, with the
library's fused kernels; bf16 autocast).

    python examples/data/corpora.py dna dna.txt --length 4000000
    python examples/train_embedded.py hyenadna --data dna.txt --out hyenadna-tiny-synthetic
    python examples/data/corpora.py text pydocs.txt
    python examples/train_embedded.py hyena-char --data pydocs.txt --out hyena-char-pydocs

Each run trains from scratch on random windows of the corpus (the last 5% held out), prints
progress, and writes a Hugging Face directory (config, safetensors weights, tokenizer) plus
``train_metrics.json`` (validation loss in bits per character, time, configuration).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

import longconv_models as lcm
from longconv_models.models import (
    CharacterTokenizer,
    HyenaConfig,
    HyenaDNAConfig,
    HyenaDNAForCausalLM,
    HyenaDNATokenizer,
    HyenaForCausalLM,
)

PRESETS = {
    # name: (config class, model class, width, layers, filter MLP width, window)
    "hyenadna": (HyenaDNAConfig, HyenaDNAForCausalLM, 128, 4, 64, 1024),
    "hyena-char": (HyenaConfig, HyenaForCausalLM, 160, 4, 64, 512),
}


def build(kind: str, text: str, width: int, layers: int, window: int):
    config_cls, model_cls, _, _, filter_order, _ = PRESETS[kind]
    if kind == "hyenadna":
        tokenizer = HyenaDNATokenizer(model_max_length=window + 2)
        config = HyenaDNAConfig(d_model=width, n_layer=layers, max_seq_len=window + 2, emb_dim=5,
                                filter_order=filter_order, activation_freq=10, embed_dropout=0.0,
                                modulation_shift=0.0)
    else:
        tokenizer = CharacterTokenizer(characters=sorted(set(text)), model_max_length=window)
        config = HyenaConfig(vocab_size=tokenizer.vocab_size, d_model=width, n_layer=layers, d_inner=4 * width,
                             max_seq_len=window, emb_dim=9, filter_order=filter_order, activation_freq=10,
                             modulate=True, train_pos_emb=True, pad_token_id=tokenizer.pad_token_id,
                             bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    return tokenizer, model_cls(config)


@torch.no_grad()
def evaluate(model, data: torch.Tensor, window: int, batch: int, n_batches: int = 20) -> float:
    model.eval()
    g = torch.Generator(device="cpu").manual_seed(1234)
    losses = []
    for _ in range(n_batches):
        starts = torch.randint(0, len(data) - window, (batch,), generator=g)
        x = torch.stack([data[s: s + window] for s in starts.tolist()]).to(data.device)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=x.is_cuda):
            losses.append(model(x, labels=x).loss.item())
    model.train()
    return sum(losses) / len(losses)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=sorted(PRESETS))
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--width", type=int, default=None)
    ap.add_argument("--layers", type=int, default=None)
    ap.add_argument("--window", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    _, _, width, layers, _, window = PRESETS[args.kind]
    width, layers, window = args.width or width, args.layers or layers, args.window or window
    device = "cuda" if torch.cuda.is_available() else "cpu"

    text = Path(args.data).read_text()
    tokenizer, model = build(args.kind, text, width, layers, window)
    ids = torch.tensor(tokenizer.convert_tokens_to_ids(list(text)), dtype=torch.long)
    split = int(0.95 * len(ids))
    train, val = ids[:split].to(device), ids[split:].to(device)
    model.to(device).train()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{args.kind}: {n_params / 1e6:.2f}M parameters, {len(ids):,} tokens, device {device}")

    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.1, betas=(0.9, 0.98))
    warmup = max(1, args.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / args.steps)))
    )
    t0 = time.time()
    bar = tqdm(range(args.steps), desc=f"train {args.kind}")
    for step in bar:
        starts = torch.randint(0, len(train) - window, (args.batch,))
        x = torch.stack([train[s: s + window] for s in starts.tolist()])
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
            loss = model(x, labels=x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    train_s = time.time() - t0
    val_loss = evaluate(model, val, window, args.batch)
    backend = lcm.last_backend("fftconv")
    out = Path(args.out)
    model.cpu().eval().save_pretrained(out)
    tokenizer.save_pretrained(out)
    metrics = {
        "kind": args.kind, "parameters": n_params, "tokens": len(ids), "steps": args.steps, "batch": args.batch,
        "window": window, "train_seconds": round(train_s, 1), "val_loss_nats": round(val_loss, 4),
        "val_bits_per_char": round(val_loss / math.log(2), 4), "fftconv_backend": backend,
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu", "data": Path(args.data).name,
    }
    (out / "train_metrics.json").write_text(json.dumps(metrics, indent=1))
    print(json.dumps(metrics))


if __name__ == "__main__":
    main()
