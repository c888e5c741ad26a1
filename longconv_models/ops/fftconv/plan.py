"""The FFT convolution's route rules, in one place: which FFT sizes the kernels take, which
dtypes, which sizes run the long path (outer passes around the fused kernel), and the default
FFT size of a call. The host wrappers (``fused.py``, ``long.py``) and the op (``op.py``) read
them from here."""

from __future__ import annotations

import enum

import torch

MIN_FFT_SIZE = 256
FUSED_FFT_SIZES = tuple(2**p for p in range(8, 16))  # 256 .. 32768: one block per sequence (32K bf16: long path)
LONG_FFT_SIZES = tuple(2**p for p in range(16, 23))  # 64K .. 4M: outer passes + fused kernel
KERNEL_FFT_SIZES = FUSED_FFT_SIZES + LONG_FFT_SIZES

KERNEL_DTYPES = (torch.bfloat16, torch.float16)
# Up to these sizes the eager CUDA route transforms a time-domain filter itself, in the same host
# call as the convolution: with the fp32 one-launch transform up to 4K (``filter_in_fp32``; it
# beats rfft + layout there), bf16 calls above that on the fused kernel's own forward FFT (tensor
# cores). Above: ``Route.LONG_TAPS`` or the spectrum (``plan_route``).
TAPS_ROUTE_MAX_FFT_SIZE = {torch.bfloat16: 16384, torch.float16: 4096}
# The fp32 one-launch filter transform (``fused.filter_to_slots``) and the taps' gradient straight
# from the backward's accumulators run up to this size.
FILTER_TRANSFORM_MAX_FFT_SIZE = 8192
# Up to this size the taps route transforms the filter with ``filter_to_slots`` (fp32, exact slots)
# for bf16 calls too; above, bf16 calls use the forward kernel's prologue (bf16 taps and
# intermediates: the slots carry 2-3e-3 of rounding, the largest term of a bf16 call's error).
FP32_FILTER_MAX_FFT_SIZE = 4096
assert TAPS_ROUTE_MAX_FFT_SIZE[torch.float16] <= FP32_FILTER_MAX_FFT_SIZE <= FILTER_TRANSFORM_MAX_FFT_SIZE


def filter_in_fp32(dtype: torch.dtype, fft_size: int) -> bool:
    """Whether a taps-route call transforms its filter in fp32 first (else in the kernel's prologue)."""
    return dtype != torch.bfloat16 or fft_size <= FP32_FILTER_MAX_FFT_SIZE


def takes_long_path(fft_size: int, dtype: torch.dtype) -> bool:
    """Whether a kernel call runs the long path (outer passes around the fused kernel at 4K-8K).
    From 64K on every call does; at 32K bf16 calls do too, as 8 x 4096: faster than one 32K
    block per sequence (H100: forward 2.5 vs 3.6 ms, fwd+bwd 9.3 vs 11.7 ms) at the same error.
    fp16 keeps the fused kernel there: the long path's bf16 intermediate would lose fp16's extra
    precision."""
    return fft_size in LONG_FFT_SIZES or (fft_size == FUSED_FFT_SIZES[-1] and dtype == torch.bfloat16)


class Route(enum.Enum):
    """How one ``fftconv`` call runs; each route has one forward and one backward."""

    TAPS = "taps"  # fused kernel from time-domain taps, the filter transformed in the same host call;
    #                with grad: the C++ autograd node (its backward has no Python)
    LONG_TAPS = "long taps"  # inference, causal taps, long path: the filter's rows on the kernels' own FFT
    LOW_BAND = "low band"  # inference with a low-band FilterSpectrum: cores skip half their last stage
    SPECTRUM = "spectrum"  # the fused kernel or the long path from an fp32 spectrum (custom op's autograd)
    SEGMENTED = "segmented"  # a linear conv larger than the kernels' largest FFT: overlap-add of
    #                          kernel-sized circular convolutions (``segment_length``)
    CUSTOM_OP = "custom op"  # torch.ops.longconv.fftconv: traced / compiled graphs, CPU, the reference


def plan_route(
    dtype: torch.dtype,
    fft_size: int,
    *,
    eager_kernel: bool,
    taps: bool,
    anti_causal: bool,
    low_band: bool,
    needs_grad: bool,
    segmented: bool = False,
) -> Route:
    """The route of a call. ``eager_kernel``: a CUDA tensor outside tracing, the kernels built and
    taking (dtype, fft_size); ``taps``: the filter is time-domain (else a ``FilterSpectrum``).
    Whether the kernel part is the fused kernel or the long path is :func:`takes_long_path`.
    ``segmented``: the call needs more than the largest kernel FFT and :func:`segment_length` splits
    it (``eager_kernel`` then says whether the kernels take that largest size)."""
    if not eager_kernel:
        return Route.CUSTOM_OP
    if segmented:
        return Route.SEGMENTED
    if taps:
        if fft_size <= TAPS_ROUTE_MAX_FFT_SIZE[dtype]:
            return Route.TAPS
        if takes_long_path(fft_size, dtype) and not anti_causal and not needs_grad:
            return Route.LONG_TAPS
    elif low_band and not needs_grad:
        return Route.LOW_BAND
    return Route.SPECTRUM


MAX_KERNEL_FFT_SIZE = KERNEL_FFT_SIZES[-1]


def segment_length(seq_len: int, k_len: int, fft_size: int, max_fft_size: int = MAX_KERNEL_FFT_SIZE) -> int | None:
    """Inputs per segment when a causal linear convolution needs an FFT larger than the kernels'
    largest (``max_fft_size``): each segment, zero-padded by k_len - 1, is an exact circular
    convolution of max_fft_size points, and the segments' outputs overlap-add (e.g. 4M inputs with
    the 1M taps of an extended HyenaDNA: two 4M-point convolutions instead of one 8M-point one).
    ``None`` when one kernel FFT holds the call, or the filter is too long for segments of at
    least its own length."""
    if fft_size <= max_fft_size or 2 * k_len > max_fft_size or seq_len <= 0:
        return None
    return max_fft_size - k_len + 1


def next_power_of_two(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def default_fft_size(seq_len: int, k_len: int, k_rev_len: int = 0, circular: bool = False) -> int:
    """Smallest convenient FFT size: L for a circular conv, else the next power of two (>= 256)
    that holds the linear convolution without wrap-around."""
    if circular:
        return seq_len
    need = min_fft_size(seq_len, k_len, k_rev_len)
    if not isinstance(need, int):  # a symbolic length (torch.export with a dynamic L): exact size, no guard
        return need
    return max(MIN_FFT_SIZE, next_power_of_two(need))


def min_fft_size(seq_len: int, k_len: int, k_rev_len: int = 0) -> int:
    """Smallest N for which the N-point circular convolution equals the linear one on [0, L)."""
    need = seq_len + k_len - 1
    if k_rev_len and k_rev_len > k_len - 1:  # a comparison, not max(): decidable for symbolic lengths
        need = seq_len + k_rev_len
    return need
