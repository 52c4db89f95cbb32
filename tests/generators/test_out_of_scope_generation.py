"""A task with out_of_scope: the outcome set, and the requests that ask for near-domain negatives."""

from __future__ import annotations

import random

from generators.generation import (
    OUT_OF_SCOPE,
    OUT_OF_SCOPE_DESCRIPTION,
    Feedback,
    LabelFeedback,
    TaskInfo,
    label_requests,
    pgkd_requests,
    seed_requests,
)
from generators.teacher import TeacherRequest

LABELS = {"card_arrival": "the card has not arrived", "exchange_rate": "questions about rates"}
TASK = TaskInfo.of("bank messages", LABELS, out_of_scope=True)


def prompt(request: TeacherRequest) -> str:
    return "\n".join(m["content"] for m in request.messages)


def enum_of(request: TeacherRequest) -> list[str]:
    items = request.schema["properties"]["examples"]["items"]
    enum: list[str] = items["properties"]["label"]["enum"]
    return enum


def test_the_outcome_set_gains_out_of_scope_only_when_asked() -> None:
    assert list(TASK.labels) == ["card_arrival", "exchange_rate", OUT_OF_SCOPE]
    assert TASK.labels[OUT_OF_SCOPE] == OUT_OF_SCOPE_DESCRIPTION
    assert TASK.in_scope == ["card_arrival", "exchange_rate"]
    assert f"- {OUT_OF_SCOPE}: {OUT_OF_SCOPE_DESCRIPTION}" in TASK.taxonomy()
    plain = TaskInfo.of("bank messages", LABELS, out_of_scope=False)
    assert list(plain.labels) == list(LABELS) and OUT_OF_SCOPE not in plain.taxonomy()


def test_seed_requests_for_out_of_scope_ask_for_near_domain_negatives() -> None:
    [oos] = seed_requests(TASK, OUT_OF_SCOPE, 4, per_call=10, rng=random.Random(0), examples=[])
    text = prompt(oos)
    assert f'examples of the label "{OUT_OF_SCOPE}"' in text and "fit NONE of the other labels" in text
    assert "never an obvious off-topic text" in text
    # The simulator learns which labels are in scope from the brief; a real teacher reads the taxonomy.
    assert oos.brief is not None and oos.brief["labels"] == ["card_arrival", "exchange_rate"]
    assert oos.brief["label"] == OUT_OF_SCOPE and oos.brief["n"] == 4
    assert enum_of(oos) == ["card_arrival", "exchange_rate", OUT_OF_SCOPE]

    [plain] = seed_requests(TASK, "card_arrival", 4, per_call=10, rng=random.Random(0), examples=[])
    assert "fit NONE" not in prompt(plain) and plain.brief is not None and "labels" not in plain.brief
    assert OUT_OF_SCOPE in prompt(plain)  # every prompt's taxonomy shows the outcome, so no label overreaches


def test_pgkd_requests_for_out_of_scope_carry_its_missed_items_and_the_scope() -> None:
    feedback = Feedback(
        round=1,
        report={name: {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2} for name in TASK.labels},
        confusions=[(OUT_OF_SCOPE, "card_arrival", 2)],
        per_label={
            OUT_OF_SCOPE: LabelFeedback(
                0.3, correct=["how do I change my PIN"], misclassified=[("my pin?", "card_arrival")]
            ),
            "card_arrival": LabelFeedback(0.6),
            "exchange_rate": LabelFeedback(0.6),
        },
    )
    [request] = pgkd_requests(TASK, feedback, OUT_OF_SCOPE, 3, per_call=10, rng=random.Random(0), shown=3)
    assert request.brief is not None
    assert request.brief["labels"] == ["card_arrival", "exchange_rate"]
    assert request.brief["like"] == ["my pin?", "how do I change my PIN"]
    assert "fit NONE of the other labels" in prompt(request)


def test_label_requests_let_the_teacher_answer_out_of_scope() -> None:
    [request] = label_requests(TASK, ["how do I verify my identity?"], per_call=5, round=1)
    labels = request.schema["properties"]["labels"]["items"]["properties"]["label"]["enum"]
    assert labels == ["card_arrival", "exchange_rate", OUT_OF_SCOPE]
    assert request.brief is not None and request.brief["labels"] == labels
    assert f"- {OUT_OF_SCOPE}: {OUT_OF_SCOPE_DESCRIPTION}" in prompt(request)
