"""Active learning: which unlabeled texts the teacher should label next.

Uncertainty sampling by margin: the texts where the student's top two classes are closest are the ones
a label teaches it most about (Settles 2009, §3.1), spread over the predicted classes so that a weak
student does not spend the whole budget on one confusable pair. Pure functions; the round step in
``agent.classify.generate`` does the I/O.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from agent.data_files import read_texts
from agent.store import content_hash

if TYPE_CHECKING:
    from agent.spec import ColumnMap


def read_unlabeled(
    path: Path,
    field_name: str = "task.unlabeled",
    warnings: list[str] | None = None,
    columns: ColumnMap | None = None,
) -> list[str]:
    """Distinct non-empty texts of a JSONL file of {"text": ...} lines (any other keys are ignored).

    A bad line is a ``DataFileError`` (an ``InputError``) naming the file, line and fix; a file with no
    text is a warning (into ``warnings``, else printed).
    """
    return read_texts(path, field_name, warnings, columns)


def margins(probabilities: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 probability per row: 0 = torn between two classes, 1 = certain."""
    if probabilities.shape[1] < 2:
        return np.ones(len(probabilities))
    top2 = np.sort(probabilities, axis=1)[:, -2:]
    return np.asarray(top2[:, 1] - top2[:, 0])


def select_by_margin(probabilities: np.ndarray, k: int) -> list[int]:
    """``k`` indices by uncertainty, spread over the predicted classes: round-robin over classes, each
    giving its smallest-margin text next (ties keep input order).

    Pure smallest-margin-first piles the labels onto one or two confusable pairs while the student is
    still weak (a 1-seed TREC check: −0.043 macro-F1 against a random draw); taking the most uncertain
    text *per predicted class* keeps the focus on the boundary and the coverage of the taxonomy.
    """
    order = np.argsort(margins(probabilities), kind="stable")
    predicted = probabilities.argmax(axis=1)
    queues = [[int(i) for i in order if predicted[i] == c] for c in range(probabilities.shape[1])]
    # Classes whose most uncertain text is the most uncertain overall go first in each pass.
    queues = sorted((q for q in queues if q), key=lambda q: margins(probabilities[q[:1]])[0])
    chosen: list[int] = []
    while len(chosen) < k and any(queues):
        for queue in queues:
            if queue and len(chosen) < k:
                chosen.append(queue.pop(0))
    return chosen


def candidates(pool: list[str], used_hashes: set[str], cap: int, rng: random.Random) -> list[str]:
    """Pool texts not yet in the run (train, validation or test), at most ``cap`` of them, seeded."""
    fresh = [t for t in pool if content_hash(t) not in used_hashes]
    return rng.sample(fresh, cap) if len(fresh) > cap else fresh
