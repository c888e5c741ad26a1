"""Host side of the long-sequence FFT convolution (fft sizes 64K .. 4M, and 32K bf16).

A sequence of N points no longer fits one thread block, so the N-point FFT is split as
N = M1 * M2 (four-step FFT, ``kernels/fftconv/fftconv_outer.cu``):

1. outer forward pass: an M1-point DFT across the sequence (stride M2) and the twiddles,
   written as M1 rows of M2 points (bf16) per pair of batch rows;
2. the fused kernel on those rows: M2-point FFT, multiply by the filter at frequencies
   ``k1 + M1*k2``, inverse FFT (the rows are the fused kernel's (batch, channel) rows);
3. outer inverse pass: twiddles, inverse M1-point DFT, gate, write positions < L.

HBM traffic per pair of rows: read u, write + read + write + read the bf16 intermediate, write y,
plus the filter once per channel: three passes, each streaming. Rows are processed in chunks so
that the intermediates stay within a fixed workspace (``LONGCONV_LONG_WORKSPACE_MB``: 512 MB in
the backward, twice that in the forward, which holds fewer intermediates).
"""

from __future__ import annotations

import functools
import os

import torch
from torch import Tensor

from .fused import _fp32, cached_kernel_spectrum, contiguous_or_none, lowband_dft_table, twiddle_tables
from .plan import FUSED_FFT_SIZES, LONG_FFT_SIZES

PLAN_SIZES = FUSED_FFT_SIZES[-1:] + LONG_FFT_SIZES  # 32K bf16 takes this path too (plan.takes_long_path)

MIN_INNER = 4096  # the fused kernel's time per point is lowest at 4K-8K (16K: ~1.5x as long)
MAX_INNER = 8192
OUTER_TARGET = 256  # M1 <= 256 up to 2M points: two register stages of radix 16
MAX_OUTER = 512  # 4M: a radix-16 then a radix-32 stage, so that M2 stays 8192
MAX_OUTER_GATED = 256  # the radix-32 stage's 96 KB tile plus the gate's would leave 1 block per SM


def long_plan(fft_size: int, gated: bool = False) -> tuple[int, int]:
    """(M1, M2) with N = M1 * M2: the inner size M2 = clamp(N / 256, 4096, 8192) and M1 <= 512;
    with a gate M1 <= 256 (4M: M2 = 16384)."""
    if fft_size not in PLAN_SIZES:
        raise ValueError(f"long fft size must be a power of two in [{PLAN_SIZES[0]}, {PLAN_SIZES[-1]}]")
    inner = min(MAX_INNER, max(MIN_INNER, fft_size // OUTER_TARGET))
    inner = max(inner, fft_size // (MAX_OUTER_GATED if gated else MAX_OUTER))
    return fft_size // inner, inner


def outer_radices(outer: int) -> tuple[int, int]:
    """(Ra, Rb): the outer M1-point DFT as a radix-Ra then a radix-Rb register stage (as the
    kernel instantiates them)."""
    return (outer, 1) if outer <= 16 else (16, outer // 16)


def _workspace_bytes() -> int:
    return int(os.environ.get("LONGCONV_LONG_WORKSPACE_MB", "512")) << 20


@functools.lru_cache(maxsize=64)
def chunk_plan(
    B: int, H: int, fft_size: int, backward: bool, budget: int, gated: bool = False
) -> tuple[tuple[int, int, int, int], ...]:
    """Chunks (pair0, pairs, h0, hs) of pairs of batch rows x channels whose intermediates fit
    ``budget`` bytes: per (pair, channel) one bf16 complex N-point row per live intermediate (2
    forward, 3 backward); per channel in the backward the fused kernel's fp32 scratch.

    A chunk takes every pair of the batch when that leaves room for min(H, 8) channels, so that
    each channel's filter spectrum (8 bytes per point, as much as 4 bf16 batch rows) is read from
    HBM once per call, not once per batch chunk; larger batches are split into groups of pairs
    (>= 2 pairs: the inner kernel transforms 2 pairs per step at 4K). Then as many channels as fit."""
    M1, M2 = long_plan(fft_size, gated)
    per_row = 4 * fft_size * (3 if backward else 2)
    per_channel = 8 * fft_size * (2 * max(1, 8192 // M2) + 2) if backward else 0
    n_pairs = (B + 1) // 2
    fit = (budget // min(H, 8) - per_channel) // per_row
    pairs = min(n_pairs, 65535, max(2, fit))
    hs = max(1, min(H, 65535, budget // (pairs * per_row + per_channel)))
    hs = -(-H // -(-H // hs))  # the same number of chunks, balanced
    return tuple(
        (p0, min(pairs, n_pairs - p0), h0, min(hs, H - h0))
        for h0 in range(0, H, hs)
        for p0 in range(0, n_pairs, pairs)
    )


def long_fwd_cuda(mod, u: Tensor, k_f: Tensor, pre_gate, post_gate, fft_size: int, gated=None, k_slots=None,
                  low_band: bool = False) -> Tensor:
    """y = post * conv(pre * u). ``gated`` picks the plan (default: whether a gate is given; the
    backward passes its own with its ``k_slots``). ``low_band``: ``k_f`` is zero at bins >= N/4,
    so every inner row's filter is zero at |f2| >= M2/4 and the inner kernel skips half of its
    core's last DFT stage."""
    B, H, _ = u.shape
    gated = pre_gate is not None or post_gate is not None if gated is None else gated
    M1, M2 = long_plan(fft_size, gated)
    tw_stage, tw_core = twiddle_tables(u.device)
    lowband_dft = lowband_dft_table(u.device, torch.bfloat16) if low_band else None  # the inner rows are bf16
    if k_slots is None:
        k_slots = cached_kernel_spectrum(mod, k_f, fft_size, M1, low_band)
    pre_gate, post_gate = contiguous_or_none(pre_gate), contiguous_or_none(post_gate)
    y = torch.empty_like(u)
    bad_rows = torch.zeros(B, H, dtype=torch.int32, device=u.device)
    # the forward holds 2 intermediates (the backward 3 plus scratch): twice the workspace
    for p0, pairs, h0, hs in chunk_plan(B, H, fft_size, False, 2 * _workspace_bytes(), gated):
        rows = torch.empty(2 * pairs, hs * M1, M2, dtype=torch.bfloat16, device=u.device)
        mod.fftconv_outer(u, pre_gate, rows, bad_rows, fft_size, M1, p0, h0, False)
        k_chunk = k_slots[h0 : h0 + hs].view(hs * M1, M2, 2)
        rows = mod.fftconv_fwd(rows, k_chunk, None, None, tw_stage, tw_core, M2, lowband_dft)
        mod.fftconv_outer(y, post_gate, rows, bad_rows, fft_size, M1, p0, h0, True)
    return y


def long_filter_slots(mod, k: Tensor, bias: Tensor | None, fft_size: int, outer: int,
                      dtype: torch.dtype = torch.bfloat16) -> Tensor:
    """The inner rows' filter spectra (H, M1, M2, 2) in slot order, from time-domain taps, with the
    data's own pipeline: the outer forward pass over the bf16 taps (one batch row per channel),
    then the fused kernel's forward FFT of each row on the tensor cores (``filter_rows_to_slots``,
    which also adds the D term and marks channels with a non-finite tap NaN). Replaces the padded
    copy + cuFFT rfft + layout kernel of :func:`cached_kernel_spectrum`. The slots are bf16 (``dtype``):
    half the bytes to write here and to read in the inner kernel; the spectrum carries bf16
    rounding, like the data rows it multiplies."""
    H = k.shape[0]
    inner = fft_size // outer
    taps = k.detach().to(torch.bfloat16).contiguous()[None]
    bias = _fp32(bias)
    bad = torch.zeros(1, H, dtype=torch.int32, device=k.device)
    slots = torch.empty(H, outer, inner, 2, dtype=dtype, device=k.device)
    tw_stage, tw_core = twiddle_tables(k.device)
    hs = max(1, min(H, _workspace_bytes() // (4 * fft_size)))  # bf16 rows: 4 bytes per point and channel
    for h0 in range(0, H, hs):
        n = min(hs, H - h0)
        rows = torch.empty(2, n * outer, inner, dtype=torch.bfloat16, device=k.device)
        mod.fftconv_outer(taps, None, rows, bad, fft_size, outer, 0, h0, False)
        mod.filter_rows_to_slots(rows, bad[0, h0 : h0 + n], None if bias is None else bias[h0 : h0 + n],
                                 slots[h0 : h0 + n], tw_stage, tw_core, fft_size)
    return slots


def long_taps_fwd_cuda(mod, u: Tensor, k: Tensor, bias: Tensor | None, pre_gate, post_gate, fft_size: int) -> Tensor:
    """Forward of the long path from causal taps (inference): :func:`long_filter_slots`, then
    :func:`long_fwd_cuda`."""
    outer, _ = long_plan(fft_size, pre_gate is not None or post_gate is not None)
    k_slots = long_filter_slots(mod, k, bias, fft_size, outer)
    return long_fwd_cuda(mod, u, None, pre_gate, post_gate, fft_size, k_slots=k_slots)


def long_bwd_cuda(mod, dy: Tensor, u: Tensor, k_f: Tensor, pre_gate, post_gate, fft_size: int):
    """(du, dk_f, dpre, dpost) of the long path. With a post gate the convolution is recomputed
    (one forward) for dpost; gate products are elementwise torch ops."""
    B, H, _ = u.shape
    gated = pre_gate is not None or post_gate is not None
    M1, M2 = long_plan(fft_size, gated)
    tw_stage, tw_core = twiddle_tables(u.device)
    k_slots = cached_kernel_spectrum(mod, k_f, fft_size, M1)
    pre_gate, post_gate = contiguous_or_none(pre_gate), contiguous_or_none(post_gate)
    dpost = None
    if post_gate is not None:
        dpost = dy * long_fwd_cuda(mod, u, k_f, pre_gate, None, fft_size, gated, k_slots)
    dx = torch.empty_like(u)
    s_total = torch.zeros(H, M1, M2, 2, dtype=torch.float32, device=u.device)
    # rows with a non-finite x = pre*u (bad[0]) or dc = post*dy (bad[1]); dx = corr(dc, k)
    # depends on dc only, the filter gradient on both
    bad = torch.zeros(2, B, H, dtype=torch.int32, device=u.device)
    for p0, pairs, h0, hs in chunk_plan(B, H, fft_size, True, _workspace_bytes(), gated):
        shape = (2 * pairs, hs * M1, M2)
        x_rows = torch.empty(shape, dtype=torch.bfloat16, device=u.device)
        dc_rows = torch.empty(shape, dtype=torch.bfloat16, device=u.device)
        mod.fftconv_outer(u, pre_gate, x_rows, bad[0], fft_size, M1, p0, h0, False)
        mod.fftconv_outer(dy, post_gate, dc_rows, bad[1], fft_size, M1, p0, h0, False)
        k_chunk = k_slots[h0 : h0 + hs].view(hs * M1, M2, 2)
        dx_rows, s, _, _ = mod.fftconv_bwd(dc_rows, x_rows, k_chunk, None, None, tw_stage, tw_core, M2, True)
        del x_rows, dc_rows
        s_total[h0 : h0 + hs] += s.view(hs, M1, M2, 2)
        mod.fftconv_outer(dx, None, dx_rows, bad[1], fft_size, M1, p0, h0, True)
    dk_f = mod.slots_to_spectrum_grad(s_total, fft_size, M1)
    # a non-finite row makes its channel's filter gradient NaN (in place, no host sync)
    dk_f.masked_fill_(bad.any(1).any(0)[:, None], float("nan"))
    dpre = None if pre_gate is None else dx * u
    du = dx if pre_gate is None else dx * pre_gate
    return du, dk_f, dpre, dpost
