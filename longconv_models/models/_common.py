"""Pieces shared by the model families: input checks, the task heads' loss and the
frequency-sparsity switch."""

import torch
import torch.nn.functional as F

from ..layers import HyenaFilter


def check_input_ids(input_ids: torch.Tensor, vocab_size: int) -> None:
    """A clear error for ids outside ``[0, vocab_size)`` (the rows that pad the embedding to a
    multiple of 8 are not tokens) instead of an index error or a CUDA device assert. One
    host sync on GPU; skipped while compiling."""
    if input_ids.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise TypeError(f"input_ids must be an integer tensor, got {input_ids.dtype}")
    if input_ids.numel() == 0 or torch.compiler.is_compiling():
        return
    lo, hi = torch.stack(torch.aminmax(input_ids)).tolist()  # one device-to-host copy
    if lo < 0 or hi >= vocab_size:
        bad = lo if lo < 0 else hi
        raise ValueError(f"input_ids contains {bad}, outside the vocabulary [0, {vocab_size}) of this model")


def upcast_logits(logits: torch.Tensor) -> torch.Tensor:
    """Half-precision logits in fp32 (the loss and sampling want them so); fp32 / fp64 as they are."""
    return logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits


def sequence_classification_loss(logits, labels, config):
    """The loss of transformers' sequence classifiers (fp32 for half-precision logits), by ``config.problem_type``
    (inferred and recorded when unset, as they do): "regression" (MSE; one label), integer labels
    "single_label_classification" (cross-entropy), float labels per class
    "multi_label_classification" (binary cross-entropy with logits)."""
    if config.problem_type is None:
        if config.num_labels == 1:
            config.problem_type = "regression"
        elif labels.dtype in (torch.long, torch.int):
            config.problem_type = "single_label_classification"
        else:
            config.problem_type = "multi_label_classification"
    logits = upcast_logits(logits)
    if config.problem_type == "regression":
        if config.num_labels == 1:
            return F.mse_loss(logits.view(-1), labels.to(logits.dtype).view(-1))
        return F.mse_loss(logits, labels.to(logits.dtype))
    if config.problem_type == "single_label_classification":
        return F.cross_entropy(logits.view(-1, config.num_labels), labels.view(-1))
    if config.problem_type == "multi_label_classification":
        return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
    raise ValueError(f"unknown problem_type {config.problem_type!r}")


class FrequencySparseMixin:
    """``model.sparsify_frequencies(keep)``: every long filter of the model keeps the lowest
    ``keep`` fraction of its rfft bins (frequency-sparse convolution; 1.0 restores dense).
    An inference-time setting, not saved with the model. See ``examples/frequency_sparse.py``."""

    def sparsify_frequencies(self, keep: float) -> None:
        filters = [m for m in self.modules() if isinstance(m, HyenaFilter)]
        if not filters:
            raise ValueError(f"{type(self).__name__} has no long filters to sparsify")
        for f in filters:
            f.sparsify_frequencies(keep)
