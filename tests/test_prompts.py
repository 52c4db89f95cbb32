"""Prompt templates: every shipped template loads, renders, ends with its brief, and fails loudly."""

from __future__ import annotations

import json
import random

import pytest

from generators.brief import parse_brief, render_brief
from generators.generation import Feedback, LabelFeedback, TaskInfo, label_requests, pgkd_requests, split_counts
from generators.prompts import PromptError, get_template
from generators.schemas import AssignedLabels, GeneratedExamples
from prompts import PROMPTS_DIR

TASK = TaskInfo("bank messages", {"a": "about a", "b": "about b"})


@pytest.mark.parametrize("path", sorted(PROMPTS_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_template_ends_with_its_brief(path: object) -> None:
    template = get_template(path.stem)  # type: ignore[attr-defined]
    variables = {name: f"<{name}>" for name in template.variables}
    messages = template.render(variables, {"action": template.action, "x": 1})
    last = messages[-1]["content"]
    assert last.rstrip().endswith("```")
    assert parse_brief(last) == {"action": template.action, "x": 1}
    assert template.output_schema["type"] == "object"


def test_missing_variable_fails_loudly() -> None:
    template = get_template("label")
    with pytest.raises(PromptError, match=r"missing variable\(s\) \['numbered_texts'\]"):
        template.render({"task_description": "d", "taxonomy": "t"}, {"action": "label"})


def test_brief_round_trip_and_errors() -> None:
    text = "intro\n\n" + render_brief({"action": "generate", "label": "é", "n": 2})
    assert parse_brief(text)["label"] == "é"
    with pytest.raises(ValueError, match="no ```brief"):
        parse_brief("no block here")


def test_pgkd_prompt_shows_feedback_and_likes_only_true_members() -> None:
    feedback = Feedback(
        round=2, report={"a": {"precision": 0.5, "recall": 0.4, "f1": 0.44, "support": 5},
                         "b": {"precision": 0.9, "recall": 0.9, "f1": 0.9, "support": 5}},
        confusions=[("a", "b", 3)],
        per_label={"a": LabelFeedback(0.44, correct=["ok a"], misclassified=[("missed a", "b")],
                                      hard_negatives=[("really b", "b", 0.97)]),
                   "b": LabelFeedback(0.9)})
    [request] = pgkd_requests(TASK, feedback, "a", 4, per_call=10, rng=random.Random(0), shown=3)
    user = request.messages[-1]["content"]
    assert "a → b: 3" in user and "really b (really b; student 97% sure)" in user
    brief = parse_brief(user)
    assert brief["n"] == 4 and set(brief["like"]) == {"missed a", "ok a"} and brief["avoid"] == ["really b"]


def test_schemas_match_the_templates() -> None:
    for template_id, model in (("seed_generate", GeneratedExamples), ("pgkd_generate", GeneratedExamples),
                               ("label", AssignedLabels)):
        schema = get_template(template_id).output_schema
        assert set(schema["required"]) == set(model.model_json_schema()["required"])
    payload = {"labels": [{"index": 0, "label": "a"}]}
    AssignedLabels.model_validate_json(json.dumps(payload))


def test_split_counts_and_label_requests() -> None:
    assert split_counts(25, 10) == [9, 8, 8] and split_counts(0, 5) == []
    requests = label_requests(TASK, ["t1", "t2", "t3"], per_call=2, round=1)
    assert [parse_brief(r.messages[-1]["content"])["texts"] for r in requests] == [["t1", "t2"], ["t3"]]
