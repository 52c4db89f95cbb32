"""Temperature scaling (Guo et al. 2017): one scalar T > 0 that divides the logits before the softmax.

Fitted on the held-back validation split only, by minimising its negative log-likelihood; the
argmax (so accuracy and F1) never changes, only how sure the student says it is. The search is
a bounded 1-D minimisation over log T, deterministic for the same logits.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

MIN_TEMPERATURE = 0.05
MAX_TEMPERATURE = 20.0


def softmax(logits: ArrayLike, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature`` in float64."""
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    shifted = np.exp(scaled - scaled.max(axis=1, keepdims=True))
    result: np.ndarray = shifted / shifted.sum(axis=1, keepdims=True)
    return result


def nll(logits: ArrayLike, targets: ArrayLike, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``targets`` (column indices) under ``softmax(logits / T)``."""
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    top = scaled.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(scaled - top).sum(axis=1)) + top[:, 0]
    gold = np.asarray(targets, dtype=np.int64)
    picked = scaled[np.arange(len(gold)), gold]
    return float(np.mean(log_norm - picked))


def fit_temperature(logits: ArrayLike, targets: ArrayLike) -> float:
    """The T in [0.05, 20] that minimises the NLL of ``targets``; 1.0 when there is nothing to fit on."""
    from scipy.optimize import minimize_scalar

    values, gold = np.asarray(logits, dtype=np.float64), np.asarray(targets, dtype=np.int64)
    if len(values) == 0:
        return 1.0
    result = minimize_scalar(
        lambda log_t: nll(values, gold, float(np.exp(log_t))),
        bounds=(np.log(MIN_TEMPERATURE), np.log(MAX_TEMPERATURE)),
        method="bounded",
        options={"xatol": 1e-4},
    )
    best = float(np.exp(result.x))
    # Never worse than leaving the model alone (the bounded search could stop short of a flat optimum).
    return best if nll(values, gold, best) <= nll(values, gold, 1.0) else 1.0
