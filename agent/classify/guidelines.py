"""The classifier variant of strategy teaching: guidelines for confusable label pairs."""

from __future__ import annotations

from collections import defaultdict

from agent import console
from agent.classify.context import RunContext
from agent.runtime import run_requests
from agent.strategies import StrategyLibrary
from generators.generation import (
    Feedback,
)
from generators.prompts import get_template
from generators.schemas import Guidelines

# -- classifier variant of strategy teaching: guidelines for confusable pairs -----------------------

GUIDELINE_PAIRS = 3


def pair_guidelines(ctx: RunContext, round: int, feedback: Feedback) -> dict[str, str]:
    """Distinguishing guidelines for the worst confused label pairs, kept in the strategy library.

    The teacher writes one rule per pair (once per pair: later rounds reuse it); each enters the library
    as *proposed*, so a person can audit it. Rejected or retired guidelines no longer feed prompts.
    """
    library = StrategyLibrary(ctx.store)
    pairs = _worst_pairs(feedback.confusions, GUIDELINE_PAIRS)
    known = {s.scope for s in library.current()}
    missing = [p for p in pairs if _pair_scope(p) not in known]
    if missing:
        _request_guidelines(ctx, library, round, feedback, missing)
    usable = [s for s in library.current(["proposed", "approved"]) if s.scope.startswith("pair:")]
    per_label: dict[str, list[str]] = defaultdict(list)
    for strategy in usable:
        for label in pair_labels(strategy.scope, ctx.labels):
            per_label[label].append(strategy.text)
    return {label: " ".join(texts) for label, texts in per_label.items()}


def pair_labels(scope: str, labels: list[str]) -> list[str]:
    """The two labels of a ``pair:a|b`` scope; a label may itself contain "|", so split where both sides are labels."""
    pair = scope.removeprefix("pair:")
    known = set(labels)
    for at in (i for i, char in enumerate(pair) if char == "|"):
        if pair[:at] in known and pair[at + 1 :] in known:
            return [pair[:at], pair[at + 1 :]]
    return pair.split("|")


def _pair_scope(pair: tuple[str, str]) -> str:
    return "pair:" + "|".join(sorted(pair))


def _worst_pairs(confusions: list[tuple[str, str, int]], k: int) -> list[tuple[str, str]]:
    """The k unordered label pairs with the most confusions in either direction."""
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for gold, predicted, count in confusions:
        counts[(min(gold, predicted), max(gold, predicted))] += count
    return sorted(counts, key=lambda pair: (-counts[pair], pair))[:k]


def _request_guidelines(
    ctx: RunContext, library: StrategyLibrary, round: int, feedback: Feedback, pairs: list[tuple[str, str]]
) -> None:
    template = get_template("guidelines")
    lines = []
    for a, b in pairs:
        for label in (a, b):
            info = feedback.per_label[label]
            shown = info.correct[:2] + [t for t, _ in info.misclassified[:2]]
            lines.append(f"- {label}: " + " | ".join(shown) if shown else f"- {label}: (no examples)")
    variables = {
        "task_description": ctx.task.description,
        "taxonomy": ctx.task.taxonomy(),
        "pairs": "\n".join(f"{a} vs {b}" for a, b in pairs) + "\nExamples:\n" + "\n".join(lines),
    }
    brief = {"action": "guidelines", "pairs": [list(p) for p in pairs], "descriptions": ctx.task.labels}
    request = template.request(variables, brief, items=len(pairs), round=round, temperature=0.0, labels=ctx.labels)
    [result] = run_requests(ctx.teacher, [request], Guidelines)
    if isinstance(result, BaseException):
        console.warn(f"round {round}: no labeling guidelines this round ({result})")
        return
    for guideline in result.parsed.guidelines:
        pair = (guideline.labels[0], guideline.labels[1])
        if set(pair) <= set(ctx.labels):
            library.propose(
                _pair_scope(pair),
                guideline.text,
                round=round,
                teacher_call_id=result.call_id,
                provenance={"pair": sorted(pair), "round": round, "teacher_call_id": result.call_id},
            )
