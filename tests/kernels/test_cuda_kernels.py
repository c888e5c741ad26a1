"""The CUDA kernels against float64 references (run on a GPU; skipped elsewhere).

Every call gets fresh random inputs and runs on a caching allocator poisoned with NaN, so an
output element the kernel fails to write shows up as NaN. Errors are ||out-ref|| / ||ref||.
"""

import pytest
import torch

from helpers import direct_conv, rel_err
from longconv_models import fftconv, last_backend, short_conv
from longconv_models.ops.fftconv import FUSED_FFT_SIZES, LONG_FFT_SIZES

pytestmark = pytest.mark.cuda

TOL = {torch.bfloat16: 1e-2, torch.float16: 3e-3}


def poison_allocator(nbytes: int) -> None:
    """Fill soon-to-be-reused cached device memory with NaN."""
    blocks = [torch.full((nbytes // 4 + 1024,), float("nan"), device="cuda") for _ in range(4)]
    del blocks


def decaying_filter(H, Lk, device="cuda"):
    t = torch.arange(Lk, device=device)
    return torch.randn(H, Lk, device=device) * torch.exp(-t / (0.2 * Lk + 1))[None]


def fwd_case(B, H, L, N, dtype, gated, bias):
    u = torch.randn(B, H, L, device="cuda").to(dtype)
    k = decaying_filter(H, min(L, N - L + 1))
    kw = {}
    if bias:
        kw["bias"] = torch.randn(H, device="cuda")
    if gated:
        kw["pre_gate"] = torch.randn(B, H, L, device="cuda").to(dtype)
        kw["post_gate"] = torch.randn(B, H, L, device="cuda").to(dtype)
    return u, k, kw


@pytest.mark.parametrize("N", FUSED_FFT_SIZES)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize(
    "B,H,L_of_N,gated,bias",
    [
        (2, 4, lambda n: n // 2, False, False),
        (3, 5, lambda n: n // 2 - 1, True, True),  # odd B, odd H, odd L
        (1, 3, lambda n: n // 3 + 7, True, False),  # B = 1: half-empty pair
        (4, 1, lambda n: n, False, True),  # L = N: circular
    ],
)
def test_fftconv_forward(N, dtype, B, H, L_of_N, gated, bias):
    check_forward(N, dtype, B, H, L_of_N(N), gated, bias, tol=TOL[dtype])


def check_forward(N, dtype, B, H, L, gated, bias, tol):
    """The kernel's output (L = N: circular) against a float64 reference."""
    u, k, kw = fwd_case(B, H, L, N, dtype, gated, bias)
    poison_allocator(8 * u.numel() * u.element_size())  # covers the long path's intermediates too
    y = fftconv(u, k, fft_size=N, circular=(L == N), **kw)
    assert last_backend() == ("cuda", "")
    if N <= 4096:
        ref = direct_conv(u, k, circular_n=N if L == N else None, **kw)
    else:  # direct convolution is slow at long N: the float64 FFT reference instead
        ref = fftconv(u.double(), k, fft_size=N, circular=(L == N), **{n: t.double() for n, t in kw.items()})
    assert torch.isfinite(y).all()
    err = rel_err(y, ref)
    print(f"N={N} {dtype} B={B} H={H} L={L} gated={gated} bias={bias}: rel err {err:.2e}")
    assert err < tol


def check_backward(N, dtype, gated, B, H, tol):
    """Gradients of every input (u, k, bias, gates) against the float64 reference."""
    L = N // 2 - 1
    u, k, kw = fwd_case(B, H, L, N, dtype, gated, bias=True)
    dy = torch.randn(B, H, L, device="cuda").to(dtype)
    leaves = {"u": u, "k": k, **kw}
    for t in leaves.values():
        t.requires_grad_()
    poison_allocator(8 * u.numel() * u.element_size())
    y = fftconv(u, k, fft_size=N, **kw)
    grads = torch.autograd.grad(y, list(leaves.values()), dy)
    assert last_backend("fftconv_bwd") == ("cuda", "")
    # float64 reference: the same op on float64 tensors runs the reference path
    r = {n: t.detach().double().requires_grad_() for n, t in leaves.items()}
    y_ref = fftconv(r["u"], r["k"], fft_size=N, **{n: t for n, t in r.items() if n not in ("u", "k")})
    grads_ref = torch.autograd.grad(y_ref, list(r.values()), dy.double())
    for name, g, gr in zip(leaves, grads, grads_ref):
        assert torch.isfinite(g).all(), name
        err = rel_err(g, gr)
        print(f"N={N} {dtype} gated={gated} d{name}: rel err {err:.2e}")
        assert err < tol, name


@pytest.mark.parametrize("N", FUSED_FFT_SIZES)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("gated", [False, True])
def test_fftconv_backward(N, dtype, gated):
    check_backward(N, dtype, gated, B=3, H=3, tol=TOL[dtype])


def test_fftconv_unaligned_rows_and_strided_input():
    # L odd -> rows are not 16-byte aligned: the kernel must take its scalar path
    N, dtype = 2048, torch.bfloat16
    u = torch.randn(3, 7, 1001 * 2, device="cuda").to(dtype)[..., ::2]  # strided view
    k = decaying_filter(7, 1001)
    poison_allocator(8 * u.numel())
    y = fftconv(u, k)
    assert last_backend() == ("cuda", "")
    assert rel_err(y, direct_conv(u, k)) < TOL[dtype]


def test_fftconv_nan_passthrough():
    u = torch.randn(2, 2, 1000, device="cuda").bfloat16()
    u[0, 1, 17] = float("nan")
    y = fftconv(u, decaying_filter(2, 1000))
    assert torch.isnan(y[0, 1]).any() and torch.isfinite(y[1]).all() and torch.isfinite(y[0, 0]).all()


@pytest.mark.parametrize("N", [256, 4096])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_nonfinite_input_on_the_raw_copy_path(N, bad, dtype):
    """At 256 / 4K with aligned rows and no input gate, rows reach the kernel's planes as raw
    16-byte copies (a packed exponent test spots non-finite values) and ungated outputs leave the
    same way: the bad row comes out NaN, every other row, its pair partner included, matches the
    float64 reference."""
    B, H, L = 3, 2, N // 2
    u = torch.randn(B, H, L, device="cuda").to(dtype)
    k = decaying_filter(H, L)
    u[1, 0, 5] = bad
    y = fftconv(u, k, fft_size=N)
    assert last_backend() == ("cuda", "")
    assert torch.isnan(y[1, 0]).all()
    good = torch.ones(B, H, dtype=torch.bool, device="cuda")
    good[1, 0] = False
    ref = fftconv(torch.where(torch.isfinite(u), u, 0).double(), k.double(), fft_size=N)
    assert torch.isfinite(y[good]).all() and rel_err(y[good], ref[good]) < TOL[dtype]


def test_fftconv_nan_isolated_to_its_row_in_backward():
    u = torch.randn(2, 2, 1000, device="cuda").bfloat16()
    u[0, 1, 17] = float("nan")
    u.requires_grad_()
    k = decaying_filter(2, 1000).requires_grad_()
    fftconv(u, k).sum().backward()
    assert torch.isfinite(u.grad).all()  # du = corr(dy, k) does not depend on u
    assert torch.isnan(k.grad[1]).any() and torch.isfinite(k.grad[0]).all()


@pytest.mark.parametrize("N", FUSED_FFT_SIZES)
def test_spectrum_to_slots_matches_reference_layout(N):
    from longconv_models import extension
    from longconv_models.ops.fftconv.fused import kernel_spectrum

    k_f = torch.fft.rfft(torch.randn(5, N, device="cuda"), n=N)
    got = extension.load_extension().spectrum_to_slots(k_f, N, 1)
    assert torch.equal(got, kernel_spectrum(k_f, N))


def test_direct_route_matches_the_custom_op_route():
    """Eager CUDA calls skip the library dispatcher; torch.compile goes through it. Same kernels,
    same results, forward and backward, for both ops."""
    from longconv_models.ops import dispatch

    N, B, H, L = 1024, 3, 5, 500
    u, k, kw = fwd_case(B, H, L, N, torch.bfloat16, gated=True, bias=True)
    x = torch.randn(B, H, L, device="cuda").bfloat16()
    w, b = torch.randn(H, 4, device="cuda"), torch.randn(H, device="cuda")
    leaves = [u, k, *kw.values(), x, w, b]
    dy = torch.randn(B, H, L, device="cuda").bfloat16()

    def run():
        ins = [t.detach().clone().requires_grad_() for t in leaves]
        u, k, bias, pre, post, x, w, b = ins
        y = fftconv(u, k, bias=bias, pre_gate=pre, post_gate=post) + short_conv(x, w, b)
        assert dispatch.last_backend() == ("cuda", "") and dispatch.last_backend("short_conv") == ("cuda", "")
        return [y, *torch.autograd.grad(y, ins, dy)]

    assert dispatch.direct_call_ok(u, k)
    direct = run()
    with dispatch.through_custom_ops():
        assert not dispatch.direct_call_ok(u, k)
        via_ops = run()
    # the eager route transforms a bf16 call's filter on the tensor cores, the custom op with an
    # fp32 rfft: the routes differ by the filter's bf16 rounding, each within the float64 reference's
    # tolerance
    ins = [t.detach().double().requires_grad_() for t in leaves]
    uu, kk, bb, pre, post, xx, ww, wb = ins
    y_ref = fftconv(uu, kk, bias=bb, pre_gate=pre, post_gate=post) + short_conv(xx, ww, wb)
    ref = [y_ref, *torch.autograd.grad(y_ref, ins, dy.double())]
    for i, (a, c, r) in enumerate(zip(direct, via_ops, ref)):
        assert rel_err(a, r) < TOL[torch.bfloat16] and rel_err(c, r) < TOL[torch.bfloat16], i
        assert rel_err(a, c) < 5e-3, i


@pytest.mark.parametrize("N", [n for n in FUSED_FFT_SIZES if n <= 8192])
def test_filter_to_slots_matches_rfft_layout(N):
    """The one-launch filter transform equals rfft + the slot permutation (float64 reference)."""
    from longconv_models.ops.fftconv.fused import filter_slots_cuda, kernel_spectrum
    from longconv_models.ops import dispatch
    from longconv_models.ops.fftconv import filter_spectrum

    H, Lk, Lr = 5, N // 2 + 3, N // 4 - 1
    k, k_rev, b = decaying_filter(H, Lk), decaying_filter(H, Lr), torch.randn(H, device="cuda")
    poison_allocator(H * N * 8)
    got = filter_slots_cuda(dispatch.cuda_module("fftconv"), k, k_rev, b, N)
    want = kernel_spectrum(filter_spectrum(k.double(), N, k_rev.double(), b.double()), N)
    assert rel_err(got, want) < 3e-6
    assert rel_err(filter_slots_cuda(dispatch.cuda_module("fftconv"), k, None, None, N),
                   kernel_spectrum(filter_spectrum(k.double(), N), N)) < 3e-6


@pytest.mark.parametrize("N", [256, 2048, 4096, 8192, 16384])  # every first-stage radix
def test_filter_spectrum_slots_matches_rfft_layout(N):
    """The bf16 calls' prologue filter transform (the fused kernel's own forward FFT, tensor cores,
    scaled DFT fragments) equals rfft + the slot permutation up to bf16 rounding (float64)."""
    from longconv_models.ops.fftconv.fused import (
        filter_slots_cuda,
        filter_spectrum_slots_cuda,
        kernel_spectrum,
        taps_fwd_cuda,
    )
    from longconv_models.ops import dispatch
    from longconv_models.ops.fftconv import filter_spectrum
    from longconv_models.ops.fftconv.plan import filter_in_fp32

    mod = dispatch.cuda_module("fftconv")
    H, Lk, Lr = 5, N // 2 + 3, N // 4 - 1
    k, k_rev, b = decaying_filter(H, Lk), decaying_filter(H, Lr), torch.randn(H, device="cuda")
    poison_allocator(H * N * 8)
    got = filter_spectrum_slots_cuda(mod, k, k_rev, b, N)
    err = rel_err(got, kernel_spectrum(filter_spectrum(k.double(), N, k_rev.double(), b.double()), N))
    err_causal = rel_err(filter_spectrum_slots_cuda(mod, k, None, None, N), kernel_spectrum(filter_spectrum(k.double(), N), N))
    print(f"N={N}: filter spectrum rel err {err:.2e} (k, k_rev, bias), {err_causal:.2e} (k)")
    assert err < 4e-3 and err_causal < 4e-3
    # the taps route runs the fp32 transform up to 4K (exact slots), above the same transform as
    # the forward kernel's prologue: the same slots as the transform run alone
    u = torch.randn(3, H, N // 2, device="cuda").bfloat16()
    _, slots = taps_fwd_cuda(mod, u, k, k_rev, b, None, None, N)
    alone = filter_slots_cuda(mod, k, k_rev, b, N) if filter_in_fp32(u.dtype, N) else got
    assert filter_in_fp32(u.dtype, N) == (N <= 4096) and torch.equal(slots, alone)
    k[3, 5] = float("nan")  # a non-finite tap: that channel's spectrum is NaN, the others are not
    got = filter_spectrum_slots_cuda(mod, k, None, None, N)
    assert torch.isnan(got[3]).all() and torch.isfinite(got[[0, 1, 2, 4]]).all()


@pytest.mark.parametrize("N", [256, 1024, 4096])
def test_taps_prologue_with_many_blocks_per_channel(N):
    """Few channels, a large batch: several blocks per channel each transform the filter in their
    prologue (writing the same slots) and convolve with their own copy."""
    B, H, L = 513, 2, N // 2 - 3
    u = torch.randn(B, H, L, device="cuda").bfloat16()
    k = decaying_filter(H, L)
    poison_allocator(8 * u.numel() * 2)
    y = fftconv(u, k, fft_size=N)
    assert last_backend() == ("cuda", "")
    assert rel_err(y, direct_conv(u, k)) < TOL[torch.bfloat16]


@pytest.mark.parametrize("N", [2**15, 2**16, 2**17, 2**18, 2**20, 2**22])  # 32K: bf16 calls' long path
@pytest.mark.parametrize("gated", [False, True])
def test_long_filter_slots_match_reference_layout(N, gated):
    """The long path's filter rows from the taps (outer pass + the fused kernel's forward FFT)
    equal rfft + the inner-row slot layout up to bf16 rounding; a channel with a non-finite tap
    gets NaN slots, the others do not."""
    from longconv_models.ops.fftconv.fused import kernel_spectrum
    from longconv_models.ops.fftconv.long import long_filter_slots, long_plan
    from longconv_models.ops import dispatch
    from longconv_models.ops.fftconv import filter_spectrum

    mod = dispatch.cuda_module("fftconv")
    M1, _ = long_plan(N, gated)
    H, Lk = 3, N // 2 - 5
    k, b = decaying_filter(H, Lk), torch.randn(H, device="cuda")
    poison_allocator(H * N * 8)
    ref = kernel_spectrum(filter_spectrum(k.double(), N, None, b.double()), N, M1)
    err = rel_err(long_filter_slots(mod, k, b, N, M1), ref)  # bf16 slots (the route's)
    err32 = rel_err(long_filter_slots(mod, k, b, N, M1, torch.float32), ref)
    print(f"N={N} M1={M1}: long filter rows rel err {err:.2e} (bf16 slots), {err32:.2e} (fp32 slots)")
    assert err < 5e-3 and err32 < 5e-3
    k[1, Lk - 1] = float("inf")
    got = long_filter_slots(mod, k, None, N, M1)
    assert torch.isnan(got[1]).all() and torch.isfinite(got[[0, 2]]).all()


def test_long_taps_route_nan_filter_isolated_to_its_channel():
    N = 2**16
    u = torch.randn(3, 2, N // 2, device="cuda").bfloat16()
    k = decaying_filter(2, 1000)
    k[0, 7] = float("nan")
    y = fftconv(u, k)
    assert torch.isnan(y[:, 0]).all() and torch.isfinite(y[:, 1]).all()


@pytest.mark.parametrize("N", [256, 4096, 16384])
def test_time_domain_filter_route_with_anti_causal_taps(N):
    """Bidirectional filter (k, k_rev, bias) on the eager route and the custom-op route, fwd + bwd,
    each against the float64 reference."""
    from longconv_models.ops import dispatch

    B, H, L = 3, 5, N // 2 - 5
    u = torch.randn(B, H, L, device="cuda").bfloat16()
    taps = [decaying_filter(H, L), decaying_filter(H, L - 1), torch.randn(H, device="cuda")]
    dy = torch.randn(B, H, L, device="cuda").bfloat16()

    def run(dtype=None):
        ins = [t.detach().clone().to(dtype or t.dtype).requires_grad_() for t in [u, *taps]]
        y = fftconv(ins[0], ins[1], k_rev=ins[2], bias=ins[3], fft_size=N)
        return [y, *torch.autograd.grad(y, ins, dy.to(y.dtype))]

    direct = run()
    with dispatch.through_custom_ops():
        via_ops = run()
    for i, (a, c, r) in enumerate(zip(direct, via_ops, run(torch.float64))):
        assert rel_err(a, r) < TOL[torch.bfloat16] and rel_err(c, r) < TOL[torch.bfloat16], i


@pytest.mark.parametrize("N", [1024, 16384])  # the taps route at a small and the largest fused bf16 size
@pytest.mark.parametrize("trainable", ["k", "gates", "u"])
def test_eager_route_partial_gradients(N, trainable):
    """Only some inputs require grad (frozen filter, frozen input, gates only): the eager route
    returns exactly the gradients asked for, matching the float64 reference."""
    B, H, L = 3, 5, N // 2 - 3
    u, k, kw = fwd_case(B, H, L, N, torch.bfloat16, gated=True, bias=True)
    leaves = {"u": u, "k": k, **kw}
    names = {"k": ["k", "bias"], "gates": ["pre_gate", "post_gate"], "u": ["u"]}[trainable]
    for name in names:
        leaves[name].requires_grad_()
    dy = torch.randn(B, H, L, device="cuda").bfloat16()
    y = fftconv(leaves["u"], leaves["k"], bias=leaves["bias"], pre_gate=leaves["pre_gate"],
                post_gate=leaves["post_gate"], fft_size=N)
    grads = torch.autograd.grad(y, [leaves[n] for n in names], dy)
    r = {n: t.detach().double().requires_grad_(n in names) for n, t in leaves.items()}
    y_ref = fftconv(r["u"], r["k"], bias=r["bias"], pre_gate=r["pre_gate"], post_gate=r["post_gate"], fft_size=N)
    grads_ref = torch.autograd.grad(y_ref, [r[n] for n in names], dy.double())
    for name, g, gr in zip(names, grads, grads_ref):
        assert g.dtype == leaves[name].dtype and torch.isfinite(g).all(), name
        assert rel_err(g, gr) < TOL[torch.bfloat16], name


def test_eager_route_bf16_taps_and_no_double_backward():
    """A bf16 filter trained on the eager route gets a bf16 gradient matching the float64
    reference; asking for a second derivative is a clear error, not zeros."""
    N, B, H, L = 1024, 3, 5, 400
    u = torch.randn(B, H, L, device="cuda").bfloat16()
    k = decaying_filter(H, L).bfloat16().requires_grad_()
    dy = torch.randn(B, H, L, device="cuda").bfloat16()
    (g,) = torch.autograd.grad(fftconv(u, k, fft_size=N), [k], dy)
    kr = k.detach().double().requires_grad_()
    (gr,) = torch.autograd.grad(fftconv(u.double(), kr, fft_size=N), [kr], dy.double())
    assert g.dtype == torch.bfloat16 and rel_err(g, gr) < TOL[torch.bfloat16]
    y = fftconv(u, k, fft_size=N)
    with pytest.raises(RuntimeError, match="not differentiable"):
        torch.autograd.grad(y, [k], dy, create_graph=True)


def test_extension_rejects_bad_arguments_with_clear_errors():
    """The extension's own checks (behind the ops' validation) raise readable errors, never crash:
    their messages name the offending value."""
    from longconv_models.ops.fftconv.fused import twiddle_tables
    from longconv_models.ops import dispatch

    mod = dispatch.cuda_module("fftconv")
    tw = twiddle_tables(torch.device("cuda", torch.cuda.current_device()))
    k = torch.randn(3, 100, device="cuda")
    bf16 = torch.bfloat16
    cases = [
        (lambda: mod.filter_spectrum_slots(k.half(), None, None, *tw, 256), r"k must be \(H, Lk\) float32.*\[3, 100\]"),
        (lambda: mod.filter_spectrum_slots(k, None, None, *tw, 300), "power of two.*got 300"),
        (lambda: mod.filter_spectrum_slots(k, None, torch.randn(4, device="cuda"), *tw, 256), r"bias must be \(3,\)"),
        (lambda: mod.filter_rows_to_slots(torch.zeros(2, 16, 4096, device="cuda", dtype=bf16),
                                          torch.zeros(2, dtype=torch.int32, device="cuda"), None,
                                          torch.empty(1, 16, 4096, 2, device="cuda"), *tw, 65536), "bad_channels"),
        (lambda: mod.fftconv_fwd(torch.randn(2, 3, 128, device="cuda").to(bf16),
                                 torch.zeros(3, 256, 2, device="cuda", dtype=torch.float16), None, None, *tw, 256),
         "k_slots must be .*Half"),
        (lambda: mod.spectrum_to_slots(torch.zeros(3, 129, device="cuda"), 256, 1), "complex64"),
        (lambda: mod.shortconv_fwd(torch.randn(2, 3, 16, device="cuda"), torch.randn(3, 20, device="cuda"), None, 0,
                                   False, False), "kernel size must be in \\[1, 8\\], got 20"),
    ]
    for call, pattern in cases:
        with pytest.raises(RuntimeError, match=pattern):
            call()
    torch.cuda.synchronize()


def test_fftconv_unsupported_falls_back_visibly():
    u = torch.randn(2, 3, 100, device="cuda")  # fp32: reference path
    fftconv(u, torch.randn(3, 100, device="cuda"))
    assert last_backend()[0] == "reference" and "dtype" in last_backend()[1]
    u = torch.randn(1, 1, 5_000_000, device="cuda").bfloat16()  # N = 8M: beyond one kernel FFT
    fftconv(u, torch.randn(1, 10, device="cuda"))  # a short filter: overlap-add of kernel-sized convs
    assert last_backend()[0] == "cuda"
    fftconv(u, torch.randn(1, 3_000_000, device="cuda"))  # too long for 4M-point segments
    assert last_backend()[0] == "reference" and "fft_size" in last_backend()[1]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])  # long path / fused kernel at 32K
def test_fftconv_large_tensor_64bit_offsets(dtype):
    """B*H*L > 2^31 elements: offsets must not overflow 32 bits."""
    B, H, L, N = 64, 1025, 32768, 32768
    u = torch.randn(B, H, L, device="cuda", dtype=dtype)
    k = decaying_filter(H, 64)
    y = fftconv(u, k, fft_size=N, circular=True)
    assert last_backend() == ("cuda", "")
    rows = [(B - 1, H - 1), (B - 1, 0), (0, H - 1), (B // 2, 517)]
    for b, h in rows:
        ref = direct_conv(u[b:b + 1, h:h + 1], k[h:h + 1], circular_n=N)
        assert rel_err(y[b:b + 1, h:h + 1], ref) < TOL[torch.bfloat16], (b, h)
    del u, y
    torch.cuda.empty_cache()


def test_32k_bf16_takes_the_long_path_fp16_the_fused_kernel(monkeypatch):
    from longconv_models.ops.fftconv import long as kl

    calls = []
    long_fwd, long_bwd = kl.long_fwd_cuda, kl.long_bwd_cuda
    monkeypatch.setattr(kl, "long_fwd_cuda", lambda *a, **kw: calls.append("fwd") or long_fwd(*a, **kw))
    monkeypatch.setattr(kl, "long_bwd_cuda", lambda *a, **kw: calls.append("bwd") or long_bwd(*a, **kw))
    k = decaying_filter(3, 300).requires_grad_()
    for dtype, expected in [(torch.bfloat16, ["fwd", "bwd"]), (torch.float16, [])]:
        calls.clear()
        u = torch.randn(3, 3, 16384, device="cuda", dtype=dtype, requires_grad=True)
        fftconv(u, k, fft_size=32768).float().sum().backward()
        assert calls == expected and last_backend("fftconv_bwd") == ("cuda", ""), dtype


# ---- long sequences (64K .. 4M): outer passes + fused kernel ----------------------------------
# The intermediate rows are bf16 for both input types, so fp16 inputs get bf16-level accuracy.
LONG_TOL = 1e-2
LONG_TEST_SIZES = (2**16, 2**17, 2**18, 2**20, 2**22)


@pytest.mark.parametrize("N", LONG_TEST_SIZES)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize(
    "B,H,L_of_N,gated,bias",
    [
        (3, 2, lambda n: n // 2 - 3, True, True),  # odd B, L not a power of two
        (2, 1, lambda n: n, False, False),  # circular
        (1, 3, lambda n: n // 3 + 7, False, True),  # half-empty pair
        (2, 3, lambda n: n // 2, True, False),  # gated, 16-byte aligned rows (vector copies)
    ],
)
def test_long_fftconv_forward(N, dtype, B, H, L_of_N, gated, bias):
    check_forward(N, dtype, B, H, L_of_N(N), gated, bias, tol=LONG_TOL)


@pytest.mark.parametrize("N", LONG_TEST_SIZES)
@pytest.mark.parametrize("gated", [False, True])
def test_long_fftconv_backward(N, gated):
    # H = 8: the bias gradient is one number per channel, its norm needs a few channels
    check_backward(N, torch.bfloat16, gated, B=3, H=8, tol=LONG_TOL)


@pytest.mark.parametrize("N", LONG_TEST_SIZES)
def test_long_layout_kernels_match_reference_layout(N):
    """The CUDA filter -> inner-slot gather and accumulator -> spectrum-gradient kernels against
    their torch definitions (which tests/kernels/test_long_model.py checks against the op)."""
    from longconv_models import extension
    from longconv_models.ops.fftconv.fused import kernel_spectrum, spectrum_grad_from_slots
    from longconv_models.ops.fftconv.long import long_plan

    mod = extension.load_extension()
    k_f = torch.fft.rfft(torch.randn(3, N, device="cuda"), n=N)
    for M1, M2 in {long_plan(N), long_plan(N, gated=True)}:
        assert torch.equal(mod.spectrum_to_slots(k_f, N, M1), kernel_spectrum(k_f, N, M1))
        s = torch.randn(3, M1, M2, 2, device="cuda")
        got, ref = mod.slots_to_spectrum_grad(s, N, M1), spectrum_grad_from_slots(s, N, M1)
        assert rel_err(torch.view_as_real(got), torch.view_as_real(ref)) < 1e-6


def test_long_spectrum_reused_across_plans():
    """One FilterSpectrum at 4M without and with a gate: two inner layouts (512 x 8192 and
    256 x 16384) from the same spectrum tensor, each right."""
    from longconv_models import prepare_filter
    from longconv_models.ops.fftconv.reference import fftconv_ref

    N, L = 2**22, 2**21
    u = torch.randn(1, 2, L, device="cuda").bfloat16()
    g = torch.rand(1, 2, L, device="cuda").bfloat16()
    spec = prepare_filter(decaying_filter(2, 1000), L, fft_size=N)
    for gate in (None, g, None):
        y = fftconv(u, spec, post_gate=gate)
        ref = fftconv_ref(u.double(), spec.spectrum.to(torch.complex128), None,
                          None if gate is None else gate.double(), N)
        assert rel_err(y, ref) < LONG_TOL, gate is not None


def test_long_fftconv_chunked_equals_unchunked(monkeypatch):
    N = 2**17
    u, k, kw = fwd_case(5, 3, N // 2, N, torch.bfloat16, True, True)
    y_one = fftconv(u, k, **kw)
    monkeypatch.setenv("LONGCONV_LONG_WORKSPACE_MB", "1")  # one (pair, channel) per chunk
    y_many = fftconv(u, k, **kw)
    assert torch.equal(y_one, y_many)


def test_long_fftconv_nan_isolated_to_its_row():
    N = 2**16
    u = torch.randn(2, 2, N // 2, device="cuda").bfloat16()
    u[0, 1, 17] = float("nan")
    u.requires_grad_()
    k = decaying_filter(2, N // 2).requires_grad_()
    y = fftconv(u, k)
    assert torch.isnan(y[0, 1]).any() and torch.isfinite(y[1]).all() and torch.isfinite(y[0, 0]).all()
    y.sum().backward()
    assert torch.isfinite(u.grad).all()  # du = corr(dy, k) does not depend on u
    assert torch.isnan(k.grad[1]).any() and torch.isfinite(k.grad[0]).all()


def test_long_fftconv_4m_single_row_and_60gb_batch():
    """B = H = 1 at 4M points, and a batch whose input + output fill ~60 GB."""
    N = 2**22
    u = torch.randn(1, 1, N // 2, device="cuda").bfloat16()
    k = decaying_filter(1, N // 2)
    assert rel_err(fftconv(u, k), fftconv(u.double(), k)) < LONG_TOL
    torch.cuda.reset_peak_memory_stats()
    free = torch.cuda.mem_get_info()[0]
    H, L = 16, N // 2
    B = min(448, int(0.75 * free) // (2 * 2 * H * L) // 2 * 2)  # 448 x 16 x 2M x 2 B = 30 GB each
    u = torch.randn(B, H, L, device="cuda", dtype=torch.bfloat16)
    k = decaying_filter(H, L)
    y = fftconv(u, k)
    assert last_backend() == ("cuda", "")
    print(f"4M batch: B={B} H={H}, u + y = {2 * u.numel() * 2 / 1e9:.1f} GB, peak "
          f"{torch.cuda.max_memory_allocated() / 1e9:.1f} GB")
    for b, h in [(0, 0), (B - 1, H - 1), (B // 2, 7)]:
        ref = fftconv(u[b:b + 1, h:h + 1].double(), k[h:h + 1])
        assert rel_err(y[b:b + 1, h:h + 1], ref) < LONG_TOL, (b, h)
    del u, y
    torch.cuda.empty_cache()


SPARSE_CASES = [(n, torch.bfloat16) for n in FUSED_FFT_SIZES + (2**16, 2**18)] + [
    (n, torch.float16) for n in (256, 2048, 8192, 32768, 2**16)
]


@pytest.mark.parametrize("N,dtype", SPARSE_CASES)
@pytest.mark.parametrize("keep", [0.5, 0.25, 0.1])
@pytest.mark.parametrize("gated", [False, True])
def test_frequency_sparse_low_band_kernel(N, dtype, keep, gated):
    """Inference with a frequency-sparse filter runs the low-band kernels (half of the core's last
    DFT stage) and matches the float64 reference of the same sparse filter; with grad the dense
    kernels run and agree."""
    from longconv_models import frequency_sparse

    B, H, L = 3, 5, N // 2 - 3
    u, k, kw = fwd_case(B, H, L, N, dtype, gated, bias=False)
    spec = frequency_sparse(k, keep, L, fft_size=N)
    assert spec.low_band
    poison_allocator(8 * u.numel() * u.element_size())
    with torch.no_grad():
        y = fftconv(u, spec, **kw)
    assert last_backend() == ("cuda", "low band")
    ref_spec = frequency_sparse(k.double(), keep, L, fft_size=N)
    ref = fftconv(u.double(), ref_spec, **{n: t.double() for n, t in kw.items()})
    assert torch.isfinite(y).all()
    err = rel_err(y, ref)
    print(f"N={N} {dtype} keep={keep} gated={gated}: low-band rel err {err:.2e}")
    tol = LONG_TOL if N in LONG_FFT_SIZES else TOL[dtype]  # the long path's intermediates are bf16
    assert err < tol
    dense = fftconv(u.clone().requires_grad_(), spec, **kw)  # the dense kernel (training route)
    assert last_backend() == ("cuda", "")
    assert rel_err(dense.detach(), ref) < tol


def test_frequency_sparse_with_d_term_runs_dense():
    from longconv_models import frequency_sparse

    u = torch.randn(2, 3, 500, device="cuda").bfloat16()
    k, bias = decaying_filter(3, 500), torch.randn(3, device="cuda")
    with torch.no_grad():
        y = fftconv(u, frequency_sparse(k, 0.25, 500, bias=bias))
    assert last_backend() == ("cuda", "")
    ref = fftconv(u.double(), frequency_sparse(k.double(), 0.25, 500, bias=bias.double()))
    assert rel_err(y, ref) < TOL[torch.bfloat16]


def test_frequency_sparse_low_band_nan_isolated():
    from longconv_models import frequency_sparse

    u = torch.randn(4, 3, 1000, device="cuda").bfloat16()
    u[1, 2, 17] = float("nan")
    spec = frequency_sparse(decaying_filter(3, 1000), 0.25, 1000)
    with torch.no_grad():
        y = fftconv(u, spec)
    assert last_backend() == ("cuda", "low band")
    assert torch.isnan(y[1, 2]).all() and torch.isfinite(y[0]).all() and torch.isfinite(y[1, :2]).all()


# ---- short conv ------------------------------------------------------------------------------
@pytest.mark.parametrize("K", [1, 2, 3, 4, 5, 8])
@pytest.mark.parametrize("padding", ["causal", "same", 5])  # (5 with K = 8: taps on both sides, beyond "same")
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
# (L = 5000, 5003: channels-first rows of several strips, the last one partial; 2048: one full strip)
@pytest.mark.parametrize("B,H,L", [(3, 5, 1001), (2, 64, 2048), (1, 3, 5000), (2, 7, 5003)])
def test_short_conv(K, padding, channels_last, dtype, B, H, L):
    if padding == 5 and K <= 5:
        pytest.skip("padding must be < K")
    x = torch.randn(B, H, L, device="cuda").to(dtype)
    xin = (x.transpose(1, 2).contiguous() if channels_last else x).requires_grad_()
    w = torch.randn(H, K, device="cuda", requires_grad=True)
    b = torch.randn(H, device="cuda", requires_grad=True)
    poison_allocator(4 * x.numel() * x.element_size())
    y = short_conv(xin, w, b, padding=padding, channels_last=channels_last)
    assert last_backend("short_conv") == ("cuda", "")
    dy = torch.randn_like(y)
    grads = torch.autograd.grad(y, (xin, w, b), dy)
    r = [t.detach().double().requires_grad_() for t in (xin, w, b)]
    y_ref = short_conv(*r, padding=padding, channels_last=channels_last)
    grads_ref = torch.autograd.grad(y_ref, r, dy.double())
    tol = {torch.float32: 1e-5, torch.bfloat16: 1e-2, torch.float16: 3e-3}[dtype]
    assert rel_err(y, y_ref) < tol
    for g, gr in zip(grads, grads_ref):
        assert rel_err(g, gr) < tol
