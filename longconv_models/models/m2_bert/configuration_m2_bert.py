"""Configuration of M2-BERT (Fu et al., "Monarch Mixer: A Simple Sub-Quadratic GEMM-Based
Architecture", NeurIPS 2023)."""

from __future__ import annotations

from transformers import PreTrainedConfig


class M2BertConfig(PreTrainedConfig):
    r"""M2-BERT: BERT with the attention replaced by a Monarch Mixer sequence mixer (gated
    bidirectional Hyena long convolutions) and a block-diagonal (Monarch) GLU MLP.

    Field names follow the published ``config.json`` files (``m2_bert`` / ``bert`` model types),
    so they load as they are. Defaults describe ``togethercomputer/m2-bert-80M-2k-retrieval``.

    Args:
        vocab_size (`int`, 30528), hidden_size (`int`, 768), num_hidden_layers (`int`, 12),
        intermediate_size (`int`, 3072), max_position_embeddings (`int`, 2048),
        type_vocab_size (`int`, 2), layer_norm_eps (`float`, 1e-12), hidden_dropout_prob (`float`, 0.1),
        hidden_act (`str`, "gelu"): activation of the MLM head transform.
        long_conv_l_max (`int`, *optional*): filter length (default max_position_embeddings).
        hyena_filter_order (`int`, 128): width of the filter MLPs; hyena_emb_dim (`int`, 5);
        hyena_w (`float`, 10): Sin frequency init; hyena_w_mod (`float`, 1).
        hyena_lr_pos_emb (`float`, 1e-5): > 0 means z is trained (a parameter).
        residual_long_conv (`bool`, True): the second long conv on the mixer input.
        bidirectional (`bool`, True): causal + anti-causal filter taps.
        use_glu_mlp (`bool`, True), use_monarch_mlp (`bool`, True), monarch_mlp_nblocks (`int`, 4).
        use_positional_encodings (`bool`, True): learned absolute position embeddings.
        hyena_training_additions (`bool`, False): LayerNorm at the mixer input (m2-bert-80M).
        pool_all (`bool`, False): pool by masked mean instead of the CLS token.
        mask_padding (`bool`, *optional*): the attention mask zeroes the padding inside the mixers,
            so a padded row gives the outputs of the row alone. Default: True, except for the
            published checkpoints' configs (those with a remote-code ``auto_map``), whose models
            were trained with the padding visible (inputs padded to ``max_position_embeddings``,
            the mask ignored) and keep that behaviour unless this is set.
        tie_word_embeddings (`bool`, True): the MLM decoder shares the word embedding matrix.
    """

    model_type = "m2_bert"

    def __init__(
        self,
        vocab_size: int = 30528,
        hidden_size: int = 768,
        num_hidden_layers: int = 12,
        intermediate_size: int = 3072,
        max_position_embeddings: int = 2048,
        type_vocab_size: int = 2,
        layer_norm_eps: float = 1e-12,
        hidden_dropout_prob: float = 0.1,
        hidden_act: str = "gelu",
        initializer_range: float = 0.02,
        long_conv_l_max: int | None = None,
        hyena_filter_order: int = 128,
        hyena_emb_dim: int = 5,
        hyena_w: float = 10.0,
        hyena_w_mod: float = 1.0,
        hyena_lr_pos_emb: float = 1e-5,
        residual_long_conv: bool = True,
        bidirectional: bool = True,
        use_glu_mlp: bool = True,
        use_monarch_mlp: bool = True,
        monarch_mlp_nblocks: int = 4,
        use_positional_encodings: bool = True,
        hyena_training_additions: bool = False,
        pool_all: bool = False,
        mask_padding: bool | None = None,
        classifier_dropout: float | None = None,
        pad_token_id: int = 0,
        tie_word_embeddings: bool = True,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.intermediate_size = intermediate_size
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.layer_norm_eps = layer_norm_eps
        self.hidden_dropout_prob = hidden_dropout_prob
        self.hidden_act = hidden_act
        self.initializer_range = initializer_range
        self.long_conv_l_max = long_conv_l_max if long_conv_l_max is not None else max_position_embeddings
        self.hyena_filter_order = hyena_filter_order
        self.hyena_emb_dim = hyena_emb_dim
        self.hyena_w = hyena_w
        self.hyena_w_mod = hyena_w_mod
        self.hyena_lr_pos_emb = hyena_lr_pos_emb
        self.residual_long_conv = residual_long_conv
        self.bidirectional = bidirectional
        self.use_glu_mlp = use_glu_mlp
        self.use_monarch_mlp = use_monarch_mlp
        self.monarch_mlp_nblocks = monarch_mlp_nblocks
        self.use_positional_encodings = use_positional_encodings
        self.hyena_training_additions = hyena_training_additions
        self.pool_all = pool_all
        self.mask_padding = (not kwargs.get("auto_map")) if mask_padding is None else mask_padding
        self.classifier_dropout = classifier_dropout
        if _is_text_encoder(kwargs.get("architectures"), kwargs.get("auto_map")):
            kwargs["architectures"] = ["M2BertForTextEncoding"]
        super().__init__(pad_token_id=pad_token_id, tie_word_embeddings=tie_word_embeddings, **kwargs)


def _is_text_encoder(architectures, auto_map) -> bool:
    """The published retrieval configs name ``BertForSequenceClassification`` but map
    ``AutoModelForSequenceClassification`` to their ``BertForTextEncoding`` (``sentence_embedding``
    output); Auto classes then pick :class:`M2BertForTextEncoding` by this architecture name."""
    seq_cls = str((auto_map or {}).get("AutoModelForSequenceClassification", ""))
    return seq_cls.endswith("BertForTextEncoding") or "BertForTextEncoding" in (architectures or [])
