"""Which pool items are still unused, and how ``generate`` picks among them.

The key behaviour (DESIGN §5): with ``like`` texts, a real LLM writes *new* examples in their
spirit, not copies of their nearest neighbours. So we rank the label's unused items by similarity
to the like texts and sample uniformly from a wide top-k (``diversity_width × n``), never just the
n nearest.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from simulator.pool import PoolIndex


@dataclass
class PoolUsage:
    """Mutable bookkeeping over the pool. The lock guards in-memory updates only (never held across awaits)."""

    size: int
    used: np.ndarray = field(init=False)
    served: dict[str, list[int]] = field(default_factory=dict)  # requested label → pool rows returned under it
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.used = np.zeros(self.size, dtype=bool)

    def unused(self, rows: np.ndarray) -> np.ndarray:
        return rows[~self.used[rows]]

    def mark_used(self, rows: list[int]) -> None:
        self.used[rows] = True

    def record_served(self, label: str, rows: list[int]) -> None:
        """Remember rows returned as examples of ``label`` (the pool for later duplicates)."""
        self.mark_used(rows)
        self.served.setdefault(label, []).extend(rows)

    @property
    def served_count(self) -> int:
        return sum(len(rows) for rows in self.served.values())


@dataclass(frozen=True)
class DrawSpec:
    """How to pick: neighbourhood of ``like`` vectors (if any), a length preference, texts to skip."""

    like: sp.csr_matrix | None = None
    length: str | None = None  # "short" | "long" | None
    exclude: frozenset[str] = frozenset()  # normalised texts never to return (like and avoid texts)
    width: int = 8


def draw(
    index: PoolIndex, usage: PoolUsage, rows: np.ndarray, k: int, spec: DrawSpec, rng: np.random.Generator
) -> list[int]:
    """Pick up to ``k`` unused rows among ``rows`` (one label's, or the union an outcome such as
    ``out_of_scope`` draws from; fewer when they run out); does not mark them used."""
    if k <= 0 or not len(rows):
        return []
    candidates = usage.unused(rows)
    if spec.exclude:
        candidates = np.array([r for r in candidates if index.keys[r] not in spec.exclude], dtype=np.int64)
    candidates = _prefer_length(index, float(np.median(index.lengths[rows])), candidates, spec.length, k)
    if spec.like is not None and len(candidates) > k:
        candidates = _most_similar(index, candidates, spec.like, max(k, spec.width * k))
    size = min(k, len(candidates))
    return [int(r) for r in rng.choice(candidates, size=size, replace=False)] if size else []


def _prefer_length(index: PoolIndex, median: float, candidates: np.ndarray, length: str | None, k: int) -> np.ndarray:
    """Keep items below/above the source's median length, unless that leaves fewer than ``k`` (best effort)."""
    if length not in ("short", "long"):
        return candidates
    lengths = index.lengths[candidates]
    preferred = candidates[lengths < median] if length == "short" else candidates[lengths > median]
    return preferred if len(preferred) >= k else candidates


def _most_similar(index: PoolIndex, candidates: np.ndarray, like: sp.csr_matrix, top: int) -> np.ndarray:
    """The ``top`` candidates closest to any like text (max cosine similarity)."""
    sims = np.asarray((index.matrix[candidates] @ like.T).max(axis=1).todense()).ravel()
    order = np.argsort(-sims, kind="stable")
    return candidates[order[:top]]
