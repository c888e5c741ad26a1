"""Layer internals against their straightforward formulations (float64, CPU)."""

import torch
from torch import nn

from longconv_models.layers import HyenaFilter
from longconv_models.layers.projections import linear_from_channels_first, project_channels_first, projected_groups


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


def test_channels_first_projections_gradients_in_their_own_layout():
    """The input and output projections against nn.Linear: values and every gradient (float64),
    with the gradients of the activations contiguous in the activation's own layout."""
    B, L, d = 2, 13, 6
    linear_in, linear_out = nn.Linear(d, 3 * d).double(), nn.Linear(d, 5).double()
    x = torch.randn(B, L, d, dtype=torch.float64, requires_grad=True)
    y = torch.randn(B, d, L, dtype=torch.float64, requires_grad=True)
    outs = project_channels_first(x, linear_in, 3)
    want = linear_in(x).transpose(1, 2).split(d, dim=1)
    for o, w in zip(outs, want):
        torch.testing.assert_close(o, w)
    grads = [torch.randn_like(o) for o in outs]
    got = torch.autograd.grad(outs, (x, linear_in.weight, linear_in.bias), grads)
    ref = torch.autograd.grad(want, (x, linear_in.weight, linear_in.bias), grads)
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b)
    assert got[0].is_contiguous()
    out = linear_from_channels_first(y, linear_out)
    want = linear_out(y.transpose(1, 2))
    torch.testing.assert_close(out, want)
    g = torch.randn_like(out)
    got = torch.autograd.grad(out, (y, linear_out.weight, linear_out.bias), g)
    ref = torch.autograd.grad(want, (y, linear_out.weight, linear_out.bias), g)
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b)
    assert got[0].is_contiguous() and got[0].shape == (B, d, L)


def test_hyena_filter_channels_first_equals_transposed_taps():
    f = HyenaFilter(6, emb_dim=5, filter_order=16, max_seq_len=64, bidirectional=True).double()
    k, k_rev = f.filter(50)
    z, t = f.pos_emb(50)
    act = getattr(f.implicit_filter, "1")
    assert k.is_contiguous() and k.shape == (6, 50)
    torch.testing.assert_close(k, f.modulation(t, f.implicit_filter(z, act))[0].T, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(k_rev, f.modulation(t, f.implicit_filter_rev(z, act))[0].T, rtol=1e-12, atol=1e-12)


def test_blockdiag_linear_equals_block_einsum():
    from longconv_models.layers import BlockdiagLinear

    m = BlockdiagLinear(12, 20, nblocks=4).double()
    x = torch.randn(3, 5, 12, dtype=torch.float64, requires_grad=True)
    want = torch.einsum("...bi,boi->...bo", x.reshape(3, 5, 4, 3), m.weight).reshape(3, 5, 20) + m.bias
    got = m(x)
    torch.testing.assert_close(got, want)
    g = torch.randn_like(got)
    for a, b in zip(torch.autograd.grad(got, (x, m.weight, m.bias), g), torch.autograd.grad(want, (x, m.weight, m.bias), g)):
        torch.testing.assert_close(a, b)


def test_add_layer_norm_reference_is_the_unfused_expression():
    from longconv_models.ops.add_layer_norm import add_layer_norm

    norm = nn.LayerNorm(16).double()
    x, r = torch.randn(2, 5, 16, dtype=torch.float64), torch.randn(2, 5, 16, dtype=torch.float64)
    y, s = add_layer_norm(x, r, norm)
    torch.testing.assert_close(s, x + r)
    torch.testing.assert_close(y, norm(x + r))
    y, s = add_layer_norm(x, None, norm)
    assert s is x or torch.equal(s, x)
    torch.testing.assert_close(y, norm(x))
