"""Linear convolutions larger than the kernels' largest FFT (4M points): the segmented route
(overlap-add of 4M-point circular convolutions on the kernels) against the reference path's one
8M-point FFT, forward and backward. (GPU; skipped elsewhere.)"""

import pytest
import torch

import longconv_models as lcm

pytestmark = pytest.mark.cuda


def rel(a, b):
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def test_segmented_route_beyond_the_largest_kernel_fft():
    torch.manual_seed(0)
    B, H, L, Lk = 1, 2, 3 * 2**20, 3 * 2**19  # 3M inputs, 1.5M taps: one linear conv needs 8M points
    u = torch.randn(B, H, L, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    pre = torch.randn(B, H, L, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    post = torch.randn(B, H, L, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    decay = torch.exp(-torch.arange(Lk, device="cuda") / 2e5)
    k = (torch.randn(H, Lk, device="cuda") * decay).requires_grad_()
    bias = torch.randn(H, device="cuda", requires_grad=True)
    inputs = (u, pre, post, k, bias)
    with lcm.count_backends() as calls:
        y = lcm.fftconv(u, k, bias=bias, pre_gate=pre, post_gate=post)
        grads = torch.autograd.grad(y, inputs, torch.ones_like(y))
    used = {(op, backend) for (op, backend, _) in calls}
    assert used == {("fftconv", "cuda"), ("fftconv_bwd", "cuda")}, calls
    assert sum(n for (op, _, _), n in calls.items() if op == "fftconv") == 2  # two 4M-point segments
    with lcm.reference_path():
        ref = lcm.fftconv(u, k, bias=bias, pre_gate=pre, post_gate=post)
        grads_ref = torch.autograd.grad(ref, inputs, torch.ones_like(ref))
    assert rel(y, ref) < 2e-2
    for name, g, r in zip(("u", "pre", "post", "k", "bias"), grads, grads_ref):
        assert rel(g, r) < 3e-2, name
