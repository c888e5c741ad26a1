"""Train the small checkpoints shipped in ``longconv_models/checkpoints`` with the transformers
``Trainer`` (bf16 autocast and the fused kernels on a GPU; runs on a CPU too).

    python examples/data/corpora.py dna dna.txt --length 4000000
    python examples/train_embedded.py hyenadna --data dna.txt --out hyenadna-tiny-synthetic
    python examples/data/corpora.py text pydocs.txt
    python examples/train_embedded.py hyena-char --data pydocs.txt --out hyena-char-pydocs
    python examples/train_embedded.py m2-bert --data pydocs.txt --out m2-bert-tiny-pydocs

Each run trains from scratch on windows of the corpus at random offsets (the last 5% held out)
and writes a Hugging Face directory (config, safetensors weights, tokenizer files) plus
``train_metrics.json``: the validation loss (bits per character for the causal LMs; masked-token
cross-entropy for M2-BERT), time, and which convolution path ran. The causal LMs read
characters; M2-BERT gets a lower-cased WordPiece vocabulary trained on the corpus
(``tokenizers``), so the checkpoint carries its own tokenizer.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections import Counter
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
from transformers import BertTokenizer, DataCollatorForLanguageModeling, Trainer, TrainingArguments

import longconv_models as lcm
from longconv_models.models import (
    CharacterTokenizerFast,
    HyenaConfig,
    HyenaDNAConfig,
    HyenaDNAForCausalLM,
    HyenaDNATokenizerFast,
    HyenaForCausalLM,
    M2BertConfig,
    M2BertForMaskedLM,
)

PRESETS = {
    # name: width, layers, filter MLP width, window (tokens)
    "hyenadna": (128, 4, 64, 1024),
    "hyena-char": (160, 4, 64, 512),
    "m2-bert": (128, 4, 32, 128),
}
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def wordpiece_tokenizer(text: str, vocab_size: int, max_length: int) -> BertTokenizer:
    """A BERT-style lower-cased WordPiece tokenizer trained on the corpus."""
    backend = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.train_from_iterator(text.splitlines(), trainers.WordPieceTrainer(
        vocab_size=vocab_size, min_frequency=2, special_tokens=SPECIAL))
    return BertTokenizer(vocab=backend.get_vocab(), model_max_length=max_length)


def build(kind: str, text: str, width: int, layers: int, filter_order: int, window: int):
    if kind == "hyenadna":
        tokenizer = HyenaDNATokenizerFast(model_max_length=window + 2)
        config = HyenaDNAConfig(d_model=width, n_layer=layers, max_seq_len=window + 2, emb_dim=5,
                                filter_order=filter_order, activation_freq=10, embed_dropout=0.0,
                                modulation_shift=0.0)
        return tokenizer, HyenaDNAForCausalLM(config)
    if kind == "hyena-char":
        tokenizer = CharacterTokenizerFast(characters=sorted(set(text)), model_max_length=window)
        config = HyenaConfig(vocab_size=tokenizer.vocab_size, d_model=width, n_layer=layers, d_inner=4 * width,
                             max_seq_len=window, emb_dim=9, filter_order=filter_order, activation_freq=10,
                             modulate=True, train_pos_emb=True, pad_token_id=tokenizer.pad_token_id,
                             bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
        return tokenizer, HyenaForCausalLM(config)
    tokenizer = wordpiece_tokenizer(text, 4096, window)
    config = M2BertConfig(vocab_size=(tokenizer.vocab_size + 7) // 8 * 8, hidden_size=width, num_hidden_layers=layers,
                          intermediate_size=4 * width, max_position_embeddings=window, hyena_filter_order=filter_order,
                          hidden_dropout_prob=0.0, pad_token_id=tokenizer.pad_token_id)
    return tokenizer, M2BertForMaskedLM(config)


class RandomWindows(torch.utils.data.Dataset):
    """``n`` windows at random offsets of a token stream, each seeded by its index (the same
    windows on every run and after a resume). M2-BERT windows are ``[CLS] ... [SEP]``."""

    def __init__(self, ids: torch.Tensor, window: int, n: int, seed: int, wrap: tuple[int, int] | None = None):
        self.ids, self.window, self.n, self.seed, self.wrap = ids, window, n, seed, wrap

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        body = self.window - (2 if self.wrap else 0)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + i)
        start = int(torch.randint(0, len(self.ids) - body, (1,), generator=g))
        x = self.ids[start: start + body]
        if self.wrap:
            return {"input_ids": torch.cat([torch.tensor([self.wrap[0]]), x, torch.tensor([self.wrap[1]])])}
        return {"input_ids": x, "labels": x}


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
    width, layers, filter_order, window = PRESETS[args.kind]
    width, layers, window = args.width or width, args.layers or layers, args.window or window

    text = Path(args.data).read_text()
    tokenizer, model = build(args.kind, text, width, layers, filter_order, window)
    ids = torch.tensor(tokenizer(text, add_special_tokens=False)["input_ids"], dtype=torch.long)
    split = int(0.95 * len(ids))
    wrap = (tokenizer.cls_token_id, tokenizer.sep_token_id) if args.kind == "m2-bert" else None
    train = RandomWindows(ids[:split], window, args.steps * args.batch, args.seed, wrap)
    val = RandomWindows(ids[split:], window, 20 * args.batch, 1234, wrap)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{args.kind}: {n_params / 1e6:.2f}M parameters, {len(ids):,} tokens")

    collator = (DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15) if args.kind == "m2-bert"
                else None)  # causal LMs: labels = inputs (the model shifts them)
    use_cuda = torch.cuda.is_available()
    targs = TrainingArguments(
        output_dir=str(Path(args.out) / "trainer"), max_steps=args.steps, per_device_train_batch_size=args.batch,
        per_device_eval_batch_size=args.batch, learning_rate=args.lr, weight_decay=0.1, adam_beta2=0.98,
        warmup_steps=0.05, lr_scheduler_type="cosine", max_grad_norm=1.0, bf16=use_cuda and torch.cuda.is_bf16_supported(),
        use_cpu=not use_cuda, logging_steps=50, save_strategy="no", report_to=[], seed=args.seed,
        dataloader_drop_last=True, remove_unused_columns=False,
    )
    trainer = Trainer(model=model, args=targs, train_dataset=train, eval_dataset=val, data_collator=collator)
    t0 = time.time()
    with lcm.count_backends() as paths:
        trainer.train()
    train_s = time.time() - t0
    torch.manual_seed(1234)  # the same masks for every evaluation of the M2 model
    val_loss = trainer.evaluate()["eval_loss"]
    out = Path(args.out)
    model.cpu().eval().save_pretrained(out)
    tokenizer.save_pretrained(out)
    by_path = Counter()
    for (op, backend, why), n in paths.items():
        by_path[f"{op} {backend}" + (f" ({why})" if why else "")] += n
    metrics = {
        "kind": args.kind, "parameters": n_params, "tokens": len(ids), "steps": args.steps, "batch": args.batch,
        "window": window, "train_seconds": round(train_s, 1), "val_loss_nats": round(val_loss, 4),
        ("val_bits_per_char" if wrap is None else "val_masked_bits_per_token"): round(val_loss / math.log(2), 4),
        "convolution_calls": dict(by_path),
        "device": torch.cuda.get_device_name() if use_cuda else "cpu", "data": Path(args.data).name,
    }
    (out / "train_metrics.json").write_text(json.dumps(metrics, indent=1))
    print(json.dumps(metrics))


if __name__ == "__main__":
    main()
