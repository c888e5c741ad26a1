"""A causal long convolution computed one position at a time after a prefix, exactly:

    y[t] = sum_{s <= t} h[t - s] u[s] + D u[t]

Two methods, chosen by the prefix length (``direct_max``):

* **direct**: each new output is the dot product of the cached inputs with the reversed taps,
  O(D t) per token; cheapest for short prefixes.
* **tiled** (Flash Inference, Oncescu et al., ICLR 2025, after van der Hoeven's relaxed
  multiplication): when the m-th input arrives, the last U = lowbit(m) inputs are convolved with
  the first 2U taps and added to the next U outputs (an accumulator), so every pair (s < t) is
  counted exactly once and output t needs only acc[t] + h[0] u[t]. The tiles double in size:
  O(D log^2 t) amortised per token. Tiles of more than ``TILE_DIRECT_MAX`` inputs run through
  :func:`longconv_models.fftconv` (the fused kernel on a GPU).

Switching from direct to tiled at length n (or rolling back to length n) rebuilds the
accumulator from the cached inputs: the tiles of steps m <= n whose targets reach past n are
exactly the prefixes of n's binary expansion, O(n log n) once.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..ops import fftconv

TILE_DIRECT_MAX = 32  # tiles up to this many inputs: a small Toeplitz product, no FFT


def _lowbit(m: int) -> int:
    return m & -m


class IncrementalConv:
    """State of one causal long convolution over ``channels`` for a batch.

    ``taps(L)`` returns the filter's first L taps, (channels, L) fp32 (zeros past the filter's
    length); it is called again with a larger L when the sequence outgrows the taps it has.
    ``bias`` is the skip term D (channels,) or None. Inputs are kept in ``dtype``; sums are fp32.
    """

    def __init__(self, taps: Callable[[int], Tensor], bias: Tensor | None, batch: int, channels: int,
                 device: torch.device, dtype: torch.dtype, direct_max: int = 256):
        self.taps_fn, self.bias = taps, None if bias is None else bias.detach().float()
        self.batch, self.channels, self.device, self.dtype = batch, channels, device, dtype
        self.direct_max = direct_max
        self.h = torch.zeros(channels, 0, device=device)  # taps, fp32
        self.h_rev = self.h  # the same taps reversed: h_rev[:, -1 - j] = h[:, j] (the direct form reads a slice)
        self.toeplitz: dict[int, Tensor] = {}  # small tiles: U -> (channels, U, U) taps at gaps U + p - j
        self.u = torch.zeros(batch, channels, 0, device=device, dtype=dtype)  # inputs
        self.acc: Tensor | None = None  # tiled: pending contributions per output position, fp32
        self.n = 0

    # -- storage ---------------------------------------------------------------------------
    def _ensure_taps(self, length: int) -> None:
        if self.h.shape[1] < length:
            size = max(length, 2 * self.h.shape[1], 64)
            self.h = self.taps_fn(size).detach().float().to(self.device)
            self.h_rev = self.h.flip(-1).contiguous()

    def _ensure_inputs(self, length: int) -> None:
        if self.u.shape[2] < length:
            grown = self.u.new_zeros(self.batch, self.channels, max(length, 2 * self.u.shape[2], 64))
            grown[:, :, : self.n] = self.u[:, :, : self.n]
            self.u = grown

    def _ensure_acc(self, length: int) -> None:
        if self.acc.shape[2] < length:
            grown = self.acc.new_zeros(self.batch, self.channels, max(length, 2 * self.acc.shape[2]))
            grown[:, :, : self.acc.shape[2]] = self.acc
            self.acc = grown

    def memory_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.h, self.h_rev, self.u, self.acc) if t is not None)

    # -- public ----------------------------------------------------------------------------
    @property
    def tiled(self) -> bool:
        return self.acc is not None

    def append(self, u: Tensor) -> None:
        """Store a prefix (or more inputs) without computing outputs: (batch, channels, T)."""
        T = u.shape[2]
        self._ensure_inputs(self.n + T)
        self.u[:, :, self.n: self.n + T] = u
        self.n += T
        self.acc = None
        if self.n > self.direct_max:
            self._start_tiled()

    def step(self, u: Tensor) -> Tensor:
        """One new input (batch, channels) -> its output (batch, channels), fp32."""
        t = self.n
        self._ensure_inputs(t + 1)
        self.u[:, :, t] = u
        self.n = t + 1
        uf = u.float()
        if self.tiled:  # everything before t is in acc[t]; the diagonal term here
            self._ensure_taps(1)
            y = self.acc[:, :, t] + self.h[:, 0] * uf
            self._add_tile(self.n)
        else:  # y[t] = sum_s h[t - s] u[s]: the inputs against the reversed first t + 1 taps
            self._ensure_taps(t + 1)
            taps = self.h_rev[:, self.h_rev.shape[1] - t - 1:]  # h[t], ..., h[0]
            y = torch.einsum("bds,ds->bd", self.u[:, :, : t + 1].float(), taps)
            if self.n > self.direct_max:
                self._start_tiled()
        return y if self.bias is None else y + self.bias * uf

    def crop(self, n: int) -> None:
        """Roll back to the first ``n`` inputs."""
        if n < self.n:
            self.n = n
            self.acc = None
            if n > self.direct_max:
                self._start_tiled()

    def select(self, index: Tensor) -> None:
        """Keep / reorder batch rows (beam search)."""
        self.u = self.u.index_select(0, index)
        if self.acc is not None:
            self.acc = self.acc.index_select(0, index)
        self.batch = self.u.shape[0]

    # -- tiled method ----------------------------------------------------------------------
    def _start_tiled(self) -> None:
        """Accumulator for the current length n: the tiles of the steps m <= n whose targets
        [m, m + lowbit(m)) reach past n are m = n with its low bits cleared one by one."""
        n = self.n
        self._ensure_taps(2 * n + 2)
        self.acc = torch.zeros(self.batch, self.channels, max(2 * n + 2, 64), device=self.device)
        m = n
        while m > 0:
            self._add_tile(m, first_target=n)
            m -= _lowbit(m)

    def _add_tile(self, m: int, first_target: int | None = None) -> None:
        """acc[p] += sum_{s in [m - U, m)} h[p - s] u[s] for p in [max(m, first_target), m + U)."""
        U = _lowbit(m)
        self._ensure_acc(m + U)
        self._ensure_taps(2 * U)
        w = self.u[:, :, m - U: m]
        if U <= TILE_DIRECT_MAX:
            if U not in self.toeplitz:  # G[p', j] = h[U + p' - j]: gaps 1 .. 2U - 1
                idx = U + torch.arange(U, device=self.device)[:, None] - torch.arange(U, device=self.device)[None, :]
                self.toeplitz[U] = self.h[:, idx]
            contrib = torch.einsum("bdj,dpj->bdp", w.float(), self.toeplitz[U])
        else:
            # causal conv of [w, 0] with h[:2U]: outputs U .. 2U - 1 are the contributions
            padded = torch.cat([w, torch.zeros_like(w)], dim=2)
            contrib = fftconv(padded, self.h[:, : 2 * U])[:, :, U:].float()
        lo = 0 if first_target is None else max(0, first_target - m)
        self.acc[:, :, m + lo: m + U] += contrib[:, :, lo:]
