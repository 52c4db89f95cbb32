"""Round 0: evaluation sets and seed examples."""

from __future__ import annotations

from agent import console
from agent.classify.context import RunContext
from agent.classify.teacher_calls import collect, rows_from
from agent.data_files import read_jsonl, stratified_split
from agent.store import RoundStatus
from generators.generation import (
    seed_requests,
)
from generators.schemas import GeneratedExamples


def prepare_evaluation_sets(ctx: RunContext) -> None:
    """Load validation (split feedback / held-back) and test sets once; build validation if absent."""
    if ctx.store.examples("feedback") or ctx.store.round_reached(0, RoundStatus.GENERATING):
        return
    task, labels = ctx.spec.task, set(ctx.labels)
    rng = ctx.rng(0, "validation")
    if task.validation is not None:
        validation = read_jsonl(task.validation, labels, "task.validation", [], task.columns)
        origin = "real"
    else:
        validation = _teacher_validation(ctx)
        origin = "generated"
    feedback, heldback = stratified_split(validation, ctx.spec.loop.feedback_fraction, rng)
    test = read_jsonl(task.test, labels, "task.test", [], task.columns) if task.test else []
    rows = (
        [{**r, "round": 0, "split": "feedback", "origin": origin, "kept": True} for r in feedback]
        + [{**r, "round": 0, "split": "heldback", "origin": origin, "kept": True} for r in heldback]
        + [{**r, "round": 0, "split": "test", "origin": "real", "kept": True} for r in test]
    )
    ctx.store.add_examples(rows, mark_round=(0, RoundStatus.GENERATING))


def _teacher_validation(ctx: RunContext) -> list[dict[str, str]]:
    console.warn(
        "NO VALIDATION SET GIVEN (task.validation): building one from teacher-written, teacher-labeled "
        "examples. Scores on it measure agreement with the teacher, not with your users' data. "
        "Add a few real labeled examples per label as task.validation for an honest measurement."
    )
    per_label = ctx.spec.loop.validation_per_label
    rng = ctx.rng(0, "validation-gen")
    requests = [
        r
        for label in ctx.labels
        for r in seed_requests(
            ctx.task,
            label,
            per_label,
            per_call=ctx.spec.loop.batch_per_call,
            rng=rng,
            examples=[],
            purpose="validation",
        )
    ]
    results = collect(ctx, requests, "validation set", GeneratedExamples, batchable=True)
    return [
        {"text": r["text"], "label": r["label"]}
        for r in rows_from(results, 0, "feedback", "generated")
        if r["label"] in set(ctx.labels)
    ]


def generate_seed(ctx: RunContext) -> None:
    """Round 0: the user's seed examples plus teacher-written seeds per label, stored unfiltered."""
    labels = set(ctx.labels)
    user_seeds = (
        read_jsonl(ctx.spec.task.seed_examples, labels, "task.seed_examples", [], ctx.spec.task.columns)
        if ctx.spec.task.seed_examples
        else []
    )
    rows = [{**r, "round": 0, "split": "train", "origin": "real"} for r in user_seeds]
    per_label = ctx.spec.loop.seed_per_label
    if per_label:
        rng = ctx.rng(0, "seed")
        requests = []
        for label in ctx.labels:
            shown = [r["text"] for r in user_seeds if r["label"] == label]
            requests += seed_requests(
                ctx.task, label, per_label, per_call=ctx.spec.loop.batch_per_call, rng=rng, examples=shown
            )
        results = collect(ctx, requests, "round 0 seed generation", GeneratedExamples, batchable=True)
        rows += rows_from(results, 0, "train", "generated")
    if not rows:
        raise ValueError("no training data: give task.seed_examples or set loop.seed_per_label > 0")
    ctx.store.add_examples(rows, mark_round=(0, RoundStatus.GENERATED))
