"""Render a student's model card (README.md) from the card dict the agent passes to ``save``.

The card's keys are not fixed: the agent adds what it knows (metrics, data counts by origin,
teacher, cost, notes). Known keys get a titled section in a sensible order; anything else is
still rendered, so nothing recorded is hidden from the reader.
"""

from __future__ import annotations

from typing import Any

# Known keys, in reading order, with their section titles.
SECTIONS: list[tuple[str, str]] = [
    ("metrics", "Metrics"),
    ("training_examples_by_origin", "Training data by origin"),
    ("dropped_by_filter", "Dropped by filter"),
    ("teacher", "Teacher"),
    ("teacher_usage", "Teacher usage and cost"),
    ("notes", "Notes"),
]
HEADLINE_KEYS = ("task", "best_round", "round", "method", "train_examples")


def render_model_card(card: dict[str, Any], labels: list[str], config: dict[str, Any]) -> str:
    """Markdown: a headline, one section per card key, the labels and the full training config."""
    title = card.get("task", "text classifier")
    parts = [f"# {title} — distill encoder student\n", _headline(card)]
    for key, heading in SECTIONS:
        if card.get(key) not in (None, {}, []):
            parts.append(f"## {heading}\n\n{_render(_with_total(key, card[key]))}\n")
    shown = {k for k, _ in SECTIONS} | set(HEADLINE_KEYS) | {"labels"}
    for key in sorted(k for k in card if k not in shown):
        parts.append(f"## {_title(key)}\n\n{_render(card[key])}\n")
    parts.append(f"## Labels ({len(labels)})\n\n" + ", ".join(f"`{label}`" for label in labels) + "\n")
    parts.append("## Training configuration\n\n" + _table({k: config[k] for k in config}) + "\n")
    parts.append(_usage())
    return "\n".join(part for part in parts if part)


def _with_total(key: str, value: Any) -> Any:
    """Data counts get a total row: the reader's first question is "how much data in all?"."""
    counts = isinstance(value, dict) and value and all(isinstance(v, int) for v in value.values())
    if key == "training_examples_by_origin" and counts:
        return {**value, "total": sum(value.values())}
    return value


def _headline(card: dict[str, Any]) -> str:
    lines = [f"- **{_title(key)}**: {_scalar(card[key])}" for key in HEADLINE_KEYS[1:] if key in card]
    return "\n".join(lines) + "\n" if lines else ""


def _render(value: Any) -> str:
    """A dict of dicts → table with one row per key; a flat dict → two-column table; else text."""
    if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
        return _nested_table(value)
    if isinstance(value, dict):
        return _table(value)
    if isinstance(value, list):
        return "\n".join(f"- {_scalar(item)}" for item in value) or "(none)"
    return _scalar(value)


def _table(mapping: dict[str, Any]) -> str:
    rows = [f"| {key} | {_scalar(value)} |" for key, value in mapping.items()]
    return "\n".join(["| key | value |", "|---|---|", *rows])


def _nested_table(mapping: dict[str, dict[str, Any]]) -> str:
    columns: list[str] = []
    for row in mapping.values():
        columns += [c for c in row if c not in columns]
    lines = ["| | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for name, row in mapping.items():
        lines.append(f"| {name} | " + " | ".join(_scalar(row.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def _scalar(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if value != 0 and abs(value) < 1e-3:
            return f"{value:.3g}"  # learning rates: 0.0001 → 1e-04
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_scalar(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_scalar(v) for v in value)
    return str(value).replace("|", "\\|").replace("\n", " ")


def _title(key: str) -> str:
    return key.replace("_", " ").capitalize()


def _usage() -> str:
    return (
        "## Usage\n\n```python\nfrom trainers.encoder import EncoderClassifier\n\n"
        'student = EncoderClassifier.load("path/to/this/folder")\n'
        'student.predict(["some text"])  # [(label, confidence)]\n```\n\n'
        "The encoder is a standard `save_pretrained` folder (mean pooling, L2-normalised); the linear head "
        "is `head.safetensors`, its rows in `labels.json` order. `distill_student.json` holds the full "
        "training config and this card as data.\n"
    )
