"""M2-BERT as Hugging Face models.

Layer: h <- MonarchMixer(h) (no residual, no pre-norm: the mixer's second long conv carries the
input through); h <- LayerNorm(h + MonarchGLU(h)). Module names follow the published
checkpoints (``bert.embeddings.*``, ``bert.encoder.layer.{i}.attention.*``, ``.mlp.gated_layers``,
``.mlp.wo``, ``.mlp.layernorm``, ``bert.pooler.dense``, ``cls.predictions.*``).

The mixer ignores the attention mask (as the original does): the published embeddings were
computed on inputs padded to ``max_position_embeddings``; pad the same way to reproduce them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.activations import ACT2FN
from transformers.loss.loss_utils import ForMaskedLMLoss
from transformers.modeling_outputs import (
    BaseModelOutputWithPooling,
    MaskedLMOutput,
    ModelOutput,
    SequenceClassifierOutput,
)
from transformers.utils.generic import can_return_tuple

from ...layers import BlockdiagLinear, MonarchMixerSequenceMixing
from ...ops.add_layer_norm import add_layer_norm
from .._common import FrequencySparseMixin, check_input_ids, sequence_classification_loss, upcast_logits
from ...layers.hyena_filter import init_filter_module
from .configuration_m2_bert import M2BertConfig


class M2BertEmbeddings(nn.Module):
    def __init__(self, config: M2BertConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.use_positions = config.use_positional_encodings
        if self.use_positions:
            self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.register_buffer("position_ids", torch.arange(config.max_position_embeddings)[None], persistent=True)

    def forward(self, input_ids=None, token_type_ids=None, inputs_embeds=None):
        if inputs_embeds is None:
            check_input_ids(input_ids, self.word_embeddings.num_embeddings)
            emb = self.word_embeddings(input_ids)
        else:
            emb = inputs_embeds
        B, L = emb.shape[:2]
        if L > self.position_ids.shape[1] and self.use_positions:
            raise ValueError(f"sequence length {L} exceeds max_position_embeddings={self.position_ids.shape[1]}")
        if token_type_ids is None:
            token_type_ids = torch.zeros(B, L, dtype=torch.long, device=emb.device)
        emb = emb + self.token_type_embeddings(token_type_ids)
        if self.use_positions:
            emb = emb + self.position_embeddings(self.position_ids[:, :L])
        return self.dropout(self.LayerNorm(emb))


class M2BertGLUMLP(nn.Module):
    """r -> LayerNorm(r + wo(gelu(g[:, :I]) * g[:, I:])), g = gated_layers(r), block-diagonal."""

    def __init__(self, config: M2BertConfig):
        super().__init__()
        if not config.use_glu_mlp:
            raise NotImplementedError("only the GLU MLP of the published M2-BERT models is implemented")
        H, I, nb = config.hidden_size, config.intermediate_size, config.monarch_mlp_nblocks
        if config.use_monarch_mlp:
            self.gated_layers = BlockdiagLinear(H, 2 * I, nblocks=nb, bias=False)
            self.wo = BlockdiagLinear(I, H, nblocks=nb, bias=True)
        else:
            self.gated_layers = nn.Linear(H, 2 * I, bias=False)
            self.wo = nn.Linear(I, H)
        self.intermediate_size = I
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.layernorm = nn.LayerNorm(H, eps=config.layer_norm_eps)

    def forward(self, r):
        g = self.gated_layers(r)
        if torch.compiler.is_compiling():  # traced: plain ops (inductor fuses them; out= is eager-only)
            gate, value = g.chunk(2, dim=-1)
            a = F.gelu(gate) * value
        else:
            a = _GeluGate.apply(g)
        return add_layer_norm(self.wo(self.dropout(a)), r, self.layernorm)[0]


class _GeluGate(torch.autograd.Function):
    """g (..., 2I) -> gelu(g[..., :I]) * g[..., I:], with the gradient of g written as one tensor
    (autograd of the two slices would zero-fill and add two full-size gradients)."""

    @staticmethod
    def forward(ctx, g):
        gate, value = g.chunk(2, dim=-1)
        ctx.save_for_backward(g)
        return F.gelu(gate) * value

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, da):
        (g,) = ctx.saved_tensors
        gate, value = g.chunk(2, dim=-1)
        dg = torch.empty_like(g)
        d_gate, d_value = dg.chunk(2, dim=-1)
        torch.mul(da, F.gelu(gate), out=d_value)
        torch.ops.aten.gelu_backward.grad_input(da * value, gate, grad_input=d_gate)
        return dg


class M2BertLayer(GradientCheckpointingLayer):
    def __init__(self, config: M2BertConfig):
        super().__init__()
        self.attention = MonarchMixerSequenceMixing(
            config.hidden_size,
            max_seq_len=config.long_conv_l_max,
            hyena_filter_order=config.hyena_filter_order,
            hyena_emb_dim=config.hyena_emb_dim,
            hyena_w=config.hyena_w,
            hyena_w_mod=config.hyena_w_mod,
            residual_long_conv=config.residual_long_conv,
            bidirectional=config.bidirectional,
            train_pos_emb=config.hyena_lr_pos_emb > 0,
            training_additions=config.hyena_training_additions,
        )
        self.mlp = M2BertGLUMLP(config)

    def forward(self, hidden_states, attention_mask=None):
        return self.mlp(self.attention(hidden_states, attention_mask))


class M2BertEncoder(nn.Module):
    def __init__(self, config: M2BertConfig):
        super().__init__()
        self.layer = nn.ModuleList([M2BertLayer(config) for _ in range(config.num_hidden_layers)])

    def forward(self, hidden, output_hidden_states=False, attention_mask=None):
        all_hidden = [] if output_hidden_states else None
        for layer in self.layer:
            if output_hidden_states:
                all_hidden.append(hidden)
            # a GradientCheckpointingLayer: gradient_checkpointing_enable() applies
            hidden = layer(hidden, attention_mask)
        if output_hidden_states:
            all_hidden.append(hidden)
        return hidden, all_hidden


class M2BertPooler(nn.Module):
    def __init__(self, config: M2BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.pool_all = config.pool_all

    def forward(self, hidden, attention_mask=None):
        if self.pool_all:
            mask = torch.ones(hidden.shape[:2], device=hidden.device) if attention_mask is None else attention_mask
            mask = mask.to(hidden.dtype)[..., None]
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1)
        else:
            pooled = hidden[:, 0]
        return torch.tanh(self.dense(pooled))


class M2BertPreTrainedModel(FrequencySparseMixin, PreTrainedModel):
    config_class = M2BertConfig
    base_model_prefix = "bert"
    supports_gradient_checkpointing = True
    _no_split_modules = ["M2BertLayer"]

    @torch.no_grad()
    def _init_weights(self, module):
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, BlockdiagLinear)):
            nn.init.normal_(module.weight, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=std)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, M2BertEmbeddings):
            module.position_ids.copy_(torch.arange(module.position_ids.shape[1])[None])
        else:
            init_filter_module(module, self.config.hyena_w)


class M2BertModel(M2BertPreTrainedModel):
    """Embeddings, M2 layers, and (optionally) the pooler. ``pooler_output`` is the sentence
    embedding of the retrieval checkpoints (not L2-normalised)."""

    def __init__(self, config: M2BertConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        self.embeddings = M2BertEmbeddings(config)
        self.encoder = M2BertEncoder(config)
        self.pooler = M2BertPooler(config) if add_pooling_layer else None
        self.post_init()

    def get_input_embeddings(self):
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value):
        self.embeddings.word_embeddings = value

    @can_return_tuple
    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, inputs_embeds=None,
                output_hidden_states=None, **kwargs):
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        hidden = self.embeddings(input_ids, token_type_ids, inputs_embeds)
        # the published models ignore the mask (see M2BertConfig.mask_padding)
        mixer_mask = attention_mask if self.config.mask_padding else None
        hidden, all_hidden = self.encoder(hidden, bool(output_hidden_states), mixer_mask)
        pooled = self.pooler(hidden, attention_mask) if self.pooler is not None else None
        hs = tuple(all_hidden) if all_hidden else None
        return BaseModelOutputWithPooling(last_hidden_state=hidden, pooler_output=pooled, hidden_states=hs)


class M2BertPredictionHead(nn.Module):
    def __init__(self, config: M2BertConfig):
        super().__init__()
        self.transform = nn.Module()
        self.transform.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.transform.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.act = ACT2FN[config.hidden_act]
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)

    def forward(self, hidden):
        h = self.transform.LayerNorm(self.act(self.transform.dense(hidden)))
        return self.decoder(h)


class M2BertForMaskedLM(M2BertPreTrainedModel):
    _tied_weights_keys = {"cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight"}

    def __init__(self, config: M2BertConfig):
        super().__init__(config)
        self.bert = M2BertModel(config, add_pooling_layer=False)
        self.cls = nn.Module()
        self.cls.predictions = M2BertPredictionHead(config)
        self.post_init()

    def get_input_embeddings(self):
        return self.bert.get_input_embeddings()

    def get_output_embeddings(self):
        return self.cls.predictions.decoder

    def set_output_embeddings(self, new_embeddings):
        self.cls.predictions.decoder = new_embeddings

    @can_return_tuple
    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, inputs_embeds=None,
                output_hidden_states=None, num_items_in_batch=None, **kwargs):
        out = self.bert(input_ids, attention_mask, token_type_ids, inputs_embeds, output_hidden_states, return_dict=True)
        logits = upcast_logits(self.cls.predictions(out.last_hidden_state))
        loss = None
        if labels is not None:  # -100 marks positions without a target
            loss = ForMaskedLMLoss(logits, labels, logits.shape[-1], num_items_in_batch=num_items_in_batch)
        return MaskedLMOutput(loss=loss, logits=logits, hidden_states=out.hidden_states)


class M2BertForSequenceClassification(M2BertPreTrainedModel):
    def __init__(self, config: M2BertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = M2BertModel(config)
        p = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(p)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def get_input_embeddings(self):
        return self.bert.get_input_embeddings()

    @can_return_tuple
    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, inputs_embeds=None,
                output_hidden_states=None, **kwargs):
        out = self.bert(input_ids, attention_mask, token_type_ids, inputs_embeds, output_hidden_states, return_dict=True)
        logits = self.classifier(self.dropout(out.pooler_output))
        loss = None if labels is None else sequence_classification_loss(logits, labels, self.config)
        return SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=out.hidden_states)


@dataclass
class M2BertTextEncodingOutput(ModelOutput):
    sentence_embedding: torch.FloatTensor | None = None
    last_hidden_state: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None


class M2BertForTextEncoding(M2BertPreTrainedModel):
    """The retrieval checkpoints' encoder: ``sentence_embedding`` = the pooler output (768-d, not
    normalised; compare embeddings by cosine similarity)."""

    def __init__(self, config: M2BertConfig):
        super().__init__(config)
        self.bert = M2BertModel(config)
        self.post_init()

    @can_return_tuple
    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, inputs_embeds=None,
                output_hidden_states=None, **kwargs):
        out = self.bert(input_ids, attention_mask, token_type_ids, inputs_embeds, output_hidden_states, return_dict=True)
        return M2BertTextEncodingOutput(sentence_embedding=out.pooler_output, last_hidden_state=out.last_hidden_state,
                                        hidden_states=out.hidden_states)
