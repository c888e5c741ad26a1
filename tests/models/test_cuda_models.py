"""Models on the GPU, called the way users call them: fp32 weights under bf16 / fp16 autocast
(``Trainer(bf16=True)``, accelerate), bf16 weights, ``from_pretrained(dtype=...)``, a Trainer
step, ``torch.compile``. Every long and short convolution call (forward and backward) must take
the CUDA kernels (counted per call with ``count_backends``), and the result must stay within the
precision floor of running the model in low precision: the same model on the reference path
under the same precision, both against the fp32 reference run.
(Run on a GPU; skipped elsewhere.)
"""

import copy

import pytest
import torch

import longconv_models as lcm
from helpers import rel_err
from longconv_models.models import (
    HyenaConfig,
    HyenaDNAConfig,
    HyenaDNAForCausalLM,
    HyenaForCausalLM,
    M2BertConfig,
    M2BertForMaskedLM,
)

pytestmark = pytest.mark.cuda

FAMILIES = {
    # HyenaDNA at 4K (fused kernel, N = 8K) and at 40K (long path, N = 128K)
    "hyenadna": (lambda L: HyenaDNAForCausalLM(HyenaDNAConfig(d_model=64, n_layer=2, max_seq_len=L + 2, emb_dim=5,
                                                              filter_order=32, activation_freq=10,
                                                              embed_dropout=0.0)), 4096, 3),
    "hyenadna_long": (lambda L: HyenaDNAForCausalLM(HyenaDNAConfig(d_model=32, n_layer=2, max_seq_len=L + 2,
                                                                   emb_dim=5, filter_order=32, activation_freq=10,
                                                                   embed_dropout=0.0)), 40000, 1),
    "hyena": (lambda L: HyenaForCausalLM(HyenaConfig(vocab_size=100, d_model=96, n_layer=2, max_seq_len=L,
                                                     emb_dim=5, filter_order=32)), 2048, 3),
    "m2_bert": (lambda L: M2BertForMaskedLM(M2BertConfig(vocab_size=1000, hidden_size=64, num_hidden_layers=2,
                                                         intermediate_size=128, max_position_embeddings=L,
                                                         hyena_filter_order=32, hidden_dropout_prob=0.0)), 2048, 3),
}
LONG_CONVS_PER_LAYER = {"hyenadna": 1, "hyenadna_long": 1, "hyena": 1, "m2_bert": 2}
CONV_OPS = ("fftconv", "fftconv_bwd", "short_conv", "short_conv_bwd")


def make(family):
    factory, L, B = FAMILIES[family]
    torch.manual_seed(0)
    model = factory(L).cuda()
    ids = torch.randint(5, min(model.config.vocab_size, 100), (B, L), device="cuda")
    return model, ids


def step(model, ids, amp=None):
    """loss, logits and the flat parameter gradient of one forward + backward (fp16: with a
    static loss scale, as GradScaler would, so that small gradients do not flush to zero)."""
    model.zero_grad(set_to_none=True)
    with torch.autocast("cuda", dtype=amp or torch.float32, enabled=amp is not None):
        out = model(ids, labels=ids)
    scale = 1024.0 if amp == torch.float16 else 1.0
    (out.loss * scale).backward()
    grads = torch.cat([p.grad.float().flatten() / scale for p in model.parameters() if p.grad is not None])
    return out.loss.detach().float(), out.logits.detach().float(), grads


def assert_all_kernel_calls(calls, family, n_steps=1):
    """Every convolution call took the kernel, and each op was called as often as the model has
    convolutions (forward and backward)."""
    bad = {k: n for k, n in calls.items() if k[1] != "cuda"}
    assert not bad, f"calls off the kernels: {bad}"
    per_op = {op: sum(n for (o, _, _), n in calls.items() if o == op) for op in CONV_OPS}
    layers = 2
    long_convs = LONG_CONVS_PER_LAYER[family] * layers * n_steps
    assert per_op["fftconv"] == long_convs and per_op["fftconv_bwd"] == long_convs, per_op
    assert per_op["short_conv"] == 3 * layers * n_steps and per_op["short_conv_bwd"] == 3 * layers * n_steps, per_op


@pytest.mark.parametrize("amp", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("family", FAMILIES)
def test_autocast_runs_the_kernels_within_precision_floor(family, amp):
    model, ids = make(family)
    with lcm.reference_path():
        loss32, logits32, grads32 = step(model, ids)
    with lcm.count_backends() as calls:
        loss, logits, grads = step(model, ids, amp)
    assert_all_kernel_calls(calls, family)
    with lcm.reference_path():
        loss_floor, logits_floor, grads_floor = step(model, ids, amp)
    e, e_floor = rel_err(logits, logits32), rel_err(logits_floor, logits32)
    g, g_floor = rel_err(grads, grads32), rel_err(grads_floor, grads32)
    if family == "hyenadna_long" and amp == torch.float16:
        # the long path's intermediate between its passes is bf16 for fp16 inputs too: bf16's floor
        e_floor, g_floor = max(e_floor, 2e-3), max(g_floor, 2e-3)
    print(f"{family} {amp}: logits {e:.2e} (floor {e_floor:.2e}), grads {g:.2e} (floor {g_floor:.2e}), "
          f"loss {loss.item():.5f} vs {loss32.item():.5f}")
    assert e < 3 * e_floor + 1e-3 and g < 3 * g_floor + 2e-3
    assert abs(loss.item() - loss32.item()) < 1e-2 * abs(loss32.item())


@pytest.mark.parametrize("family", FAMILIES)
def test_bf16_weights_run_the_kernels_within_precision_floor(family):
    model, ids = make(family)
    with lcm.reference_path():
        _, logits32, grads32 = step(model, ids)
    bf16 = copy.deepcopy(model).to(torch.bfloat16)
    with lcm.count_backends() as calls:
        _, logits, grads = step(bf16, ids)
    assert_all_kernel_calls(calls, family)
    with lcm.reference_path():
        _, logits_floor, grads_floor = step(bf16, ids)
    e, e_floor = rel_err(logits, logits32), rel_err(logits_floor, logits32)
    g, g_floor = rel_err(grads, grads32), rel_err(grads_floor, grads32)
    print(f"{family} bf16 weights: logits {e:.2e} (floor {e_floor:.2e}), grads {g:.2e} (floor {g_floor:.2e})")
    assert e < 3 * e_floor + 1e-3 and g < 3 * g_floor + 2e-3


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("name", ["hyenadna-tiny-synthetic", "hyena-char-pydocs"])
def test_from_pretrained_half_precision_on_gpu(name, dtype):
    from transformers import AutoModelForCausalLM

    path = lcm.checkpoints.path(name)
    ref = AutoModelForCausalLM.from_pretrained(path).cuda()
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, device_map="cuda")
    ids = torch.randint(5, 12, (2, 500), device="cuda")
    with torch.no_grad():
        with lcm.reference_path():
            want = ref(ids).logits
        with lcm.count_backends() as calls:
            got = model(ids).logits
    assert calls and all(backend == "cuda" for (_, backend, _) in calls), dict(calls)
    assert rel_err(got, want) < (3e-2 if dtype == torch.bfloat16 else 5e-3)


@pytest.mark.parametrize("family", ["hyenadna", "m2_bert"])
def test_trainer_bf16_step_runs_the_kernels(family, tmp_path):
    """One ``Trainer(bf16=True)`` step with plain SGD (lr 1, no clipping, no decay): the update
    is minus the gradient, which must match the fp32 reference gradient within bf16 tolerance."""
    from transformers import Trainer, TrainingArguments

    model, ids = make(family)
    with lcm.reference_path():
        loss32, _, grads32 = step(model, ids)
    has_grad = [p.grad is not None for p in model.parameters()]  # the parameters in grads32, in order
    model.zero_grad(set_to_none=True)
    before = [p.detach().clone() for p in model.parameters()]
    data = [{"input_ids": row, "labels": row} for row in ids.cpu()]
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=len(data), max_steps=1,
                             learning_rate=1.0, optim="sgd", weight_decay=0.0, max_grad_norm=0.0,
                             lr_scheduler_type="constant", bf16=True, report_to=[], save_strategy="no",
                             logging_steps=1, dataloader_pin_memory=False, disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=data)
    with lcm.count_backends() as calls:
        result = trainer.train()
    assert_all_kernel_calls(calls, family)
    update = torch.cat([(b - p.detach()).float().flatten()
                        for b, p, used in zip(before, model.parameters(), has_grad) if used])
    g = rel_err(update, grads32)
    print(f"{family} Trainer bf16: loss {result.training_loss:.5f} vs fp32 {loss32.item():.5f}, update vs grad {g:.2e}")
    assert abs(result.training_loss - loss32.item()) < 1e-2 * abs(loss32.item())
    assert g < 3e-2


@pytest.mark.parametrize("family", ["hyenadna", "m2_bert"])
def test_gradient_checkpointing_under_autocast_runs_the_kernels(family):
    model, ids = make(family)
    _, _, grads = step(model, ids, torch.bfloat16)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    with lcm.count_backends() as calls:
        _, _, grads_ckpt = step(model, ids, torch.bfloat16)
    assert all(backend == "cuda" for (_, backend, _) in calls), dict(calls)
    assert rel_err(grads_ckpt, grads) < 1e-2


@pytest.mark.parametrize("family", ["hyenadna", "m2_bert"])
def test_torch_compile_model_runs_the_kernels(family):
    torch._dynamo.reset()
    model, ids = make(family)
    _, logits_eager, grads_eager = step(model, ids, torch.bfloat16)
    compiled = torch.compile(model)
    with lcm.count_backends() as calls:
        _, logits, grads = step(compiled, ids, torch.bfloat16)
    # the compiled graph calls the conv custom ops, whose CUDA implementations record each call;
    # add_layer_norm is plain torch under compile (inductor fuses it into its own kernel)
    convs = {(op, b) for (op, b, _) in calls if not op.startswith("add_layer_norm")}
    assert {("fftconv", "cuda"), ("short_conv", "cuda")} <= convs, dict(calls)
    assert all(b == "cuda" for (_, b) in convs), dict(calls)
    assert all(why == "not an eager CUDA call" for (op, b, why) in calls
               if op.startswith("add_layer_norm") and b == "reference"), dict(calls)
    assert rel_err(logits, logits_eager) < 2e-2 and rel_err(grads, grads_eager) < 5e-2
