"""Active learning: which unlabeled texts the teacher should label next.

Uncertainty sampling by margin: the texts where the student's top two classes are closest are the ones
a label teaches it most about (Settles 2009, §3.1), spread over the predicted classes so that a weak
student does not spend the whole budget on one confusable pair.

``margin_diversity`` thins the most uncertain candidates to a diverse batch (Zhdanov 2019, "diverse
mini-batch active learning"): the ``DIVERSITY_POOL``·k smallest-margin texts are clustered into k groups
on sentence embeddings, and each group gives the text nearest its centre. Uncertain texts come in
clumps (paraphrases of the same confusing request), so a pure margin batch pays for many labels that
teach the same thing. The clusters start from greedy k-center (farthest-first), which alone would
prefer the most isolated texts, i.e. outliers; the Lloyd steps and the pick nearest each centre trade
that for representative texts of each uncertain region.

Pure functions (numpy only); the round step in ``agent.classify.generate`` does the I/O.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from agent.data_files import read_texts
from agent.store import content_hash

if TYPE_CHECKING:
    from agent.spec import ColumnMap

VectorsOf = Callable[[list[int]], np.ndarray]  # candidate indices → one embedding row each


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


DIVERSITY_POOL = 4  # m: margin_diversity clusters the m·k most uncertain texts and keeps k of them
KMEANS_STEPS = 10  # Lloyd iterations after the k-center start; a few hundred points settle well before this


def uncertain_pool(probabilities: np.ndarray, k: int, multiple: int = DIVERSITY_POOL) -> list[int]:
    """The ``multiple``·``k`` candidates margin selection would take first (most uncertain first)."""
    return select_by_margin(probabilities, multiple * k)


def k_center(vectors: np.ndarray, k: int, first: int = 0) -> list[int]:
    """Greedy farthest-first traversal: ``first``, then each time the point farthest from all chosen.

    Deterministic (ties go to the lower index); a 2-approximation of the k-center cover (Gonzalez 1985).
    Returns at most ``min(k, len(vectors))`` distinct indices, in the order they were chosen.
    """
    n = len(vectors)
    if k <= 0 or n == 0:
        return []
    chosen = [first]
    distance = np.linalg.norm(vectors - vectors[first], axis=1)
    distance[first] = -1.0  # chosen points are never chosen again, even among exact duplicates
    while len(chosen) < min(k, n):
        far = int(np.argmax(distance))
        chosen.append(far)
        distance = np.minimum(distance, np.linalg.norm(vectors - vectors[far], axis=1))
        distance[chosen] = -1.0
    return chosen


def diverse_subset(vectors: np.ndarray, k: int, steps: int = KMEANS_STEPS) -> list[int]:
    """``k`` indices of ``vectors``, one per k-means cluster: the member nearest its cluster's centre.

    The clusters start at the k-center points from row 0 (the most uncertain text when rows are in
    margin order), so the result is deterministic. Returned in input order.
    """
    if k >= len(vectors):
        return list(range(len(vectors)))
    centres = vectors[k_center(vectors, k)].astype(np.float64)
    for _ in range(steps):
        assignment = _nearest_centre(vectors, centres)
        moved = np.array(
            [vectors[assignment == c].mean(axis=0) if np.any(assignment == c) else centres[c] for c in range(k)]
        )
        if np.allclose(moved, centres):
            break
        centres = moved
    return sorted(_members_nearest(vectors, centres, _nearest_centre(vectors, centres)))


def _nearest_centre(vectors: np.ndarray, centres: np.ndarray) -> np.ndarray:
    # ‖x − c‖² = ‖x‖² − 2x·c + ‖c‖²: no (points × centres × dims) array, so k in the thousands fits in memory.
    squared = (vectors**2).sum(axis=1)[:, None] - 2 * vectors @ centres.T + (centres**2).sum(axis=1)[None, :]
    return np.asarray(squared.argmin(axis=1))


def _members_nearest(vectors: np.ndarray, centres: np.ndarray, assignment: np.ndarray) -> set[int]:
    """Per non-empty cluster, its member nearest the centre (the lower index on a tie)."""
    picked: set[int] = set()
    for c in range(len(centres)):
        members = np.flatnonzero(assignment == c)
        if len(members):
            distances = np.linalg.norm(vectors[members] - centres[c], axis=1)
            picked.add(int(members[int(np.argmin(distances))]))
    return picked


def select_margin_diversity(probabilities: np.ndarray, vectors_of: VectorsOf, k: int) -> list[int]:
    """``k`` indices: the uncertain pool (``uncertain_pool``) thinned by ``diverse_subset`` on the
    vectors ``vectors_of(pool indices)`` returns; topped up in margin order if clusters came out empty."""
    pool = uncertain_pool(probabilities, k)
    picked = [pool[i] for i in diverse_subset(vectors_of(pool), k)]
    rest = [i for i in pool if i not in set(picked)]
    return picked + rest[: k - len(picked)]


def candidates(pool: list[str], used_hashes: set[str], cap: int, rng: random.Random) -> list[str]:
    """Pool texts not yet in the run (train, validation or test), at most ``cap`` of them, seeded."""
    fresh = [t for t in pool if content_hash(t) not in used_hashes]
    return rng.sample(fresh, cap) if len(fresh) > cap else fresh
