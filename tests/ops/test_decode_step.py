"""The decoding step's Triton kernel (kernels/hyena_decode.py) against its PyTorch reference
(ops/decode_step), in Triton's interpreter on the CPU (decode_step_interpreted.py, in a fresh
process: Triton picks interpreter or GPU at its import); the route's choice and the reference
against the model's own step. (On a GPU: tests/models/test_cuda_generation.py.)"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import longconv_models as lcm
from longconv_models.ops.decode_step import hyena_decode_step


def test_kernel_equals_reference_in_the_triton_interpreter():
    pytest.importorskip("triton", reason="Triton is not installed")
    script = Path(__file__).with_name("decode_step_interpreted.py")
    env = dict(os.environ, TRITON_INTERPRET="1")
    run = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count(": ok") == 5, run.stdout


def test_route_says_why_the_reference_ran():
    B, d, K, block = 2, 4, 6, 8
    args = (torch.randn(B, 3 * d), torch.zeros(B, 3 * d, K), torch.randn(3 * d, 3), None, torch.zeros(B, d, block),
            torch.zeros(B, d, block), torch.randn(d, block, block), torch.zeros(1, dtype=torch.long))
    with lcm.count_backends() as calls:
        hyena_decode_step(*args, fused=False)
        hyena_decode_step(*args)
    reasons = {reason for (op, backend, reason) in calls if op == "hyena_decode_step" and backend == "reference"}
    assert any("turned off" in r for r in reasons) and any("device cpu" in r for r in reasons)
    assert int(args[-1]) == 2  # both calls advanced the block position
