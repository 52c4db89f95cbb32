"""Reading the user's JSONL files: one object per line, and an error that names the file, line and fix."""

from __future__ import annotations

import json
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
