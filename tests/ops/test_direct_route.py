"""The eager CUDA route's Python plumbing, on the CPU with a stand-in for the extension: which
kernel entry points each case calls, with what, and that gradients reach exactly the inputs that
ask for them. (The numbers are checked against float64 references on a GPU in test_cuda_kernels.)"""

import importlib

import pytest
import torch

import longconv_models as lcm
from longconv_models.ops.fftconv import fused as kernels_api
from longconv_models import extension
from longconv_models.ops import dispatch

# the modules (the package re-exports functions of the same names)
fftconv_mod = importlib.import_module("longconv_models.ops.fftconv.op")
shortconv_mod = importlib.import_module("longconv_models.ops.short_conv.op")


class FakeExtension:
    """Records calls; returns tensors of the right shapes (no arithmetic)."""

    def __init__(self):
        self.calls = []

    def filter_to_slots(self, k, k_rev, bias, twiddle, N):
        self.calls.append("filter_to_slots")
        assert k.dtype == torch.float32 and k.is_contiguous() and twiddle.shape == (N // 2, 2)
        return torch.zeros(k.shape[0], N, 2)

    def filter_rows_to_slots(self, rows, bad, bias, out, tw_stage, tw_core, N):
        self.calls.append("filter_rows_to_slots")
        assert rows.dtype == torch.bfloat16 and rows.shape[0] == 2 and rows.shape[1] == out.shape[0] * out.shape[1]
        assert bad.shape == (out.shape[0],) and (bias is None or bias.shape == (out.shape[0],))
        out.zero_()

    def fftconv_outer(self, seq, gate, inner, bad_rows, N, M1, pair0, h0, inverse):
        self.calls.append("fftconv_outer" + (" inverse" if inverse else ""))
        assert inner.dtype == torch.bfloat16 and inner.shape[1] % M1 == 0 and inner.shape[2] == N // M1
        if inverse:
            seq.zero_()

    def spectrum_to_slots(self, k_f, N, outer, low_band=False):
        self.calls.append("spectrum_to_slots" + (" (low band)" if low_band else ""))
        return torch.zeros(k_f.shape[0], N, 2)

    def fftconv_fwd(self, u, k_slots, pre, post, tw_stage, tw_core, N, lowband_dft=None):
        self.calls.append("fftconv_fwd" + (" (low band)" if lowband_dft is not None else ""))
        assert k_slots.shape == (u.shape[1], N, 2)
        assert lowband_dft is None or lowband_dft.shape == (32, 12)
        return torch.zeros_like(u)

    def fftconv_fwd_taps(self, u, k, k_rev, bias, twiddle, pre, post, tw_stage, tw_core, N, fp32_filter):
        assert k.dtype == torch.float32 and k.is_contiguous()
        if not fp32_filter:  # the forward kernel transforms the taps in its prologue
            assert u.dtype == torch.bfloat16
            self.calls.append("fftconv_fwd (filter prologue)")
            return torch.zeros_like(u), torch.zeros(k.shape[0], N, 2)
        k_slots = self.filter_to_slots(k, k_rev, bias, twiddle, N)
        return self.fftconv_fwd(u, k_slots, pre, post, tw_stage, tw_core, N), k_slots

    def fftconv_taps_autograd(self, u, k, k_rev, bias, pre, post, twiddle, tw_stage, tw_core, weights, N, fp32_filter):
        """The extension's C++ autograd node, mirrored: these entry points, the taps' gradient
        as filter_spectrum_adjoint computes it."""
        from longconv_models.ops.fftconv import filter_spectrum_adjoint

        ext = self

        class Node(torch.autograd.Function):
            @staticmethod
            def forward(ctx, u, k, k_rev, bias, pre, post):
                y, k_slots = ext.fftconv_fwd_taps(u, k.float(), k_rev, bias, twiddle, pre, post, tw_stage, tw_core, N,
                                                  fp32_filter)
                ctx.save_for_backward(u, k_slots)
                ctx.lens = (k.shape[1], 0 if k_rev is None else k_rev.shape[1], bias is not None)
                return y

            @staticmethod
            def backward(ctx, dy):
                u, k_slots = ctx.saved_tensors
                du, dk_f, dpre, dpost = ext.fftconv_bwd(dy, u, k_slots, pre, post, tw_stage, tw_core, N, False)
                taps = filter_spectrum_adjoint(dk_f * weights, N, *ctx.lens) if ctx.needs_input_grad[1] else (None,) * 3
                return du, *taps, None, None

        return Node.apply(u, k, k_rev, bias, pre, post)

    def fftconv_bwd(self, dy, u, k_slots, pre, post, tw_stage, tw_core, N, raw):
        self.calls.append("fftconv_bwd")
        gate_grad = lambda g: torch.zeros_like(u) if g is not None else u.new_empty(0)  # noqa: E731
        return torch.zeros_like(u), torch.ones(u.shape[1], N // 2 + 1, dtype=torch.complex64), gate_grad(pre), gate_grad(post)

    def shortconv_fwd(self, x, w, bias, pad_left, channels_last, reverse_taps):
        self.calls.append(("shortconv_fwd", reverse_taps))
        assert w.dtype == torch.float32 and w.is_contiguous()
        return torch.zeros_like(x)

    def shortconv_bwd(self, x, dy, w, pad_left, channels_last):
        self.calls.append("shortconv_bwd")
        assert w.dtype == torch.float32 and w.is_contiguous()
        return torch.zeros_like(x), torch.ones(3, w.shape[0], w.shape[1] + 1)


@pytest.fixture
def fake(monkeypatch):
    ext = FakeExtension()
    monkeypatch.setattr(dispatch, "direct_module", lambda *tensors: ext)
    monkeypatch.setattr(dispatch, "cuda_module", lambda op: ext)
    monkeypatch.setattr(extension, "load_extension", lambda: ext)
    monkeypatch.setattr(fftconv_mod, "kernel_unsupported_reason", lambda u, n: None)
    monkeypatch.setattr(shortconv_mod, "kernel_unsupported_reason", lambda x, w: None)
    monkeypatch.setattr(kernels_api, "twiddle_tables", lambda device: (None, None))
    return ext


@pytest.mark.parametrize(
    "N,dtype,fwd_calls",
    [
        # bf16: an fp32 transform up to 4K (exact slots), then the forward kernel's prologue
        (256, torch.bfloat16, ["filter_to_slots", "fftconv_fwd"]),
        (4096, torch.bfloat16, ["filter_to_slots", "fftconv_fwd"]),
        (8192, torch.bfloat16, ["fftconv_fwd (filter prologue)"]),
        (16384, torch.bfloat16, ["fftconv_fwd (filter prologue)"]),
        (256, torch.float16, ["filter_to_slots", "fftconv_fwd"]),  # fp16: an fp32 transform up to 4K
        (16384, torch.float16, ["spectrum_to_slots", "fftconv_fwd"]),  # then rfft + layout
    ],
)
def test_fftconv_direct_route_calls_and_gradients(fake, N, dtype, fwd_calls):
    B, H, L = 3, 4, N // 2 - 5
    u = torch.randn(B, H, L).to(dtype).requires_grad_()
    k, k_rev, bias = torch.randn(H, L, requires_grad=True), torch.randn(H, 7, requires_grad=True), torch.randn(H)
    gate = torch.randn(B, H, L).to(dtype)
    y = lcm.fftconv(u, k, k_rev=k_rev, bias=bias, pre_gate=gate, post_gate=gate, fft_size=N)
    y.float().sum().backward()
    assert fake.calls == fwd_calls + ["fftconv_bwd"]
    assert lcm.last_backend() == ("cuda", "") and lcm.last_backend("fftconv_bwd") == ("cuda", "")
    assert u.grad.shape == u.shape and k.grad.shape == k.shape and k_rev.grad.shape == k_rev.shape
    assert bias.grad is None and gate.grad is None  # not asked for
    assert k.grad.abs().sum() > 0  # the spectrum gradient (ones) reached the taps
    fake.calls.clear()
    with torch.no_grad():
        lcm.fftconv(u, k, fft_size=N)
    assert fake.calls == fwd_calls


def test_plain_inference_call_takes_the_short_route(fake):
    """fftconv(u, k) with plain contiguous tensors (u bf16/fp16, k fp32) and no gradient is one
    kernel call without the full path's steps; anything else is left to the full path (None)."""
    u, k = torch.randn(2, 3, 100).bfloat16(), torch.randn(3, 100)
    y = fftconv_mod._plain_taps_inference(u, k, None)
    assert y is not None and y.shape == u.shape
    assert fake.calls == ["filter_to_slots", "fftconv_fwd"] and lcm.last_backend() == ("cuda", "")
    fake.calls.clear()
    assert fftconv_mod._plain_taps_inference(u, k, 8192) is not None
    assert fake.calls == ["fftconv_fwd (filter prologue)"]
    fake.calls.clear()
    assert lcm.fftconv(u.half(), k, fft_size=4096) is not None
    assert fake.calls == ["filter_to_slots", "fftconv_fwd"]
    not_plain = {
        "non-contiguous u": (u.transpose(0, 1).contiguous().transpose(0, 1), k, None),
        "fp32 u": (u.float(), k, None),
        "fp64 k": (u, k.double(), None),
        "non-contiguous k": (u, k.t().contiguous().t(), None),
        "channel mismatch": (u, k[:2], None),
        "k needs grad": (u, k.clone().requires_grad_(), None),
        "fp16 above its taps route": (u.half(), k, 8192),
        "fft size not a power of two": (u, k, 300),
    }
    for name, (uu, kk, n) in not_plain.items():
        assert fftconv_mod._plain_taps_inference(uu, kk, n) is None, name
    with torch.no_grad():  # no gradient recorded: plain again
        assert fftconv_mod._plain_taps_inference(u, k.clone().requires_grad_(), None) is not None
    with pytest.raises(ValueError, match="too small"):  # the full path's own errors
        fftconv_mod._plain_taps_inference(u, k, 128)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_long_path_inference_transforms_taps_on_its_own_pipeline(fake, dtype):
    """Long-path inference with causal taps: the outer pass over the taps and the filter-row
    transform, then the usual three passes (no rfft, no layout kernel); with anti-causal taps or
    with grad, the spectrum route."""
    N, B, H = 2**16, 3, 4
    u = torch.randn(B, H, N // 2).to(dtype)
    k, bias = torch.randn(H, 1000), torch.randn(H)
    with torch.no_grad():
        lcm.fftconv(u, k, bias=bias, fft_size=N)
    assert fake.calls == ["fftconv_outer", "filter_rows_to_slots", "fftconv_outer", "fftconv_fwd", "fftconv_outer inverse"]
    fake.calls.clear()
    with torch.no_grad():
        lcm.fftconv(u, k, k_rev=torch.randn(H, 5), fft_size=N)
    assert fake.calls == ["spectrum_to_slots", "fftconv_outer", "fftconv_fwd", "fftconv_outer inverse"]
    fake.calls.clear()
    lcm.fftconv(u, k.requires_grad_(), fft_size=N)
    assert fake.calls[0] == "spectrum_to_slots"


def test_short_conv_direct_route_calls_and_gradients(fake):
    x = torch.randn(2, 5, 30).bfloat16().requires_grad_()
    w, b = torch.randn(5, 3, requires_grad=True), torch.randn(5, requires_grad=True)
    lcm.short_conv(x, w, b).float().sum().backward()
    assert fake.calls == [("shortconv_fwd", False), "shortconv_bwd"]
    assert lcm.last_backend("short_conv") == ("cuda", "")
    assert torch.equal(w.grad, torch.full((5, 3), 3.0)) and torch.equal(b.grad, torch.full((5,), 3.0))
    fake.calls.clear()
    with torch.no_grad():
        lcm.short_conv(x, w, b)
    assert fake.calls == [("shortconv_fwd", False)]


@pytest.mark.parametrize("keep,bias,low_band", [(0.5, False, True), (0.1, False, True), (0.6, False, False),
                                               (0.25, True, False)])
def test_frequency_sparse_inference_takes_the_low_band_kernel(fake, monkeypatch, keep, bias, low_band):
    """At >= 50% sparsity without a separate D term, inference calls run the low-band kernel (its
    own slot layout); with grad, a D term or lower sparsity, the dense kernel."""
    table = torch.zeros(32, 12, dtype=torch.int32)
    monkeypatch.setattr(kernels_api, "lowband_dft_table", lambda device, dtype: table)
    N, H = 1024, 4
    u = torch.randn(3, H, 500).bfloat16()
    spec = lcm.frequency_sparse(torch.randn(H, 500), keep, 500, bias=torch.randn(H) if bias else None, fft_size=N)
    with torch.no_grad():
        lcm.fftconv(u, spec)
    if low_band:
        assert fake.calls == ["spectrum_to_slots (low band)", "fftconv_fwd (low band)"]
        assert lcm.last_backend() == ("cuda", "low band")
    else:
        assert fake.calls == ["spectrum_to_slots", "fftconv_fwd"]
    fake.calls.clear()
    lcm.fftconv(u.clone().requires_grad_(), spec)  # training: dense
    assert fake.calls[-1] == "fftconv_fwd"
