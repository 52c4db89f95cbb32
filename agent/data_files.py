"""Reading the user's data files: one object per line, and an error that names the file, line and fix."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def jsonl_objects(path: Path, field_name: str) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) for every non-blank line; ``field_name`` is the spec key that named the file."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"{field_name}: {path} line {number} is not JSON ({exc.msg}) — write one object per line"
            ) from None


def read_jsonl(path: Path, labels: set[str], field_name: str) -> list[dict[str, str]]:
    """Rows {text, label} from a JSONL file; a bad line is an error naming the file, line and fix."""
    rows = []
    for number, row in jsonl_objects(path, field_name):
        if not isinstance(row, dict) or not isinstance(row.get("text"), str) or "label" not in row:
            raise ValueError(f"{field_name}: {path}:{number} needs string keys 'text' and 'label'")
        if row["label"] not in labels:
            raise ValueError(f"{field_name}: {path}:{number} has label {row['label']!r}, not in task.labels")
        rows.append({"text": row["text"], "label": str(row["label"])})
    return rows


def stratified_split(
    rows: list[dict[str, str]], fraction: float, rng: random.Random
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Split per label: ``fraction`` of each label's rows to the first part, at least one to each."""
    by_label: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        by_label[row["label"]].append(row)
    first, second = [], []
    for label in sorted(by_label):
        items = by_label[label][:]
        rng.shuffle(items)
        cut = min(max(1, round(len(items) * fraction)), max(1, len(items) - 1))
        first += items[:cut]
        second += items[cut:]
    return first, second
