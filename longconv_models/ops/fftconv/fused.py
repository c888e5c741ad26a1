"""Host side of the fused FFT-conv kernel: the layouts it expects and the calls into it.

The kernel keeps the spectrum in its own order (see ``kernels/README.md`` in this package): the 8 slots ``s`` a
lane holds for a core tile sit at ``q = tile*256 + LANE_SLOT[lane, s]`` (pairs of slots 64 apart,
so that a warp's loads are contiguous), and slot ``q`` of a channel holds frequency
:func:`slot_frequencies` ``[q]``.
This module permutes filter spectra into that order, turns the kernel's per-slot filter gradient
back into a gradient of the rfft spectrum, and builds the twiddle tables.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import Tensor
from torch.utils.weak import WeakIdKeyDictionary

from .plan import filter_in_fp32
from .reference import irfft_grad_weights

CORE = 256  # points of the in-register core (16 x 16)


def fft_plan(fft_size: int) -> tuple[int, int]:
    """(R0, R1): N = R0 * R1 * 256 with R0 in {1,2,4,8} (CUDA-core stage), R1 in {1,16} (mma stage)."""
    if fft_size < CORE or fft_size & (fft_size - 1):
        raise ValueError(f"kernel fft size must be a power of two >= {CORE}, got {fft_size}")
    outer = fft_size // CORE
    r1 = 16 if outer >= 16 else 1
    r0 = outer // r1
    if r0 > 8:
        raise ValueError(f"kernel fft size {fft_size} too large (max {8 * 16 * CORE})")
    return r0, r1


# Position within a core tile's 256 slots of slot s of a lane: slot pairs (2i, 2i + 1) at
# 64 i + 2 lane, so each of a warp's four 16-byte (fp32) loads of its slots reads 512 contiguous
# bytes (kernels: Block::load8 / store8).
LANE_SLOT = (np.arange(8)[None, :] // 2) * 64 + 2 * np.arange(32)[:, None] + np.arange(8)[None, :] % 2


def _lane_slot_coords() -> tuple[np.ndarray, np.ndarray]:
    """For q in [0, 256): the core row (first 16-point digit) and column of the slot at q.

    Slot s of a lane is register r = s % 4 of accumulator tile bh = s // 4 (real part; the
    imaginary part sits in tile 2 + bh): row g + 8*(r//2), column 8*bh + 2*t + r%2, with
    g = lane // 4 and t = lane % 4 (the mma.m16n8 accumulator layout)."""
    q = np.arange(CORE)
    lane, s = (q % 64) // 2, 2 * (q // 64) + q % 2
    g, t = lane // 4, lane % 4
    bh, r = s // 4, s % 4
    row = g + 8 * (r // 2)
    col = 8 * bh + 2 * t + r % 2
    return row, col


# The low-band layout: the core's output column c holds the top digit LOW_BAND_COLUMNS[c], so
# the band |f| < N/4 (top digits 12..15, 0..3) is the first 8-column mma tile (see core_low_band
# in fftconv_kernel.cuh).
LOW_BAND_COLUMNS = (np.arange(16) + 12) % 16


@functools.lru_cache(maxsize=None)
def slot_frequencies(fft_size: int, outer: int = 1, low_band: bool = False) -> np.ndarray:
    """Frequency held by each kernel slot (int64 array of length N, a permutation of 0..N-1).

    ``outer = M1 > 1``: the long path's layout (M1 rows of the fused kernel's slots for
    M2 = N / M1 points), row k1 slot q holding frequency k1 + M1 * slot_frequencies(M2)[q].
    ``low_band``: the order the kernel takes a low-band filter in (zero at |f| >= N/4)."""
    if outer > 1:
        inner = slot_frequencies(fft_size // outer, 1, low_band)
        return (np.arange(outer)[:, None] + outer * inner[None, :]).reshape(-1)
    r0, r1 = fft_plan(fft_size)
    row, col = _lane_slot_coords()
    core_freq = row + 16 * (LOW_BAND_COLUMNS[col] if low_band else col)  # core digit order: k_core = a + 16 b
    tiles = fft_size // CORE
    tau = np.arange(tiles)
    k0, k1 = tau // r1, tau % r1
    outer_freq = k0 + r0 * k1
    freq = outer_freq[:, None] + (r0 * r1) * core_freq[None, :]
    return freq.reshape(-1).astype(np.int64)


@functools.lru_cache(maxsize=None)
def _slot_index(
    fft_size: int, device: torch.device, outer: int = 1, low_band: bool = False
) -> tuple[Tensor, Tensor, Tensor]:
    """Gather indices into the half spectrum, conjugation mask, and inverse permutation."""
    freq = slot_frequencies(fft_size, outer, low_band)
    half = np.minimum(freq, fft_size - freq)
    conj = freq > fft_size // 2
    inverse = np.argsort(freq)
    as_t = lambda a: torch.from_numpy(a).to(device)  # noqa: E731
    return as_t(half), as_t(conj), as_t(inverse)


# The two layout maps in torch. The CUDA kernels spectrum_to_slots and slots_to_spectrum_grad
# compute the same in one pass each (the GPU tests compare them); these are the definitions.


def kernel_spectrum(k_f: Tensor, fft_size: int, outer: int = 1, low_band: bool = False) -> Tensor:
    """(H, N//2+1) complex rfft spectrum -> (H, N, 2) fp32 full spectrum in kernel slot order
    ((H, M1, N/M1, 2) for the long path's ``outer = M1``).

    The imaginary parts of DC and Nyquist are dropped (as irfft does), so the full spectrum is
    Hermitian and the two rows sharing an FFT never leak into each other."""
    half, conj, _ = _slot_index(fft_size, k_f.device, outer, low_band)
    k_f = k_f.to(torch.complex64)
    keep_imag = torch.ones(k_f.shape[-1], device=k_f.device)
    keep_imag[0] = 0
    keep_imag[-1] = 0
    k_f = torch.complex(k_f.real, k_f.imag * keep_imag)
    full = k_f[:, half]
    full = torch.where(conj, full.conj(), full)
    slots = torch.view_as_real(full.contiguous())
    return slots if outer == 1 else slots.view(k_f.shape[0], outer, fft_size // outer, 2)


def spectrum_grad_from_slots(s_slots: Tensor, fft_size: int, outer: int = 1) -> Tensor:
    """Kernel filter-gradient accumulator -> gradient of the rfft spectrum (complex64, (H, N//2+1)).

    ``s_slots`` (H, N, 2) fp32 (or (H, M1, N/M1, 2) with ``outer = M1``) holds
    sum_pairs conj(Z_x) Z_dc of the unitary transforms in slot order. Its Hermitian part is the
    spectrum of the filter gradient (the anti-Hermitian part is the cross-talk of the two rows of
    a pair, purely imaginary in time), times 1/N. The long path's unitary outer passes make its
    inner accumulators exactly this."""

    N = fft_size
    _, _, inverse = _slot_index(N, s_slots.device, outer)
    s = torch.view_as_complex(s_slots.reshape(s_slots.shape[0], N, 2).contiguous())[:, inverse]  # natural order
    s_neg = torch.roll(s.flip(-1), 1, dims=-1)  # s[(N - j) % N]
    herm = 0.5 * (s + s_neg.conj())
    return herm[:, : N // 2 + 1] * (N * irfft_grad_weights(N, s.device, torch.float32))


@functools.lru_cache(maxsize=None)
def twiddle_tables(device: torch.device) -> tuple[Tensor, Tensor]:
    """Twiddles W_4096^(k1*n2) of the radix-16 stage in the order the kernel reads them.

    ``stage[cb, LANE_SLOT[lane, 4*nt + r]]`` for the stage's output fragment of column block cb
    (k1 = g + 8*(r//2), n2 = 16*cb + 8*nt + 2*t + r%2) and ``core[k1, LANE_SLOT[lane, 4*nt + r]]``
    for the core's output fragment of tile k1 (n2 = 16*i + j, i = g + 8*(r//2), j = 8*nt + 2*t + r%2):
    the slot layout of a core tile. Both (16, 256, 2) fp32, computed in float64."""
    lane = np.arange(32)[:, None, None]
    nt = np.arange(2)[None, :, None]
    r = np.arange(4)[None, None, :]
    g, t = lane // 4, lane % 4
    row = g + 8 * (r // 2)
    col = 8 * nt + 2 * t + r % 2
    blk = np.arange(16)[:, None, None, None]
    stage_exp = row[None] * (16 * blk + col[None])
    core_exp = blk * (16 * row[None] + col[None])

    def table(e):
        w = np.empty((16, CORE), np.complex128)
        w[:, LANE_SLOT] = np.exp(-2j * np.pi * (e % 4096) / 4096).reshape(16, 32, 8)
        return torch.from_numpy(np.stack([w.real, w.imag], -1).astype(np.float32)).to(device)

    return table(stage_exp), table(core_exp)


# Kernel-layout spectra of filter spectra that are reused unchanged (a FilterSpectrum at
# inference; the saved spectrum between forward and backward): keyed weakly on the tensor
# object, validated by its version counter.
_slots_cache = WeakIdKeyDictionary()


def cached_kernel_spectrum(mod, k_f: Tensor, fft_size: int, outer: int = 1, low_band: bool = False) -> Tensor:
    """:func:`kernel_spectrum` computed by the CUDA kernel, cached per spectrum tensor."""
    hit = _slots_cache.get(k_f)
    # the layout depends on the plan as well: 4M calls with and without gates split differently
    layout = (fft_size, outer, low_band)
    if hit is not None and hit[0] == k_f._version and hit[1] == layout:
        return hit[2]
    slots = mod.spectrum_to_slots(k_f.detach().to(torch.complex64).contiguous(), fft_size, outer, low_band)
    _slots_cache[k_f] = (k_f._version, layout, slots)
    return slots


def _pack16(values: np.ndarray, dtype: torch.dtype) -> np.ndarray:
    """float pairs (..., 2) -> int32 words of two 16-bit values (the first in the low half),
    rounded to nearest as the kernel's pack2 does."""
    bits = torch.from_numpy(values.astype(np.float32)).to(dtype).view(torch.int16).numpy().astype(np.uint16)
    words = bits[..., 0].astype(np.uint32) | (bits[..., 1].astype(np.uint32) << 16)
    return words.view(np.int32)


# The scale c of the kernels' 16-bit DFT fragments (kBf16DftScale in kernels/fftconv/fftconv.h: bf16
# rounds c F within 3.0e-4 where it rounds F within 2.1e-3; the kernels undo c in fp32).
DFT_FRAGMENT_SCALE = {torch.bfloat16: 1.1328125, torch.float16: 1.0}


@functools.lru_cache(maxsize=None)
def lowband_dft_table(device: torch.device, dtype: torch.dtype) -> Tensor:
    """The low-band core's DFT fragments (``LowBandDft`` in fftconv_kernel.cuh), (32, 12) int32:
    per lane (g = lane // 4, t = lane % 4), with F'[j][c] = c exp(-2 pi i j perm(c) / 16) / 4
    (c = ``DFT_FRAGMENT_SCALE[dtype]``, as the kernel's own fragments) and perm = LOW_BAND_COLUMNS[:8]:
    B' (rows 2t, 2t+1 | 2t+8, 2t+9, column g) as real, imaginary, negated imaginary, then
    A' (row g | g+8, columns 2t, 2t+1) likewise."""
    perm = LOW_BAND_COLUMNS[:8]
    lane = np.arange(32)
    g, t = lane // 4, lane % 4
    scale = DFT_FRAGMENT_SCALE[dtype] / 4
    f = lambda j, c: scale * np.exp(-2j * np.pi * j * perm[c] / 16)  # noqa: E731
    pair = lambda z0, z1: np.stack([z0, z1], -1)  # noqa: E731
    b = [pair(f(2 * t + 8 * h, g), f(2 * t + 8 * h + 1, g)) for h in range(2)]  # reg h: k-half h
    a = [pair(f(g + 8 * h, 2 * t), f(g + 8 * h, 2 * t + 1)) for h in range(2)]  # reg h: rows g + 8h
    words = []
    for regs in (b, a):
        for part in (np.real, np.imag, lambda z: -np.imag(z)):
            words += [_pack16(part(regs[h]), dtype) for h in range(2)]
    return torch.from_numpy(np.stack(words, 1)).to(device)


def contiguous_or_none(t: Tensor | None) -> Tensor | None:
    return None if t is None else t.contiguous()


@functools.lru_cache(maxsize=None)
def half_twiddles(fft_size: int, device: torch.device) -> Tensor:
    """W_N^j = exp(-2 pi i j / N) for j < N/2, (N/2, 2) fp32 computed in float64 (filter_to_slots)."""
    w = np.exp(-2j * np.pi * np.arange(fft_size // 2) / fft_size)
    return torch.from_numpy(np.stack([w.real, w.imag], -1).astype(np.float32)).to(device)


def _fp32(t: Tensor | None) -> Tensor | None:
    """t as a contiguous fp32 tensor outside autograd (no copy when it already is one)."""
    if t is None or (t.dtype == torch.float32 and not t.requires_grad and t.is_contiguous()):
        return t
    return t.detach().float().contiguous()


def filter_slots_cuda(mod, k: Tensor, k_rev: Tensor | None, bias: Tensor | None, fft_size: int) -> Tensor:
    """:func:`kernel_spectrum` of the circular filter built from time-domain taps, in one launch
    (fused sizes): the same as ``kernel_spectrum(filter_spectrum(k, N, k_rev, bias), N)``."""
    return mod.filter_to_slots(_fp32(k), _fp32(k_rev), _fp32(bias), half_twiddles(fft_size, k.device), fft_size)


def filter_spectrum_slots_cuda(mod, k: Tensor, k_rev: Tensor | None, bias: Tensor | None, fft_size: int) -> Tensor:
    """The same layout from the fused kernel's own forward FFT (bf16 tensor cores), on its own: the
    transform bf16 calls get (the forward kernel runs the same code as its prologue)."""
    tw_stage, tw_core = twiddle_tables(k.device)
    return mod.filter_spectrum_slots(_fp32(k), _fp32(k_rev), _fp32(bias), tw_stage, tw_core, fft_size)


def taps_fwd_cuda(mod, u: Tensor, k: Tensor, k_rev, bias, pre_gate, post_gate, fft_size: int) -> tuple[Tensor, Tensor]:
    """(y, the filter in kernel layout) in one host call (eager calls at 256-4K are host-bound): the
    taps transformed by :func:`filter_slots_cuda` first (``plan.filter_in_fp32``), or in the forward
    kernel's prologue (bf16 calls above that: as :func:`filter_spectrum_slots_cuda`)."""
    device = u.device
    tw_stage, tw_core = twiddle_tables(device)
    y, k_slots = mod.fftconv_fwd_taps(u, _fp32(k), _fp32(k_rev), _fp32(bias), half_twiddles(fft_size, device),
                                      pre_gate, post_gate, tw_stage, tw_core, fft_size,
                                      filter_in_fp32(u.dtype, fft_size))
    return y, k_slots


def fftconv_fwd_slots(mod, u: Tensor, k_slots: Tensor, pre_gate, post_gate, fft_size: int) -> Tensor:
    tw_stage, tw_core = twiddle_tables(u.device)
    return mod.fftconv_fwd(u, k_slots, pre_gate, post_gate, tw_stage, tw_core, fft_size)


def fftconv_bwd_slots(mod, dy: Tensor, u: Tensor, k_slots: Tensor, pre_gate, post_gate, fft_size: int):
    """(du, gradient of the rfft spectrum, dpre or None, dpost or None)."""
    tw_stage, tw_core = twiddle_tables(u.device)
    du, dk_f, dpre, dpost = mod.fftconv_bwd(dy, u, k_slots, pre_gate, post_gate, tw_stage, tw_core, fft_size, False)
    return du, dk_f, (dpre if dpre.numel() else None), (dpost if dpost.numel() else None)


def fftconv_fwd_cuda(mod, u: Tensor, k_f: Tensor, pre_gate, post_gate, fft_size: int) -> Tensor:
    k_slots = cached_kernel_spectrum(mod, k_f, fft_size)
    return fftconv_fwd_slots(mod, u, k_slots, contiguous_or_none(pre_gate), contiguous_or_none(post_gate), fft_size)


def taps_fftconv_autograd(mod, u: Tensor, pre_gate, post_gate, fft_size: int, k: Tensor, k_rev, bias,
                          adjoint_weights: Tensor) -> Tensor:
    """The training route for time-domain taps at the fused sizes: the extension's C++ autograd
    node (forward as :func:`taps_fwd_cuda`; backward: the fused backward kernel, then the taps'
    gradient as ``ops.fftconv.filter_spectrum_adjoint`` computes it, cast to each tap's dtype)."""
    device = u.device
    tw_stage, tw_core = twiddle_tables(device)
    return mod.fftconv_taps_autograd(u, k, k_rev, bias, pre_gate, post_gate, half_twiddles(fft_size, device),
                                     tw_stage, tw_core, adjoint_weights, fft_size, filter_in_fp32(u.dtype, fft_size))


def low_band_fwd_cuda(mod, u: Tensor, k_f: Tensor, pre_gate, post_gate, fft_size: int) -> Tensor:
    """Forward with a low-band filter (``k_f`` zero at bins >= N/4): the kernel skips half of its
    core's last DFT stage."""
    k_slots = cached_kernel_spectrum(mod, k_f, fft_size, 1, True)
    tw_stage, tw_core = twiddle_tables(u.device)
    return mod.fftconv_fwd(u, k_slots, contiguous_or_none(pre_gate), contiguous_or_none(post_gate), tw_stage, tw_core,
                           fft_size, lowband_dft_table(u.device, u.dtype))


def fftconv_bwd_cuda(mod, dy: Tensor, u: Tensor, k_f: Tensor, pre_gate, post_gate, fft_size: int):
    k_slots = cached_kernel_spectrum(mod, k_f, fft_size)
    return fftconv_bwd_slots(mod, dy, u, k_slots, contiguous_or_none(pre_gate), contiguous_or_none(post_gate), fft_size)
