"""Configuration of Hyena language models (safari ``ConvLMHeadModel`` / ``LMBackbone``)."""

from __future__ import annotations

from transformers import PreTrainedConfig


class HyenaConfig(PreTrainedConfig):
    r"""Configuration of a Hyena causal language model (Poli et al., 2023).

    Defaults describe ``Zymrael/hyena-small-150b-tok`` (153M parameters, 18 layers of width 864,
    GPT-2 vocabulary, filters of length 2048 generated from 33 positional features).

    Args:
        vocab_size (`int`, 50257): tokens (the embedding is padded to `pad_vocab_size_multiple`).
        d_model (`int`, 864): width.
        n_layer (`int`, 18): blocks.
        d_inner (`int`, *optional*): MLP hidden size (default 4 * d_model).
        max_seq_len (`int`, 2048): maximum length of the implicit filters (`l_max`).
        emb_dim (`int`, 33): positional features z of the filter MLP (odd).
        filter_order (`int`, 64): width of the filter MLP.
        num_inner_mlps (`int`, 2): inner Linear+Sin layers of the filter MLP.
        hyena_order (`int`, 2): Hyena recurrence order (only 2 is implemented).
        short_filter_order (`int`, 3): width of the causal short convolution.
        activation_freq (`float`, 14.0): initial frequency of the Sin activations.
        train_freq (`bool`, True): the Sin frequency is trainable.
        train_pos_emb (`bool`, True): the positional features z are trainable.
        modulate (`bool`, False): exponential decay modulation of the filters.
        modulation_shift (`float`, 0.0): constant added to the decay.
        use_bias (`bool`, True): the filter's skip term D.
        embed_dropout, resid_dropout, hyena_dropout (`float`): dropout rates.
        hyena_filter_dropout (`float`): read from the published configs and kept, not applied
            (the original code declares it and never uses it).
        layer_norm_epsilon (`float`, 1e-5), initializer_range (`float`, 0.02).
        pad_vocab_size_multiple (`int`, 8): pad the embedding rows to a multiple of this.
        tie_word_embeddings (`bool`, True): tie the LM head to the embedding.
        pad_token_id (`int`, *optional*): padding token (sequence classification pools the last
            token before the first pad).
    """

    model_type = "hyena"
    attribute_map = {"hidden_size": "d_model", "num_hidden_layers": "n_layer"}

    def __init__(
        self,
        vocab_size: int = 50257,
        d_model: int = 864,
        n_layer: int = 18,
        d_inner: int | None = None,
        max_seq_len: int = 2048,
        emb_dim: int = 33,
        filter_order: int = 64,
        num_inner_mlps: int = 2,
        hyena_order: int = 2,
        short_filter_order: int = 3,
        activation_freq: float = 14.0,
        train_freq: bool = True,
        train_pos_emb: bool = True,
        modulate: bool = False,
        modulation_shift: float = 0.0,
        use_bias: bool = True,
        embed_dropout: float = 0.0,
        resid_dropout: float = 0.0,
        hyena_dropout: float = 0.0,
        hyena_filter_dropout: float = 0.0,
        layer_norm_epsilon: float = 1e-5,
        initializer_range: float = 0.02,
        pad_vocab_size_multiple: int = 8,
        tie_word_embeddings: bool = True,
        pad_token_id: int | None = None,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.d_model = d_model
        self.n_layer = n_layer
        self.d_inner = d_inner if d_inner is not None else 4 * d_model
        self.max_seq_len = max_seq_len
        self.emb_dim = emb_dim
        self.filter_order = filter_order
        self.num_inner_mlps = num_inner_mlps
        self.hyena_order = hyena_order
        self.short_filter_order = short_filter_order
        self.activation_freq = activation_freq
        self.train_freq = train_freq
        self.train_pos_emb = train_pos_emb
        self.modulate = modulate
        self.modulation_shift = modulation_shift
        self.use_bias = use_bias
        self.embed_dropout = embed_dropout
        self.resid_dropout = resid_dropout
        self.hyena_dropout = hyena_dropout
        self.hyena_filter_dropout = hyena_filter_dropout
        self.layer_norm_epsilon = layer_norm_epsilon
        self.initializer_range = initializer_range
        self.pad_vocab_size_multiple = pad_vocab_size_multiple
        self.pad_token_id = pad_token_id
        super().__init__(tie_word_embeddings=tie_word_embeddings, pad_token_id=pad_token_id, **kwargs)

    @property
    def padded_vocab_size(self) -> int:
        m = self.pad_vocab_size_multiple
        return (self.vocab_size + m - 1) // m * m
