"""Hyena language models (safari / HyenaDNA architecture) as Hugging Face models.

Block (pre-norm):  x <- x + HyenaOperator(LN1(x));  x <- x + MLP(LN2(x));  final LN.
Every long convolution runs through ``longconv_models.ops.fftconv`` (the fused CUDA kernel on
GPU, the PyTorch reference elsewhere). Module names follow the published checkpoints
(``backbone.layers.{i}.mixer.*``, ``norm1``, ``mlp.fc1``, ...).
"""

from __future__ import annotations

import functools
import inspect
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.loss.loss_utils import ForCausalLMLoss
from transformers.modeling_outputs import BaseModelOutput, CausalLMOutput, SequenceClassifierOutput
from transformers.utils import logging
from transformers.utils.generic import can_return_tuple

from ...layers import HyenaOperator
from ...layers.projections import is_plain
from ...ops.add_layer_norm import add_layer_norm
from .._common import FrequencySparseMixin, check_input_ids, sequence_classification_loss, upcast_logits
from ...layers.hyena_filter import init_filter_module
from .cache_hyena import HyenaCache
from .decoding_graph import DecodingGraph
from .configuration_hyena import HyenaConfig

logger = logging.get_logger(__name__)

# A prompt batch larger than this (tokens) is prefilled a few rows at a time (inference only).
PREFILL_CHUNK_TOKENS = 1 << 21


@functools.cache
def cache_kwarg() -> str:
    """Where generate keeps the cache among the model kwargs: "cache" (transformers >= 5.2x) or
    "past_key_values" (earlier 5.x); read once, at the first generate."""
    source = inspect.getsource(GenerationMixin._update_model_kwargs_for_generation)
    return "cache" if '"cache" in outputs' in source else "past_key_values"


@dataclass
class HyenaModelOutput(BaseModelOutput):
    cache: HyenaCache | None = None


@dataclass
class HyenaCausalLMOutput(CausalLMOutput):
    """``cache`` (transformers >= 5.2x) and ``past_key_values`` (earlier 5.x) name the same
    :class:`HyenaCache`."""

    cache: HyenaCache | None = None
    past_key_values: HyenaCache | None = None


class HyenaMLP(nn.Module):
    def __init__(self, d_model: int, d_inner: int):
        super().__init__()
        self.fc1 = nn.Linear(d_model, d_inner)
        self.fc2 = nn.Linear(d_inner, d_model)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class HyenaBlock(GradientCheckpointingLayer):
    def __init__(self, config: HyenaConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(config.d_model, eps=config.layer_norm_epsilon)
        self.mixer = HyenaOperator(
            config.d_model,
            max_seq_len=config.max_seq_len,
            hyena_order=config.hyena_order,
            filter_order=config.filter_order,
            emb_dim=config.emb_dim,
            short_filter_order=config.short_filter_order,
            activation_freq=config.activation_freq,
            num_inner_mlps=config.num_inner_mlps,
            train_freq=config.train_freq,
            train_pos_emb=config.train_pos_emb,
            modulate=config.modulate,
            modulation_shift=config.modulation_shift,
            use_bias=config.use_bias,
            dropout=config.hyena_dropout,
        )
        self.norm2 = nn.LayerNorm(config.d_model, eps=config.layer_norm_epsilon)
        self.mlp = HyenaMLP(config.d_model, config.d_inner)
        self.dropout = nn.Dropout(config.resid_dropout)

    def forward(self, hidden_states: torch.Tensor, residual: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, state=None):
        """(the previous sublayer's output, the residual stream before it) -> the same after this
        block: the residual adds are fused into the norms (``add_layer_norm``), and the residual
        stream keeps the dtype of the sum (fp32 for fp32 weights under autocast). ``attention_mask``
        and the decoding ``state``: see :class:`~longconv_models.layers.HyenaOperator`."""
        normed, residual = add_layer_norm(hidden_states, residual, self.norm1)
        hidden_states = self.dropout(self.mixer(normed, attention_mask, state))
        normed, residual = add_layer_norm(hidden_states, residual, self.norm2)
        return self.dropout(self.mlp(normed)), residual


class HyenaEmbeddings(nn.Module):
    def __init__(self, config: HyenaConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.padded_vocab_size, config.d_model)
        self.vocab_size = config.vocab_size

    def forward(self, input_ids):
        check_input_ids(input_ids, self.vocab_size)
        return self.word_embeddings(input_ids)


class HyenaBackbone(nn.Module):
    def __init__(self, config: HyenaConfig):
        super().__init__()
        self.embeddings = HyenaEmbeddings(config)
        self.dropout = nn.Dropout(config.embed_dropout)
        self.layers = nn.ModuleList([HyenaBlock(config) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.d_model, eps=config.layer_norm_epsilon)

    def forward(self, input_ids=None, inputs_embeds=None, output_hidden_states=False, attention_mask=None, cache=None):
        hidden = self.embeddings(input_ids) if inputs_embeds is None else inputs_embeds
        hidden, residual = self.dropout(hidden), None
        all_hidden = [] if output_hidden_states else None
        for i, layer in enumerate(self.layers):
            if output_hidden_states:  # the residual stream entering the layer
                all_hidden.append(hidden if residual is None else hidden + residual)
            # GradientCheckpointingLayers
            hidden, residual = layer(hidden, residual, attention_mask, None if cache is None else cache.layers[i])
        hidden, _ = add_layer_norm(hidden, residual, self.ln_f)
        if output_hidden_states:
            all_hidden.append(hidden)
        return hidden, all_hidden


class HyenaPreTrainedModel(FrequencySparseMixin, PreTrainedModel):
    config_class = HyenaConfig
    base_model_prefix = "hyena"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _no_split_modules = ["HyenaBlock"]

    @property
    def embeddings(self) -> nn.Module:
        """The token embeddings' module, ``embeddings.word_embeddings`` from the model as in BERT-style
        models (where peft's prompt learning looks for it; the padded vocabulary defeats its guess
        by shape). An alias, not a registered submodule: no second name in the state dict."""
        return self.base_model.backbone.embeddings

    @torch.no_grad()
    def _init_weights(self, module):
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=std)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Conv1d):  # the short depthwise filter
            nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            if module.bias is not None:
                bound = 1 / math.sqrt(module.weight[0].numel())
                nn.init.uniform_(module.bias, -bound, bound)
        else:
            init_filter_module(module, self.config.activation_freq)
        # GPT-2 style: residual output projections scaled by 1/sqrt(2 n_layer)
        for name, p in module.named_parameters(recurse=False):
            if name == "weight" and getattr(module, "_is_residual_proj", False):
                nn.init.normal_(p, std=std / math.sqrt(2 * self.config.n_layer))

    def resize_token_embeddings(self, new_num_tokens=None, pad_to_multiple_of=None, mean_resizing=True):
        """As in transformers; the config then describes the resized matrix exactly
        (``vocab_size`` = its rows, no further padding), so the saved model reloads."""
        emb = super().resize_token_embeddings(new_num_tokens, pad_to_multiple_of, mean_resizing)
        self.config.vocab_size = emb.num_embeddings
        self.config.pad_vocab_size_multiple = 1
        for m in self.modules():
            if isinstance(m, HyenaEmbeddings):
                m.vocab_size = emb.num_embeddings
        return emb

    def extend_context(self, max_length: int, filter_length: int | None = None) -> None:
        """Run on sequences up to ``max_length`` tokens, beyond the training length, with partial
        convolutions: every layer keeps the first ``filter_length`` taps of its filter (default:
        all ``max_seq_len`` trained taps). See ``examples/context_extension.py``."""
        for m in self.modules():
            if hasattr(m, "filter_fn"):
                m.filter_fn.extend_context(max_length, filter_length)
        # recorded in the config: a saved extended model reloads extended
        self.config.max_context_length = max_length
        self.config.context_filter_length = filter_length


class HyenaModel(HyenaPreTrainedModel):
    """The Hyena backbone: embeddings, blocks, final LayerNorm -> ``last_hidden_state``."""

    def __init__(self, config: HyenaConfig):
        super().__init__(config)
        self.backbone = HyenaBackbone(config)
        for layer in self.backbone.layers:
            layer.mixer.out_proj._is_residual_proj = True
            layer.mlp.fc2._is_residual_proj = True
            if getattr(config, "max_context_length", None):  # saved after extend_context
                layer.mixer.filter_fn.extend_context(config.max_context_length,
                                                     getattr(config, "context_filter_length", None))
        self.post_init()

    def get_input_embeddings(self):
        return self.backbone.embeddings.word_embeddings

    def set_input_embeddings(self, value):
        self.backbone.embeddings.word_embeddings = value

    @can_return_tuple
    def forward(self, input_ids=None, inputs_embeds=None, output_hidden_states=None, attention_mask=None,
                cache=None, **kwargs):
        """``attention_mask`` (B, L): 0 marks padding, which then reaches no convolution (a
        left-padded row gives the outputs of the row alone). ``cache``: a :class:`HyenaCache`;
        empty, the inputs are a prefix it records; holding a prefix, the inputs are the next
        tokens, decoded incrementally."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        x = input_ids if input_ids is not None else inputs_embeds
        decoding = cache is not None and cache.get_seq_length() > 0
        if cache is not None and not decoding:  # a prefix: fresh states for its batch
            cache.begin(x.shape[0], x.device, self.get_input_embeddings().weight.dtype)
        if attention_mask is not None:
            if attention_mask.shape[:2] != x.shape[:2] and not decoding:
                raise ValueError(f"attention_mask has shape {tuple(attention_mask.shape)}, input_ids {tuple(x.shape[:2])}")
            if decoding:
                attention_mask = None  # the new tokens are real
        hidden, all_hidden = self.backbone(input_ids, inputs_embeds, bool(output_hidden_states), attention_mask, cache)
        return HyenaModelOutput(last_hidden_state=hidden, hidden_states=tuple(all_hidden) if all_hidden else None,
                                cache=cache)


class HyenaForCausalLM(HyenaPreTrainedModel, GenerationMixin):
    """Hyena LM with a (tied) LM head over the padded vocabulary. ``generate`` prefills the
    prompt with the fused kernels and decodes with a :class:`HyenaCache` (per token: the
    projections, MLP and norms of the new token, and the long convolution incrementally; see
    ``layers/incremental_conv.py``); ``attention_mask`` makes left-padded batches exact."""

    _tied_weights_keys = {"lm_head.weight": "hyena.backbone.embeddings.word_embeddings.weight"}

    def __init__(self, config: HyenaConfig):
        super().__init__(config)
        self.hyena = HyenaModel(config)
        self.lm_head = nn.Linear(config.d_model, config.padded_vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self):
        return self.hyena.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.hyena.set_input_embeddings(value)

    def get_output_embeddings(self):
        return self.lm_head

    def set_output_embeddings(self, new_embeddings):
        self.lm_head = new_embeddings

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        return False  # no key/value cache: prepare_inputs_for_generation makes a HyenaCache

    def _prepare_cache_for_generation(self, generation_config, model_kwargs, *args, **kwargs):
        if model_kwargs.get("cache") is not None or model_kwargs.get("past_key_values") is not None:
            return  # the caller's
        if generation_config.use_cache is not False and self._can_decode_incrementally():
            model_kwargs[cache_kwarg()] = HyenaCache(self)

    def prepare_inputs_for_generation(self, input_ids, attention_mask=None, use_cache=True, inputs_embeds=None,
                                      next_sequence_length=None, **kwargs):
        """The positions the cache has not seen: the new tokens (``next_sequence_length`` of them
        when generate says, transformers >= 5.2x; else those past the cache's length). Generating
        from ``inputs_embeds`` (a soft prompt), ``input_ids`` holds only the tokens generated after
        them: the embeddings are prefilled (with those tokens embedded when there is no cache)."""
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        seen = 0 if cache is None else cache.get_seq_length()
        prompt = 0 if inputs_embeds is None else inputs_embeds.shape[1]
        if seen and next_sequence_length is not None:
            new = input_ids[:, input_ids.shape[1] - next_sequence_length:]
        else:
            new = input_ids[:, max(seen - prompt, 0):]
        # generating: the logits cover the vocabulary only (the rows that pad the embedding are no
        # tokens; beam search also reads the width as config.vocab_size)
        inputs = {"input_ids": new, "attention_mask": attention_mask, "cache": cache,
                  "use_cache": cache is not None, "vocabulary_logits": True}
        if seen:
            # also under its older name while decoding: peft's prompt learning injects its virtual
            # tokens where it finds no past_key_values (the prefill, or every step without a cache)
            inputs["past_key_values"] = cache
        if inputs_embeds is not None and seen < prompt:  # the prefill, or every step without a cache
            tokens = self.get_input_embeddings()(new).to(inputs_embeds.dtype)
            inputs.update(input_ids=None, inputs_embeds=torch.cat([inputs_embeds[:, seen:], tokens], dim=1))
        if "logits_to_keep" in kwargs:  # the prefill needs the last position's logits only
            inputs["logits_to_keep"] = kwargs["logits_to_keep"]
        return inputs

    def _warn_past_max_length(self, cache: HyenaCache, total: int) -> None:
        limit = cache.max_length
        if total > limit:
            logger.warning_once(
                f"decoding past the filters' maximum length {limit}: continuing with the partial-convolution rule "
                "of extend_context (taps past the trained filter length are zero); call model.extend_context(...) "
                "to choose the length and the taps explicitly")

    def _can_decode_incrementally(self) -> bool:
        sparse = any(getattr(m, "frequency_keep", 1.0) < 1.0 for m in self.modules())
        if sparse:
            logger.warning_once("frequency-sparse filters: generate re-runs the prefix at every step (no cache)")
        # the decoding state keeps the short filter's weights: an adapter in its place is not a plain conv
        wrapped = any(not is_plain(layer.mixer.short_filter, nn.Conv1d) for layer in self.hyena.backbone.layers)
        if wrapped:
            logger.warning_once("the short convolutions are wrapped (an adapter): generate re-runs the prefix at "
                                "every step (no cache)")
        return not sparse and not wrapped and not self.training

    def _graph_step_applies(self, input_ids, inputs_embeds, cache, output_hidden_states) -> bool:
        """One-token decoding steps on a GPU replay a CUDA graph (``decoding_graph.py``): plain
        inference only (eval mode, no grad, not traced), token ids in, no hidden states out."""
        return (cache is not None and cache.cuda_graphs and input_ids is not None and inputs_embeds is None
                and input_ids.is_cuda and input_ids.dim() == 2 and input_ids.shape[1] == 1
                and cache.get_seq_length() > 0 and not self.training and not torch.is_grad_enabled()
                and not (output_hidden_states or self.config.output_hidden_states)
                and not torch.compiler.is_compiling() and not torch.cuda.is_current_stream_capturing())

    def _graph_step(self, input_ids, cache: HyenaCache) -> torch.Tensor:
        check_input_ids(input_ids, self.config.vocab_size)
        if cache.graph is not None and cache.graph.valid_for(cache, input_ids):
            return cache.graph.replay(input_ids)
        cache.graph = DecodingGraph(self, cache, input_ids)
        logits = cache.graph.first_logits
        if cache.graph.error is not None:
            logger.warning_once(f"decoding without a CUDA graph (recording failed: {cache.graph.error})")
            cache.cuda_graphs, cache.graph = False, None
        return logits

    def _head(self, hidden: torch.Tensor, logits_to_keep) -> torch.Tensor:
        if isinstance(logits_to_keep, int) and logits_to_keep < 0:
            raise ValueError(f"logits_to_keep must be >= 0 (0: every position), got {logits_to_keep}")
        kept = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        return upcast_logits(self.lm_head(hidden[:, kept]))

    def _row_chunks(self, input_ids, inputs_embeds, cache, output_hidden_states) -> int | None:
        """Rows per chunk when a prompt is prefilled into a fresh cache a few rows at a time: a
        batch of more than ``PREFILL_CHUNK_TOKENS`` tokens without gradients (the activations of
        the whole batch at once would dwarf the cache it leaves); ``None`` otherwise."""
        x = input_ids if input_ids is not None else inputs_embeds
        if cache is None or cache.get_seq_length() > 0 or torch.is_grad_enabled() or x.dim() < 2:
            return None
        B, L = x.shape[:2]
        if B < 2 or B * L <= PREFILL_CHUNK_TOKENS or output_hidden_states or self.config.output_hidden_states:
            return None
        if torch.compiler.is_compiling():
            return None
        return max(1, PREFILL_CHUNK_TOKENS // L)

    def _prefill_in_row_chunks(self, input_ids, inputs_embeds, attention_mask, cache, logits_to_keep, rows: int):
        x = input_ids if input_ids is not None else inputs_embeds
        logits, parts = [], []
        for r in range(0, x.shape[0], rows):
            part = HyenaCache(self, block=cache.block, cuda_graphs=cache.cuda_graphs, fused_step=cache.fused_step)
            pick = slice(r, r + rows)
            out = self.hyena(input_ids=None if input_ids is None else input_ids[pick],
                             inputs_embeds=None if inputs_embeds is None else inputs_embeds[pick],
                             attention_mask=None if attention_mask is None else attention_mask[pick],
                             cache=part, return_dict=True)
            logits.append(self._head(out.last_hidden_state, logits_to_keep))
            parts.append(part)
        cache.join(parts)
        return torch.cat(logits), HyenaModelOutput(cache=cache)

    @can_return_tuple
    def forward(self, input_ids=None, labels=None, inputs_embeds=None, output_hidden_states=None,
                num_items_in_batch=None, attention_mask=None, cache=None, use_cache=None,
                logits_to_keep: int | torch.Tensor = 0, **kwargs):
        """``logits_to_keep``: logits for the last that many positions only (0: all; a tensor: those
        positions), as in transformers' causal LMs (``generate`` asks for 1 in the prefill).
        ``labels`` are the input ids (shifted inside; -100 is ignored) or ``shift_labels`` (a
        keyword, as in transformers' causal LMs: a named argument would make ``Trainer`` expect it
        in every batch) the already shifted targets; ``num_items_in_batch`` (from ``Trainer``
        under gradient accumulation) normalises the summed loss."""
        shift_labels = kwargs.pop("shift_labels", None)
        cache = cache if cache is not None else kwargs.pop("past_key_values", None)
        if cache is None and use_cache:
            cache = HyenaCache(self)
        if cache is not None:
            self._warn_past_max_length(cache, cache.get_seq_length() + (input_ids if input_ids is not None else inputs_embeds).shape[1])
        graph_step = self._graph_step_applies(input_ids, inputs_embeds, cache, output_hidden_states)
        rows = None if graph_step else self._row_chunks(input_ids, inputs_embeds, cache, output_hidden_states)
        if graph_step:
            logits, out = self._graph_step(input_ids, cache), HyenaModelOutput(cache=cache)
        elif rows is not None:
            logits, out = self._prefill_in_row_chunks(input_ids, inputs_embeds, attention_mask, cache, logits_to_keep,
                                                      rows)
        else:
            out = self.hyena(input_ids=input_ids, inputs_embeds=inputs_embeds,
                             output_hidden_states=output_hidden_states, attention_mask=attention_mask, cache=cache,
                             return_dict=True)
            logits = self._head(out.last_hidden_state, logits_to_keep)
        if kwargs.get("vocabulary_logits"):
            logits = logits[..., : self.config.vocab_size]
        loss = None
        if labels is not None or shift_labels is not None:
            loss = ForCausalLMLoss(logits, labels, logits.shape[-1], num_items_in_batch=num_items_in_batch,
                                   shift_labels=shift_labels)
        return HyenaCausalLMOutput(loss=loss, logits=logits, hidden_states=out.hidden_states, cache=cache,
                                   past_key_values=cache)


class HyenaForSequenceClassification(HyenaPreTrainedModel):
    """Sequence classification: a linear head on the last non-padding token."""

    def __init__(self, config: HyenaConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.hyena = HyenaModel(config)
        self.score = nn.Linear(config.d_model, config.num_labels, bias=False)
        self.post_init()

    def get_input_embeddings(self):
        return self.hyena.get_input_embeddings()

    @can_return_tuple
    def forward(self, input_ids=None, labels=None, inputs_embeds=None, output_hidden_states=None,
                attention_mask=None, **kwargs):
        out = self.hyena(input_ids=input_ids, inputs_embeds=inputs_embeds, output_hidden_states=output_hidden_states,
                         attention_mask=attention_mask, return_dict=True)
        logits = self.score(out.last_hidden_state)
        B, L = logits.shape[:2]
        if input_ids is not None and self.config.pad_token_id is not None:
            # index of the first pad token minus one, modulo L: the last token with left padding
            # or no padding, the last real token with right padding
            last = ((input_ids == self.config.pad_token_id).int().argmax(-1) - 1) % L
        else:
            last = torch.full((B,), L - 1, device=logits.device)
        pooled = logits[torch.arange(B, device=logits.device), last]
        loss = None if labels is None else sequence_classification_loss(pooled, labels, self.config)
        return SequenceClassifierOutput(loss=loss, logits=pooled, hidden_states=out.hidden_states)
