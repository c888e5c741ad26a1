"""Pieces shared by the model families' task heads."""

import torch.nn.functional as F


def sequence_classification_loss(logits, labels, num_labels: int):
    """Regression (MSE) for one label, cross-entropy otherwise, in fp32."""
    if num_labels == 1:
        return F.mse_loss(logits.squeeze(-1).float(), labels.float())
    return F.cross_entropy(logits.float(), labels)
