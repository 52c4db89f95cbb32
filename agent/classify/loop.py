"""The round loop, top to bottom (DESIGN §3):

    spec → seed (round 0) → [generate → filter → train → evaluate → decide] × N → export best

Every step leaves its output durable before the next starts; ``resume`` calls the same function and
each step skips what the store says is done.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent import console
from agent.classify.context import RunContext
from agent.classify.decide import decide_round
from agent.classify.export import export_best
from agent.classify.fit import evaluate_round, filter_round, train_round
from agent.classify.generate import generate_round
from agent.classify.seed import generate_seed, prepare_evaluation_sets

StepHook = Callable[[int, str], None]


@dataclass(frozen=True)
class LoopResult:
    best_round: int
    model_dir: Path
    stop_reasons: list[str]
    rounds: int


def _quotas_after(ctx: RunContext, round: int) -> dict[str, int]:
    row = next(r for r in ctx.store.rounds() if r["idx"] == round)
    return dict(json.loads(row["quotas_json"] or "{}"))


def run_loop(ctx: RunContext, on_step: StepHook | None = None) -> LoopResult:
    """Run (or resume) the whole distillation loop and export the best round's model."""
    hook = on_step or (lambda round, step: None)
    prepare_evaluation_sets(ctx)
    generate_seed(ctx)
    hook(0, "generate")
    round = 0
    while True:
        if round > 0:
            generate_round(ctx, round, _quotas_after(ctx, round - 1))
            hook(round, "generate")
        drops = filter_round(ctx, round)
        hook(round, "filter")
        if ctx.store.round_status(round) in ("filtered", "trained"):
            train_round(ctx, round)
            hook(round, "train")
        if ctx.store.round_status(round) == "trained":
            scores = evaluate_round(ctx, round)
            console.round_summary(round, scores, drops)
            hook(round, "evaluate")
        decision = _decision(ctx, round)
        hook(round, "decide")
        if decision is None:
            break
        round += 1
    best = _best_round(ctx)
    model_dir = export_best(ctx, best)
    reasons = json.loads(ctx.store.rounds()[-1]["reasons_json"])
    ctx.store.set_run_status("finished", "; ".join(reasons))
    return LoopResult(best, model_dir, reasons, round)


def _decision(ctx: RunContext, round: int) -> bool | None:
    """Decide (or read the stored decision); None means stop."""
    row = next(r for r in ctx.store.rounds() if r["idx"] == round)
    if row["status"] != "decided":
        decision = decide_round(ctx, round)
        console.decision(round, decision.label, decision.reasons)
        return None if decision.stop else True
    return None if row["decision"] == "stop" else True


def _best_round(ctx: RunContext) -> int:
    scores = [(ctx.store.metric(r["idx"], "heldback", "macro_f1") or 0.0, -r["idx"]) for r in ctx.store.rounds()]
    return -max(scores)[1]
