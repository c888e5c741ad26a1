"""The long-sequence decomposition (ops/fftconv/long.py + fftconv_outer.cu), modelled in float64 on CPU.

The model runs the kernel's stages with torch FFTs of the same sizes, the same digit orders
(n1 = Rb*a + b, k1 = ka + Ra*kb), twiddles and unitary scalings, and the production layout
functions (filter spectrum in slot order, accumulator -> spectrum gradient). It checks the index
math of the long path against the reference op before any GPU run.
"""

import math

import pytest
import torch

from longconv_models.ops.fftconv.fused import kernel_spectrum, slot_frequencies, spectrum_grad_from_slots
from longconv_models.ops.fftconv.long import chunk_plan, long_plan, outer_radices
from longconv_models.ops.fftconv import LONG_FFT_SIZES, filter_spectrum
from longconv_models.ops.fftconv.reference import fftconv_bwd_ref, fftconv_ref


def _roots(e: torch.Tensor, m: int, conj: bool = False) -> torch.Tensor:
    w = torch.polar(torch.ones_like(e, dtype=torch.float64), -2 * math.pi * e.double() / m)
    return w.conj() if conj else w


def outer_forward(z: torch.Tensor, N: int) -> torch.Tensor:
    """(P, N) complex -> inner rows (P, M1, M2): A[k1][n2] = W_N^(n2 k1) DFT_M1(z[n1*M2 + n2]) / sqrt(M1)."""
    M1, M2 = long_plan(N)
    Ra, Rb = outer_radices(M1)
    P = z.shape[0]
    x = z.reshape(P, Ra, Rb, M2)  # n1 = Rb*a + b
    x = torch.fft.fft(x, dim=1)  # over a -> ka
    ka, b = torch.arange(Ra)[:, None], torch.arange(Rb)[None, :]
    x = x * _roots(b * ka, M1)[None, :, :, None]
    x = torch.fft.fft(x, dim=2)  # over b -> kb
    rows = x.transpose(1, 2).reshape(P, M1, M2)  # k1 = ka + Ra*kb
    k1, n2 = torch.arange(M1)[:, None], torch.arange(M2)[None, :]
    return rows * _roots(n2 * k1, N) / math.sqrt(M1)


def outer_inverse(rows: torch.Tensor, N: int) -> torch.Tensor:
    """Inner rows (P, M1, M2) -> (P, N): y[n1*M2 + n2] = IDFT_M1(W_N^(-n2 k1) C[k1][n2]) / sqrt(M1)."""
    M1, M2 = long_plan(N)
    Ra, Rb = outer_radices(M1)
    P = rows.shape[0]
    k1, n2 = torch.arange(M1)[:, None], torch.arange(M2)[None, :]
    x = (rows * _roots(n2 * k1, N, conj=True)).reshape(P, Rb, Ra, M2)  # [kb][ka]
    x = torch.fft.ifft(x, dim=1) * Rb  # over kb -> b (unnormalised)
    b, ka = torch.arange(Rb)[:, None], torch.arange(Ra)[None, :]
    x = x * _roots(b * ka, M1, conj=True)[None, :, :, None]
    x = torch.fft.ifft(x, dim=2) * Ra  # over ka -> a: [b][a], n1 = b + Rb*a
    return x.transpose(1, 2).reshape(P, N) / math.sqrt(M1)


def natural_inner_filter(k_f: torch.Tensor, N: int) -> torch.Tensor:
    """kernel_spectrum with outer = M1 (slot order) -> (H, M1, M2) complex in natural k2 order."""
    M1, M2 = long_plan(N)
    slots = torch.view_as_complex(kernel_spectrum(k_f, N, M1).contiguous())
    natural = torch.empty_like(slots)
    natural[..., torch.as_tensor(slot_frequencies(M2))] = slots
    return natural


def pairs_of(x: torch.Tensor, N: int) -> torch.Tensor:
    """(B, H, L) real -> (ceil(B/2), H, N) complex: rows 2p (real) and 2p+1 (imaginary), zero padded."""
    B, H, L = x.shape
    if B % 2:
        x = torch.cat([x, torch.zeros_like(x[:1])])
    x = torch.nn.functional.pad(x, (0, N - L)).reshape(-1, 2, H, N)
    return torch.complex(x[:, 0], x[:, 1])


def unpair(z: torch.Tensor, B: int, L: int) -> torch.Tensor:
    return torch.stack([z.real, z.imag], 1).reshape(-1, *z.shape[1:])[:B, :, :L]


@pytest.mark.parametrize("N", [LONG_FFT_SIZES[0], 2 * LONG_FFT_SIZES[0], 2**20])
def test_long_forward_model_matches_reference(N):
    torch.manual_seed(0)
    B, H, L = 3, 2, N // 2 - 5
    M1, M2 = long_plan(N)
    u = torch.randn(B, H, L, dtype=torch.float64)
    k = torch.randn(H, N - L + 1, dtype=torch.float64) / math.sqrt(N)
    k_f = filter_spectrum(k, N)
    K = natural_inner_filter(k_f, N).to(torch.complex128)
    z = pairs_of(u, N)  # (P, H, N)
    P = z.shape[0]
    rows = outer_forward(z.reshape(P * H, N), N).reshape(P, H, M1, M2)
    rows = torch.fft.ifft(torch.fft.fft(rows, dim=-1) * K[None], dim=-1)  # the fused kernel
    y = unpair(outer_inverse(rows.reshape(P * H, M1, M2), N).reshape(P, H, N), B, L)
    ref = fftconv_ref(u, k_f, None, None, N)
    assert (y - ref).norm() / ref.norm() < 1e-6  # K is stored in fp32


@pytest.mark.parametrize("N", [LONG_FFT_SIZES[0], 2**18])
def test_long_filter_gradient_model_matches_reference(N):
    torch.manual_seed(1)
    B, H, L = 5, 2, N // 2
    M1, M2 = long_plan(N)
    u, dy = torch.randn(B, H, L, dtype=torch.float64), torch.randn(B, H, L, dtype=torch.float64)
    k_f = filter_spectrum(torch.randn(H, L, dtype=torch.float64) / math.sqrt(N), N)
    P = (B + 1) // 2
    zx = outer_forward(pairs_of(u, N).reshape(P * H, N), N).reshape(P, H, M1, M2)
    zd = outer_forward(pairs_of(dy, N).reshape(P * H, N), N).reshape(P, H, M1, M2)
    # the fused backward's accumulator: sum over pairs of conj(Z_x) Z_dc of unitary M2-point
    # transforms, in slot order
    s = (torch.fft.fft(zx, dim=-1, norm="ortho").conj() * torch.fft.fft(zd, dim=-1, norm="ortho")).sum(0)
    s_slots = torch.view_as_real(s[..., torch.as_tensor(slot_frequencies(M2))].to(torch.complex64))
    dk_f = spectrum_grad_from_slots(s_slots, N, M1)
    _, ref, _, _ = fftconv_bwd_ref(dy, u, k_f, None, None, N)
    assert (dk_f - ref).norm() / ref.norm() < 1e-5


def test_slot_cache_is_per_layout():
    """The cached slot spectrum is per (fft size, outer split): 4M calls with and without gates
    use different splits of the same spectrum tensor."""
    from longconv_models.ops.fftconv.fused import cached_kernel_spectrum

    class StandIn:
        calls: list = []

        def spectrum_to_slots(self, k_f, fft_size, outer, low_band=False):
            self.calls.append(outer)
            return torch.full((1,), float(outer))

    mod, k_f = StandIn(), torch.zeros(2, 5, dtype=torch.complex64)
    a, b = cached_kernel_spectrum(mod, k_f, 8, 256), cached_kernel_spectrum(mod, k_f, 8, 512)
    assert a.item() == 256 and b.item() == 512
    assert cached_kernel_spectrum(mod, k_f, 8, 512) is b and mod.calls == [256, 512]


def test_long_path_sizes():
    from longconv_models.ops.fftconv import takes_long_path

    assert takes_long_path(2**16, torch.float16) and takes_long_path(2**22, torch.bfloat16)
    assert takes_long_path(2**15, torch.bfloat16) and not takes_long_path(2**15, torch.float16)
    assert not takes_long_path(2**14, torch.bfloat16)


def test_long_plan_and_chunks_cover_every_row_once():
    for N in (32768,) + LONG_FFT_SIZES:
        M1, M2 = long_plan(N)
        assert M1 * M2 == N and 2 <= M1 <= 512 and 4096 <= M2 <= 8192
    with pytest.raises(ValueError):
        long_plan(16384)
    for B, H, budget in [(7, 5, 1 << 30), (1, 1, 1 << 20), (64, 768, 64 << 20), (3, 1000, 1 << 22)]:
        seen = torch.zeros((B + 1) // 2, H, dtype=torch.int64)
        for p0, pairs, h0, hs in chunk_plan(B, H, 2**20, True, budget):
            assert pairs >= 1 and hs >= 1
            seen[p0 : p0 + pairs, h0 : h0 + hs] += 1
        assert bool((seen == 1).all())
