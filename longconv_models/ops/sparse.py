"""Frequency-sparse convolutions: the filter keeps only its lowest frequencies.

``frequency_sparse(filter, keep)`` zeroes the rfft bins of the filter spectrum from
``int(keep * (N/2 + 1))`` up (a low-pass; DC is always kept), as in the FlashFFTConv paper's
frequency-sparse convolutions; the skip term D stays exact. The result is a :class:`FilterSpectrum`
that :func:`fftconv` takes in place of ``k``; gradients flow through the kept bins. ``keep = 0.25``
is 75% sparsity.

At >= 50% sparsity the kept bins are all below N/4: the top digit of every kept frequency in the
kernel's Monarch order is one of 8 of its 16 values, so the core's last forward DFT stage computes
one of its two 8-column matmul tiles and the first inverse stage runs k = 8 matmuls
(``FilterSpectrum.low_band``; inference calls on CUDA, fused and long paths). Sparser filters skip
no more: the tile is the mma granularity. A separate D term (``bias``) is flat over all
frequencies, so such a filter runs the dense kernels (adding D x in the time domain re-reads x
and measured slower than the dense kernel); so does training (the spectrum requires grad).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .fftconv import FilterSpectrum, prepare_filter


def kept_bins(fft_size: int, keep: float) -> int:
    """Number of rfft bins (from DC up) a fraction ``keep`` of the N/2+1 bins keeps (at least 1)."""
    if not isinstance(keep, (int, float)) or isinstance(keep, bool) or not 0.0 < keep <= 1.0:
        raise ValueError(f"keep must be a fraction in (0, 1], got {keep!r}")
    return max(1, int(keep * (fft_size // 2 + 1)))


def frequency_sparse_mask(fft_size: int, keep: float, device=None) -> Tensor:
    """Boolean (N//2+1,) mask of the kept rfft bins: f < int(keep * (N/2 + 1))."""
    return torch.arange(fft_size // 2 + 1, device=device) < kept_bins(fft_size, keep)


def frequency_sparse(
    filt: FilterSpectrum | Tensor,
    keep: float,
    seq_len: int | None = None,
    *,
    k_rev: Tensor | None = None,
    bias: Tensor | None = None,
    fft_size: int | None = None,
    circular: bool = False,
) -> FilterSpectrum:
    """Low-pass a filter in the frequency domain, keeping a fraction ``keep`` of its rfft bins.

    Args:
        filt: (H, Lk) causal taps (then ``seq_len`` is required; ``k_rev``, ``fft_size`` and
            ``circular`` are as in :func:`prepare_filter`), or a :class:`FilterSpectrum` (sparsified
            as a whole).
        keep: fraction of the bins [0, N/2] kept, in (0, 1].
        bias: the skip term D. It is a pointwise term (flat over all frequencies), so it is added
            after the mask and stays exact: only the long filter is sparsified.
    """
    if isinstance(filt, FilterSpectrum):
        if k_rev is not None or bias is not None or fft_size is not None:
            raise ValueError("k_rev, bias and fft_size are already folded into a FilterSpectrum")
        spec = filt
    elif isinstance(filt, Tensor):
        if seq_len is None:
            raise ValueError("seq_len is required when filt is a tensor of taps")
        spec = prepare_filter(filt, seq_len, k_rev=k_rev, fft_size=fft_size, circular=circular)
    else:
        raise TypeError(f"filt must be a FilterSpectrum or a tensor of taps, got {type(filt).__name__}")
    sparse = spec.spectrum * frequency_sparse_mask(spec.fft_size, keep, spec.spectrum.device)
    if bias is not None:
        if bias.shape != (spec.channels,):
            raise ValueError(f"bias must be ({spec.channels},), got {tuple(bias.shape)}")
        sparse = sparse + bias.to(sparse.real.dtype)[:, None]
    out = FilterSpectrum(sparse, spec.fft_size, spec.circular)
    if bias is None and kept_bins(spec.fft_size, keep) <= spec.fft_size // 4:
        object.__setattr__(out, "low_band", True)  # masked above: no need for the checking (syncing) constructor
    return out
