"""The fused residual add + LayerNorm (Triton) against float64 on fresh random inputs: values of
both outputs and every gradient, odd row counts, widths that are and are not powers of two,
the dtype combinations the models use. (GPU; skipped elsewhere.)"""

import pytest
import torch
from torch import nn

import longconv_models as lcm
from helpers import rel_err
from longconv_models.ops.add_layer_norm import add_layer_norm

pytestmark = pytest.mark.cuda

CASES = [  # (x dtype, residual dtype or None, autocast dtype or None)
    (torch.bfloat16, torch.float32, torch.bfloat16),  # fp32 model under bf16 autocast, inner block
    (torch.float32, None, torch.bfloat16),            # first block: the embeddings
    (torch.float16, torch.float32, torch.float16),
    (torch.bfloat16, torch.bfloat16, None),           # bf16 weights
    (torch.float32, torch.float32, None),             # fp32 without autocast
]


@pytest.mark.parametrize("x_dtype,r_dtype,amp", CASES)
@pytest.mark.parametrize("shape", [(3, 37, 256), (1, 5, 864), (7, 768), (2, 3, 33)])
def test_add_layer_norm_matches_float64(shape, x_dtype, r_dtype, amp):
    N = shape[-1]
    norm = nn.LayerNorm(N).cuda()
    with torch.no_grad():
        norm.weight.normal_(1, 0.2)
        norm.bias.normal_(0, 0.2)
    if amp is None and x_dtype == torch.bfloat16:
        norm = norm.bfloat16()
    x = (torch.randn(shape, device="cuda") * 3 + 1).to(x_dtype).requires_grad_()
    r = None if r_dtype is None else torch.randn(shape, device="cuda").to(r_dtype).requires_grad_()
    with lcm.count_backends() as calls, torch.autocast("cuda", dtype=amp or torch.float32, enabled=amp is not None):
        y, s = add_layer_norm(x, r, norm)
    assert calls[("add_layer_norm", "cuda", "")] == 1, dict(calls)
    assert y.dtype == (amp or norm.weight.dtype) and s.dtype == (x_dtype if r is None else torch.promote_types(x_dtype, r_dtype))
    dy, ds = torch.randn_like(y), torch.randn_like(s)
    grads = torch.autograd.grad((y, s), [t for t in (x, r, norm.weight, norm.bias) if t is not None], (dy, ds))

    leaves64 = [t.detach().double().requires_grad_() for t in (x, r, norm.weight, norm.bias) if t is not None]
    x64, r64 = leaves64[0], (leaves64[1] if r is not None else None)
    w64, b64 = leaves64[-2:]
    s64 = x64 if r64 is None else x64 + r64
    y64 = nn.functional.layer_norm(s64, (N,), w64, b64, norm.eps)
    ref = torch.autograd.grad((y64, s64), leaves64, (dy.double(), ds.double()))
    tol = {torch.float32: 1e-5, torch.bfloat16: 1e-2, torch.float16: 2e-3}
    assert rel_err(y, y64) < tol[y.dtype] and rel_err(s, s64) < tol[s.dtype]
    for g, g64, leaf in zip(grads, ref, leaves64):
        assert g.dtype == (x_dtype if leaf is x64 else (r_dtype if leaf is r64 else norm.weight.dtype))
        # the weight gradients sum over rows in fp32: bf16 tolerance only where the inputs were bf16
        assert rel_err(g, g64) < max(tol[g.dtype], tol[x_dtype], tol[y.dtype]), (g.dtype, leaf.shape)


def test_add_layer_norm_nonfinite_row_stays_in_its_row():
    norm = nn.LayerNorm(256).cuda()
    x = torch.randn(4, 256, device="cuda")
    x[1, 7] = float("nan")
    y, _ = add_layer_norm(x, None, norm)
    assert torch.isnan(y[1]).all() and torch.isfinite(y[[0, 2, 3]]).all()
