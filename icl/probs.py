"""Log-probability arithmetic shared by scoring, the experiment and analysis (numpy only)."""
from collections.abc import Sequence

import numpy as np


def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def class_log_probs(logits: np.ndarray, columns: Sequence[int]) -> np.ndarray:
    """Log-softmax over one variant's `columns` of class logits (last axis), in float64: the
    stored logits are float32, and the table's query_log_probs and the curves renormalise alike."""
    return log_softmax(logits[..., columns].astype(np.float64))


def calibrate(log_probs: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Divide by the prior probability and renormalise (in log space)."""
    return log_softmax(log_probs - prior)


def entropy(log_probs: np.ndarray) -> np.ndarray:
    return -(np.exp(log_probs) * log_probs).sum(-1)
