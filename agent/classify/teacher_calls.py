"""Sending a step's teacher requests: progress, failures, budget stops, and stored rows."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

from agent import console
from agent.classify.context import RunContext
from agent.runtime import batch_settings, run_batch_requests, run_requests
from generators.ledger import BudgetExceeded
from generators.schemas import GeneratedExamples
from generators.teacher import Completion, TeacherRequest

ReplyT = TypeVar("ReplyT", bound=BaseModel)


def collect(
    ctx: RunContext, requests: list[TeacherRequest], what: str, schema: type[ReplyT], *, batchable: bool = False
) -> list[tuple[TeacherRequest, Completion[ReplyT]]]:
    """Send teacher requests with a progress bar; keep successes, report failures, note budget stops.

    ``batchable`` requests (seed generation, labeling: nothing waits on them but the next step) go
    through the Batch API when the spec asks for it.
    """
    if not requests:
        return []
    settings = batch_settings(ctx.spec) if batchable else None
    if settings is not None:
        with console.progress(f"{what}: batch job", len(requests)) as advance:
            results = run_batch_requests(
                ctx.teacher, requests, schema, settings, on_poll=lambda status, done, total: advance(done, total)
            )
    else:
        with console.progress(f"{what}: teacher calls", len(requests)) as advance:
            results = run_requests(ctx.teacher, requests, schema, on_done=advance)
    done = []
    failures = 0
    for request, result in zip(requests, results, strict=True):
        if isinstance(result, BudgetExceeded):
            ctx.budget_hit = f"budget: {result}"
        elif isinstance(result, BaseException):
            failures += 1
            console.warn(f"teacher call failed and was skipped: {result}")
        else:
            done.append((request, result))
    if failures or ctx.budget_hit:
        console.warn(
            f"{what}: {len(done)}/{len(requests)} calls succeeded" + (f"; {ctx.budget_hit}" if ctx.budget_hit else "")
        )
    if requests and not done and not ctx.budget_hit:
        raise RuntimeError(f"{what}: every teacher call failed; see `distill status` and the journal")
    return done


def rows_from(
    results: list[tuple[TeacherRequest, Completion[GeneratedExamples]]], round: int, split: str, origin: str
) -> list[dict[str, Any]]:
    rows = []
    for request, completion in results:
        for example in completion.parsed.examples:
            rows.append(
                {
                    "round": round,
                    "split": split,
                    "text": example.text,
                    "label": example.label,
                    "origin": origin,
                    "teacher_call_id": completion.call_id,
                    "prompt_id": request.prompt_id,
                }
            )
    return rows
