"""Pydantic models of the teacher's structured replies; they mirror ``output_schema`` in prompts/*.yaml."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Reply(BaseModel):
    model_config = ConfigDict(extra="ignore")


class GeneratedExample(_Reply):
    text: str
    label: str


class GeneratedExamples(_Reply):
    """Reply to ``seed_generate`` and ``pgkd_generate``."""

    examples: list[GeneratedExample]


class AssignedLabel(_Reply):
    index: int = Field(ge=0)
    label: str


class AssignedLabels(_Reply):
    """Reply to ``label``: one label per numbered text."""

    labels: list[AssignedLabel]


# ---------------------------------------------------------------------------------------------- strategy teaching


class Scenario(_Reply):
    flow: str
    message: str


class Scenarios(_Reply):
    """Reply to ``scenario``: customer first messages, each tagged with its policy flow."""

    scenarios: list[Scenario]


class Reply(_Reply):
    """Reply to ``respond``: the teacher's reference answer to one customer message."""

    reply: str


class CriterionVerdict(_Reply):
    id: str
    score: int = Field(ge=0, le=1)
    violation: str | None


class JudgeVerdict(_Reply):
    """Reply to ``judge``: per-criterion 0/1 scores with violations, their mean, and a rationale."""

    criteria: list[CriterionVerdict]
    score: float = Field(ge=0.0, le=1.0)
    rationale: str


class Strategy(_Reply):
    criterion: str
    text: str


class Strategies(_Reply):
    """Reply to ``strategize``: one short, transferable strategy per failed criterion."""

    strategies: list[Strategy]


class Guideline(_Reply):
    labels: list[str] = Field(min_length=2, max_length=2)
    text: str


class Guidelines(_Reply):
    """Reply to ``guidelines``: one distinguishing rule per confusable label pair."""

    guidelines: list[Guideline]
