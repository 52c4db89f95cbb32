"""Bootstrap confidence intervals for accuracy and macro-F1 from an evaluation's per-item predictions.

A test split of a few hundred items measures macro-F1 to within several points, and the model card
should say so. The percentile bootstrap resamples the stored items (gold, predicted) with replacement,
recomputes each metric on every resample, and reports the 2.5th and 97.5th percentiles. Macro-F1 on a
resample uses the same definition as ``trainers.evaluate``: the mean F1 over the labels that have
support in the resample's gold labels. Pure numpy and seeded: the same items give the same interval.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

RESAMPLES = 1000
LEVEL = 0.95
SEED = 0
CHUNK = 100  # resamples scored at once: bounds memory at CHUNK × items indices


@dataclass(frozen=True)
class Interval:
    """A metric's point estimate on all items and its bootstrap percentile interval."""

    estimate: float
    low: float
    high: float
    level: float
    resamples: int
    seed: int
    n: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def bootstrap_intervals(
    gold: list[str],
    predicted: list[str],
    *,
    resamples: int = RESAMPLES,
    level: float = LEVEL,
    seed: int = SEED,
) -> dict[str, Interval]:
    """``{"accuracy": Interval, "macro_f1": Interval}`` from paired gold and predicted labels."""
    y_true, y_pred, n_labels = _encode(gold, predicted)
    point_acc, point_f1 = resample_scores(y_true, y_pred, n_labels, np.arange(len(gold))[None, :])
    acc, f1 = _all_scores(y_true, y_pred, n_labels, resamples, seed)
    tail = (1 - level) / 2 * 100
    return {
        name: Interval(float(point[0]), *_percentiles(scores, tail), level, resamples, seed, len(gold))
        for name, point, scores in (("accuracy", point_acc, acc), ("macro_f1", point_f1, f1))
    }


def intervals_from_evaluation(evaluation: dict[str, Any], **options: Any) -> dict[str, Interval]:
    """Intervals from an ``Evaluation.to_dict()`` (an ``eval_<split>.json``): its items' gold and predicted."""
    items = evaluation.get("items") or []
    return bootstrap_intervals([i["gold"] for i in items], [i["predicted"] for i in items], **options)


def resample_indices(n: int, resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Chunks of at most ``CHUNK`` rows, each row ``n`` item indices drawn with replacement (one resample)."""
    if n < 1:
        raise ValueError("bootstrap: no items to resample")
    if resamples < 1:
        raise ValueError(f"bootstrap: resamples must be at least 1, got {resamples}")
    rng = np.random.default_rng(seed)
    for start in range(0, resamples, CHUNK):
        yield rng.integers(0, n, size=(min(CHUNK, resamples - start), n))


def resample_scores(
    y_true: np.ndarray, y_pred: np.ndarray, n_labels: int, indices: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy and macro-F1 of each row of ``indices`` (one resample per row), vectorised."""
    rows = indices.shape[0]
    t, p = y_true[indices], y_pred[indices]
    offset = np.arange(rows)[:, None] * n_labels  # row k counts into bins [k·L, (k+1)·L)
    size = rows * n_labels
    support = np.bincount((t + offset).ravel(), minlength=size).reshape(rows, n_labels)
    predicted = np.bincount((p + offset).ravel(), minlength=size).reshape(rows, n_labels)
    hits = t == p
    tp = np.bincount((t + offset)[hits], minlength=size).reshape(rows, n_labels)
    # F1 = 2·tp / (support + predicted); 0 where both are 0 (only labels with support are averaged).
    f1 = np.divide(2 * tp, support + predicted, out=np.zeros((rows, n_labels)), where=(support + predicted) > 0)
    has_support = support > 0
    macro_f1 = (f1 * has_support).sum(axis=1) / has_support.sum(axis=1)
    return hits.mean(axis=1), macro_f1


def _encode(gold: list[str], predicted: list[str]) -> tuple[np.ndarray, np.ndarray, int]:
    if len(gold) != len(predicted):
        raise ValueError(f"bootstrap: {len(gold)} gold labels for {len(predicted)} predictions")
    if not gold:
        raise ValueError("bootstrap: no items to resample")
    index = {label: i for i, label in enumerate(dict.fromkeys([*gold, *predicted]))}
    return _codes(gold, index), _codes(predicted, index), len(index)


def _codes(labels: list[str], index: dict[str, int]) -> np.ndarray:
    return np.array([index[label] for label in labels], dtype=np.int64)


def _all_scores(
    y_true: np.ndarray, y_pred: np.ndarray, n_labels: int, resamples: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    chunks = resample_indices(len(y_true), resamples, seed)
    parts = [resample_scores(y_true, y_pred, n_labels, indices) for indices in chunks]
    return np.concatenate([a for a, _ in parts]), np.concatenate([f for _, f in parts])


def _percentiles(scores: np.ndarray, tail: float) -> tuple[float, float]:
    low, high = np.percentile(scores, [tail, 100 - tail])
    return float(low), float(high)
