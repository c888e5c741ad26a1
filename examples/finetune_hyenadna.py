"""Fine-tune HyenaDNA for DNA sequence classification with the transformers Trainer.

    python examples/finetune_hyenadna.py --model hyenadna-tiny-synthetic \
        --train train.csv --eval test.csv --output-dir runs/promoters --epochs 3
    torchrun --nproc_per_node 4 examples/finetune_hyenadna.py ...      # DDP, unchanged

Data: CSV (columns ``sequence,label``) or FASTA (``>anything label=<label>`` headers). Labels may
be strings or integers. ``--model`` is a path, a hub id already in the local cache, or the name of
an embedded checkpoint; a causal-LM checkpoint gets a new classification head. Checkpoints are
saved as safetensors; ``--resume`` continues from the last one in ``--output-dir``.
"""

from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path

import numpy as np
import torch
from transformers import AutoTokenizer, Trainer, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

from longconv_models import checkpoints
from longconv_models.models import HyenaDNAConfig, HyenaDNAForSequenceClassification, HyenaDNATokenizer


def read_sequences(path: str) -> tuple[list[str], list[str]]:
    p = Path(path)
    seqs, labels = [], []
    if p.suffix.lower() in (".fa", ".fasta", ".fna"):
        header, chunks = None, []
        for line in p.read_text().splitlines() + [">"]:
            if line.startswith(">"):
                if header is not None:
                    fields = dict(f.split("=", 1) for f in header[1:].split() if "=" in f)
                    if "label" not in fields:
                        raise ValueError(f"{path}: FASTA header without label=...: {header!r}")
                    seqs.append("".join(chunks).upper())
                    labels.append(fields["label"])
                header, chunks = line, []
            elif line.strip():
                chunks.append(line.strip())
    else:
        with open(p, newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows or not {"sequence", "label"} <= set(rows[0]):
            raise ValueError(f"{path}: expected a CSV with columns 'sequence' and 'label'")
        seqs = [r["sequence"].upper() for r in rows]
        labels = [r["label"] for r in rows]
    return seqs, labels


class SequenceDataset(torch.utils.data.Dataset):
    def __init__(self, seqs, labels, tokenizer, label_ids, max_length):
        self.enc = [tokenizer(s, truncation=True, max_length=max_length)["input_ids"] for s in seqs]
        self.labels = [label_ids[label] for label in labels]

    def __len__(self):
        return len(self.enc)

    def __getitem__(self, i):
        return {"input_ids": self.enc[i], "labels": self.labels[i]}


def collate(pad_id):
    def fn(batch):
        L = max(len(b["input_ids"]) for b in batch)
        ids = torch.full((len(batch), L), pad_id, dtype=torch.long)
        for i, b in enumerate(batch):  # left padding: the last position is the last real token
            ids[i, L - len(b["input_ids"]):] = torch.tensor(b["input_ids"])
        return {"input_ids": ids, "labels": torch.tensor([b["labels"] for b in batch])}

    return fn


def compute_metrics(pred):
    logits, labels = pred
    predicted = logits.argmax(-1)
    acc = float((predicted == labels).mean())
    f1s = []
    for c in np.unique(labels):
        tp = np.sum((predicted == c) & (labels == c))
        prec = tp / max(1, np.sum(predicted == c))
        rec = tp / max(1, np.sum(labels == c))
        f1s.append(0.0 if prec + rec == 0 else 2 * prec * rec / (prec + rec))
    return {"accuracy": acc, "macro_f1": float(np.mean(f1s))}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="hyenadna-tiny-synthetic")
    ap.add_argument("--init-config", default=None, help="train from scratch with this config.json instead")
    ap.add_argument("--train", required=True)
    ap.add_argument("--eval", default=None)
    ap.add_argument("--output-dir", required=True)
    ap.add_argument("--max-length", type=int, default=None)
    ap.add_argument("--epochs", type=float, default=3)
    ap.add_argument("--max-steps", type=int, default=-1)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=6e-4)
    ap.add_argument("--save-steps", type=int, default=500)
    ap.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --output-dir")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    seqs, labels = read_sequences(args.train)
    names = sorted(set(labels))
    label_ids = {n: i for i, n in enumerate(names)}
    model_path = checkpoints.path(args.model) if args.model in checkpoints.NAMES else args.model
    if args.init_config:
        config = HyenaDNAConfig.from_json_file(args.init_config)
        config.num_labels = len(names)
        model = HyenaDNAForSequenceClassification(config)
        tokenizer = HyenaDNATokenizer(model_max_length=config.max_seq_len)
    else:
        model = HyenaDNAForSequenceClassification.from_pretrained(
            model_path, num_labels=len(names), id2label=dict(enumerate(names)), label2id=label_ids
        )
        tokenizer = AutoTokenizer.from_pretrained(model_path)
    max_length = args.max_length or model.config.max_seq_len - 2
    train = SequenceDataset(seqs, labels, tokenizer, label_ids, max_length)
    evaluation = None
    if args.eval:
        eseqs, elabels = read_sequences(args.eval)
        unknown = set(elabels) - set(names)
        if unknown:
            raise ValueError(f"labels in {args.eval} not seen in training: {sorted(unknown)}")
        evaluation = SequenceDataset(eseqs, elabels, tokenizer, label_ids, max_length)

    # one GPU per process (torchrun): with fewer GPUs than processes, train on the CPU (gloo)
    use_cuda = torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) <= torch.cuda.device_count()
    targs = TrainingArguments(
        output_dir=args.output_dir,
        num_train_epochs=args.epochs,
        max_steps=args.max_steps,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.batch_size,
        learning_rate=args.lr,
        weight_decay=0.1,
        warmup_steps=0.1,  # a fraction of the total steps
        lr_scheduler_type="cosine",
        eval_strategy="epoch" if evaluation is not None and args.max_steps < 0 else "no",
        save_strategy="steps",
        save_steps=args.save_steps,
        save_total_limit=2,
        logging_steps=10,
        bf16=use_cuda and torch.cuda.is_bf16_supported(),
        use_cpu=not use_cuda,
        ddp_backend="gloo" if not use_cuda and int(os.environ.get("WORLD_SIZE", "1")) > 1 else None,
        seed=args.seed,
        report_to=[],
        remove_unused_columns=False,
        disable_tqdm=False,
    )
    trainer = Trainer(model=model, args=targs, train_dataset=train, eval_dataset=evaluation,
                      data_collator=collate(tokenizer.pad_token_id), compute_metrics=compute_metrics)
    last = get_last_checkpoint(args.output_dir) if args.resume and os.path.isdir(args.output_dir) else None
    trainer.train(resume_from_checkpoint=last)
    if evaluation is not None:
        metrics = trainer.evaluate()
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
    trainer.save_model(args.output_dir)
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(args.output_dir)


if __name__ == "__main__":
    main()
