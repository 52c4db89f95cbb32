"""A saved student and its ONNX graph answer out_of_scope by the rule saved with them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.trainers.test_export import tiny_task
from trainers.config import EncoderConfig
from trainers.encoder import STUDENT_FILE, EncoderClassifier, save_rejection
from trainers.onnx_model import CONFIG_FILE, OnnxClassifier, export_int8
from trainers.rejection import Rejection, decide

OOS = "out_of_scope"


def as_out_of_scope(labels: list[str]) -> list[str]:
    """exchange_rate plays the messages outside a two-intent task."""
    return [OOS if label == "exchange_rate" else label for label in labels]


@pytest.fixture(scope="module")
def student(tiny_model: str) -> EncoderClassifier:
    texts, labels = tiny_task("pool")
    config = EncoderConfig(base_model=tiny_model, epochs=1, min_steps=30, lr=3e-3, head_lr=3e-2, batch_size=16)
    model = EncoderClassifier.create(["card_arrival", "lost_or_stolen_card", OOS], config)
    model.train(texts, as_out_of_scope(labels))
    return model


def median_rule(student: EncoderClassifier, texts: list[str]) -> Rejection:
    """A confidence rule that rejects about half of ``texts`` (the threshold: their median top in-scope p)."""
    proba = student.predict_proba(texts)
    top_in_scope = np.delete(proba, student.labels.index(OOS), axis=1).max(axis=1)
    return Rejection(OOS, "confidence", float(np.median(top_in_scope)), "test rule")


def test_predict_answers_out_of_scope_below_the_saved_threshold(student: EncoderClassifier, tmp_path: Path) -> None:
    texts, _ = tiny_task("test")
    rule = median_rule(student, texts)
    folder = student.save(tmp_path / "model")
    assert json.loads((folder / STUDENT_FILE).read_text())["rejection"] is None
    save_rejection(folder, rule)  # as a run's evaluation step records it, weights untouched
    loaded = EncoderClassifier.load(folder)
    assert loaded.rejection == rule
    answered = loaded.predict(texts)
    columns, confidence = decide(loaded.predict_proba(texts), loaded.labels, rule)
    assert [label for label, _ in answered] == [loaded.labels[c] for c in columns]
    assert [p for _, p in answered] == pytest.approx(confidence.tolist())
    rejected = [label == OOS for label, _ in answered]
    assert 0 < sum(rejected) < len(texts)  # the median rule rejects some texts and answers others
    # Without the rule the same folder answers an in-scope label for those texts (argmax never picks it here).
    plain = EncoderClassifier.load(folder)
    plain.rejection = None
    assert [label for label, _ in plain.predict(texts)] != [label for label, _ in answered]
    # Training moves the probabilities, so a rule chosen on the old ones is dropped.
    loaded.train(texts[:4], ["card_arrival", "lost_or_stolen_card", OOS, OOS])
    assert loaded.rejection is None


def test_the_onnx_graph_carries_the_rule_and_answers_out_of_scope(student: EncoderClassifier, tmp_path: Path) -> None:
    texts, _ = tiny_task("test")
    rule = median_rule(student, texts)
    student.rejection = rule
    try:
        folder = export_int8(student, tmp_path / "onnx")
    finally:
        student.rejection = None
    assert json.loads((folder / CONFIG_FILE).read_text())["rejection"] == rule.to_dict()
    onnx = OnnxClassifier(folder)
    columns, _ = decide(onnx.predict_proba(texts), onnx.labels, rule)
    answered = [label for label, _ in onnx.predict(texts)]
    assert answered == [onnx.labels[c] for c in columns] and OOS in answered
