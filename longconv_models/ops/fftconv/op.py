"""FFT convolution: the functional op, its autograd, its ``torch.library`` registration and the
``FFTConv`` module.

Semantics (per batch b and channel h, x = pre_gate * u)::

    y[t] = post_gate[t] * ( sum_{j < Lk} k[j] x[t-j]            causal taps
                          + sum_{j < Lr} k_rev[j] x[t+1+j]       anti-causal taps (bidirectional)
                          + bias * x[t] )                       D / skip term

computed as irfft(rfft(x, N) * rfft(k_circ, N), N)[:L], where k_circ places k at the start and
k_rev (reversed) at the end of an N-point buffer. With the default fft size N this is an exact
linear (non-circular) convolution; ``circular=True`` keeps N = L and lets indices wrap.

Layering: :func:`fftconv` (validation, filter spectrum) -> ``torch.ops.longconv.fftconv``
(custom op, autograd, fake impl) -> the CUDA host wrappers (``fused.py``, ``long.py``; the route
rules in ``plan.py``) or :mod:`.reference`.
"""

from __future__ import annotations

import functools
import weakref
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from .. import dispatch
from .._checks import FLOAT_DTYPES, check_same_device, check_tensor, compute_dtypes
from . import fused
from . import long as long_path  # called through the module: tests substitute its functions
from .plan import (
    KERNEL_DTYPES,
    KERNEL_FFT_SIZES,
    MAX_KERNEL_FFT_SIZE,
    MIN_FFT_SIZE,
    TAPS_ROUTE_MAX_FFT_SIZE,
    Route,
    default_fft_size,
    min_fft_size,
    plan_route,
    segment_length,
    takes_long_path,
)
from .reference import fftconv_bwd_ref, fftconv_ref

@dataclass(frozen=True)
class FilterSpectrum:
    """A filter already in the frequency domain: ``spectrum`` is (H, N//2+1) complex, the rfft
    of the N-point circular filter (bias and anti-causal taps folded in).

    Build it once with :func:`prepare_filter` and reuse it across calls (inference), or pass it
    to :func:`fftconv` in place of ``k``; gradients flow into ``spectrum`` if it requires grad.
    ``low_band``: the spectrum is zero at every bin >= N/4 (set by
    :func:`~longconv_models.ops.sparse.frequency_sparse` at >= 50% sparsity without a separate D
    term); inference calls on CUDA then run kernels that skip half of their core's last DFT stage.
    """

    spectrum: Tensor
    fft_size: int
    circular: bool = False
    low_band: bool = False

    def __post_init__(self):
        # the low-band kernels never read the upper band: a wrong flag would drop it silently.
        # (frequency_sparse sets the flag on spectra it has masked itself, without this check.)
        if self.low_band and bool(self.spectrum[:, self.fft_size // 4 :].detach().ne(0).any()):
            raise ValueError("low_band=True needs a spectrum that is zero at every bin >= fft_size / 4")

    @property
    def channels(self) -> int:
        return self.spectrum.shape[0]


def filter_spectrum(
    k: Tensor, fft_size: int, k_rev: Tensor | None = None, bias: Tensor | None = None
) -> Tensor:
    """Differentiable rfft of the circular filter built from k, k_rev and bias (fp32 or fp64).

    Computed without materialising the N-point buffer: rfft(k, N) + bias + (the anti-causal
    taps, k_rev[j] at position N-1-j) exp(2 pi i f / N) * conj(rfft(k_rev, N))."""
    real, _ = compute_dtypes(k.dtype)
    k_f = torch.fft.rfft(_zero_padded(k, fft_size, real))
    if k_rev is not None:
        k_f = k_f + _unit_phase(fft_size, k.device, real) * torch.fft.rfft(_zero_padded(k_rev, fft_size, real)).conj()
    if bias is not None:
        k_f = k_f + bias.to(real)[:, None]
    return k_f


def _zero_padded(x: Tensor, n: int, dtype: torch.dtype) -> Tensor:
    """x (H, m) -> (H, n) in ``dtype``, zeros after m: a fill of the tail and one copy that also
    converts the dtype (``rfft(x.to(dtype), n=n)`` passes over a bf16 filter twice)."""
    m = x.shape[-1]
    if m == n:
        return x.to(dtype)
    buf = x.new_empty(x.shape[0], n, dtype=dtype)
    buf[:, m:].zero_()
    buf[:, :m].copy_(x)
    return buf


def filter_spectrum_adjoint(
    dk_f: Tensor, fft_size: int, k_len: int, k_rev_len: int = 0, bias: bool = False
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """Gradients of (k, k_rev, bias) from the gradient of :func:`filter_spectrum`'s output.

    The spectrum is the rfft of the circular buffer buf (k at the start, k_rev reversed at the
    end, bias at t = 0), so d buf[t] = Re sum_f dk_f[f] exp(2 pi i f t / N): one unscaled irfft
    with the interior bins halved (irfft counts them twice)."""
    d_buf = torch.fft.irfft(dk_f * _adjoint_weights(fft_size, dk_f.device, dk_f.real.dtype), n=fft_size, norm="forward")
    d_rev = d_buf.flip(-1)[:, :k_rev_len] if k_rev_len else None
    return d_buf[:, :k_len], d_rev, d_buf[:, 0] if bias else None


@functools.lru_cache(maxsize=64)
def _adjoint_weights(fft_size: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    weights = torch.full((fft_size // 2 + 1,), 0.5, dtype=dtype)
    weights[0] = weights[-1] = 1.0
    return weights.to(device)


def _unit_phase(fft_size: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """exp(2 pi i f / N) for f = 0 .. N/2, cached per size (a symbolic size, under torch.export,
    is built in the graph: it cannot key a cache)."""
    if isinstance(fft_size, torch.SymInt):
        return _build_unit_phase(fft_size, device, dtype)
    return _cached_unit_phase(fft_size, device, dtype)


def _build_unit_phase(fft_size, device, dtype) -> Tensor:
    f = torch.arange(fft_size // 2 + 1, dtype=torch.float64)
    return torch.polar(torch.ones_like(f), 2 * torch.pi * f / fft_size).to(device=device, dtype=compute_dtypes(dtype)[1])


_cached_unit_phase = functools.lru_cache(maxsize=64)(_build_unit_phase)


def _check_filter(name: str, k: object, H: int | None, fft_size: int | None) -> Tensor:
    check_tensor(name, k, 2, FLOAT_DTYPES)
    if H is not None and k.shape[0] != H:
        raise ValueError(
            f"{name} has {k.shape[0]} channels (shape {tuple(k.shape)}) but u has H={H}; "
            f"{name} must be (H, length)"
        )
    if fft_size is not None and k.shape[1] > fft_size:
        raise ValueError(f"{name} has length {k.shape[1]} > fft_size={fft_size}")
    return k


def prepare_filter(
    k: Tensor,
    seq_len: int,
    *,
    k_rev: Tensor | None = None,
    bias: Tensor | None = None,
    fft_size: int | None = None,
    circular: bool = False,
) -> FilterSpectrum:
    """Precompute the frequency-domain filter for sequences of length ``seq_len``."""
    _check_filter("k", k, None, None)
    H = k.shape[0]
    if k_rev is not None:
        _check_filter("k_rev", k_rev, H, None)
    if bias is not None:
        check_tensor("bias", bias, 1, FLOAT_DTYPES, shape=(H,))
    check_same_device("k", k, k_rev=k_rev, bias=bias)
    N = _resolve_fft_size(seq_len, k.shape[1], 0 if k_rev is None else k_rev.shape[1], fft_size, circular)
    return FilterSpectrum(filter_spectrum(k, N, k_rev, bias), N, circular)


def _resolve_fft_size(L: int, Lk: int, Lr: int, fft_size: int | None, circular: bool) -> int:
    if fft_size is None:
        N = default_fft_size(L, Lk, Lr, circular)
    else:
        if not isinstance(fft_size, int) or isinstance(fft_size, bool) or fft_size <= 0:
            raise ValueError(f"fft_size must be a positive int, got {fft_size!r}")
        N = fft_size
        if not circular and N < min_fft_size(L, Lk, Lr):
            raise ValueError(
                f"fft_size={N} is too small for a linear convolution of L={L} with a filter of "
                f"length {Lk}{f' (+{Lr} anti-causal taps)' if Lr else ''}: need at least "
                f"{min_fft_size(L, Lk, Lr)}; pass circular=True for a circular convolution"
            )
    if L > N:
        raise ValueError(f"sequence length L={L} exceeds fft_size={N}")
    if max(Lk, Lr) > N:
        raise ValueError(f"filter length {max(Lk, Lr)} exceeds fft_size={N}")
    return N


def fftconv(
    u: Tensor,
    k: Tensor | FilterSpectrum,
    *,
    k_rev: Tensor | None = None,
    bias: Tensor | None = None,
    pre_gate: Tensor | None = None,
    post_gate: Tensor | None = None,
    fft_size: int | None = None,
    circular: bool = False,
) -> Tensor:
    """Long convolution of ``u`` with per-channel filters, via FFT.

    Args:
        u: (B, H, L) input, fp32 / fp64 / bf16 / fp16 (the kernels take bf16 / fp16). A
            non-contiguous u (e.g. a transposed (B, L, H) activation) is copied once, together
            with the autocast cast.
        k: (H, Lk) causal filter (any float dtype, used in fp32; fp64 with fp64 input), or a
            :class:`FilterSpectrum` from :func:`prepare_filter`. Eager CUDA calls in bf16 up to
            16K, and inference calls from 32K (bf16) / 64K on, transform a time-domain filter on
            the kernels' own tensor-core FFT (bf16 rounding, like the data it multiplies; no
            cuFFT call); a FilterSpectrum keeps an fp32 spectrum.
        k_rev: (H, Lr) anti-causal taps for a bidirectional conv: k_rev[j] weighs x[t+1+j].
        bias: (H,) skip term D: adds bias * x.
        pre_gate, post_gate: (B, H, L), same dtype as u: y = post * conv(pre * u).
        fft_size: FFT size N (default: next power of two >= L + Lk - 1, at least 256; L if
            circular). Must hold the linear convolution unless ``circular``.
        circular: circular convolution of period N (default N = L).

    Returns:
        (B, H, L) tensor in u's dtype (under ``torch.autocast``: the autocast dtype, see
        below). Gradients flow to u, k, k_rev, bias and the gates.

    Under ``torch.autocast`` the op behaves like a matmul: u and the gates are cast to the
    autocast dtype (bf16 / fp16; fp64 stays fp64), the filter stays fp32, so an fp32 model under
    bf16 or fp16 autocast runs the CUDA kernels, forward and backward.
    """
    if isinstance(u, Tensor):
        amp = dispatch.autocast_dtype(u)
        if amp is not None:
            u, pre_gate, post_gate = dispatch.autocast_activations(amp, u, pre_gate, post_gate)
    if k_rev is None and bias is None and pre_gate is None and post_gate is None and not circular:
        y = _plain_taps_inference(u, k, fft_size)
        if y is not None:
            return y
    check_tensor("u", u, 3, FLOAT_DTYPES)
    B, H, L = u.shape
    gated = pre_gate is not None or post_gate is not None
    if gated:
        for name, gate in (("pre_gate", pre_gate), ("post_gate", post_gate)):
            if gate is not None:
                check_tensor(name, gate, 3, FLOAT_DTYPES, shape=(B, H, L))
                if gate.dtype != u.dtype:
                    raise TypeError(f"{name} has dtype {gate.dtype} but u has {u.dtype}; they must match")

    if isinstance(k, FilterSpectrum):
        if k_rev is not None or bias is not None:
            raise ValueError("k_rev and bias are folded into a FilterSpectrum; pass them to prepare_filter")
        if fft_size is not None and fft_size != k.fft_size:
            raise ValueError(f"fft_size={fft_size} does not match the FilterSpectrum's {k.fft_size}")
        if k.channels != H:
            raise ValueError(f"k (FilterSpectrum) has {k.channels} channels but u has H={H}")
        if circular != k.circular:
            raise ValueError(f"circular={circular} does not match the FilterSpectrum (circular={k.circular})")
        N = k.fft_size
        if L > N:
            raise ValueError(f"sequence length L={L} exceeds the FilterSpectrum's fft_size={N}")
        k_f = k.spectrum
        check_same_device("u", u, k=k_f)
        taps = ()
    else:
        _check_filter("k", k, H, None)
        Lr = 0
        if k_rev is not None:
            _check_filter("k_rev", k_rev, H, None)
            Lr = k_rev.shape[1]
        if bias is not None:
            check_tensor("bias", bias, 1, FLOAT_DTYPES, shape=(H,))
        if k.device != u.device or k_rev is not None or bias is not None:  # (the common case without the call)
            check_same_device("u", u, k=k, k_rev=k_rev, bias=bias)
        N = _resolve_fft_size(L, k.shape[1], Lr, fft_size, circular)
        taps = (k, k_rev, bias)
        k_f = None  # computed below, on the route taken

    u = u.contiguous()
    if gated:
        check_same_device("u", u, pre_gate=pre_gate, post_gate=post_gate)
        pre_gate = None if pre_gate is None else pre_gate.contiguous()
        post_gate = None if post_gate is None else post_gate.contiguous()
    spectrum_given = isinstance(k, FilterSpectrum)
    segment = None if spectrum_given or k_rev is not None or circular else segment_length(L, k.shape[1], N)
    mod = None
    if kernel_unsupported_reason(u, N if segment is None else MAX_KERNEL_FFT_SIZE) is None:
        mod = dispatch.direct_module(u, k_f, pre_gate, post_gate, *taps)
    needs_grad = dispatch.needs_grad(u, pre_gate, post_gate, k_f, *taps)
    route = plan_route(u.dtype, N, eager_kernel=mod is not None, taps=not spectrum_given,
                       anti_causal=k_rev is not None, low_band=spectrum_given and k.low_band, needs_grad=needs_grad,
                       segmented=segment is not None)
    if route is Route.SEGMENTED:
        return segmented_fftconv(u, k, bias, pre_gate, post_gate, MAX_KERNEL_FFT_SIZE)
    if route is Route.TAPS:
        dispatch.record("fftconv", "cuda")
        if needs_grad:  # the C++ autograd node: no Python in its backward
            dispatch.record("fftconv_bwd", "cuda")  # (recorded here: that backward cannot report itself)
            return fused.taps_fftconv_autograd(mod, u, pre_gate, post_gate, N, *taps,
                                               _adjoint_weights(N, u.device, torch.float32))
        return _taps_fftconv_cuda(mod, u, pre_gate, post_gate, N, *taps)[0]
    if route is Route.LONG_TAPS:
        dispatch.record("fftconv", "cuda")
        return long_path.long_taps_fwd_cuda(mod, u, k, bias, pre_gate, post_gate, N)
    if k_f is None:
        k_f = filter_spectrum(k.to(torch.float64) if u.dtype == torch.float64 else k, N, k_rev, bias)
    if route is Route.LOW_BAND:
        dispatch.record("fftconv", "cuda", "low band")
        if takes_long_path(N, u.dtype):
            return long_path.long_fwd_cuda(mod, u, k_f, pre_gate, post_gate, N, low_band=True)
        return fused.low_band_fwd_cuda(mod, u, k_f, pre_gate, post_gate, N)
    if route is Route.SPECTRUM:
        if needs_grad:
            return _FFTConvFunction.apply(u, k_f, pre_gate, post_gate, N)
        return _fftconv_cuda(u, k_f, pre_gate, post_gate, N)
    return torch.ops.longconv.fftconv(u, k_f, pre_gate, post_gate, N)


def segmented_fftconv(u: Tensor, k: Tensor, bias, pre_gate, post_gate, fft_size: int) -> Tensor:
    """The causal linear convolution of :func:`fftconv` as an overlap-add of ``fft_size``-point
    circular convolutions (``plan.segment_length``): each segment of S = fft_size - Lk + 1 inputs,
    zero-padded to fft_size, convolves without wrap-around into S + Lk - 1 outputs. The D term
    rides with each segment (every position is in one), the post gate multiplies the sum.
    Gradients flow through the segments' own calls."""
    L, Lk = u.shape[-1], k.shape[1]
    S = segment_length(L, Lk, fft_size + 1, fft_size)
    if S is None:
        raise ValueError(f"a filter of {Lk} taps is too long for segments of {fft_size}-point convolutions")
    y = None
    for start in range(0, L, S):
        stop = min(start + S, L)
        seg = u[..., start:stop]
        gate = None if pre_gate is None else pre_gate[..., start:stop]
        if stop - start + Lk - 1 >= fft_size:  # a full segment: exactly fft_size points, circular
            pad = fft_size - (stop - start)
            seg = F.pad(seg, (0, pad))
            gate = None if gate is None else F.pad(gate, (0, pad))
            part = fftconv(seg, k, bias=bias, pre_gate=gate, fft_size=fft_size, circular=True)
        else:  # the last, shorter one: its outputs past L are not needed
            part = fftconv(seg, k, bias=bias, pre_gate=gate)
        part = part[..., : L - start]
        if y is None:
            y = F.pad(part, (0, L - part.shape[-1]))
        else:
            y = y + F.pad(part, (start, L - start - part.shape[-1]))
    return y if post_gate is None else y * post_gate


class FFTConv(nn.Module):
    """Module form of :func:`fftconv` (no parameters: filters are passed in, as in Hyena/M2).

    With ``cache_spectrum=True`` the filter spectrum is cached while the filter tensor is
    unchanged and does not require grad (inference), saving one FFT per call.
    """

    def __init__(self, fft_size: int | None = None, circular: bool = False, cache_spectrum: bool = True):
        super().__init__()
        self.fft_size = fft_size
        self.circular = circular
        self.cache_spectrum = cache_spectrum
        self._cache = None

    def _spectrum(self, k, L, k_rev, bias) -> FilterSpectrum | None:
        tensors = (k, k_rev, bias)
        if not self.cache_spectrum or (
            torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)
        ):
            return None
        # Keyed on tensor identity (weak references) and version, never on data pointers, which
        # a new filter tensor may reuse.
        key = (L, tuple(None if t is None else t._version for t in tensors))
        if self._cache is not None:
            refs, cached_key, spec = self._cache
            if cached_key == key and all((r() if r is not None else None) is t for r, t in zip(refs, tensors)):
                return spec
        spec = prepare_filter(k, L, k_rev=k_rev, bias=bias, fft_size=self.fft_size, circular=self.circular)
        self._cache = (tuple(None if t is None else weakref.ref(t) for t in tensors), key, spec)
        return spec

    def forward(self, u, k, *, k_rev=None, bias=None, pre_gate=None, post_gate=None):
        spec = self._spectrum(k, u.shape[-1], k_rev, bias) if isinstance(k, Tensor) else k
        if spec is not None:
            return fftconv(u, spec, pre_gate=pre_gate, post_gate=post_gate, circular=self.circular)
        return fftconv(u, k, k_rev=k_rev, bias=bias, pre_gate=pre_gate, post_gate=post_gate,
                       fft_size=self.fft_size, circular=self.circular)

    def extra_repr(self) -> str:
        return f"fft_size={self.fft_size}, circular={self.circular}"


# ----------------------------------------------------------------------------------------------
# Custom ops. The default implementation is the reference; the CUDA implementation runs the
# kernel when it supports the case and falls back (visibly) otherwise.
# ----------------------------------------------------------------------------------------------


def kernel_unsupported_reason(u: Tensor, fft_size: int) -> str | None:
    """Why the CUDA kernel cannot take this call (``None`` if it can)."""
    if u.dtype not in KERNEL_DTYPES:
        return f"dtype {u.dtype} (kernel: bf16/fp16)"
    if fft_size not in KERNEL_FFT_SIZES:
        return f"fft_size {fft_size} (kernel: powers of two {KERNEL_FFT_SIZES[0]}..{KERNEL_FFT_SIZES[-1]})"
    return None


@torch.library.custom_op("longconv::fftconv", mutates_args=())
def _fftconv_op(u: Tensor, k_f: Tensor, pre_gate: Tensor | None, post_gate: Tensor | None, fft_size: int) -> Tensor:
    dispatch.record("fftconv", "reference", f"device {u.device.type}")
    return fftconv_ref(u, k_f, pre_gate, post_gate, fft_size)


@_fftconv_op.register_kernel("cuda")
def _fftconv_cuda(u, k_f, pre_gate, post_gate, fft_size):
    mod = dispatch.select("fftconv", kernel_unsupported_reason(u, fft_size))
    if mod is None:
        return fftconv_ref(u, k_f, pre_gate, post_gate, fft_size)
    if takes_long_path(fft_size, u.dtype):
        return long_path.long_fwd_cuda(mod, u, k_f, pre_gate, post_gate, fft_size)
    return fused.fftconv_fwd_cuda(mod, u, k_f, pre_gate, post_gate, fft_size)


@_fftconv_op.register_fake
def _(u, k_f, pre_gate, post_gate, fft_size):
    return torch.empty_like(u)


@torch.library.custom_op("longconv::fftconv_bwd", mutates_args=())
def _fftconv_bwd_op(
    dy: Tensor, u: Tensor, k_f: Tensor, pre_gate: Tensor | None, post_gate: Tensor | None, fft_size: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    dispatch.record("fftconv_bwd", "reference", f"device {u.device.type}")
    du, dk_f, dpre, dpost = fftconv_bwd_ref(dy, u, k_f, pre_gate, post_gate, fft_size)
    return du, dk_f.to(k_f.dtype), _or_empty(dpre, u), _or_empty(dpost, u)


@_fftconv_bwd_op.register_kernel("cuda")
def _fftconv_bwd_cuda(dy, u, k_f, pre_gate, post_gate, fft_size):
    mod = dispatch.select("fftconv_bwd", kernel_unsupported_reason(u, fft_size))
    if mod is None:
        du, dk_f, dpre, dpost = fftconv_bwd_ref(dy, u, k_f, pre_gate, post_gate, fft_size)
    elif takes_long_path(fft_size, u.dtype):
        du, dk_f, dpre, dpost = long_path.long_bwd_cuda(mod, dy, u, k_f, pre_gate, post_gate, fft_size)
    else:
        du, dk_f, dpre, dpost = fused.fftconv_bwd_cuda(mod, dy, u, k_f, pre_gate, post_gate, fft_size)
    return du, dk_f.to(k_f.dtype), _or_empty(dpre, u), _or_empty(dpost, u)


@_fftconv_bwd_op.register_fake
def _(dy, u, k_f, pre_gate, post_gate, fft_size):
    return (
        torch.empty_like(u),
        torch.empty_like(k_f),
        torch.empty_like(u) if pre_gate is not None else u.new_empty(0),
        torch.empty_like(u) if post_gate is not None else u.new_empty(0),
    )


def _or_empty(t: Tensor | None, like: Tensor) -> Tensor:
    return like.new_empty(0) if t is None else t


def _setup_context(ctx, inputs, output):
    u, k_f, pre_gate, post_gate, fft_size = inputs
    ctx.save_for_backward(u, k_f, pre_gate, post_gate)
    ctx.fft_size = fft_size


def _spectrum_backward(ctx, dy, fftconv_bwd=None):
    """The spectrum route's backward: through the custom op (traced graphs), or, from the eager
    Function below, straight to its CUDA implementation."""
    u, k_f, pre_gate, post_gate = ctx.saved_tensors
    fftconv_bwd = fftconv_bwd or torch.ops.longconv.fftconv_bwd
    grads = fftconv_bwd(dy.contiguous(), u, k_f, pre_gate, post_gate, ctx.fft_size)
    return _needed(ctx, grads, pre_gate, post_gate)


def _needed(ctx, grads, pre_gate, post_gate):
    du, dk_f, dpre, dpost = grads
    return (
        du if ctx.needs_input_grad[0] else None,
        dk_f if ctx.needs_input_grad[1] else None,
        dpre if pre_gate is not None and ctx.needs_input_grad[2] else None,
        dpost if post_gate is not None and ctx.needs_input_grad[3] else None,
        None,
    )


torch.library.register_autograd("longconv::fftconv", _spectrum_backward, setup_context=_setup_context)


class _FFTConvFunction(torch.autograd.Function):
    """The spectrum route in eager mode (see :func:`.dispatch.direct_module`): the custom op's
    forward and its one backward, without the library dispatcher in between (host time)."""

    @staticmethod
    def forward(ctx, u, k_f, pre_gate, post_gate, fft_size):
        _setup_context(ctx, (u, k_f, pre_gate, post_gate, fft_size), None)
        return _fftconv_cuda(u, k_f, pre_gate, post_gate, fft_size)

    @staticmethod
    @once_differentiable
    def backward(ctx, dy):
        return _spectrum_backward(ctx, dy, _fftconv_bwd_cuda)


def _plain_taps_inference(u: object, k: object, fft_size: int | None) -> Tensor | None:
    """``fftconv(u, k[, fft_size=N])`` in its most common form, with the fewest host steps: plain
    contiguous CUDA tensors, u bf16/fp16 (B, H, L) and k fp32 (H, Lk) on its device, no gradient, an
    FFT size the taps route takes. At 256-1K points an eager call is host-bound, and this is the same
    kernel call as the full path's with about a third of its Python. ``None`` for anything else:
    the full path then validates (with its error messages) and routes."""
    if type(u) is not Tensor or type(k) is not Tensor or u.dtype not in KERNEL_DTYPES or k.dtype != torch.float32:
        return None
    if u.dim() != 3 or k.dim() != 2 or not (u.is_contiguous() and k.is_contiguous()) or k.device != u.device:
        return None
    B, H, L = u.shape
    Lk = k.shape[1]
    if k.shape[0] != H or B * H * L == 0 or Lk == 0:
        return None
    if torch.is_grad_enabled() and (u.requires_grad or k.requires_grad):
        return None
    N = default_fft_size(L, Lk) if fft_size is None else _resolve_fft_size(L, Lk, 0, fft_size, False)
    if N & (N - 1) or not MIN_FFT_SIZE <= N <= TAPS_ROUTE_MAX_FFT_SIZE[u.dtype]:
        return None
    mod = dispatch.direct_module(u)  # CUDA, eager, kernels built
    if mod is None:
        return None
    dispatch.record("fftconv", "cuda")
    return _taps_fftconv_cuda(mod, u, None, None, N, k, None, None)[0]


def _taps_fftconv_cuda(mod, u, pre_gate, post_gate, fft_size, k, k_rev, bias) -> tuple[Tensor, Tensor]:
    """(y, the filter in kernel layout) for a time-domain filter, on the fused kernel."""
    return fused.taps_fwd_cuda(mod, u, k, k_rev, bias, pre_gate, post_gate, fft_size)
