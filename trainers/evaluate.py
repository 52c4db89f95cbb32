"""Evaluation of a classifier's probabilities against gold labels: the numbers the agent decides on.

Pure numpy, no model: accuracy, macro-F1, per-class precision/recall/F1/support, confusion pairs,
expected calibration error, and one record per item so the agent can show the teacher correct,
misclassified and hard-negative examples (misclassified with the highest confidence).

Macro-F1 averages over the labels that have support in ``gold`` only. A label absent from the
evaluation split has no defined recall; counting it as F1 = 0 would punish the student for how the
split was sampled. Wrong predictions *into* such a label are still paid for, through the recall
of the true labels. ``per_class`` lists every label of the label set; a label without support has
recall and F1 0.0 and its precision reflects any predictions made into it (0.0 when none).

A task with an out-of-scope outcome passes the answers its rejection rule decided (``decided``,
from ``trainers.rejection``): the metrics, items and confusions are then those of what the model
answers, while ECE stays that of the probabilities' own argmax (what temperature scaling calibrates).
``out_of_scope_metrics`` gives the standard three (Larson et al. 2019): in-scope accuracy, out-of-scope
recall and precision.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

ECE_BINS = 15


@dataclass(frozen=True)
class ItemPrediction:
    """One evaluated item; ``confidence`` is the probability of the predicted label (for a confidence
    rejection, ``trainers.rejection``: one minus that of the in-scope label it declined)."""

    index: int
    text: str | None
    gold: str
    predicted: str
    confidence: float
    correct: bool
    gold_probability: float


@dataclass(frozen=True)
class Evaluation:
    """All metrics of one evaluation; ``to_dict`` is what the agent stores as JSON."""

    n: int
    accuracy: float
    macro_f1: float
    per_class: dict[str, dict[str, float]]
    confusions: list[tuple[str, str, int]]  # (gold, predicted, count), off-diagonal, count desc
    ece: float
    items: list[ItemPrediction]

    def correct(self) -> list[ItemPrediction]:
        """Correctly classified items, most confident first."""
        return sorted((i for i in self.items if i.correct), key=lambda i: (-i.confidence, i.index))

    def misclassified(self) -> list[ItemPrediction]:
        """Misclassified items, least sure of the gold label first."""
        return sorted((i for i in self.items if not i.correct), key=lambda i: (i.gold_probability, i.index))

    def hard_negatives(self, limit: int | None = None) -> list[ItemPrediction]:
        """Misclassified items with the highest confidence in the wrong label first."""
        ranked = sorted((i for i in self.items if not i.correct), key=lambda i: (-i.confidence, i.index))
        return ranked if limit is None else ranked[:limit]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only; confusions become ``[gold, predicted, count]`` lists."""
        return {
            "n": self.n,
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "ece": self.ece,
            "per_class": self.per_class,
            "confusions": [[g, p, c] for g, p, c in self.confusions],
            "items": [asdict(item) for item in self.items],
        }


def evaluate(
    gold: list[str],
    proba: np.ndarray,
    labels: list[str],
    texts: list[str] | None = None,
    decided: tuple[np.ndarray, np.ndarray] | None = None,
) -> Evaluation:
    """Score ``proba`` (rows = items, columns in ``labels`` order) against ``gold``.

    ``decided`` (answer column, confidence per item) replaces the argmax where a rule decides the answer.
    """
    proba = np.asarray(proba, dtype=np.float64)
    _check_inputs(gold, proba, labels, texts)
    index = {label: i for i, label in enumerate(labels)}
    y_true = np.array([index[g] for g in gold], dtype=np.int64)
    argmax = proba.argmax(axis=1)
    y_pred, confidence = (argmax, proba.max(axis=1)) if decided is None else (np.asarray(decided[0]), decided[1])
    per_class = _per_class(y_true, y_pred, labels)
    supported = [m["f1"] for m in per_class.values() if m["support"] > 0]
    return Evaluation(
        n=len(gold),
        accuracy=float((y_true == y_pred).mean()),
        macro_f1=float(np.mean(supported)),
        per_class=per_class,
        confusions=_confusions(y_true, y_pred, labels),
        ece=expected_calibration_error(proba.max(axis=1), y_true == argmax),
        items=_items(gold, proba, y_true, y_pred, np.asarray(confidence, dtype=np.float64), labels, texts),
    )


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_labels: int) -> float:
    """Macro-F1 over the label indices that have support in ``y_true`` (as ``evaluate`` computes it)."""
    labels = [str(i) for i in range(n_labels)]
    supported = [m["f1"] for m in _per_class(y_true, y_pred, labels).values() if m["support"] > 0]
    return float(np.mean(supported)) if supported else 0.0


def out_of_scope_metrics(gold: list[str], predicted: list[str], reject_label: str) -> dict[str, float]:
    """``in_scope_accuracy`` (in-scope items answered with their label; a rejection counts as wrong),
    ``oos_recall`` (out-of-scope items rejected) and ``oos_precision`` (rejections that were out of scope).

    A metric without a denominator is left out (no in-scope or no out-of-scope items), except precision,
    which is 0.0 when nothing was rejected, as ``per_class`` does (zero_division=0).
    """
    if len(gold) != len(predicted):
        raise ValueError(f"predicted: {len(predicted)} answers for {len(gold)} gold labels")
    pairs = list(zip(gold, predicted, strict=True))
    in_scope = [(g, p) for g, p in pairs if g != reject_label]
    out = [p for g, p in pairs if g == reject_label]
    rejected = [g for g, p in pairs if p == reject_label]
    metrics: dict[str, float] = {}
    if in_scope:
        metrics["in_scope_accuracy"] = sum(g == p for g, p in in_scope) / len(in_scope)
    if out:
        metrics["oos_recall"] = sum(p == reject_label for p in out) / len(out)
    metrics["oos_precision"] = sum(g == reject_label for g in rejected) / len(rejected) if rejected else 0.0
    return metrics


def _check_inputs(gold: list[str], proba: np.ndarray, labels: list[str], texts: list[str] | None) -> None:
    if not gold:
        raise ValueError("gold: nothing to evaluate (empty)")
    if proba.shape != (len(gold), len(labels)):
        expected = (len(gold), len(labels))
        raise ValueError(f"proba: shape {proba.shape}, expected {expected} = (items, labels)")
    if texts is not None and len(texts) != len(gold):
        raise ValueError(f"texts: {len(texts)} texts for {len(gold)} gold labels")
    unknown = sorted(set(gold) - set(labels))
    if unknown:
        raise ValueError(f"gold: labels not in the label set: {', '.join(unknown[:10])}")


def _per_class(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support per label; 0.0 where a ratio is undefined (zero_division=0)."""
    out: dict[str, dict[str, float]] = {}
    for i, label in enumerate(labels):
        tp = int(np.sum((y_true == i) & (y_pred == i)))
        predicted, support = int(np.sum(y_pred == i)), int(np.sum(y_true == i))
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[label] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
    return out


def _confusions(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> list[tuple[str, str, int]]:
    """Off-diagonal (gold, predicted) pairs with their counts, most frequent first (ties by name)."""
    pairs: dict[tuple[int, int], int] = {}
    for t, p in zip(y_true.tolist(), y_pred.tolist(), strict=True):
        if t != p:
            pairs[(t, p)] = pairs.get((t, p), 0) + 1
    rows = [(labels[t], labels[p], count) for (t, p), count in pairs.items()]
    return sorted(rows, key=lambda r: (-r[2], r[0], r[1]))


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE with equal-width bins over (0, 1]: Σ_b (n_b / N) · |accuracy_b − mean confidence_b|."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    # Bin b holds confidences in (b/bins, (b+1)/bins]; the clip puts exactly 0 into the first bin.
    which = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            ece += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(ece)


def _items(
    gold: list[str],
    proba: np.ndarray,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    confidence: np.ndarray,
    labels: list[str],
    texts: list[str] | None,
) -> list[ItemPrediction]:
    return [
        ItemPrediction(
            index=k,
            text=texts[k] if texts is not None else None,
            gold=gold[k],
            predicted=labels[int(y_pred[k])],
            confidence=float(confidence[k]),
            correct=bool(y_true[k] == y_pred[k]),
            gold_probability=float(proba[k, y_true[k]]),
        )
        for k in range(len(gold))
    ]
