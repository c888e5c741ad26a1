"""Layer internals against their straightforward formulations (float64, CPU)."""

import torch
from torch import nn

from longconv_models.layers import HyenaFilter
from longconv_models.layers.projections import projected_groups


def test_projected_groups_equal_linear_transpose_conv_split():
    B, L, d = 3, 37, 8
    linear = nn.Linear(d, 3 * d).double()
    conv = nn.Conv1d(3 * d, 3 * d, 3, groups=3 * d, padding=2).double()
    x = torch.randn(B, L, d, dtype=torch.float64)
    want = conv(linear(x).transpose(1, 2))[..., :L].split(d, dim=1)  # causal: Conv1d(padding=K-1)[:L]
    got = projected_groups(x, linear, conv, 3)
    for g, w in zip(got, want):
        assert g.is_contiguous() and g.shape == (B, d, L)
        torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-12)


def test_hyena_filter_channels_first_equals_transposed_taps():
    f = HyenaFilter(6, emb_dim=5, order=16, seq_len=64, bidirectional=True).double()
    k, k_rev = f.filter(50)
    z, t = f.pos_emb(50)
    act = getattr(f.implicit_filter, "1")
    assert k.is_contiguous() and k.shape == (6, 50)
    torch.testing.assert_close(k, f.modulation(t, f.implicit_filter(z, act))[0].T, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(k_rev, f.modulation(t, f.implicit_filter_rev(z, act))[0].T, rtol=1e-12, atol=1e-12)
