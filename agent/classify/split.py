"""``loop.budget_split: adaptive``: what each data source bought in a round, for the split of the next.

A run with both teacher generation and an unlabeled pool buys data two ways: the teacher writes
examples (PGKD) or labels the student's most uncertain texts (active learning). Which buys more per
dollar depends on the task and changes as the student improves, so each round measures it:

- **gain**: a frozen-embedding logistic regression (``trainers.baselines.frozen_embedding_lr``, the run's
  own embedder) trained on the kept data from before the round, against the same plus one source's new
  kept examples, scored by macro-F1 on the **held-back** split (the teacher never sees it; never test).
  A cheap, deterministic attribution: seconds, no student retraining, each source measured alone.
- **cost**: the source's teacher calls in the round from the journal (generation: the PGKD or uniform
  generation prompts and the pair guidelines they carry; labeling: ``label``), in USD, or in tokens
  when every price is 0 (the simulator's default).

The pure policy (``agent.round_policy.split_budget``) turns the two into next round's counts.
"""

from __future__ import annotations

import numpy as np

from agent.classify.context import RunContext
from agent.classify.generate import active_count
from agent.round_policy import SourceGain, SplitInput
from agent.spec import RunSpec
from agent.store import ExampleRow, PromptUsage

GENERATION_PROMPTS = frozenset({"pgkd_generate", "seed_generate", "guidelines"})
LABELING_PROMPTS = frozenset({"label"})


def adaptive_split_applies(spec: RunSpec) -> bool:
    """Only a run that buys data both ways has a split to choose."""
    loop = spec.loop
    return (
        loop.budget_split == "adaptive"
        and loop.examples_per_round > 0
        and loop.active_per_round > 0
        and spec.task.unlabeled is not None
    )


def measure_split(ctx: RunContext, round: int) -> SplitInput:
    """Round ``round``'s gain and cost per source (nothing in round 0, which only seeds)."""
    loop = ctx.spec.loop
    previous = ctx.store.round_split(round - 1) if round else None
    costs = ctx.store.round_cost_by_prompt(round)
    unit = "usd" if any(u["usd"] > 0 for u in costs.values()) else "tokens"
    state = SplitInput(
        configured_generation=loop.examples_per_round,
        configured_labeling=loop.active_per_round,
        generation=None,
        labeling=None,
        cost_unit=unit,
        previous_share=None if previous is None else previous.record.get("generation_share"),
    )
    if round == 0 or ctx.embed is None:
        return state
    asked = {"generation": _generation_asked(ctx, round), "labeling": active_count(ctx, round)}
    gains = _heldback_gains(ctx, round)
    sources = {
        name: SourceGain(gains[name], _cost(costs, prompts, unit), asked[name])
        for name, prompts in (("generation", GENERATION_PROMPTS), ("labeling", LABELING_PROMPTS))
        if name in gains and asked[name] > 0
    }
    return SplitInput(
        state.configured_generation,
        state.configured_labeling,
        sources.get("generation"),
        sources.get("labeling"),
        unit,
        state.previous_share,
    )


def _generation_asked(ctx: RunContext, round: int) -> int:
    """Examples round ``round`` asked the teacher to write: the previous decision's quotas."""
    previous = ctx.store.round_row(round - 1)
    return sum((previous.quotas or {}).values()) if previous is not None else 0


def _cost(costs: dict[str, PromptUsage], prompts: frozenset[str], unit: str) -> float:
    usage = [u for prompt, u in costs.items() if prompt in prompts]
    if unit == "usd":
        return float(sum(u["usd"] for u in usage))
    return float(sum(u["tokens_in"] + u["tokens_out"] for u in usage))


def _heldback_gains(ctx: RunContext, round: int) -> dict[str, float]:
    """Held-back macro-F1 of the LR with each source's new kept examples, minus without them."""
    kept = ctx.store.examples("train", kept=True)
    heldback = ctx.store.examples("heldback")
    before = [e for e in kept if e.round < round]
    if not heldback or len({e.label for e in before}) < 2:
        return {}
    base = _heldback_f1(ctx, before, heldback)
    gains: dict[str, float] = {}
    for name, origin in (("generation", "generated"), ("labeling", "active")):
        new = [e for e in kept if e.round == round and e.origin == origin]
        gains[name] = _heldback_f1(ctx, before + new, heldback) - base if new else 0.0
    return gains


def _heldback_f1(ctx: RunContext, train: list[ExampleRow], heldback: list[ExampleRow]) -> float:
    """The run's macro-F1 definition (``trainers.evaluate``) of the frozen-embedding LR's predictions."""
    from trainers.baselines import frozen_embedding_lr
    from trainers.evaluate import evaluate

    assert ctx.embed is not None
    texts, labels, gold = [e.text for e in train], [e.label for e in train], [e.label for e in heldback]
    predicted = frozen_embedding_lr(texts, labels, [e.text for e in heldback], ctx.embed)
    classes = sorted({*ctx.labels, *labels, *gold})  # a run's extra outcome (out_of_scope) counts too
    one_hot = np.array([[float(p == c) for c in classes] for p in predicted])
    return evaluate(gold, one_hot, classes).macro_f1
