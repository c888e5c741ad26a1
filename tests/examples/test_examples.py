"""The user-facing scripts run end to end on a CPU (tiny settings): quickstart, fine-tuning
(single process, resume, 2-process gloo DDP under torchrun), context extension, conversion CLI,
benchmark smoke test."""

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def run(*args, cwd=None, timeout=600):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run([*args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


def test_quickstart():
    out = run(sys.executable, "-m", "longconv_models.quickstart", "--max-new-tokens", "30", "--device", "cpu")
    assert "HyenaForCausalLM" in out and "HyenaDNAForCausalLM" in out
    assert "fftconv path: reference/device cpu" in out


@pytest.fixture(scope="module")
def dna_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("dna")
    rng = random.Random(0)
    rows = ["sequence,label"]
    for i in range(48):
        s = "".join(rng.choice("ACGT") for _ in range(50))
        if i % 2:
            s = s[:20] + "TATAAA" + s[26:]
        rows.append(f"{s},{'promoter' if i % 2 else 'background'}")
    (d / "train.csv").write_text("\n".join(rows))
    (d / "train.fa").write_text("".join(f">r{i} label={r.split(',')[1]}\n{r.split(',')[0]}\n" for i, r in enumerate(rows[1:])))
    return d


def test_finetune_hyenadna_and_resume(dna_data, tmp_path):
    script = str(EXAMPLES / "finetune_hyenadna.py")
    common = ["--batch-size", "8", "--save-steps", "2", "--output-dir", str(tmp_path / "out")]
    run(sys.executable, script, "--train", str(dna_data / "train.csv"), "--eval", str(dna_data / "train.csv"),
        "--max-steps", "4", *common)
    metrics = json.loads((tmp_path / "out" / "eval_results.json").read_text())
    assert 0 <= metrics["eval_accuracy"] <= 1
    assert (tmp_path / "out" / "model.safetensors").is_file() and (tmp_path / "out" / "checkpoint-4").is_dir()
    out = run(sys.executable, script, "--train", str(dna_data / "train.fa"), "--max-steps", "6", "--resume", *common)
    assert "train_loss" in out and (tmp_path / "out" / "checkpoint-6").is_dir()


def test_finetune_hyenadna_lora(dna_data, tmp_path):
    pytest.importorskip("peft")
    import torch
    from transformers import AutoModelForSequenceClassification

    import longconv_models  # noqa: F401  (registers the Auto classes)

    base = AutoModelForSequenceClassification.from_pretrained(
        str(ROOT / "longconv_models" / "checkpoints" / "hyenadna-tiny-synthetic"), num_labels=2)
    out = run(sys.executable, str(EXAMPLES / "finetune_hyenadna.py"), "--train", str(dna_data / "train.csv"),
              "--lora", "4", "--max-steps", "3", "--batch-size", "8", "--lr", "1e-2", "--output-dir", str(tmp_path / "out"))
    assert "trainable params" in out and (tmp_path / "out" / "adapter" / "adapter_model.safetensors").is_file()
    merged = AutoModelForSequenceClassification.from_pretrained(str(tmp_path / "out"))
    changed = {n for n, p in merged.named_parameters() if not torch.equal(p, base.state_dict().get(n, p))}
    # the adapted projections and the head moved; the filters, norms and embeddings did not
    assert any(".mixer.in_proj." in n for n in changed) and any("score" in n for n in changed)
    assert not any("filter_fn" in n or "norm" in n or "embeddings" in n for n in changed)


def test_finetune_hyenadna_streaming_fasta(dna_data, tmp_path):
    out = run(sys.executable, str(EXAMPLES / "finetune_hyenadna.py"), "--train", str(dna_data / "train.fa"),
              "--streaming", "--labels", "background,promoter", "--max-steps", "3", "--batch-size", "8",
              "--save-steps", "3", "--output-dir", str(tmp_path / "s"))
    assert (tmp_path / "s" / "model.safetensors").is_file() and "fftconv reference (device cpu)" in out


@pytest.mark.parametrize("kind", ["m2-bert", "hyena-char"])
def test_train_embedded_with_trainer(tmp_path, kind):
    text = "\n".join(f"Return the {w} of the list when the {v} is empty." for w in ("sum", "length", "first", "last")
                     for v in ("argument", "input", "sequence")) * 20
    (tmp_path / "corpus.txt").write_text(text)
    run(sys.executable, str(EXAMPLES / "train_embedded.py"), kind, "--data", str(tmp_path / "corpus.txt"), "--out",
        str(tmp_path / "ckpt"), "--steps", "3", "--batch", "4", "--width", "32", "--layers", "1", "--window", "32")
    metrics = json.loads((tmp_path / "ckpt" / "train_metrics.json").read_text())
    assert metrics["steps"] == 3 and metrics["val_loss_nats"] > 0 and any("fftconv" in k for k in metrics["convolution_calls"])
    from transformers import AutoModel, AutoTokenizer

    import longconv_models  # noqa: F401  (registers the model types)
    assert AutoModel.from_pretrained(tmp_path / "ckpt") is not None
    assert AutoTokenizer.from_pretrained(tmp_path / "ckpt")("Return the sum")["input_ids"]


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun not on PATH")
def test_finetune_hyenadna_ddp_two_processes(dna_data, tmp_path):
    run("torchrun", "--nproc_per_node", "2", "--master_port", "29517", str(EXAMPLES / "finetune_hyenadna.py"),
        "--train", str(dna_data / "train.csv"), "--eval", str(dna_data / "train.csv"), "--output-dir",
        str(tmp_path / "ddp"), "--max-steps", "3", "--batch-size", "4", "--save-steps", "3")
    args = json.loads((tmp_path / "ddp" / "eval_results.json").read_text())
    assert "eval_accuracy" in args and (tmp_path / "ddp" / "model.safetensors").is_file()


@pytest.fixture(scope="module")
def m2_setup(tmp_path_factory):
    from transformers import BertTokenizer

    from longconv_models.models import M2BertConfig

    d = tmp_path_factory.mktemp("m2")
    rng = random.Random(0)
    words = "the cat dog runs sits on mat log fast slow red blue big small house tree river".split()
    (d / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words))
    BertTokenizer(str(d / "vocab.txt")).save_pretrained(d / "tok")
    with open(d / "cls.jsonl", "w") as f:
        for _ in range(24):
            t = " ".join(rng.choice(words) for _ in range(6))
            f.write(json.dumps({"text": t, "label": "pos" if "cat" in t else "neg"}) + "\n")
    with open(d / "ret.jsonl", "w") as f:
        for _ in range(24):
            q = " ".join(rng.choice(words) for _ in range(4))
            f.write(json.dumps({"query": q, "positive": q + " " + rng.choice(words)}) + "\n")
    M2BertConfig(vocab_size=32, hidden_size=32, num_hidden_layers=2, intermediate_size=64,
                 max_position_embeddings=32, hyena_filter_order=16).to_json_file(d / "m2.json")
    return d


@pytest.mark.parametrize("task,data,metric", [("classification", "cls.jsonl", "eval_accuracy"),
                                              ("retrieval", "ret.jsonl", "eval_recall_at_1")])
def test_finetune_m2_bert(m2_setup, tmp_path, task, data, metric):
    run(sys.executable, str(EXAMPLES / "finetune_m2_bert.py"), "--task", task, "--init-config",
        str(m2_setup / "m2.json"), "--tokenizer", str(m2_setup / "tok"), "--train", str(m2_setup / data), "--eval",
        str(m2_setup / data), "--output-dir", str(tmp_path / task), "--max-steps", "3", "--batch-size", "8")
    assert metric in json.loads((tmp_path / task / "eval_results.json").read_text())


def test_context_extension_example():
    out = run(sys.executable, str(EXAMPLES / "context_extension.py"), "--lengths", "1024,2048",
              "--filter-lengths", "1024", "--batch", "1", "--device", "cpu")
    rows = [line.split() for line in out.splitlines() if line.strip().startswith(("1024", "2048"))]
    assert len(rows) == 2 and all(float(r[2]) < 2.0 for r in rows)  # better than uniform at 2x the trained length


def test_frequency_sparse_example():
    out = run(sys.executable, str(EXAMPLES / "frequency_sparse.py"), "--keeps", "1,0.25", "--length", "256",
              "--windows", "2", "--models", "hyenadna-tiny-synthetic", "--device", "cpu")
    bits = [float(line.split()[-1]) for line in out.splitlines() if line.strip().startswith("hyenadna")]
    assert len(bits) == 2 and all(b < 2.0 for b in bits)  # still better than uniform at 75% sparsity


def test_convert_cli_errors_cleanly(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "longconv_models.convert", str(tmp_path / "missing"), str(tmp_path / "o")],
                          capture_output=True, text=True, env=env)
    assert proc.returncode != 0 and "error:" in proc.stderr and "does not exist" in proc.stderr


def test_benchmark_smoke_cpu(tmp_path):
    out = run(sys.executable, str(ROOT / "benchmarks" / "bench_fftconv.py"), "--device", "cpu", "--sizes", "256",
              "--scale", "0.02", "--reps", "2", "--warmup", "1", "--out", str(tmp_path / "b.json"))
    rows = json.loads((tmp_path / "b.json").read_text())["rows"]
    assert rows[0]["N"] == 256 and rows[0]["rel_err"] < 1e-2 and "floor" in out


def test_generate_dna_after_a_prompt_longer_than_training():
    out = run(sys.executable, str(EXAMPLES / "generate_dna.py"), "--prompt-length", "1500", "--new-tokens", "20",
              "--batch", "2", "--device", "cpu")
    accuracy = float(out.split("true continuation: ")[1].split()[0])
    assert 0.25 < accuracy <= 1.0  # the model has learned the genome: better than chance
    assert "per generated base" in out and "generate(20)" in out
