"""Prompt templates: versioned YAML files under ``prompts/``, one per teacher action.

A template has ``id``, ``version``, ``action``, ``system``, ``user`` (with ``{{name}}`` placeholders)
and ``output_schema`` (the JSON schema sent as ``response_format``). Rendering fails loudly on a
missing variable and always appends the fenced ``brief`` block as the end of the last user message,
so a real LLM and the simulator read the same request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from generators.brief import render_brief
from prompts import PROMPTS_DIR

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_REQUIRED_KEYS = ("id", "version", "action", "system", "user", "output_schema")


class PromptError(ValueError):
    """A template is malformed, or rendering it lacks a variable."""


@dataclass(frozen=True)
class PromptTemplate:
    id: str
    version: int
    action: str
    system: str
    user: str
    output_schema: dict[str, Any]
    description: str = ""

    @property
    def variables(self) -> set[str]:
        return set(_PLACEHOLDER.findall(self.system)) | set(_PLACEHOLDER.findall(self.user))

    def render(self, variables: dict[str, Any], brief: dict[str, Any]) -> list[dict[str, str]]:
        """Return chat messages; raise ``PromptError`` naming any variable that was not given."""
        missing = sorted(self.variables - variables.keys())
        if missing:
            raise PromptError(f"prompt {self.id} v{self.version}: missing variable(s) {missing}")
        if brief.get("action") != self.action:
            raise PromptError(f"prompt {self.id}: brief action {brief.get('action')!r} != {self.action!r}")

        def fill(text: str) -> str:
            return _PLACEHOLDER.sub(lambda m: str(variables[m.group(1)]), text).strip()

        user = fill(self.user) + "\n\n" + render_brief(brief)
        return [{"role": "system", "content": fill(self.system)}, {"role": "user", "content": user}]


def load_template(path: Path) -> PromptTemplate:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise PromptError(f"{path}: a template must be a YAML mapping")
    missing = [key for key in _REQUIRED_KEYS if key not in data]
    if missing:
        raise PromptError(f"{path}: missing key(s) {missing}")
    if not isinstance(data["version"], int) or data["version"] < 1:
        raise PromptError(f"{path}: version must be a positive integer")
    return PromptTemplate(
        id=str(data["id"]), version=data["version"], action=str(data["action"]), system=str(data["system"]),
        user=str(data["user"]), output_schema=dict(data["output_schema"]),
        description=str(data.get("description", "")),
    )


@cache
def get_template(template_id: str, directory: Path = PROMPTS_DIR) -> PromptTemplate:
    """The template with this id (file ``<id>.yaml``), loaded once per process."""
    path = directory / f"{template_id}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in directory.glob("*.yaml"))
        raise PromptError(f"no prompt template {template_id!r}; known: {known}")
    template = load_template(path)
    if template.id != template_id:
        raise PromptError(f"{path}: id {template.id!r} does not match the file name")
    return template
