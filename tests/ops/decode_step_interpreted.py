"""Run by test_decode_step.py in a fresh interpreter with TRITON_INTERPRET=1 (Triton decides at
its own import whether kernels run on the GPU or in its numpy interpreter): the decoding step's
Triton kernel against its PyTorch reference. Prints one line per case; exits 1 on a mismatch."""

import sys

import torch

from longconv_models.kernels.hyena_decode import hyena_decode
from longconv_models.ops.decode_step import hyena_decode_step_ref

CASES = [(3, 37, 5, True, torch.float32), (1, 64, 0, False, torch.float32), (2, 33, 63, True, torch.bfloat16),
         (5, 8, 31, False, torch.bfloat16), (2, 100, 17, True, torch.float16)]


def state(B, d, pos, bias, dtype, K=67, width=3, block=64):
    g = torch.Generator().manual_seed(B * 1000 + d + pos)

    def rand(*shape):
        return torch.randn(*shape, generator=g)

    return dict(p=rand(B, 3 * d).to(dtype), ring=rand(B, 3 * d, K).to(dtype), short_weight=rand(3 * d, width),
                short_bias=rand(3 * d) if bias else None, window=rand(B, d, block), window_acc=rand(B, d, block),
                toeplitz=rand(d, block, block), position=torch.tensor([pos]))


def main() -> int:
    failures = 0
    for B, d, pos, bias, dtype in CASES:
        s = state(B, d, pos, bias, dtype)
        ref = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in s.items()}
        ker = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in s.items()}
        expected = hyena_decode_step_ref(**ref)
        got = hyena_decode(**ker)
        ker["position"] += 1  # (the op advances it after the kernel)
        tol = dict(rtol=1e-5, atol=1e-4) if dtype == torch.float32 else dict(rtol=2e-2, atol=2e-2)
        checks = {
            "output": got.dtype == dtype and got.shape == (B, d) and torch.allclose(got.float(), expected.float(), **tol),
            "ring": torch.equal(ker["ring"], ref["ring"]),
            "window": torch.allclose(ker["window"], ref["window"], rtol=1e-6, atol=1e-6),
            "position": torch.equal(ker["position"], ref["position"]),
            "window_acc read only": torch.equal(ker["window_acc"], s["window_acc"]),
        }
        bad = [name for name, ok in checks.items() if not ok]
        failures += bool(bad)
        print(f"B={B} d={d} pos={pos} bias={bias} {dtype}: {'ok' if not bad else 'MISMATCH ' + ', '.join(bad)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
