"""Deciding the next round (or stopping), and exporting the best round's model."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any

from agent.classify.context import RunContext
from agent.classify.split import adaptive_split_applies, measure_split
from agent.round_policy import BudgetSplit, Decision, PolicyInput, decide, split_budget
from agent.store import RunStore
from generators.ledger import format_usd


def _budget_stop(ctx: RunContext, round: int) -> str | None:
    """A reason to stop for money, tokens or time: a call was refused, or what is left pays for no call.

    A round that the budget only partly affords still runs: the ledger refuses each call that could
    cross the limit, so the run spends what it was given instead of stopping with most of it unused.
    """
    if ctx.budget_hit:
        return ctx.budget_hit
    budget = ctx.spec.budget
    spent_usd, spent_tokens = ctx.store.spent()
    paid_calls = max(1, sum(int(c["calls"]) for c in ctx.store.calls_by_prompt().values()))
    if budget.max_usd is not None and budget.max_usd - spent_usd < spent_usd / paid_calls:
        return (
            f"budget: {format_usd(budget.max_usd - spent_usd)} left of max_usd={format_usd(budget.max_usd)}, "
            f"less than one teacher call (~{format_usd(spent_usd / paid_calls)})"
        )
    tokens_cap = budget.max_teacher_tokens
    if tokens_cap is not None and tokens_cap - spent_tokens < spent_tokens / paid_calls:
        return f"budget: {tokens_cap - spent_tokens} tokens left of max_teacher_tokens={tokens_cap}, less than one call"
    if budget.max_minutes is not None and elapsed_minutes(ctx.store) >= budget.max_minutes:
        return f"budget: wall time {elapsed_minutes(ctx.store):.1f} min ≥ max_minutes={budget.max_minutes}"
    return None


def elapsed_minutes(store: RunStore) -> float:
    """Active time over all rounds (a resumed run does not count the time it lay crashed)."""
    now = time.time()
    return sum(((r.finished_at or now) - r.started_at) for r in store.round_rows()) / 60


def decide_round(ctx: RunContext, round: int) -> Decision:
    previous = ctx.store.round_row(round - 1)
    previous_weights = None
    if previous is not None and previous.quotas:
        quotas = previous.quotas
        total = sum(quotas.values()) or 1
        previous_weights = {k: v / total for k, v in quotas.items()}
    feedback = json.loads((ctx.model_dir(round) / "eval_feedback.json").read_text())
    errors = {label: 1.0 - feedback["per_class"].get(label, {}).get("f1", 0.0) for label in ctx.labels}
    heldback = [ctx.store.metric(i, "heldback", "macro_f1") or 0.0 for i in range(round + 1)]
    uniform = ctx.method == "uniform"
    split = _budget_split(ctx, round)
    state = PolicyInput(
        round=round,
        max_rounds=ctx.spec.effective_max_rounds,
        heldback_macro_f1=heldback,
        patience=ctx.spec.loop.patience,
        per_class_error={label: 0.5 for label in ctx.labels} if uniform else errors,
        round_size=ctx.spec.loop.examples_per_round if split is None else split[0].generation,
        target_macro_f1=ctx.spec.loop.target_macro_f1,
        alpha=ctx.spec.loop.smoothing_alpha,
        previous_weights=previous_weights,
        budget_stop=_budget_stop(ctx, round),
        smoothing=ctx.method != "pgkd_nosmooth",
    )
    decision = decide(state)
    record = None
    if split is not None and not decision.stop:  # the split is next round's: a last round has none
        decision = replace(decision, reasons=[*decision.reasons, split[0].reason])
        record = split[1]
    ctx.store.finish_round(
        round, decision.label, decision.reasons, decision.quotas, str(ctx.model_dir(round)), split=record
    )
    return decision


def _budget_split(ctx: RunContext, round: int) -> tuple[BudgetSplit, dict[str, Any]] | None:
    """Next round's adaptive generation/labeling split and its stored record; None for a fixed split."""
    if not adaptive_split_applies(ctx.spec):
        return None
    measured = measure_split(ctx, round)
    split = split_budget(measured)
    return split, split.record(measured)
