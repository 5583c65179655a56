"""Log-probability arithmetic shared by scoring and analysis (numpy only)."""
import numpy as np


def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def calibrate(log_probs: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Divide by the prior probability and renormalise (in log space)."""
    return log_softmax(log_probs - prior)


def entropy(log_probs: np.ndarray) -> np.ndarray:
    return -(np.exp(log_probs) * log_probs).sum(-1)
