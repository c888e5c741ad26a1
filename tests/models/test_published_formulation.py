"""HyenaDNA / Hyena against an independent float64 statement of the published model (the Hyena
paper's operator as the hyena-dna / safari training code composes it), written here from the
formulas with explicit causal sums, no FFT: random weights under the original checkpoint's key
names go through the converter, and the converted model's hidden states and logits must equal
the formulation's. The weights make the long convolutions carry a large share of the output
(unit-variance projections, no skip term), so an error there cannot hide (CPU)."""

import math

import pytest
import torch

from longconv_models.convert import convert

from helpers import implicit_filter_taps, layer_norm, positional_embedding

torch.set_default_dtype(torch.float32)

D, LAYERS, INNER, ORDER, EMB, L_MAX, VOCAB, PADDED = 8, 2, 32, 16, 5, 48, 12, 16


def original_state(modulate: bool, g: torch.Generator) -> dict:
    """Random weights under the names the hyena-dna training checkpoint uses (``model.`` prefix,
    tied head stored too, the shared Sin frequency under every activation's name)."""

    def rnd(*shape, scale=1.0):
        return torch.randn(*shape, generator=g) * scale

    s = {"model.backbone.embeddings.word_embeddings.weight": rnd(PADDED, D)}
    z, t = positional_embedding(L_MAX, EMB)
    for i in range(LAYERS):
        p = f"model.backbone.layers.{i}."
        m = p + "mixer."
        s |= {p + "norm1.weight": 1 + rnd(D, scale=0.1), p + "norm1.bias": rnd(D, scale=0.1),
              p + "norm2.weight": 1 + rnd(D, scale=0.1), p + "norm2.bias": rnd(D, scale=0.1),
              p + "mlp.fc1.weight": rnd(INNER, D, scale=D ** -0.5), p + "mlp.fc1.bias": rnd(INNER, scale=0.1),
              p + "mlp.fc2.weight": rnd(D, INNER, scale=INNER ** -0.5), p + "mlp.fc2.bias": rnd(D, scale=0.1),
              m + "in_proj.weight": rnd(3 * D, D, scale=D ** -0.5), m + "in_proj.bias": rnd(3 * D, scale=0.1),
              m + "out_proj.weight": rnd(D, D, scale=D ** -0.5), m + "out_proj.bias": rnd(D, scale=0.1),
              m + "short_filter.weight": rnd(3 * D, 1, 3, scale=0.5), m + "short_filter.bias": rnd(3 * D, scale=0.1),
              m + "filter_fn.bias": rnd(D, scale=0.1),
              m + "filter_fn.pos_emb.z": z.clone(), m + "filter_fn.pos_emb.t": t.clone(),
              m + "filter_fn.implicit_filter.0.weight": rnd(ORDER, EMB), m + "filter_fn.implicit_filter.0.bias": rnd(ORDER),
              m + "filter_fn.implicit_filter.2.weight": rnd(ORDER, ORDER, scale=ORDER ** -0.5),
              m + "filter_fn.implicit_filter.2.bias": rnd(ORDER),
              m + "filter_fn.implicit_filter.4.weight": rnd(ORDER, ORDER, scale=ORDER ** -0.5),
              m + "filter_fn.implicit_filter.4.bias": rnd(ORDER),
              m + "filter_fn.implicit_filter.6.weight": rnd(D, ORDER, scale=ORDER ** -0.5)}
        freq = 10 + rnd(1, ORDER)
        for j in (1, 3, 5):
            s[m + f"filter_fn.implicit_filter.{j}.freq"] = freq.clone()
        if modulate:  # decay rates as the original spreads them (target 1e-2 at 30% / 150% of the length)
            s[m + "filter_fn.modulation.deltas"] = torch.linspace(math.log(1e-2) / 1.5, math.log(1e-2) / 0.3,
                                                                  D)[None, None]
    s["model.backbone.ln_f.weight"] = 1 + rnd(D, scale=0.1)
    s["model.backbone.ln_f.bias"] = rnd(D, scale=0.1)
    s["model.lm_head.weight"] = s["model.backbone.embeddings.word_embeddings.weight"]
    return s


def hyena_operator(x, s, m, modulate, shift):
    """Order-2 Hyena: (x0, x1, v) = causal depthwise width-3 conv of in_proj(x);
    y[t] = x0[t] * (sum_{j <= t} h[j] (x1 v)[t - j] + D (x1 v)[t]); out_proj(y)."""
    B, L, _ = x.shape
    u = (x @ s[m + "in_proj.weight"].T + s[m + "in_proj.bias"]).transpose(1, 2)  # (B, 3D, L)
    w = s[m + "short_filter.weight"][:, 0]  # (3D, 3): tap 2 is the current position
    conv = s[m + "short_filter.bias"][None, :, None].expand(B, -1, L).clone()
    for j in range(3):
        lag = 2 - j
        conv[:, :, lag:] += w[:, j, None] * u[:, :, : L - lag]
    x0, x1, v = conv.split(D, dim=1)
    f = m + "filter_fn."
    h = implicit_filter_taps(s, f, L, modulate=modulate, shift=shift)  # (L, D)
    xv = x1 * v
    y = s[f + "bias"][None, :, None] * xv
    for j in range(L):  # explicit causal sum over lags
        y[:, :, j:] += h[j][None, :, None] * xv[:, :, : L - j]
    return (y * x0).transpose(1, 2) @ s[m + "out_proj.weight"].T + s[m + "out_proj.bias"]


def formulation(s, ids, modulate, shift):
    """Pre-norm blocks with a running residual, as the original backbone: (hidden, logits)."""
    s = {k: v.double() for k, v in s.items()}
    hidden, residual = s["model.backbone.embeddings.word_embeddings.weight"][ids], None
    for i in range(LAYERS):
        p = f"model.backbone.layers.{i}."
        residual = hidden if residual is None else hidden + residual
        h = hyena_operator(layer_norm(residual, s[p + "norm1.weight"], s[p + "norm1.bias"], 1e-5), s, p + "mixer.",
                           modulate, shift)
        residual = h + residual
        h = layer_norm(residual, s[p + "norm2.weight"], s[p + "norm2.bias"], 1e-5)
        a = h @ s[p + "mlp.fc1.weight"].T + s[p + "mlp.fc1.bias"]
        a = 0.5 * a * (1 + torch.tanh(math.sqrt(2 / math.pi) * (a + 0.044715 * a ** 3)))  # GELU, tanh form
        hidden = a @ s[p + "mlp.fc2.weight"].T + s[p + "mlp.fc2.bias"]
    final = layer_norm(hidden + residual, s["model.backbone.ln_f.weight"], s["model.backbone.ln_f.bias"], 1e-5)
    return final, final @ s["model.lm_head.weight"].T


def hyper_parameters(modulate):
    omegaconf = pytest.importorskip("omegaconf")
    return omegaconf.OmegaConf.create({"model": {
        "_name_": "lm", "d_model": D, "n_layer": LAYERS, "d_inner": INNER, "vocab_size": VOCAB,
        "resid_dropout": 0.0, "embed_dropout": 0.1, "pad_vocab_size_multiple": 8,
        "layer": {"_name_": "hyena", "emb_dim": EMB, "filter_order": ORDER, "local_order": 3, "l_max": L_MAX,
                  "modulate": modulate, "w": 10}}})


@pytest.mark.parametrize("modulate", [True, False])
def test_converted_model_equals_the_published_formulation(tmp_path, modulate):
    g = torch.Generator().manual_seed(7 + modulate)
    state = original_state(modulate, g)
    torch.save({"state_dict": state, "hyper_parameters": hyper_parameters(modulate)}, tmp_path / "weights.ckpt")
    model = convert(tmp_path / "weights.ckpt", None).double().eval()
    ids = torch.randint(0, VOCAB, (2, 40), generator=g)
    hidden, logits = formulation(state, ids, modulate, model.config.modulation_shift)
    with torch.no_grad():
        ours = model(ids, output_hidden_states=True)
    assert torch.allclose(ours.hidden_states[-1], hidden, atol=1e-10, rtol=1e-9)
    assert torch.allclose(ours.logits[..., :VOCAB], logits[..., :VOCAB], atol=1e-10, rtol=1e-9)
    # the long convolutions matter here: without the filters the output moves far beyond the tolerance
    no_filter = {k: (v * 0 if "implicit_filter.6" in k else v) for k, v in state.items()}
    assert (formulation(no_filter, ids, modulate, model.config.modulation_shift)[0] - hidden).abs().max() > 1e-2
