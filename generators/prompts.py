"""Prompt templates: versioned YAML files under ``prompts/``, one per teacher action.

A template has ``id``, ``version``, ``action``, ``system``, ``user`` (with ``{{name}}`` placeholders),
``output_schema`` (the JSON schema sent as ``response_format``) and ``output_tokens`` (``base`` +
``per_item`` × items: a realistic bound on the reply, which the ledger reserves and the call may not
exceed). The natural-language prompt carries everything a real LLM needs; the simulator's brief is
attached to the request separately and never rendered into it.

Schemas are strict-valid (every object lists all its properties as required and forbids others), as
OpenAI's strict structured outputs demand; ``label_schema`` narrows a reply's ``label`` fields to the
task's labels as an ``enum``.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from generators.teacher import TeacherRequest
from prompts import PROMPTS_DIR

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_REQUIRED_KEYS = ("id", "version", "action", "system", "user", "output_schema", "output_tokens")


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
    output_tokens_base: int
    output_tokens_per_item: int
    description: str = ""

    @property
    def variables(self) -> set[str]:
        return set(_PLACEHOLDER.findall(self.system)) | set(_PLACEHOLDER.findall(self.user))

    def render(self, variables: dict[str, Any]) -> list[dict[str, str]]:
        """Return chat messages; raise ``PromptError`` naming any variable that was not given."""
        missing = sorted(self.variables - variables.keys())
        if missing:
            raise PromptError(f"prompt {self.id} v{self.version}: missing variable(s) {missing}")

        def fill(text: str) -> str:
            return _PLACEHOLDER.sub(lambda m: str(variables[m.group(1)]), text).strip()

        return [{"role": "system", "content": fill(self.system)}, {"role": "user", "content": fill(self.user)}]

    def output_tokens(self, items: int) -> int:
        return self.output_tokens_base + self.output_tokens_per_item * max(items, 1)

    def request(
        self,
        variables: dict[str, Any],
        brief: dict[str, Any],
        *,
        items: int = 1,
        sample_index: int = 0,
        round: int | None = None,
        temperature: float | None = None,
        labels: list[str] | None = None,
    ) -> TeacherRequest:
        """The teacher request for these variables; ``labels`` narrows the reply's label fields to an enum."""
        if brief.get("action") != self.action:
            raise PromptError(f"prompt {self.id}: brief action {brief.get('action')!r} != {self.action!r}")
        schema = label_schema(self.output_schema, labels) if labels else self.output_schema
        return TeacherRequest(
            self.id,
            self.version,
            self.render(variables),
            schema,
            sample_index=sample_index,
            temperature=temperature,
            output_tokens=self.output_tokens(items),
            round=round,
            brief=brief,
        )


def strict_problems(schema: dict[str, Any], where: str = "output_schema") -> list[str]:
    """Why ``schema`` is not valid for strict structured outputs (empty when it is)."""
    problems: list[str] = []
    if schema.get("type") == "object":
        properties = schema.get("properties", {})
        if schema.get("additionalProperties") is not False:
            problems.append(f"{where}: needs additionalProperties: false")
        missing = sorted(set(properties) - set(schema.get("required", [])))
        if missing:
            problems.append(f"{where}: every property must be required; missing {missing}")
        for name, sub in properties.items():
            problems += strict_problems(sub, f"{where}.{name}")
    if isinstance(schema.get("items"), dict):
        problems += strict_problems(schema["items"], f"{where}[]")
    return problems


def label_schema(schema: dict[str, Any], labels: list[str]) -> dict[str, Any]:
    """A copy of ``schema`` whose ``label`` strings (and ``labels`` string arrays) must be one of ``labels``."""
    narrowed = copy.deepcopy(schema)

    def visit(node: dict[str, Any]) -> None:
        for name, sub in node.get("properties", {}).items():
            if name == "label" and sub.get("type") == "string":
                sub["enum"] = list(labels)
            elif name == "labels" and sub.get("items", {}).get("type") == "string":
                sub["items"]["enum"] = list(labels)
            visit(sub)
        if isinstance(node.get("items"), dict):
            visit(node["items"])

    visit(narrowed)
    return narrowed


def _output_tokens(path: Path, value: Any) -> tuple[int, int]:
    if not isinstance(value, dict) or not all(
        isinstance(value.get(k), int) and value[k] >= 0 for k in ("base", "per_item")
    ):
        raise PromptError(f"{path}: output_tokens must be a mapping with integer 'base' and 'per_item' ≥ 0")
    return value["base"], value["per_item"]


def load_template(path: Path) -> PromptTemplate:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise PromptError(f"{path}: a template must be a YAML mapping")
    missing = [key for key in _REQUIRED_KEYS if key not in data]
    if missing:
        raise PromptError(f"{path}: missing key(s) {missing}")
    if not isinstance(data["version"], int) or data["version"] < 1:
        raise PromptError(f"{path}: version must be a positive integer")
    problems = strict_problems(dict(data["output_schema"]))
    if problems:
        raise PromptError(f"{path}: output_schema is not strict-valid: {'; '.join(problems)}")
    base, per_item = _output_tokens(path, data["output_tokens"])
    return PromptTemplate(
        id=str(data["id"]),
        version=data["version"],
        action=str(data["action"]),
        system=str(data["system"]),
        user=str(data["user"]),
        output_schema=dict(data["output_schema"]),
        output_tokens_base=base,
        output_tokens_per_item=per_item,
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
