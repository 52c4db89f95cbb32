"""Filters for teacher-written examples. Every example gets a verdict, every drop a reason.

Order matters: validity first (cheap), then leakage before de-duplication, so a verbatim copy of a
validation text the teacher was shown is recorded as *leakage*, which is what it is.

Embeddings come from the agent as a plain callable (``embed``); this module never imports a model.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

Embed = Callable[[list[str]], np.ndarray]

# Phrases a model uses when it declines or talks about itself instead of writing data.
_REFUSAL = re.compile(
    r"\b(i'?m sorry|i am sorry|i can(?:'|no)t (?:help|assist|comply|provide|generate)|i cannot|"
    r"as an ai\b|as a language model|i'?m (?:just )?an ai|i won'?t be able to)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Candidate:
    id: int
    text: str
    label: str


@dataclass(frozen=True)
class Verdict:
    example_id: int
    filter: str
    kept: bool
    reason: str
    score: float | None = None


@dataclass(frozen=True)
class FilterConfig:
    labels: frozenset[str]
    min_chars: int = 3
    max_chars: int = 600
    near_duplicate_threshold: float = 0.95
    leakage_threshold: float = 0.95

    def __post_init__(self) -> None:
        for name in ("near_duplicate_threshold", "leakage_threshold"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise ValueError(f"{name} must be in (0, 1], got {value}")


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


def validity_reason(candidate: Candidate, config: FilterConfig) -> tuple[str, str] | None:
    """(filter, reason) when the example is unusable on its own, else None."""
    text = candidate.text.strip()
    if candidate.label not in config.labels:
        return "unknown_label", f"label {candidate.label!r} is not in the taxonomy"
    if len(text) < config.min_chars:
        return "length", f"text too short ({len(text)} < {config.min_chars} chars)"
    if len(text) > config.max_chars:
        return "length", f"text too long ({len(text)} > {config.max_chars} chars)"
    if _REFUSAL.search(text):
        return "refusal", "text reads as a refusal or meta-comment, not data"
    return None


def _max_similarity(vectors: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best cosine (rows are L2-normalised) of each vector against the reference set, and its index."""
    if len(reference) == 0 or len(vectors) == 0:
        return np.zeros(len(vectors)), np.zeros(len(vectors), dtype=int)
    sims = vectors @ reference.T
    return sims.max(axis=1), sims.argmax(axis=1)


def filter_batch(
    candidates: Sequence[Candidate],
    *,
    train_texts: Sequence[str],
    protected_texts: Sequence[str],
    config: FilterConfig,
    embed: Embed | None = None,
) -> list[Verdict]:
    """Verdicts for ``candidates`` against the kept training data and the val/test texts.

    ``protected_texts`` are validation and test texts: nothing equal or near-equal may enter training.
    Without ``embed`` only exact (normalised) matching is done for duplicates and leakage.
    """
    verdicts: dict[int, Verdict] = {}
    survivors: list[Candidate] = []
    protected = {normalise(t) for t in protected_texts}
    seen = {normalise(t) for t in train_texts}
    for cand in candidates:
        invalid = validity_reason(cand, config)
        key = normalise(cand.text)
        if invalid:
            verdicts[cand.id] = Verdict(cand.id, invalid[0], False, invalid[1])
        elif key in protected:
            verdicts[cand.id] = Verdict(cand.id, "leakage", False, "equal to a validation/test text", 1.0)
        elif key in seen:
            verdicts[cand.id] = Verdict(cand.id, "exact_duplicate", False, "same text as a kept example", 1.0)
        else:
            seen.add(key)
            survivors.append(cand)
    if embed is not None and survivors:
        verdicts.update(_near_filters(survivors, train_texts, protected_texts, config, embed))
    for cand in survivors:
        verdicts.setdefault(cand.id, Verdict(cand.id, "all", True, "passed every filter"))
    return [verdicts[c.id] for c in candidates]


def _near_filters(
    survivors: list[Candidate],
    train_texts: Sequence[str],
    protected_texts: Sequence[str],
    config: FilterConfig,
    embed: Embed,
) -> dict[int, Verdict]:
    """Near-leakage against val/test, then near-duplicates against training data and earlier survivors."""
    vectors = embed([c.text for c in survivors])
    leak_sim, _ = _max_similarity(vectors, embed(list(protected_texts)) if protected_texts else vectors[:0])
    train_vectors = embed(list(train_texts)) if train_texts else vectors[:0]
    dup_sim, _ = _max_similarity(vectors, train_vectors)
    verdicts: dict[int, Verdict] = {}
    accepted: list[int] = []
    for i, cand in enumerate(survivors):
        if leak_sim[i] >= config.leakage_threshold:
            verdicts[cand.id] = Verdict(
                cand.id,
                "leakage",
                False,
                f"near-equal to a validation/test text (cosine {leak_sim[i]:.3f})",
                float(leak_sim[i]),
            )
            continue
        within = float((vectors[accepted] @ vectors[i]).max()) if accepted else 0.0
        best = max(float(dup_sim[i]), within)
        if best >= config.near_duplicate_threshold:
            verdicts[cand.id] = Verdict(
                cand.id, "near_duplicate", False, f"near-duplicate of a kept example (cosine {best:.3f})", best
            )
            continue
        accepted.append(i)
    return verdicts
