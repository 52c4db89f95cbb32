"""The round loop, top to bottom (DESIGN §3):

    spec → seed (round 0) → [generate → filter → audit → train → evaluate → decide] × N → export best

Every step leaves its output durable before the next starts. Each step declares the round status it
leaves behind, and a step whose round has reached that status is skipped: ``resume`` calls the same
function and continues from the first step not done.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent import console
from agent.classify.audit import audit_round
from agent.classify.context import RunContext
from agent.classify.decide import decide_round
from agent.classify.export import export_best
from agent.classify.fit import evaluate_round, filter_round, train_round
from agent.classify.generate import generate_round
from agent.classify.seed import generate_seed, prepare_evaluation_sets
from agent.interrupts import RunInterrupted
from agent.round_policy import best_round
from agent.store import RoundRow, RoundStatus, RunStatus


@dataclass(frozen=True)
class LoopResult:
    best_round: int
    model_dir: Path
    stop_reasons: list[str]
    rounds: int


@dataclass(frozen=True)
class Step:
    """A named step of a round; it is done once the round's status has reached ``leaves``."""

    name: str
    leaves: RoundStatus
    run: Callable[[RunContext, int], None]


def _generate(ctx: RunContext, round: int) -> None:
    if round == 0:
        generate_seed(ctx)
    else:
        generate_round(ctx, round, _quotas_after(ctx, round - 1))


def _filter(ctx: RunContext, round: int) -> None:
    filter_round(ctx, round)


def _audit(ctx: RunContext, round: int) -> None:
    audit_round(ctx, round)


def _train(ctx: RunContext, round: int) -> None:
    train_round(ctx, round)


def _evaluate(ctx: RunContext, round: int) -> None:
    scores = evaluate_round(ctx, round)
    console.round_summary(round, scores, ctx.store.drop_counts(round))


def _decide(ctx: RunContext, round: int) -> None:
    decision = decide_round(ctx, round)
    console.decision(round, decision.label, decision.reasons)


ROUND_STEPS = (
    Step("generate", RoundStatus.GENERATED, _generate),
    Step("filter", RoundStatus.FILTERED, _filter),
    Step("audit", RoundStatus.AUDITED, _audit),
    Step("train", RoundStatus.TRAINED, _train),
    Step("evaluate", RoundStatus.EVALUATED, _evaluate),
    Step("decide", RoundStatus.DECIDED, _decide),
)


def run_loop(ctx: RunContext) -> LoopResult:
    """Run (or resume) the whole distillation loop and export the best round's model."""
    prepare_evaluation_sets(ctx)
    round = 0
    while True:
        for step in ROUND_STEPS:
            _run_step(ctx, round, step)
        if _stored_round(ctx, round).decision == "stop":
            break
        round += 1
    best = _best_round(ctx)
    _check_stop(ctx)
    model_dir = export_best(ctx, best)
    reasons = _stored_round(ctx, round).reasons
    ctx.store.set_run_status(RunStatus.FINISHED, "; ".join(reasons))
    return LoopResult(best, model_dir, reasons, round)


def _run_step(ctx: RunContext, round: int, step: Step) -> None:
    if ctx.store.round_reached(round, step.leaves):
        return
    _check_stop(ctx)
    step.run(ctx, round)
    if ctx.observer is not None:
        ctx.observer(round, step.name)


def _check_stop(ctx: RunContext) -> None:
    """The safe point between steps: a first Ctrl-C ends the run here, resumable."""
    if ctx.stop.requested:
        raise RunInterrupted(ctx.run_dir)


def _stored_round(ctx: RunContext, round: int) -> RoundRow:
    row = ctx.store.round_row(round)
    assert row is not None, f"round {round} has run its steps, so it is stored"
    return row


def _quotas_after(ctx: RunContext, round: int) -> dict[str, int]:
    return dict(_stored_round(ctx, round).quotas or {})


def _best_round(ctx: RunContext) -> int:
    """The policy's choice over the rounds' held-back macro-F1 (the only split that may decide)."""
    heldback = [ctx.store.metric(r.idx, "heldback", "macro_f1") or 0.0 for r in ctx.store.round_rows()]
    return best_round(heldback)
