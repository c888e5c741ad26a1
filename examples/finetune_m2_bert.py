"""Fine-tune M2-BERT for text classification or retrieval with the transformers Trainer.

    python examples/finetune_m2_bert.py --task classification --model m2-bert-tiny-pydocs \
        --train train.jsonl --eval dev.jsonl --output-dir runs/cls
    python examples/finetune_m2_bert.py --task retrieval --model m2-bert-80M-2k-retrieval ...
    torchrun --nproc_per_node 8 examples/finetune_m2_bert.py ...      # DDP, unchanged

Data (CSV, TSV or JSON Lines, read with Hugging Face ``datasets``; ``--streaming`` for files
larger than memory): classification rows ``{"text": ..., "label": ...}``; retrieval rows
``{"query": ..., "positive": ...}`` (trained with in-batch negatives on the pooled sentence
embedding, cosine similarity / temperature; evaluated by recall@1 over the eval positives).
Inputs are padded to ``--max-length`` (default: the model's maximum), as the published M2
models expect. ``--model`` is a converted checkpoint directory (see ``longconv_models.convert``)
or the name of a shipped checkpoint (``m2-bert-tiny-pydocs``, with its own tokenizer), or
``--init-config`` a config.json to train from scratch. The tokenizer comes from the model
directory unless ``--tokenizer`` names one (published M2 models: a local ``bert-base-uncased``).
Checkpoints are safetensors; ``--resume`` continues from the last one.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoTokenizer, Trainer, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

import longconv_models as lcm
from longconv_models import checkpoints
from longconv_models.data import label_names, load_table
from longconv_models.models import M2BertConfig, M2BertForSequenceClassification, M2BertModel


class RetrievalTrainer(Trainer):
    """Contrastive loss with in-batch negatives on the sentence embeddings."""

    temperature = 0.05

    def compute_loss(self, model, inputs, return_outputs=False, **kwargs):
        q = model(input_ids=inputs["query_ids"], attention_mask=inputs["query_mask"]).pooler_output
        d = model(input_ids=inputs["doc_ids"], attention_mask=inputs["doc_mask"]).pooler_output
        sim = F.normalize(q.float(), dim=-1) @ F.normalize(d.float(), dim=-1).T / self.temperature
        loss = F.cross_entropy(sim, torch.arange(len(q), device=sim.device))
        return (loss, {"sim": sim}) if return_outputs else loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        with torch.no_grad():
            q = model(input_ids=inputs["query_ids"], attention_mask=inputs["query_mask"]).pooler_output
            d = model(input_ids=inputs["doc_ids"], attention_mask=inputs["doc_mask"]).pooler_output
        emb = torch.stack([F.normalize(q.float(), dim=-1), F.normalize(d.float(), dim=-1)], 1)
        return None, emb, torch.zeros(len(q), device=emb.device)  # dummy labels: metrics need some


def retrieval_metrics(pred):
    emb = pred.predictions  # (n, 2, dim): query, positive
    sim = emb[:, 0] @ emb[:, 1].T
    return {"recall_at_1": float((sim.argmax(1) == np.arange(len(sim))).mean())}


def classification_metrics(pred):
    logits, labels = pred
    return {"accuracy": float((logits.argmax(-1) == labels).mean())}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", choices=["classification", "retrieval"], default="classification")
    ap.add_argument("--model", default=None)
    ap.add_argument("--init-config", default=None)
    ap.add_argument("--tokenizer", default=None, help="tokenizer directory (default: the model's)")
    ap.add_argument("--train", required=True)
    ap.add_argument("--eval", default=None)
    ap.add_argument("--output-dir", required=True)
    ap.add_argument("--max-length", type=int, default=None)
    ap.add_argument("--epochs", type=float, default=3)
    ap.add_argument("--max-steps", type=int, default=-1)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--save-steps", type=int, default=500)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--streaming", action="store_true", help="read --train as it is consumed (needs --max-steps)")
    ap.add_argument("--labels", default=None, help="comma-separated label names (default: those in --train)")
    args = ap.parse_args(argv)
    if (args.model is None) == (args.init_config is None):
        ap.error("pass exactly one of --model and --init-config")
    if args.streaming and (args.max_steps <= 0 or (args.task == "classification" and args.labels is None)):
        ap.error("--streaming needs --max-steps (and --labels for classification)")
    if args.model in checkpoints.NAMES:
        args.model = checkpoints.path(args.model)
    if args.tokenizer is None and args.model is None:
        ap.error("--init-config needs --tokenizer")
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer or args.model)

    fields = ("text", "label") if args.task == "classification" else ("query", "positive")
    train_rows = load_table(args.train, streaming=args.streaming, required=fields)
    eval_rows = load_table(args.eval, required=fields) if args.eval else None
    config = M2BertConfig.from_json_file(args.init_config) if args.init_config else M2BertConfig.from_pretrained(args.model)
    max_length = args.max_length or config.max_position_embeddings

    def encode(texts):  # the mask takes effect where config.mask_padding (models trained with this library)
        enc = tokenizer(list(texts), padding="max_length", truncation=True, max_length=max_length,
                        return_tensors="pt", return_token_type_ids=False, return_attention_mask=True)
        return enc["input_ids"], enc["attention_mask"]

    if args.task == "classification":
        names = args.labels.split(",") if args.labels else label_names(train_rows)
        label_ids = {n: i for i, n in enumerate(names)}
        if args.init_config:
            config.num_labels = len(names)
            model = M2BertForSequenceClassification(config)
        else:
            model = M2BertForSequenceClassification.from_pretrained(args.model, num_labels=len(names))
        model.config.id2label, model.config.label2id = dict(enumerate(names)), label_ids

        def collate(batch):
            ids, mask = encode(r["text"] for r in batch)
            return {"input_ids": ids, "attention_mask": mask,
                    "labels": torch.tensor([label_ids[str(r["label"])] for r in batch])}

        trainer_cls, metrics = Trainer, classification_metrics
    else:
        model = M2BertModel(config) if args.init_config else M2BertModel.from_pretrained(args.model)

        def collate(batch):
            (q, qm), (d, dm) = encode(r["query"] for r in batch), encode(r["positive"] for r in batch)
            return {"query_ids": q, "query_mask": qm, "doc_ids": d, "doc_mask": dm}

        trainer_cls, metrics = RetrievalTrainer, retrieval_metrics

    # one GPU per process (torchrun): with fewer GPUs than processes, train on the CPU (gloo)
    use_cuda = torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) <= torch.cuda.device_count()
    targs = TrainingArguments(
        output_dir=args.output_dir,
        num_train_epochs=args.epochs,
        max_steps=args.max_steps,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.batch_size,
        learning_rate=args.lr,
        weight_decay=0.01,
        warmup_steps=0.06,  # a fraction of the total steps
        eval_strategy="epoch" if eval_rows is not None and args.max_steps < 0 else "no",
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
        label_names=["labels"] if args.task == "classification" else [],
    )
    # the rows stay text until the collator: padding="max_length" is what M2 expects anyway
    trainer = trainer_cls(model=model, args=targs, train_dataset=train_rows, eval_dataset=eval_rows,
                          data_collator=collate, compute_metrics=metrics)
    last = get_last_checkpoint(args.output_dir) if args.resume and os.path.isdir(args.output_dir) else None
    with lcm.count_backends() as paths:
        trainer.train(resume_from_checkpoint=last)
    print("convolution calls in training:", ", ".join(f"{op} {backend}{f' ({why})' if why else ''}: {n}"
                                                       for (op, backend, why), n in sorted(paths.items())))
    if eval_rows is not None:
        result = trainer.evaluate()
        trainer.log_metrics("eval", result)
        trainer.save_metrics("eval", result)
    trainer.save_model(args.output_dir)
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(args.output_dir)


if __name__ == "__main__":
    main()
