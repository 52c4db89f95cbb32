"""Rounds ≥ 1: PGKD (or uniform) generation and active labeling of the unlabeled pool."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from agent import console
from agent.active import candidates, read_unlabeled, select_by_margin, select_margin_diversity
from agent.classify.context import RunContext
from agent.classify.guidelines import pair_guidelines
from agent.classify.teacher_calls import collect, rows_from
from agent.store import RoundStatus
from generators.generation import (
    Feedback,
    LabelFeedback,
    label_requests,
    pgkd_requests,
    seed_requests,
)
from generators.schemas import AssignedLabels, GeneratedExamples
from generators.teacher import TeacherRequest


def load_feedback(ctx: RunContext, round: int) -> Feedback:
    """What the teacher may see after ``round - 1``: the feedback split's report and examples only."""
    evaluation = json.loads((ctx.model_dir(round - 1) / "eval_feedback.json").read_text())
    shown = ctx.spec.loop.examples_shown
    per_label: dict[str, LabelFeedback] = {}
    items = evaluation["items"]
    for label in ctx.labels:
        mine = [i for i in items if i["gold"] == label]
        hard = sorted(
            (i for i in items if i["predicted"] == label and i["gold"] != label), key=lambda i: -i["confidence"]
        )
        per_label[label] = LabelFeedback(
            f1=evaluation["per_class"].get(label, {}).get("f1", 0.0),
            correct=[i["text"] for i in mine if i["correct"]],
            misclassified=[(i["text"], i["predicted"]) for i in mine if not i["correct"]],
            hard_negatives=[(i["text"], i["gold"], i["confidence"]) for i in hard[:shown]],
        )
    return Feedback(
        round=round,
        report=evaluation["per_class"],
        confusions=[tuple(c) for c in evaluation["confusions"]],
        per_label=per_label,
    )


def generate_round(ctx: RunContext, round: int, quotas: dict[str, int]) -> None:
    """PGKD (or uniform, for the baseline) generation of ``sum(quotas)`` new examples."""
    ctx.store.set_round_status(round, RoundStatus.GENERATING)
    rng = ctx.rng(round, ctx.method)
    loop = ctx.spec.loop
    requests: list[TeacherRequest] = []
    if not sum(quotas.values()):
        pass  # examples_per_round 0: this round only adds actively labeled texts
    elif ctx.method == "uniform":
        train = ctx.store.examples("train", kept=True)
        for label in ctx.labels:
            texts = [e.text for e in train if e.label == label]
            requests += seed_requests(
                ctx.task,
                label,
                quotas[label],
                per_call=loop.batch_per_call,
                rng=rng,
                examples=texts,
                round=round,
                purpose="uniform",
            )
    else:
        feedback = load_feedback(ctx, round)
        feedback = replace(feedback, guidelines=pair_guidelines(ctx, round, feedback))
        for label in ctx.labels:
            requests += pgkd_requests(
                ctx.task,
                feedback,
                label,
                quotas[label],
                per_call=loop.batch_per_call,
                rng=rng,
                shown=loop.examples_shown,
            )
    results = collect(ctx, requests, f"round {round} generation", GeneratedExamples)
    rows = rows_from(results, round, "train", "generated") + active_learning_rows(ctx, round)
    ctx.store.add_examples(rows, mark_round=(round, RoundStatus.GENERATED))


def active_count(ctx: RunContext, round: int) -> int:
    """Texts to label in ``round``: what the previous round's budget split chose (``budget_split:
    adaptive``, stored with its decision, so a resumed round asks for the same number), else
    ``loop.active_per_round``."""
    split = ctx.store.round_split(round - 1)
    return ctx.spec.loop.active_per_round if split is None else split.labeling


def active_learning_rows(ctx: RunContext, round: int) -> list[dict[str, Any]]:
    """The teacher labels the ``active_count`` texts of ``task.unlabeled`` that the previous round's
    student is least sure of (or a random draw, for the baseline). Texts already in the run are skipped."""
    loop, path = ctx.spec.loop, ctx.spec.task.unlabeled
    if not loop.active_per_round or path is None or not active_count(ctx, round):
        return []
    used = ctx.store.content_hashes()
    # One candidate draw whatever the selection rule, so margin, margin_diversity and random choose
    # from the same texts (paired comparisons); the random rule draws from them with its own stream.
    pool = candidates(
        read_unlabeled(path, warnings=[], columns=ctx.spec.task.columns),
        used,
        loop.active_candidates,
        ctx.rng(round, "active-candidates"),
    )
    if not pool:
        console.warn("active learning: every text of task.unlabeled is already in the run")
        return []
    k = min(active_count(ctx, round), len(pool))
    if loop.active_selection == "random":
        chosen = ctx.rng(round, "active-random").sample(pool, k)
    else:
        chosen = _most_informative(ctx, round, pool, k)
    chunks = [chosen[i : i + loop.batch_per_call] for i in range(0, len(chosen), loop.batch_per_call)]
    requests = label_requests(ctx.task, chosen, per_call=loop.batch_per_call, round=round)
    texts_of = {id(request): chunk for request, chunk in zip(requests, chunks, strict=True)}
    rows: list[dict[str, Any]] = []
    for request, completion in collect(ctx, requests, f"round {round} active learning", AssignedLabels, batchable=True):
        chunk = texts_of[id(request)]
        answered = {a.index: a.label for a in completion.parsed.labels if 0 <= a.index < len(chunk)}
        if len(answered) < len(chunk):
            console.warn(
                f"round {round} active learning: the teacher labeled {len(answered)} of {len(chunk)} texts "
                "in one call; the rest stay unlabeled"
            )
        rows += [
            {
                "round": round,
                "split": "train",
                "text": chunk[i],
                "label": label,
                "origin": "active",
                "teacher_call_id": completion.call_id,
                "prompt_id": request.prompt_id,
            }
            for i, label in sorted(answered.items())
        ]
    return rows


def _most_informative(ctx: RunContext, round: int, pool: list[str], k: int) -> list[str]:
    """``k`` texts by margin under the previous round's student; ``margin_diversity`` thins the most
    uncertain ``DIVERSITY_POOL``·k of them to a diverse batch on the run's frozen sentence embeddings."""
    from trainers.student import load_student

    console.info(
        f"round {round} active learning: scoring {len(pool)} unlabeled texts with the round {round - 1} student"
    )
    probabilities = load_student(ctx.model_dir(round - 1)).predict_proba(pool)
    embed = ctx.embed
    if ctx.spec.loop.active_selection == "margin" or embed is None:
        return [pool[i] for i in select_by_margin(probabilities, k)]
    return [pool[i] for i in select_margin_diversity(probabilities, lambda rows: embed([pool[i] for i in rows]), k)]
