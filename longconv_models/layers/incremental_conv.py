"""A causal long convolution computed one position at a time after a prefix, exactly:

    y[t] = sum_{s <= t} h[t - s] u[s] + D u[t]

Positions are grouped in blocks of ``block`` (64) inputs:

* **within the current block** (every token, fixed shapes): the block's inputs so far, zero past
  the position, against one row of the block's Toeplitz matrix of taps (D on its diagonal), plus
  what the earlier blocks contribute to this position (``window_acc``), O(D block) per token. The
  work reads and writes the same buffers at every step, addressed by a position held on the
  device, so a decoding step can be replayed as a CUDA graph (``models/hyena/decoding_graph.py``).
* **between blocks** (every ``block`` tokens, host-driven): the tiled method of Flash Inference
  (Oncescu et al., ICLR 2025, after van der Hoeven's relaxed multiplication) at block granularity:
  when the m-th block completes, the last U = lowbit(m) blocks are convolved with the first 2U
  blocks of taps and added to the next U blocks' accumulator, so every pair of blocks (a < b) is
  counted exactly once; the tiles double in size, O(D log^2 t) amortised per token. Tiles of more
  than ``TILE_DIRECT_MAX`` inputs run through :func:`longconv_models.fftconv` (the fused kernel
  on a GPU).

Starting after a prefix of n inputs (or rolling back to n) rebuilds the accumulator: the tiles of
the block steps m <= n // block whose targets reach past it are exactly the prefixes of its binary
expansion, O(n log n) once.

With a filter of F nonzero taps (``taps_length``: the trained length of an extended model, see
``extend_context``) an input reaches only the next F - 1 positions: a tile reads at most its last
F inputs and writes at most its first F targets, and inputs older than F (plus a roll-back margin)
are dropped. The state is then O(batch * channels * F) at any prefix length.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import Tensor

from ..ops import fftconv
from ..ops.decode_step import block_conv_step_ref

TILE_DIRECT_MAX = 64  # tiles up to this many inputs: a small Toeplitz product, no FFT
TILE_CHUNK_ELEMENTS = 1 << 26  # an FFT tile convolves rows in groups of at most this many padded inputs
ROLLBACK_INPUTS = 64  # inputs kept past what the tiles read, so that a roll-back of this many can rebuild


def _lowbit(m: int) -> int:
    return m & -m


def _toeplitz(h: Tensor, size: int, offset: int) -> Tensor:
    """(channels, size, size) with [:, p, j] = h[:, offset + p - j] (zero where that is negative)."""
    gap = offset + torch.arange(size, device=h.device)[:, None] - torch.arange(size, device=h.device)[None, :]
    return torch.where(gap >= 0, h[:, gap.clamp(min=0)], 0.0)


class IncrementalConv:
    """State of one causal long convolution over ``channels`` for a batch.

    ``taps(L)`` returns the filter's first L taps, (channels, L) fp32 (zeros past the filter's
    length); it is called again with a larger L when the sequence outgrows the taps it has, up to
    ``taps_length`` (the filter's nonzero taps; None: unbounded). ``bias`` is the skip term D (channels,) or None. Completed blocks' inputs are kept in
    ``dtype``; the current block's inputs and every sum are fp32.

    The per-token buffers (``window``, ``window_acc``, ``toeplitz``, ``position``) keep their
    addresses for the state's life unless the batch changes (``buffers_version`` counts that).
    """

    def __init__(self, taps: Callable[[int], Tensor], bias: Tensor | None, batch: int, channels: int,
                 device: torch.device, dtype: torch.dtype, block: int = 64, taps_length: int | None = None):
        if block < 1 or block & (block - 1):
            raise ValueError(f"block must be a power of two, got {block}")
        self.taps_fn, self.block, self.taps_length = taps, block, taps_length
        self.batch, self.channels, self.device, self.dtype = batch, channels, device, dtype
        self.h = torch.zeros(channels, 0, device=device)  # taps, fp32
        self._ensure_taps(2 * block)
        toeplitz = _toeplitz(self.h, block, 0)
        if bias is not None:  # D u[t]: on the diagonal
            toeplitz = toeplitz + torch.diag_embed(bias.detach().float().to(device)[:, None].expand(channels, block))
        self.toeplitz = toeplitz.contiguous()  # (channels, block, block)
        self.tile_toeplitz: dict[int, Tensor] = {}  # small tiles: U -> (channels, U, U) taps at gaps U + p - j
        self.u = torch.zeros(batch, channels, 0, device=device, dtype=dtype)  # inputs from u_base on
        self.u_base = 0  # (with a finite filter the oldest inputs are dropped)
        self.acc = torch.zeros(batch, channels, 0, device=device)  # earlier blocks' contributions, fp32,
        self.acc_base = 0  # from position acc_base on (the positions before are consumed)
        self.window = torch.zeros(batch, channels, block, device=device)  # this block's inputs (zeros after)
        self.window_acc = torch.zeros(batch, channels, block, device=device)  # acc of this block
        self.position = torch.zeros(1, dtype=torch.long, device=device)  # n % block, on the device
        self.buffers_version = 0
        self.n = 0

    # -- storage ---------------------------------------------------------------------------
    def _ensure_taps(self, length: int) -> None:
        """At least min(length, taps_length) taps (and 2 * max(block, TILE_DIRECT_MAX): the
        Toeplitz matrices read that many)."""
        floor = 2 * max(self.block, TILE_DIRECT_MAX)
        if self.taps_length is not None:
            length = min(length, max(self.taps_length, floor))
        if self.h.shape[1] < length:
            size = max(length, 2 * self.h.shape[1], floor)
            if self.taps_length is not None:
                size = min(size, max(self.taps_length, floor))
            self.h = self.taps_fn(size).detach().float().to(self.device)

    def _inputs(self, start: int, stop: int) -> Tensor:
        return self.u[:, :, start - self.u_base: stop - self.u_base]

    def _store_inputs(self, start: int, values: Tensor) -> None:
        self.u = self._grown(self.u, start + values.shape[2] - self.u_base)
        self.u[:, :, start - self.u_base: start - self.u_base + values.shape[2]] = values

    def _oldest_needed(self, n: int) -> int:
        """The first input a rebuild at n reads (the tiles' reach, the small tiles, a block)."""
        if self.taps_length is None:
            return 0
        return max(0, n - self.taps_length - 2 * max(self.block, TILE_DIRECT_MAX) - self.block)

    def _drop_old_inputs(self) -> None:
        """Forget the inputs no tile reads again, even after a roll-back of ROLLBACK_INPUTS. Once
        at least half as many as are kept have expired, the kept ones move to a new store with
        room for that many more (so the store stays within about twice what is kept)."""
        keep_from = self._oldest_needed(self.n - ROLLBACK_INPUTS)
        drop, kept = keep_from - self.u_base, self.n - keep_from
        if drop > 0 and drop >= max(self.block, kept // 2):
            store = self.u.new_zeros(self.batch, self.channels, kept + kept // 2 + 2 * self.block)
            store[:, :, :kept] = self.u[:, :, drop: drop + kept]
            self.u, self.u_base = store, keep_from

    def _acc_slice(self, start: int, stop: int) -> Tensor:
        """acc over positions [start, stop) (grown to hold them)."""
        self.acc = self._grown(self.acc, stop - self.acc_base)
        return self.acc[:, :, start - self.acc_base: stop - self.acc_base]

    @staticmethod
    def _grown(t: Tensor, length: int) -> Tensor:
        if t.shape[2] >= length:
            return t
        grown = t.new_zeros(t.shape[0], t.shape[1], max(length, 2 * t.shape[2], 64))
        grown[:, :, : t.shape[2]] = t
        return grown

    def memory_bytes(self) -> int:
        tensors = (self.h, self.toeplitz, self.u, self.acc, self.window, self.window_acc, *self.tile_toeplitz.values())
        return sum(t.numel() * t.element_size() for t in tensors)

    # -- public ----------------------------------------------------------------------------
    def append(self, u: Tensor) -> None:
        """Store a prefix (or more inputs) without computing outputs: (batch, channels, T)."""
        self._flush_window()
        self._store_inputs(self.n, u)
        self.n += u.shape[2]
        self._rebuild()
        self._drop_old_inputs()

    def step(self, u: Tensor) -> Tensor:
        """One new input (batch, channels) -> its output (batch, channels), fp32."""
        y = self.step_on_device(u)
        self.advance()
        return y

    def step_on_device(self, u: Tensor) -> Tensor:
        """The per-token work alone: fixed shapes and buffers, the position read on the device
        (what a CUDA graph of a decoding step records). :meth:`advance` must follow."""
        y = block_conv_step_ref(u, self.window, self.window_acc, self.toeplitz, self.position)
        self.position.add_(1)
        return y

    def advance(self) -> None:
        """The host side of a step: count it; a completed block moves to the tiles."""
        self.n += 1
        if self.n % self.block == 0:
            self._finish_block()

    def crop(self, n: int) -> None:
        """Roll back to the first ``n`` inputs."""
        if n >= self.n:
            return
        start = self.n - self.n % self.block  # the current block's first position
        if n >= start:  # within the current block: forget its last inputs
            self.window[:, :, n - start:] = 0
            self.position.fill_(n - start)
            self.n = n
            return
        if self._oldest_needed(n) < self.u_base:
            raise ValueError(f"cannot roll back from {self.n} to {n} inputs: the state keeps the inputs a "
                             f"roll-back of up to {ROLLBACK_INPUTS} needs")
        self.n = n  # every input the rebuild reads is in self.u
        self._rebuild()

    @classmethod
    def concatenate(cls, convs: list["IncrementalConv"]) -> "IncrementalConv":
        """One state over the rows of several states of the same filter and length (a prefill
        run in row chunks); the parts' tensors are released as they are joined."""
        first = convs[0]
        if any(c.n != first.n or c.acc_base != first.acc_base or c.u_base != first.u_base or c.block != first.block
               for c in convs):
            raise ValueError("only states of the same length and block join")
        merged = copy.copy(first)  # shares the taps and Toeplitz matrices
        for name in ("u", "acc", "window", "window_acc"):
            parts = [getattr(c, name) for c in convs]
            width = max(t.shape[2] for t in parts)
            setattr(merged, name, torch.cat([torch.nn.functional.pad(t, (0, width - t.shape[2])) for t in parts]))
            for c in convs:
                setattr(c, name, None)
        merged.position = first.position.clone()
        merged.batch = merged.u.shape[0]
        merged.buffers_version = 0
        return merged

    def select(self, index: Tensor) -> None:
        """Keep / reorder batch rows (beam search); the per-token buffers stay in place while the
        batch size does."""
        self.u, self.acc = self.u.index_select(0, index), self.acc.index_select(0, index)
        if index.numel() == self.batch:
            self.window.copy_(self.window.index_select(0, index))
            self.window_acc.copy_(self.window_acc.index_select(0, index))
        else:
            self.window, self.window_acc = self.window.index_select(0, index), self.window_acc.index_select(0, index)
            self.buffers_version += 1
        self.batch = index.numel()

    # -- blocks ----------------------------------------------------------------------------
    def _flush_window(self) -> None:
        """The current block's inputs into ``self.u`` (positions start .. n)."""
        start = self.n - self.n % self.block
        if self.n > start:
            self._store_inputs(start, self.window[:, :, : self.n - start].to(self.dtype))

    def _finish_block(self) -> None:
        self._store_inputs(self.n - self.block, self.window.to(self.dtype))
        self._add_tile(self.n // self.block)
        self._drop_old_inputs()
        self.window.zero_()
        self.position.zero_()
        self.window_acc.copy_(self._acc_slice(self.n, self.n + self.block))
        consumed = self.n - self.acc_base
        if consumed >= self.acc.shape[2] // 2:  # drop the consumed positions (amortised O(1) per token)
            self.acc, self.acc_base = self.acc[:, :, consumed:].clone(), self.n

    def _rebuild(self) -> None:
        """Accumulator and window for the current length n: the tiles of the block steps m' <= m
        (m = completed blocks) whose targets [m', m' + lowbit(m')) reach past m are m with its low
        bits cleared one by one."""
        n, b = self.n, self.block
        m = n // b
        # targets from this block on, up to twice the highest power of two in m (blocks)
        span = (2 * (1 << max(m.bit_length() - 1, 0)) - m + 1) * b if m else b
        if self.taps_length is not None:  # (no target past the filter's reach: the slices grow if needed)
            span = min(span, self.taps_length + 2 * b)
        self.acc, self.acc_base = torch.zeros(self.batch, self.channels, span, device=self.device), m * b
        step = m
        while step > 0:
            self._add_tile(step, first_target=m)
            step -= _lowbit(step)
        start = m * b
        self.window.zero_()
        self.window[:, :, : n - start] = self._inputs(start, n).float()
        self.position.fill_(n - start)
        self.window_acc.copy_(self._acc_slice(start, start + b))

    def _add_tile(self, m: int, first_target: int | None = None) -> None:
        """Block step m: acc[p] += sum_{s in block range [m - U, m)} h[p - s] u[s] for p in the
        block range [max(m, first_target), m + U), U = lowbit(m) blocks."""
        b = self.block
        U = _lowbit(m) * b  # inputs in the tile
        lo_input, first = m * b - U, m * b  # the tile's inputs [lo_input, first), targets [first, first + U)
        if U <= TILE_DIRECT_MAX:
            self._ensure_taps(2 * U)
            w = self._inputs(lo_input, first)
            if U not in self.tile_toeplitz:  # G[p', j] = h[U + p' - j]: gaps 1 .. 2U - 1
                self.tile_toeplitz[U] = _toeplitz(self.h, U, U)
            contrib = torch.einsum("bdj,dpj->bdp", w.float(), self.tile_toeplitz[U])
            lo = 0 if first_target is None else max(0, (first_target - m) * b)
            self._acc_slice(first + lo, first + U).add_(contrib[:, :, lo:])
            return
        # causal conv of [w, 0] with h[:Ri + R] for the tile's last Ri inputs w: outputs Ri + lo ..
        # Ri + R - 1 are the contributions to targets first + lo .. first + R - 1 (R = U, or with F
        # taps at most F targets and only inputs within F of the first kept target reach them);
        # rows in groups, so that a large tile's temporaries stay bounded
        F = self.taps_length
        R = U if F is None else min(U, F)  # targets within the filter's reach
        lo = 0 if first_target is None else max(0, (first_target - m) * b)
        if lo >= R:
            return
        Ri = R if F is None else min(R, F - lo)  # inputs that reach targets first + lo ..
        self._ensure_taps(Ri + R)
        w = self._inputs(first - Ri, first)
        target = self._acc_slice(first + lo, first + R)
        rows = max(1, TILE_CHUNK_ELEMENTS // (self.channels * (Ri + R)))
        for r in range(0, self.batch, rows):
            part = w[r: r + rows]
            padded = torch.cat([part, part.new_zeros(part.shape[0], part.shape[1], R)], dim=2)
            target[r: r + rows] += fftconv(padded, self.h[:, : Ri + R])[:, :, Ri + lo:].float()
