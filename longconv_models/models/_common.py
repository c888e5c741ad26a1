"""Pieces shared by the model families: the task heads' loss and the frequency-sparsity switch."""

import torch.nn.functional as F


def sequence_classification_loss(logits, labels, num_labels: int):
    """Regression (MSE) for one label, cross-entropy otherwise, in fp32."""
    if num_labels == 1:
        return F.mse_loss(logits.squeeze(-1).float(), labels.float())
    return F.cross_entropy(logits.float(), labels)


class FrequencySparseMixin:
    """``model.sparsify_frequencies(keep)``: every long filter of the model keeps the lowest
    ``keep`` fraction of its rfft bins (frequency-sparse convolution; 1.0 restores dense).
    An inference-time setting, not saved with the model. See ``examples/frequency_sparse.py``."""

    def sparsify_frequencies(self, keep: float) -> None:
        from ..layers import HyenaFilter

        filters = [m for m in self.modules() if isinstance(m, HyenaFilter)]
        if not filters:
            raise ValueError(f"{type(self).__name__} has no long filters to sparsify")
        for f in filters:
            f.sparsify_frequencies(keep)
