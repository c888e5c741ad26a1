"""Fine-tune HyenaDNA for DNA sequence classification with the transformers Trainer.

    python examples/finetune_hyenadna.py --model hyenadna-tiny-synthetic \
        --train train.csv --eval test.csv --output-dir runs/promoters --epochs 3
    torchrun --nproc_per_node 4 examples/finetune_hyenadna.py ...      # DDP, unchanged

Data: CSV / TSV / JSON Lines (columns ``sequence``, ``label``) or FASTA (``>name label=<label>``
headers), optionally gzipped, read with Hugging Face ``datasets`` (memory-mapped, tokenized by the
fast tokenizer in batched ``map``); ``--streaming`` reads files larger than memory as they are
consumed (then pass ``--labels`` and ``--max-steps``). Labels may be strings or integers;
lower-case (soft-masked) bases are upper-cased by the tokenizer. ``--model`` is a path, a hub id already in the local cache, or the name of
an embedded checkpoint; a causal-LM checkpoint gets a new classification head. Checkpoints are
saved as safetensors; ``--resume`` continues from the last one in ``--output-dir``. ``--lora R``
trains LoRA adapters of rank R on the projections and MLPs (and the whole classification head)
instead of every weight (needs ``peft``); the output directory then holds the adapter
(``adapter/``) and the model with the adapters merged (loads like any other).
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import torch
from transformers import AutoTokenizer, DataCollatorWithPadding, Trainer, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

import longconv_models as lcm
from longconv_models import checkpoints
from longconv_models.data import label_names, load_table, tokenize
from longconv_models.models import HyenaDNAConfig, HyenaDNAForSequenceClassification, HyenaDNATokenizerFast


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
    ap.add_argument("--streaming", action="store_true", help="read the data as it is consumed (needs --labels, --max-steps)")
    ap.add_argument("--labels", default=None, help="comma-separated label names (default: those in --train)")
    ap.add_argument("--lora", type=int, default=0, metavar="R", help="train rank-R LoRA adapters (peft) instead of every weight")
    args = ap.parse_args(argv)
    if args.streaming and (args.labels is None or args.max_steps <= 0):
        ap.error("--streaming needs --labels and --max-steps (a stream's labels and length are not known in advance)")

    train_table = load_table(args.train, streaming=args.streaming, required=("sequence", "label"))
    names = args.labels.split(",") if args.labels else label_names(train_table)
    label_ids = {n: i for i, n in enumerate(names)}
    model_path = checkpoints.path(args.model) if args.model in checkpoints.NAMES else args.model
    if args.init_config:
        config = HyenaDNAConfig.from_json_file(args.init_config)
        config.num_labels = len(names)
        model = HyenaDNAForSequenceClassification(config)
        tokenizer = HyenaDNATokenizerFast(model_max_length=config.max_seq_len)
    else:
        model = HyenaDNAForSequenceClassification.from_pretrained(
            model_path, num_labels=len(names), id2label=dict(enumerate(names)), label2id=label_ids
        )
        tokenizer = AutoTokenizer.from_pretrained(model_path)
    if args.lora:
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(r=args.lora, lora_alpha=2 * args.lora, task_type="SEQ_CLS", modules_to_save=["score"],
                          target_modules=["in_proj", "out_proj", "fc1", "fc2"])
        model = get_peft_model(model, lora)
        model.print_trainable_parameters()
    max_length = args.max_length or model.config.max_seq_len - 2
    train = tokenize(train_table, tokenizer, "sequence", max_length, names)
    evaluation = None
    if args.eval:  # evaluation sets are read whole (memory-mapped)
        evaluation = tokenize(load_table(args.eval, required=("sequence", "label")), tokenizer, "sequence",
                              max_length, names)

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
    # left padding (the tokenizer's side): the last position is the last real token
    trainer = Trainer(model=model, args=targs, train_dataset=train, eval_dataset=evaluation,
                      data_collator=DataCollatorWithPadding(tokenizer), compute_metrics=compute_metrics)
    last = get_last_checkpoint(args.output_dir) if args.resume and os.path.isdir(args.output_dir) else None
    with lcm.count_backends() as paths:
        trainer.train(resume_from_checkpoint=last)
    print("convolution calls in training:", ", ".join(f"{op} {backend}{f' ({why})' if why else ''}: {n}"
                                                       for (op, backend, why), n in sorted(paths.items())))
    if evaluation is not None:
        metrics = trainer.evaluate()
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
    if args.lora:  # the adapter, and the model with it merged in (a plain checkpoint)
        trainer.save_model(os.path.join(args.output_dir, "adapter"))
        if trainer.is_world_process_zero():
            model.merge_and_unload().save_pretrained(args.output_dir)
    else:
        trainer.save_model(args.output_dir)
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(args.output_dir)


if __name__ == "__main__":
    main()
