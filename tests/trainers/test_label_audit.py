"""Confident learning on out-of-fold probabilities: planted label errors are found, clean labels are left alone."""

from __future__ import annotations

import numpy as np

from trainers.label_audit import (
    audit_labels,
    confident_joint,
    find_label_issues,
    judged_examples,
    out_of_fold_probabilities,
    stratified_folds,
)


def _clusters(per_class: int, n_classes: int, seed: int, spread: float = 0.35) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors around ``n_classes`` well-separated centres (what sentence vectors of clear intents look like)."""
    rng = np.random.default_rng(seed)
    centres = np.eye(n_classes, 16)
    labels = np.repeat(np.arange(n_classes), per_class)
    vectors = centres[labels] + spread * rng.standard_normal((len(labels), 16)) / 4
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True), labels


def _flip(labels: np.ndarray, rate: float, n_classes: int, seed: int) -> tuple[np.ndarray, set[int]]:
    """Give ``rate`` of the examples the next class's label: noise toward one confusable class, as in the simulator."""
    rng = np.random.default_rng(seed)
    flipped = rng.choice(len(labels), size=int(rate * len(labels)), replace=False)
    noisy = labels.copy()
    noisy[flipped] = (labels[flipped] + 1) % n_classes
    return noisy, {int(i) for i in flipped}


def test_planted_label_errors_are_found_with_their_true_label() -> None:
    vectors, truth = _clusters(per_class=30, n_classes=4, seed=0)
    noisy, planted = _flip(truth, 0.10, 4, seed=1)
    issues, probs = audit_labels(vectors, noisy.tolist(), 4, folds=5, seed=0)
    found = {issue.index for issue in issues}
    assert len(found & planted) / len(planted) >= 0.9  # recall
    assert len(found & planted) / len(found) >= 0.9  # precision
    for issue in issues:
        if issue.index in planted:
            assert (issue.given, issue.suggested) == (noisy[issue.index], truth[issue.index])
        assert (
            0 < issue.score <= 1
            and issue.score == probs[issue.index, issue.suggested] - probs[issue.index, issue.given]
        )
    assert [i.score for i in issues] == sorted((i.score for i in issues), reverse=True)


def test_only_eligible_examples_are_flagged_but_all_train_the_folds() -> None:
    vectors, truth = _clusters(per_class=30, n_classes=4, seed=0)
    noisy, planted = _flip(truth, 0.10, 4, seed=1)
    eligible = np.arange(len(noisy)) % 2 == 0  # e.g. the teacher's labels, not the user's
    issues, probs = audit_labels(vectors, noisy.tolist(), 4, folds=5, seed=0, eligible=eligible)
    _, same_probs = audit_labels(vectors, noisy.tolist(), 4, folds=5, seed=0)
    assert np.array_equal(probs, same_probs)
    assert {i.index for i in issues} == {i for i in planted if eligible[i]}


def test_clean_labels_are_not_flagged() -> None:
    vectors, truth = _clusters(per_class=20, n_classes=3, seed=2)
    issues, _ = audit_labels(vectors, truth.tolist(), 3, folds=5, seed=0)
    assert issues == []


def test_folds_are_stratified_seeded_and_even() -> None:
    labels = np.repeat(np.arange(3), [10, 7, 1])
    folds = stratified_folds(labels, 5, seed=3)
    assert np.array_equal(folds, stratified_folds(labels, 5, seed=3))
    assert not np.array_equal(folds, stratified_folds(labels, 5, seed=4))
    assert sorted(np.bincount(folds[labels == 0], minlength=5)) == [2] * 5
    assert sorted(np.bincount(folds[labels == 1], minlength=5)) == [1, 1, 1, 2, 2]


def test_every_probability_comes_from_a_model_that_did_not_see_the_example() -> None:
    # Two identical texts with different labels: a model that saw either one would echo its label.
    vectors, labels = _clusters(per_class=10, n_classes=2, seed=5)
    probs = out_of_fold_probabilities(vectors, labels, 3, folds=5, seed=0)
    assert probs.shape == (20, 3) and np.allclose(probs.sum(axis=1), 1.0)
    assert np.all(probs[:, 2] == 0.0)  # a label no example has gets no probability
    assert (probs.argmax(axis=1) == labels).mean() == 1.0


def test_a_class_too_small_to_score_out_of_fold_is_never_flagged() -> None:
    vectors, labels = _clusters(per_class=10, n_classes=3, seed=6)
    labels = labels[:21]  # class 2 keeps one example: held out, no fold's model knows class 2
    vectors = vectors[:21]
    judged = judged_examples(labels, 3)
    assert judged.tolist() == [True] * 20 + [False]
    issues, probs = audit_labels(vectors, labels.tolist(), 3, folds=5, seed=0)
    assert probs[20, 2] == 0.0 and 20 not in {issue.index for issue in issues}


def test_the_confident_joint_counts_each_class_once_per_example() -> None:
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.1, 0.9], [0.2, 0.8]])
    labels = np.array([0, 0, 0, 1, 1, 1])
    # t_0 = mean(0.9, 0.8, 0.3) ≈ 0.667, t_1 = mean(0.4, 0.9, 0.8) = 0.7: example 2 (labelled 0) is
    # confidently 1, example 3 (labelled 1) is confidently neither (0.6 < t_0, 0.4 < t_1).
    joint = confident_joint(probs, labels)
    assert np.allclose(joint, [[2, 1], [0, 3]])
    # Example 2 by the joint; example 3 because its top class (0) is not its label, with a smaller margin.
    issues = find_label_issues(probs, labels)
    assert [(i.index, i.given, i.suggested, round(i.score, 2)) for i in issues] == [(2, 0, 1, 0.4), (3, 1, 0, 0.2)]
