"""Out-of-scope rejection and its metrics, on hand-made probabilities whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from trainers.evaluate import evaluate, out_of_scope_metrics
from trainers.rejection import Rejection, answers, choose_rejection, decide

OOS = "out_of_scope"
LABELS = ["a", "b", OOS]


def test_out_of_scope_metrics_on_a_hand_made_case() -> None:
    gold = ["a", "a", "b", "b", OOS, OOS, OOS]
    predicted = ["a", OOS, "b", "a", OOS, "b", OOS]
    metrics = out_of_scope_metrics(gold, predicted, OOS)
    # in scope: a✓ a✗(rejected) b✓ b✗ → 2/4; out of scope: 2 of 3 rejected; rejections: 3, 2 right.
    assert metrics == {
        "in_scope_accuracy": 0.5,
        "oos_recall": pytest.approx(2 / 3),
        "oos_precision": pytest.approx(2 / 3),
    }
    # Undefined ratios are left out (no out-of-scope items), or 0.0 for precision (nothing rejected).
    assert out_of_scope_metrics(["a", "b"], ["a", "a"], OOS) == {"in_scope_accuracy": 0.5, "oos_precision": 0.0}
    with pytest.raises(ValueError, match="predicted: 1 answers for 2 gold labels"):
        out_of_scope_metrics(["a", "b"], ["a"], OOS)


PROBA = np.array(
    [
        [0.90, 0.05, 0.05],  # a, sure
        [0.45, 0.15, 0.40],  # a, unsure; out_of_scope close behind
        [0.30, 0.25, 0.45],  # out_of_scope on top
        [0.10, 0.60, 0.30],  # b
    ]
)


def test_the_three_rules_answer_as_documented() -> None:
    def labels(mode: str, threshold: float) -> list[str]:
        columns, _ = decide(PROBA, LABELS, Rejection(OOS, mode, threshold, ""))
        return [LABELS[c] for c in columns]

    assert labels("class", 0.0) == ["a", "a", OOS, "b"]  # the argmax, out_of_scope column included
    assert labels("confidence", 0.5) == ["a", OOS, OOS, "b"]  # top in-scope < 0.5 → rejected
    assert labels("confidence", 0.2) == ["a", "a", "a", "b"]  # the out_of_scope column alone never answers
    assert labels("both", 0.5) == ["a", OOS, OOS, "b"]
    assert labels("both", 0.2) == ["a", "a", OOS, "b"]
    # A rejection's confidence is 1 − the declined in-scope probability; other answers keep theirs.
    assert answers(PROBA, LABELS, Rejection(OOS, "confidence", 0.5, "")) == [
        ("a", 0.90),
        (OOS, pytest.approx(0.55)),
        (OOS, pytest.approx(0.70)),
        ("b", 0.60),
    ]
    assert answers(PROBA, LABELS, None) == [("a", 0.90), ("a", 0.45), (OOS, 0.45), ("b", 0.60)]


def test_the_rule_and_threshold_are_chosen_on_the_given_heldback_only() -> None:
    # Held-back: out-of-scope items have top in-scope probability ≤ 0.40, in-scope ones ≥ 0.55, and the
    # out_of_scope column never wins: only a confidence threshold separates them.
    heldback = np.array(
        [[0.80, 0.10, 0.10], [0.55, 0.40, 0.05], [0.20, 0.70, 0.10], [0.40, 0.35, 0.25], [0.30, 0.38, 0.32]]
    )
    gold = [0, 0, 1, 2, 2]
    chosen = choose_rejection(heldback, gold, LABELS, OOS)
    assert chosen.mode == "confidence" and chosen.label == OOS
    assert chosen.threshold == pytest.approx((0.40 + 0.55) / 2)  # the midpoint between the two groups
    # class: a and b right, both out-of-scope items answered a or b → F1 a 0.8, b 2/3, out_of_scope 0.
    assert chosen.scores == {"confidence": 1.0, "class": pytest.approx((0.8 + 2 / 3) / 3), "both": 1.0}
    assert chosen.n == 5 and chosen.n_out_of_scope == 2 and "best held-back macro-F1 (1.000)" in chosen.reason
    # Other held-back data, other rule: out-of-scope items are *more* confident in-scope than in-scope ones,
    # so no threshold separates them, while the out_of_scope column does.
    explicit = np.array([[0.38, 0.30, 0.32], [0.30, 0.38, 0.32], [0.45, 0.0, 0.55], [0.0, 0.45, 0.55]])
    other = choose_rejection(explicit, [0, 1, 2, 2], LABELS, OOS)
    assert (other.mode, other.threshold) == ("class", 0.0)  # both ties it at threshold 0: the simpler rule
    assert other.scores == {"confidence": pytest.approx(4 / 9), "class": 1.0, "both": 1.0}


def test_without_out_of_scope_items_in_heldback_the_explicit_class_only() -> None:
    chosen = choose_rejection(PROBA[[0, 3]], [0, 1], LABELS, OOS)
    assert (chosen.mode, chosen.threshold) == ("class", 0.0)
    assert chosen.reason.startswith("no out-of-scope items in held-back")
    with pytest.raises(ValueError, match="no 'none' among the model's labels"):
        choose_rejection(PROBA, [0, 0, 2, 1], LABELS, "none")


def test_evaluate_scores_the_decided_answers_and_keeps_ece_of_the_probabilities() -> None:
    gold = ["a", OOS, OOS, "b"]
    rule = Rejection(OOS, "confidence", 0.5, "")
    decided = decide(PROBA, LABELS, rule)
    scored = evaluate(gold, PROBA, LABELS, decided=decided)
    plain = evaluate(gold, PROBA, LABELS)
    assert scored.accuracy == 1.0 and plain.accuracy == 0.75  # the rule rejects item 1 rightly
    assert [i.predicted for i in scored.items] == ["a", OOS, OOS, "b"]
    assert [i.confidence for i in scored.items] == pytest.approx([0.90, 0.55, 0.70, 0.60])
    assert scored.ece == plain.ece  # calibration is of the probabilities, whatever rule answers
    assert scored.per_class[OOS]["recall"] == 1.0 and plain.per_class[OOS]["recall"] == 0.5
