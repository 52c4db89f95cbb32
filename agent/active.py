"""Active learning: which unlabeled texts the teacher should label next.

Uncertainty sampling by margin: the texts where the student's top two classes are closest are the ones
a label teaches it most about (Settles 2009, §3.1). Pure functions; the round step in ``agent.steps``
does the I/O.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np

from agent.store import content_hash


def read_unlabeled(path: Path, field_name: str = "task.unlabeled") -> list[str]:
    """Distinct non-empty texts of a JSONL file of {"text": ...} lines (any other keys are ignored)."""
    texts: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{field_name}: {path} line {number} is not JSON ({exc.msg}) — write one object "
                             "per line") from exc
        text = item.get("text") if isinstance(item, dict) else None
        if not isinstance(text, str):
            raise ValueError(f"{field_name}: {path} line {number} has no \"text\" string — write {{\"text\": \"...\"}}")
        if text.strip():
            texts.setdefault(content_hash(text), text)
    return list(texts.values())


def margins(probabilities: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 probability per row: 0 = torn between two classes, 1 = certain."""
    if probabilities.shape[1] < 2:
        return np.ones(len(probabilities))
    top2 = np.sort(probabilities, axis=1)[:, -2:]
    return np.asarray(top2[:, 1] - top2[:, 0])


def select_by_margin(probabilities: np.ndarray, k: int) -> list[int]:
    """Indices of the ``k`` smallest margins, most uncertain first (ties keep input order)."""
    return [int(i) for i in np.argsort(margins(probabilities), kind="stable")[:k]]


def candidates(pool: list[str], used_hashes: set[str], cap: int, rng: random.Random) -> list[str]:
    """Pool texts not yet in the run (train, validation or test), at most ``cap`` of them, seeded."""
    fresh = [t for t in pool if content_hash(t) not in used_hashes]
    return rng.sample(fresh, cap) if len(fresh) > cap else fresh
