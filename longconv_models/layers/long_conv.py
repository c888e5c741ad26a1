"""Explicitly parameterised long convolutions with the kernel regularisation of
Fu et al., "Simple Hardware-Efficient Long Convolutions for Sequence Modeling" (ICML 2023):
squashing (soft-thresholding small weights towards zero, ``kernel_lam``) and smoothing (average
pooling over the kernel), applied to the filter at every forward pass."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..ops import fftconv


class LongConv(nn.Module):
    """Depthwise long convolution with a learned (H, L) kernel and D skip term.

    Args:
        channels: H.
        max_len: L, the kernel length (taps beyond the input length are not used).
        kernel_lam: squash threshold: k <- sign(k) * relu(|k| - lam).
        smooth_width: average-pooling width of the smoothing (1 = off).
        bidirectional: also learn anti-causal taps (a second kernel).
        dropout: kernel dropout during training.
    """

    def __init__(self, channels: int, max_len: int, kernel_lam: float = 0.003, smooth_width: int = 3,
                 bidirectional: bool = False, dropout: float = 0.0, init_scale: float = 0.002):
        super().__init__()
        self.kernel_lam, self.smooth_width = kernel_lam, smooth_width
        n_kernels = 2 if bidirectional else 1
        self.kernel = nn.Parameter(init_scale * torch.randn(n_kernels, channels, max_len))
        self.D = nn.Parameter(torch.randn(channels))
        self.dropout = nn.Dropout(dropout)

    def regularized_kernel(self, L: int) -> Tensor:
        k = self.kernel[..., :L]
        if self.smooth_width > 1:
            k = F.avg_pool1d(k, self.smooth_width, stride=1, padding=self.smooth_width // 2,
                             count_include_pad=False)[..., :L]
        if self.kernel_lam > 0:
            k = torch.sign(k) * F.relu(k.abs() - self.kernel_lam)
        return self.dropout(k)

    def forward(self, u: Tensor) -> Tensor:
        """u: (B, H, L) -> (B, H, L)."""
        k = self.regularized_kernel(u.shape[-1])
        return fftconv(u, k[0], k_rev=k[1] if k.shape[0] == 2 else None, bias=self.D)
