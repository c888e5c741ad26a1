"""The ops are torch.library custom ops: opcheck passes and torch.compile traces them whole."""

import pytest
import torch
from torch import nn

from helpers import rel_err
from longconv_models import fftconv, short_conv


class GatedConv(nn.Module):
    def __init__(self, h, lk):
        super().__init__()
        self.k = nn.Parameter(torch.randn(h, lk) * 0.1)
        self.bias = nn.Parameter(torch.randn(h))
        self.w = nn.Parameter(torch.randn(h, 3))

    def forward(self, u):
        v = short_conv(u, self.w, padding="causal")
        return fftconv(u, self.k, bias=self.bias, pre_gate=v, post_gate=torch.sigmoid(u))


def test_opcheck_fftconv():
    u = torch.randn(2, 3, 20)
    k_f = torch.fft.rfft(torch.randn(3, 64), n=64).requires_grad_()
    for args in [(u, k_f, None, None, 64), (u.requires_grad_(), k_f, torch.randn_like(u), torch.randn_like(u), 64)]:
        torch.library.opcheck(torch.ops.longconv.fftconv.default, args)


def test_opcheck_short_conv():
    x = torch.randn(2, 3, 20, requires_grad=True)
    w = torch.randn(3, 4, requires_grad=True)
    torch.library.opcheck(torch.ops.longconv.short_conv.default, (x, w, torch.randn(3), 3, False))
    torch.library.opcheck(torch.ops.longconv.short_conv.default, (x.transpose(1, 2).contiguous(), w, None, 1, True))


@pytest.mark.parametrize("dynamic", [False, True])
def test_torch_compile_fullgraph(dynamic):
    torch._dynamo.reset()
    m = GatedConv(4, 16)
    u = torch.randn(2, 4, 32, requires_grad=True)
    compiled = torch.compile(m, fullgraph=True, dynamic=dynamic, backend="aot_eager")
    y = compiled(u)
    torch.testing.assert_close(y, m(u))
    y.sum().backward()
    assert m.k.grad is not None and u.grad is not None


def test_direct_calls_only_for_plain_eager_cuda_tensors():
    from torch._subclasses.fake_tensor import FakeTensorMode

    from longconv_models.ops import dispatch

    assert not dispatch.direct_call_ok(torch.randn(2))  # CPU tensors: the library dispatcher
    with FakeTensorMode():
        assert not dispatch.direct_call_ok(torch.empty(2))
    seen = []
    torch.func.vmap(lambda x: seen.append(dispatch._transforms_or_modes_active()) or x)(torch.randn(3, 2))
    assert seen == [True]


@pytest.mark.cuda
@pytest.mark.parametrize("dynamic", [False, True])
def test_torch_compile_fullgraph_cuda_kernels(dynamic):
    from longconv_models import last_backend

    torch._dynamo.reset()
    m = GatedConv(4, 16).cuda()
    u = torch.randn(2, 4, 300, device="cuda").bfloat16().requires_grad_()
    compiled = torch.compile(m.bfloat16(), fullgraph=True, dynamic=dynamic, backend="aot_eager")
    y = compiled(u)
    assert last_backend() == ("cuda", "")
    # the same kernels; the compiled graph transforms the filter with torch's fp32 rfft, the eager
    # taps route on the tensor cores (bf16 rounding): both against a float64 reference
    y_eager = m(u)
    m64 = GatedConv(4, 16).cuda().double()
    m64.load_state_dict(m.state_dict())
    y_ref = m64(u.detach().double())
    assert rel_err(y, y_ref) < 1e-2 and rel_err(y_eager, y_ref) < 1e-2 and rel_err(y, y_eager) < 5e-3
    y.float().sum().backward()
    assert last_backend("fftconv_bwd") == ("cuda", "") and m.k.grad is not None and u.grad is not None
