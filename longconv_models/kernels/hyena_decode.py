"""Triton kernel of a Hyena operator's decoding step between its two projections, for one token
per batch row: what ``ops/decode_step.py`` computes as about fifteen small PyTorch kernels, in one.

Per row b and channel c (the three channel groups x0, x1, v of the in_proj output p):
  ring (B, 3d, K)      the last K in_proj outputs, newest last: shifted by one, p written last
  s_g = sum_j w[g d + c, j] ring[b, g d + c, K - width + j] (+ bias), fp32
  window[b, c, pos] = x1 * v                    the long convolution's current block
  y = sum_j window[b, c, j] T[c, pos, j] + acc[b, c, pos]     (T: the block's Toeplitz rows, D on the diagonal)
  out[b, c] = y * x0                            in p's dtype
The block position ``pos`` is read on the device; the caller advances it. Imported only on CUDA
(and by the tests, in Triton's interpreter).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _hyena_decode_kernel(P, RING, SW, SB, WINDOW, ACC, TOEP, POS, OUT, d,
                         K: tl.constexpr, K_POW2: tl.constexpr, WIDTH: tl.constexpr, BLOCK: tl.constexpr,
                         HAS_BIAS: tl.constexpr, CHANNELS: tl.constexpr):
    b = tl.program_id(0)
    c = tl.program_id(1) * CHANNELS + tl.arange(0, CHANNELS)
    c_ok = c < d
    k = tl.arange(0, K_POW2)
    pos = tl.load(POS)
    s0 = tl.zeros([CHANNELS], dtype=tl.float32)
    s1 = tl.zeros([CHANNELS], dtype=tl.float32)
    s2 = tl.zeros([CHANNELS], dtype=tl.float32)
    for g in tl.static_range(3):
        ch = g * d + c
        row = (b * 3 * d + ch).to(tl.int64) * K
        p = tl.load(P + b * 3 * d + ch, mask=c_ok, other=0.0)
        # the short conv over the shifted ring: taps j < width - 1 read ring[K - width + 1 + j], the last p
        s = tl.load(SW + ch * WIDTH + (WIDTH - 1), mask=c_ok, other=0.0) * p.to(tl.float32)
        for j in tl.static_range(WIDTH - 1):
            r = tl.load(RING + row + (K - WIDTH + 1 + j), mask=c_ok, other=0.0).to(tl.float32)
            s += tl.load(SW + ch * WIDTH + j, mask=c_ok, other=0.0) * r
        if HAS_BIAS:
            s += tl.load(SB + ch, mask=c_ok, other=0.0)
        shift_mask = c_ok[:, None] & (k[None, :] < K - 1)
        older = tl.load(RING + row[:, None] + k[None, :] + 1, mask=shift_mask, other=0.0)
        tl.debug_barrier()  # every lane has read its entry before any entry is overwritten
        tl.store(RING + row[:, None] + k[None, :], older, mask=shift_mask)
        tl.store(RING + row + (K - 1), p, mask=c_ok)
        if g == 0:
            s0 = s
        elif g == 1:
            s1 = s
        else:
            s2 = s
    u = s1 * s2
    j = tl.arange(0, BLOCK)
    at = (b * d + c).to(tl.int64) * BLOCK
    window = tl.load(WINDOW + at[:, None] + j[None, :], mask=c_ok[:, None], other=0.0)
    window = tl.where(j[None, :] == pos, u[:, None], window)
    tl.store(WINDOW + at + pos, u, mask=c_ok)
    toeplitz = tl.load(TOEP + (c.to(tl.int64) * BLOCK + pos)[:, None] * BLOCK + j[None, :], mask=c_ok[:, None],
                       other=0.0)
    y = tl.sum(window * toeplitz, axis=1) + tl.load(ACC + at + pos, mask=c_ok, other=0.0)
    tl.store(OUT + b * d + c, (y * s0).to(OUT.dtype.element_ty), mask=c_ok)


def hyena_decode(p: torch.Tensor, ring: torch.Tensor, short_weight: torch.Tensor, short_bias: torch.Tensor | None,
                 window: torch.Tensor, window_acc: torch.Tensor, toeplitz: torch.Tensor,
                 position: torch.Tensor) -> torch.Tensor:
    """(B, d) = y * x0 for p (B, 3d); updates ``ring`` and ``window`` in place (see the module)."""
    B, three_d = p.shape
    d = three_d // 3
    K, width, block = ring.shape[2], short_weight.shape[1], window.shape[2]
    out = torch.empty(B, d, device=p.device, dtype=p.dtype)
    channels = 32
    _hyena_decode_kernel[(B, triton.cdiv(d, channels))](
        p, ring, short_weight, short_bias if short_bias is not None else short_weight, window, window_acc, toeplitz,
        position, out, d, K=K, K_POW2=triton.next_power_of_2(K), WIDTH=width, BLOCK=block,
        HAS_BIAS=short_bias is not None, CHANNELS=channels)
    return out
