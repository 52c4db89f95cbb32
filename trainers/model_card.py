"""Render a student's model card (README.md) from the card dict the agent passes to ``save``.

The card's keys are not fixed: the agent adds what it knows (metrics, data counts by origin,
teacher, cost, notes). Known keys get a titled section in a sensible order; anything else is
still rendered, so nothing recorded is hidden from the reader.

Much of the card is text someone else wrote: the task name and description come from the user's spec,
labels and labeling guidelines from the user or the teacher, notes from stored data. The README is
published (on the Hub it is rendered as HTML), so every such text goes through ``trainers.markup``:
it renders as the literal text, never as a tag, a link, or a stray table column.
"""

from __future__ import annotations

from typing import Any

from trainers.markup import md_cell, md_text

# Known keys, in reading order, with their section titles.
SECTIONS: list[tuple[str, str]] = [
    ("metrics", "Metrics"),
    ("training_examples_by_origin", "Training data by origin"),
    ("dropped_by_filter", "Dropped by filter"),
    ("teacher", "Teacher"),
    ("teacher_usage", "Teacher usage and cost"),
    ("labeling_guidelines", "Labeling guidelines"),
    ("notes", "Notes"),
]
HEADLINE_KEYS = ("task", "best_round", "round", "method", "train_examples")


def render_model_card(card: dict[str, Any], labels: list[str], config: dict[str, Any]) -> str:
    """Markdown: a headline, one section per card key, the labels and the full training config."""
    title = card.get("task", "text classifier")
    parts = [f"# {md_text(_plain(title))} — distill encoder student\n", _headline(card)]
    for key, heading in SECTIONS:
        if card.get(key) not in (None, {}, []):
            parts.append(f"## {heading}\n\n{_section(key, card[key])}\n")
    shown = {k for k, _ in SECTIONS} | set(HEADLINE_KEYS) | {"labels"}
    for key in sorted((k for k in card if k not in shown), key=str):
        parts.append(f"## {md_text(_title(key))}\n\n{_render(card[key])}\n")
    parts.append(f"## Labels ({len(labels)})\n\n" + ", ".join(md_text(label) for label in labels) + "\n")
    parts.append("## Training configuration\n\n" + _table(dict(config)) + "\n")
    parts.append(_usage())
    return "\n".join(part for part in parts if part)


def _section(key: str, value: Any) -> str:
    if key == "labeling_guidelines" and isinstance(value, list):
        return _guidelines(value)
    return _render(_with_total(key, value))


def _guidelines(items: list[Any]) -> str:
    """One readable line per guideline: "**a** vs **b** (status, id): text"; the teacher wrote the text."""
    lines = ["The teacher wrote these for label pairs the student confused; *proposed* ones no one has audited yet.\n"]
    for item in items:
        if not isinstance(item, dict):
            lines.append(f"- {md_text(_plain(item))}")
            continue
        pair = " vs ".join(f"**{md_text(_plain(label))}**" for label in _as_list(item.get("labels")))
        about = ", ".join(md_text(_plain(item[k])) for k in ("status", "id") if item.get(k) not in (None, ""))
        lines.append(f"- {pair or 'Guideline'}{f' ({about})' if about else ''}: {md_text(_plain(item.get('text')))}")
    return "\n".join(lines)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


def _with_total(key: str, value: Any) -> Any:
    """Data counts get a total row: the reader's first question is "how much data in all?"."""
    counts = isinstance(value, dict) and value and all(isinstance(v, int) for v in value.values())
    if key == "training_examples_by_origin" and counts:
        return {**value, "total": sum(value.values())}
    return value


def _headline(card: dict[str, Any]) -> str:
    lines = [f"- **{_title(key)}**: {md_text(_plain(card[key]))}" for key in HEADLINE_KEYS[1:] if key in card]
    return "\n".join(lines) + "\n" if lines else ""


def _render(value: Any) -> str:
    """A dict of dicts → table with one row per key; a flat dict → two-column table; else text."""
    if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
        return _nested_table(value)
    if isinstance(value, dict):
        return _table(value)
    if isinstance(value, list):
        return "\n".join(f"- {md_text(_plain(item))}" for item in value) or "(none)"
    return md_text(_plain(value))


def _table(mapping: dict[Any, Any]) -> str:
    rows = [f"| {_cell(key)} | {_cell(value)} |" for key, value in mapping.items()]
    return "\n".join(["| key | value |", "|---|---|", *rows])


def _nested_table(mapping: dict[Any, dict[Any, Any]]) -> str:
    columns: list[Any] = []
    for row in mapping.values():
        columns += [c for c in row if c not in columns]
    lines = ["| | " + " | ".join(_cell(c) for c in columns) + " |", "|---|" + "---|" * len(columns)]
    for name, row in mapping.items():
        lines.append(f"| {_cell(name)} | " + " | ".join(_cell(row.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    return md_cell(_plain(value))


def _plain(value: Any) -> str:
    """The value as plain, unescaped text (numbers formatted for reading); escape it before rendering."""
    if value is None:
        return "–"
    if isinstance(value, float):
        if value != 0 and abs(value) < 1e-3:
            return f"{value:.3g}"  # learning rates: 0.0001 → 1e-04
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_plain(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_plain(v) for v in value)
    return str(value)


def _title(key: Any) -> str:
    return str(key).replace("_", " ").capitalize()


def _usage() -> str:
    return (
        "## Usage\n\n```python\nfrom trainers.encoder import EncoderClassifier\n\n"
        'student = EncoderClassifier.load("path/to/this/folder")\n'
        'student.predict(["some text"])  # [(label, confidence)]\n```\n\n'
        "The encoder is a standard `save_pretrained` folder (mean pooling, L2-normalised); the linear head "
        "is `head.safetensors`, its rows in `labels.json` order. `distill_student.json` holds the full "
        "training config and this card as data.\n"
    )
