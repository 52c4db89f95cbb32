"""Prompt templates: every shipped template loads, is strict-valid, renders without the brief, and fails loudly."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from generators.brief import BriefError, brief_body, parse_brief
from generators.generation import Feedback, LabelFeedback, TaskInfo, label_requests, pgkd_requests, split_counts
from generators.prompts import PromptError, get_template, label_schema, load_template, strict_problems
from generators.schemas import AssignedLabels, GeneratedExamples
from prompts import PROMPTS_DIR

TASK = TaskInfo("bank messages", {"a": "about a", "b": "about b"})


@pytest.mark.parametrize("path", sorted(PROMPTS_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_template_is_strict_and_renders_without_a_brief(path: Path) -> None:
    template = get_template(path.stem)
    variables = {name: f"<{name}>" for name in template.variables}
    messages = template.render(variables)
    text = "\n".join(m["content"] for m in messages)
    assert "brief" not in text.lower() and "```" not in text  # a real teacher reads and pays for prose only
    assert all(f"<{name}>" in text for name in template.variables)
    assert template.output_schema["type"] == "object" and strict_problems(template.output_schema) == []
    assert template.output_tokens(10) == template.output_tokens_base + 10 * template.output_tokens_per_item


def test_a_schema_that_is_not_strict_is_refused(tmp_path: Path) -> None:
    source = (PROMPTS_DIR / "label.yaml").read_text().replace("required: [index, label]", "required: [index]")
    (tmp_path / "label.yaml").write_text(source)
    with pytest.raises(PromptError, match=r"every property must be required; missing \['label'\]"):
        load_template(tmp_path / "label.yaml")


def test_missing_variable_fails_loudly() -> None:
    template = get_template("label")
    with pytest.raises(PromptError, match=r"missing variable\(s\) \['numbered_texts'\]"):
        template.render({"task_description": "d", "taxonomy": "t"})


def test_brief_travels_in_the_body_only() -> None:
    assert parse_brief(brief_body({"action": "generate", "label": "é", "n": 2}))["label"] == "é"
    with pytest.raises(BriefError, match="no 'distill_brief'"):
        parse_brief({"model": "m", "messages": []})
    with pytest.raises(BriefError, match="string 'action'"):
        parse_brief({"distill_brief": {"label": "x"}})


def test_pgkd_prompt_shows_feedback_and_likes_only_true_members() -> None:
    feedback = Feedback(
        round=2,
        report={
            "a": {"precision": 0.5, "recall": 0.4, "f1": 0.44, "support": 5},
            "b": {"precision": 0.9, "recall": 0.9, "f1": 0.9, "support": 5},
        },
        confusions=[("a", "b", 3)],
        per_label={
            "a": LabelFeedback(
                0.44, correct=["ok a"], misclassified=[("missed a", "b")], hard_negatives=[("really b", "b", 0.97)]
            ),
            "b": LabelFeedback(0.9),
        },
    )
    [request] = pgkd_requests(TASK, feedback, "a", 4, per_call=10, rng=random.Random(0), shown=3)
    user = request.messages[-1]["content"]
    assert "a → b: 3" in user and "really b (really b; student 97% sure)" in user
    assert "missed a (student said: b)" in user and "ok a" in user and "Write 4 new examples" in user
    assert request.brief is not None
    assert request.brief["n"] == 4 and set(request.brief["like"]) == {"missed a", "ok a"}
    assert request.brief["avoid"] == ["really b"]
    # The reply's label must be one of the task's labels, and the reply is bounded by its size.
    label = request.schema["properties"]["examples"]["items"]["properties"]["label"]
    assert label["enum"] == ["a", "b"]
    assert request.output_tokens == get_template("pgkd_generate").output_tokens(4)


def test_label_schema_narrows_label_fields_without_touching_the_template() -> None:
    template = get_template("guidelines")
    narrowed = label_schema(template.output_schema, ["x", "y"])
    items = narrowed["properties"]["guidelines"]["items"]["properties"]["labels"]["items"]
    assert items["enum"] == ["x", "y"]
    assert "enum" not in json.dumps(template.output_schema)


def test_schemas_match_the_templates() -> None:
    for template_id, model in (
        ("seed_generate", GeneratedExamples),
        ("pgkd_generate", GeneratedExamples),
        ("label", AssignedLabels),
    ):
        schema = get_template(template_id).output_schema
        assert set(schema["required"]) == set(model.model_json_schema()["required"])
    payload = {"labels": [{"index": 0, "label": "a"}]}
    AssignedLabels.model_validate_json(json.dumps(payload))


def test_split_counts_and_label_requests() -> None:
    assert split_counts(25, 10) == [9, 8, 8] and split_counts(0, 5) == []
    requests = label_requests(TASK, ["t1", "t2", "t3"], per_call=2, round=1)
    assert [r.brief["texts"] for r in requests if r.brief] == [["t1", "t2"], ["t3"]]
    assert "0. t1\n1. t2" in requests[0].messages[-1]["content"]
    assert all(r.temperature == 0.0 for r in requests)  # labeling is a judgement, not a creative draw
