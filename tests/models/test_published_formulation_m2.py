"""M2-BERT against an independent float64 statement of the published model (the Monarch Mixer
paper's BERT as the m2 repo composes it), written here from the formulas with explicit sums:
random weights under the published checkpoint's key names (``pytorch_model.bin`` + config.json)
go through the converter, and the masked-LM logits must equal the formulation's (CPU).

Per layer: u (B, L, H) [-> LayerNorm with the training additions];
(x1, x2, v) = causal depthwise width-3 conv of in_linear(u);
y = x2 * bidir(x1 * v; k, k_rev, D) + bidir(u; k2, k2_rev, D2),  bidir(x)[t] = sum_{j<=t} k[j] x[t-j]
+ sum_{j} k_rev[j] x[t+1+j] + D x[t];  a = out_linear(y);
then the GLU MLP with post-norm: LayerNorm(a + wo(gelu(g[:I]) * g[I:])), g = gated_layers(a), both
block-diagonal (Monarch) linears. Embeddings: LayerNorm(word + token type + position).
MLM head: decoder(LayerNorm(gelu(dense(h)))), the decoder tied to the word embeddings."""

import json
import math

import pytest
import torch

from longconv_models.convert import convert

from helpers import implicit_filter_taps, layer_norm, positional_embedding

H, LAYERS, INNER, ORDER, EMB, L_MAX, VOCAB, NB = 8, 2, 16, 8, 5, 40, 30, 4


def original_state(training_additions: bool, g: torch.Generator) -> dict:
    def rnd(*shape, scale=1.0):
        return torch.randn(*shape, generator=g) * scale

    def norm(prefix):
        return {prefix + ".weight": 1 + rnd(H, scale=0.1), prefix + ".bias": rnd(H, scale=0.1)}

    z, t = positional_embedding(L_MAX, EMB)
    s = {"bert.embeddings.word_embeddings.weight": rnd(VOCAB, H),
         "bert.embeddings.position_embeddings.weight": rnd(L_MAX, H, scale=0.5),
         "bert.embeddings.token_type_embeddings.weight": rnd(2, H, scale=0.5),
         **norm("bert.embeddings.LayerNorm")}
    for i in range(LAYERS):
        a = f"bert.encoder.layer.{i}.attention."
        s |= {a + "in_linear.weight": rnd(3 * H, H, scale=H ** -0.5), a + "in_linear.bias": rnd(3 * H, scale=0.1),
              a + "out_linear.weight": rnd(H, H, scale=H ** -0.5), a + "out_linear.bias": rnd(H, scale=0.1),
              a + "short_filter.weight": rnd(3 * H, 1, 3, scale=0.5), a + "short_filter.bias": rnd(3 * H, scale=0.1)}
        if training_additions:
            s |= norm(a + "layernorm")
        for fn in ("filter_fn", "filter_fn2"):
            f = a + fn + "."
            s |= {f + "bias": rnd(H, scale=0.3), f + "pos_emb.z": z.clone(), f + "pos_emb.t": t.clone(),
                  f + "modulation.deltas": torch.linspace(math.log(1e-2) / 1.5, math.log(1e-2) / 0.3, H)[None, None]}
            freq = 10 + rnd(1, ORDER)
            for mlp in ("implicit_filter", "implicit_filter_rev"):
                s |= {f + f"{mlp}.0.weight": rnd(ORDER, EMB), f + f"{mlp}.0.bias": rnd(ORDER),
                      f + f"{mlp}.2.weight": rnd(ORDER, ORDER, scale=ORDER ** -0.5), f + f"{mlp}.2.bias": rnd(ORDER),
                      f + f"{mlp}.4.weight": rnd(ORDER, ORDER, scale=ORDER ** -0.5), f + f"{mlp}.4.bias": rnd(ORDER),
                      f + f"{mlp}.6.weight": rnd(H, ORDER, scale=ORDER ** -0.5)}
                for j in (1, 3, 5):  # one Sin module, shared by both MLPs, under every activation's name
                    s[f + f"{mlp}.{j}.freq"] = freq.clone()
        m = f"bert.encoder.layer.{i}.mlp."
        s |= {m + "gated_layers.weight": rnd(NB, 2 * INNER // NB, H // NB, scale=(H // NB) ** -0.5),
              m + "wo.weight": rnd(NB, H // NB, INNER // NB, scale=(INNER // NB) ** -0.5), m + "wo.bias": rnd(H, scale=0.1),
              **norm(m + "layernorm")}
    s |= {"cls.predictions.transform.dense.weight": rnd(H, H, scale=H ** -0.5),
          "cls.predictions.transform.dense.bias": rnd(H, scale=0.1), **norm("cls.predictions.transform.LayerNorm"),
          "cls.predictions.decoder.bias": rnd(VOCAB, scale=0.1)}
    return s


def gelu(x):
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def bidirectional_conv(x, s, f):
    """x (B, H, L): sum_{j<=t} k[j] x[t-j] + sum_j k_rev[j] x[t+1+j] + D x[t]."""
    L = x.shape[-1]
    k, k_rev = implicit_filter_taps(s, f, L), implicit_filter_taps(s, f, L, "implicit_filter_rev")
    y = s[f + "bias"][None, :, None] * x
    for j in range(L):
        y[:, :, j:] += k[j][None, :, None] * x[:, :, : L - j]
        if j + 1 < L:
            y[:, :, : L - 1 - j] += k_rev[j][None, :, None] * x[:, :, j + 1:]
    return y


def blockdiag(x, w, b=None):
    nb, out_b, in_b = w.shape
    y = torch.einsum("...ki,koi->...ko", x.reshape(*x.shape[:-1], nb, in_b), w).reshape(*x.shape[:-1], nb * out_b)
    return y if b is None else y + b


def formulation(s, ids, training_additions, eps=1e-12):
    s = {k: v.double() for k, v in s.items()}
    B, L = ids.shape
    e = "bert.embeddings."
    h = s[e + "word_embeddings.weight"][ids] + s[e + "token_type_embeddings.weight"][0] + \
        s[e + "position_embeddings.weight"][:L]
    h = layer_norm(h, s[e + "LayerNorm.weight"], s[e + "LayerNorm.bias"], eps)
    for i in range(LAYERS):
        a = f"bert.encoder.layer.{i}.attention."
        u = layer_norm(h, s[a + "layernorm.weight"], s[a + "layernorm.bias"], 1e-5) if training_additions else h
        p = (u @ s[a + "in_linear.weight"].T + s[a + "in_linear.bias"]).transpose(1, 2)  # (B, 3H, L)
        w = s[a + "short_filter.weight"][:, 0]
        c = s[a + "short_filter.bias"][None, :, None].expand(B, -1, L).clone()
        for j in range(3):
            c[:, :, 2 - j:] += w[:, j, None] * p[:, :, : L - (2 - j)]
        x1, x2, v = c.split(H, dim=1)
        y = x2 * bidirectional_conv(x1 * v, s, a + "filter_fn.") + bidirectional_conv(u.transpose(1, 2), s,
                                                                                      a + "filter_fn2.")
        att = y.transpose(1, 2) @ s[a + "out_linear.weight"].T + s[a + "out_linear.bias"]
        m = f"bert.encoder.layer.{i}.mlp."
        gated = blockdiag(att, s[m + "gated_layers.weight"])
        mixed = blockdiag(gelu(gated[..., :INNER]) * gated[..., INNER:], s[m + "wo.weight"], s[m + "wo.bias"])
        h = layer_norm(mixed + att, s[m + "layernorm.weight"], s[m + "layernorm.bias"], eps)
    c = "cls.predictions."
    t = gelu(h @ s[c + "transform.dense.weight"].T + s[c + "transform.dense.bias"])
    t = layer_norm(t, s[c + "transform.LayerNorm.weight"], s[c + "transform.LayerNorm.bias"], eps)
    return h, t @ s[e + "word_embeddings.weight"].T + s[c + "decoder.bias"]


@pytest.mark.parametrize("training_additions", [False, True])
def test_converted_m2_bert_equals_the_published_formulation(tmp_path, training_additions):
    g = torch.Generator().manual_seed(3 + training_additions)
    state = original_state(training_additions, g)
    torch.save(state, tmp_path / "pytorch_model.bin")
    config = dict(model_type="m2_bert", architectures=["BertForMaskedLM"], vocab_size=VOCAB, hidden_size=H,
                  num_hidden_layers=LAYERS, intermediate_size=INNER, max_position_embeddings=L_MAX,
                  long_conv_l_max=L_MAX, hyena_filter_order=ORDER, hyena_emb_dim=EMB, hyena_w=10,
                  monarch_mlp_nblocks=NB, use_monarch_mlp=True, residual_long_conv=True, bidirectional=True,
                  hyena_training_additions=training_additions, hidden_dropout_prob=0.0)
    (tmp_path / "config.json").write_text(json.dumps(config))
    model = convert(tmp_path, None).double().eval()
    ids = torch.randint(1, VOCAB, (2, 33), generator=g)
    hidden, logits = formulation(state, ids, training_additions)
    with torch.no_grad():
        ours = model(ids, output_hidden_states=True)
    assert torch.allclose(ours.hidden_states[-1], hidden, atol=1e-10, rtol=1e-9)
    assert torch.allclose(ours.logits, logits, atol=1e-9, rtol=1e-9)
