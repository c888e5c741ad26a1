"""Configuration of HyenaDNA (Nguyen et al., "HyenaDNA: Long-Range Genomic Foundation Models at
Single Nucleotide Resolution", NeurIPS 2023)."""

from __future__ import annotations

from ..hyena.configuration_hyena import HyenaConfig


class HyenaDNAConfig(HyenaConfig):
    r"""HyenaDNA: a Hyena LM over DNA characters. Field names and defaults follow the published
    ``LongSafari/hyenadna-*-seqlen-hf`` ``config.json`` (``model_type: "hyenadna"``), so those
    configs load as they are; the published models use vocab_size 12, emb_dim 5, filter_order 64,
    activation_freq 10 and max_seq_len = training length + 2.

    Extra fields: ``train_pos_emb`` (False: z is a fixed buffer in HyenaDNA), ``modulate`` (True)
    and ``modulation_shift`` (0.05 reproduces the ``-hf`` remote code; the training code used 0.0).
    See :class:`~longconv_models.models.hyena.HyenaConfig` for the other fields.
    """

    model_type = "hyenadna"

    def __init__(
        self,
        vocab_size: int = 12,
        d_model: int = 256,
        n_layer: int = 12,
        d_inner: int | None = None,
        max_seq_len: int = 1024,
        emb_dim: int = 3,
        filter_order: int = 64,
        activation_freq: float = 1.0,
        train_pos_emb: bool = False,
        modulate: bool = True,
        modulation_shift: float = 0.05,
        embed_dropout: float = 0.1,
        tie_word_embeddings: bool = False,
        pad_token_id: int = 4,
        **kwargs,
    ):
        super().__init__(
            vocab_size=vocab_size, d_model=d_model, n_layer=n_layer, d_inner=d_inner, max_seq_len=max_seq_len,
            emb_dim=emb_dim, filter_order=filter_order, activation_freq=activation_freq,
            train_pos_emb=train_pos_emb, modulate=modulate, modulation_shift=modulation_shift,
            embed_dropout=embed_dropout, tie_word_embeddings=tie_word_embeddings, pad_token_id=pad_token_id,
            **kwargs,
        )
