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
