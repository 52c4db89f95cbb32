"""Choosing the deferral threshold on constructed held-back confidences (exact values)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainers.deferral import choose_threshold, coverage_curve, measure, stored_threshold

# Most confident first: 0.9 ✓, 0.8 ✓, 0.7 ✗, 0.6 ✓, 0.5 ✗.
CONF = [0.6, 0.9, 0.5, 0.8, 0.7]
OK = [True, True, False, True, False]


def test_target_met_with_the_most_coverage() -> None:
    t = choose_threshold(CONF, OK, target_accuracy=0.75)
    # ≥ 0.6 answers 4 of 5 at 3/4; ≥ 0.8 also meets it (1.0) but answers only 2.
    assert (t.threshold, t.coverage, t.accuracy_answered, t.n) == (0.6, 0.8, 0.75, 5)
    assert "not reached" not in t.reason


def test_target_met_by_everything_never_defers() -> None:
    t = choose_threshold(CONF, OK, target_accuracy=0.6)
    assert (t.threshold, t.coverage, t.accuracy_answered) == (0.0, 1.0, 0.6)


def test_unreachable_target_takes_the_highest_accuracy_and_says_so() -> None:
    conf, ok = [0.9, 0.8, 0.7], [False, True, True]  # best: ≥ 0.7 at 2/3
    t = choose_threshold(conf, ok, target_accuracy=0.9)
    assert t.threshold == 0.0 and t.coverage == 1.0 and t.accuracy_answered == pytest.approx(2 / 3)
    assert "not reached" in t.reason


def test_max_defer_rate_defers_at_most_that_share() -> None:
    t = choose_threshold(CONF, OK, max_defer_rate=0.4)
    assert (t.threshold, t.coverage) == (0.7, 0.6) and t.accuracy_answered == pytest.approx(2 / 3)
    t = choose_threshold(CONF, OK, max_defer_rate=0.39)
    assert (t.threshold, t.coverage, t.accuracy_answered) == (0.6, 0.8, 0.75)
    t = choose_threshold(CONF, OK, max_defer_rate=0.0)
    assert (t.threshold, t.coverage) == (0.0, 1.0)


def test_tied_confidences_are_one_point() -> None:
    t = choose_threshold([0.9, 0.9, 0.5], [True, False, True], max_defer_rate=0.5)
    assert t.threshold == 0.9 and t.coverage == pytest.approx(2 / 3)  # defers 1/3 ≤ 0.5
    t = choose_threshold([0.9, 0.9, 0.5], [True, False, True], max_defer_rate=0.3)
    assert (t.threshold, t.coverage) == (0.0, 1.0)  # the two 0.9s cannot be split: answer all


def test_no_target_and_empty_input_never_defer() -> None:
    assert choose_threshold(CONF, OK).threshold == 0.0
    empty = choose_threshold([], [], target_accuracy=0.9)
    assert (empty.threshold, empty.coverage, empty.n) == (0.0, 0.0, 0)
    assert coverage_curve([], []) == []
    with pytest.raises(ValueError, match="not both"):
        choose_threshold(CONF, OK, target_accuracy=0.9, max_defer_rate=0.1)


def test_curve_and_measure() -> None:
    curve = coverage_curve(CONF, OK)
    assert [p["threshold"] for p in curve] == [0.5, 0.6, 0.7, 0.8, 0.9]
    assert [p["coverage"] for p in curve] == [1.0, 0.8, 0.6, 0.4, 0.2]
    assert curve[1]["accuracy"] == 0.75 and curve[-1]["accuracy"] == 1.0
    assert len(coverage_curve([i / 1000 for i in range(1000)], [True] * 1000)) == 50
    assert measure(CONF, OK, 0.6) == {"n": 5, "coverage": 0.8, "accuracy_answered": 0.75}


def test_stored_threshold(tmp_path: Path) -> None:
    assert stored_threshold(tmp_path) == 0.0
    (tmp_path / "distill_student.json").write_text(json.dumps({"deferral": {"threshold": 0.7}}))
    onnx = tmp_path / "onnx"
    onnx.mkdir()
    (onnx / "onnx_config.json").write_text(json.dumps({"temperature": 1.0}))
    assert stored_threshold(tmp_path) == 0.7 and stored_threshold(onnx) == 0.7  # the parent's
    (onnx / "onnx_config.json").write_text(json.dumps({"deferral_threshold": 0.4}))
    assert stored_threshold(onnx) == 0.4
