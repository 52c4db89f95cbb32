"""Bootstrap intervals: the point estimate is the metric on all items, the resamples match trainers.evaluate."""

from __future__ import annotations

import numpy as np
import pytest

from trainers.bootstrap import bootstrap_intervals, intervals_from_evaluation, resample_indices, resample_scores
from trainers.evaluate import evaluate

LABELS = ["a", "b", "c"]


def known_predictions() -> tuple[list[str], list[str]]:
    """100 items, 80 correct: gold a×50, b×30, c×20; 10 a→b, 6 b→c, 4 c→a."""
    gold = ["a"] * 50 + ["b"] * 30 + ["c"] * 20
    predicted = ["b"] * 10 + ["a"] * 40 + ["c"] * 6 + ["b"] * 24 + ["a"] * 4 + ["c"] * 16
    return gold, predicted


def one_hot(predicted: list[str]) -> np.ndarray:
    return np.array([[0.9 if label == p else 0.05 for label in LABELS] for p in predicted])


def test_interval_brackets_the_estimate_with_the_expected_width() -> None:
    gold, predicted = known_predictions()
    ci = bootstrap_intervals(gold, predicted)
    full = evaluate(gold, one_hot(predicted), LABELS)
    assert ci["accuracy"].estimate == pytest.approx(0.8) == pytest.approx(full.accuracy)
    assert ci["macro_f1"].estimate == pytest.approx(full.macro_f1)
    for interval in ci.values():
        assert interval.low < interval.estimate < interval.high
        assert (interval.n, interval.resamples, interval.level) == (100, 1000, 0.95)
    # Binomial standard error sqrt(0.8·0.2/100) = 0.04: a 95% interval about ±0.078 wide.
    assert ci["accuracy"].high - ci["accuracy"].low == pytest.approx(2 * 1.96 * 0.04, abs=0.03)


def test_seeded_and_reproducible() -> None:
    gold, predicted = known_predictions()
    assert bootstrap_intervals(gold, predicted, seed=3) == bootstrap_intervals(gold, predicted, seed=3)
    assert bootstrap_intervals(gold, predicted, seed=3) != bootstrap_intervals(gold, predicted, seed=4)


def test_each_resample_scores_as_evaluate_does() -> None:
    gold, predicted = known_predictions()
    gold[-1] = "d"  # a label that some resamples miss: macro-F1 averages over the labels present
    labels = [*LABELS, "d"]
    index = {label: i for i, label in enumerate(labels)}
    y_true = np.array([index[g] for g in gold])
    y_pred = np.array([index[p] for p in predicted])
    rows = next(resample_indices(len(gold), 30, seed=1))
    accuracy, macro_f1 = resample_scores(y_true, y_pred, len(labels), rows)
    proba = np.array([[0.9 if label == p else 0.01 for label in labels] for p in predicted])
    for k, row in enumerate(rows):
        expected = evaluate([gold[i] for i in row], proba[row], labels)
        assert accuracy[k] == pytest.approx(expected.accuracy)
        assert macro_f1[k] == pytest.approx(expected.macro_f1)
    assert any("d" not in {gold[i] for i in row} for row in rows)


def test_perfect_predictions_have_a_zero_width_interval() -> None:
    ci = bootstrap_intervals(["a", "b", "a"], ["a", "b", "a"], resamples=50)
    assert (ci["accuracy"].low, ci["accuracy"].high) == (1.0, 1.0)
    assert (ci["macro_f1"].low, ci["macro_f1"].high) == (1.0, 1.0)


def test_reads_a_stored_evaluation() -> None:
    gold, predicted = known_predictions()
    stored = evaluate(gold, one_hot(predicted), LABELS).to_dict()
    assert intervals_from_evaluation(stored, seed=2) == bootstrap_intervals(gold, predicted, seed=2)


def test_rejects_nothing_to_resample() -> None:
    with pytest.raises(ValueError, match="no items"):
        bootstrap_intervals([], [])
    with pytest.raises(ValueError, match="2 gold labels for 1"):
        bootstrap_intervals(["a", "b"], ["a"])
