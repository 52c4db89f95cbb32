"""The OpenAI Batch API path: many requests in one uploaded file, answered within hours at a lower price.

``run_batch(teacher, requests, schema)`` serves cache hits at once, reserves the budget for the rest at
the batch price, uploads them as JSONL through ``/v1/files``, creates a job at ``/v1/batches``, polls
it (bounded in time), downloads the output, and puts every line through the same validation, cache,
journal and ledger as a synchronous call. A line that failed or whose reply is invalid is asked again
through the synchronous path (``Teacher.complete``), which re-asks and retries as usual.

The job id is written to the cache database before any wait: a resume after a crash re-attaches to a
job still holding the requests it would send, instead of paying for them again.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import openai
from pydantic import BaseModel

from generators.cache import CachedResponse
from generators.ledger import BudgetExceeded, Reservation, prompt_token_bound
from generators.teacher import Completion, Teacher, TeacherRequest

ParsedT = TypeVar("ParsedT", bound=BaseModel)
_FINAL = frozenset({"completed", "failed", "expired", "cancelled"})


class BatchError(RuntimeError):
    """The batch job ended without output (failed, expired, cancelled) or did not finish in time."""


@dataclass(frozen=True)
class BatchSettings:
    price_factor: float = 0.5  # OpenAI bills Batch API tokens at half the synchronous price
    poll_s: float = 30.0
    timeout_s: float = 26 * 3600.0  # the 24 h completion window, plus time to finalize


@dataclass
class _Pending:
    request: TeacherRequest
    key: str
    reservation: Reservation


def _fit_in_budget(teacher: Teacher, misses: list[tuple[TeacherRequest, str]], factor: float, *,
                   submitted: bool) -> tuple[list[_Pending], dict[str, BudgetExceeded]]:
    """Reserve each request at the batch price; refuse what the budget cannot pay for, unless already submitted
    (a job from before a crash is billed whatever we do now: collecting it is the only way not to pay twice)."""
    pending, refused = [], {}
    for request, key in misses:
        wanted = min(teacher.config.max_output_tokens, request.output_tokens + teacher.profile.reasoning_allowance)
        try:
            reservation = teacher.ledger.reserve(prompt_token_bound(request.messages), wanted,
                                                 min_output=wanted // 2, price_factor=factor)
        except BudgetExceeded as exc:
            if not submitted:
                refused[key] = exc
                continue
            reservation = Reservation(0.0, 0, wanted)
        pending.append(_Pending(request, key, reservation))
    return pending, refused


def _jsonl(teacher: Teacher, pending: list[_Pending]) -> bytes:
    lines = [json.dumps({"custom_id": p.key, "method": "POST", "url": "/v1/chat/completions",
                         "body": teacher.batch_body(p.request, p.reservation.max_output_tokens)},
                        ensure_ascii=False) for p in pending]
    return ("\n".join(lines) + "\n").encode("utf-8")


async def _submit(client: openai.AsyncOpenAI, teacher: Teacher, pending: list[_Pending]) -> str:
    upload = await client.files.create(file=("distill-batch.jsonl", io.BytesIO(_jsonl(teacher, pending))),
                                       purpose="batch")
    job = await client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                                      completion_window="24h", metadata={"source": "distill"})
    teacher.cache.record_batch(job.id, [p.key for p in pending])  # durable before any wait
    return job.id


async def _wait(client: openai.AsyncOpenAI, batch_id: str, settings: BatchSettings,
                on_poll: Callable[[str, int, int], None] | None) -> Any:
    deadline = time.monotonic() + settings.timeout_s
    while True:
        job = await client.batches.retrieve(batch_id)
        if on_poll is not None and job.request_counts is not None:
            on_poll(job.status, job.request_counts.completed + job.request_counts.failed, job.request_counts.total)
        if job.status in _FINAL:
            return job
        if time.monotonic() > deadline:
            raise BatchError(f"batch {batch_id} still {job.status} after {settings.timeout_s:.0f} s; "
                             "`distill resume` re-attaches to it")
        await asyncio.sleep(settings.poll_s)


async def _lines(client: openai.AsyncOpenAI, file_id: str | None) -> list[dict[str, Any]]:
    if not file_id:
        return []
    content = await client.files.content(file_id)
    return [json.loads(line) for line in content.text.splitlines() if line.strip()]


def _book(teacher: Teacher, item: _Pending, line: dict[str, Any], schema: type[ParsedT], factor: float,
          latency: float) -> Completion[ParsedT] | None:
    """Validate one output line; cache and journal it. None when it failed or is invalid (asked again later)."""
    response = line.get("response") or {}
    body = response.get("body") or {}
    if response.get("status_code") != 200 or not body.get("choices"):
        teacher.ledger.settle(item.reservation, 0, 0)
        error = json.dumps(line.get("error") or body.get("error") or "no response")[:500]
        teacher.journal_call(item.request, item.key, "", (0, 0), 0.0, latency, status="error", error=error)
        return None
    choice, usage = body["choices"][0], body.get("usage") or {}
    content = choice["message"].get("content") or ""
    tokens = (int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)))
    cost = teacher.ledger.settle(item.reservation, *tokens, price_factor=factor)
    parsed, problem = teacher.validate_reply(content, str(choice.get("finish_reason") or ""), schema)
    if parsed is None:
        teacher.journal_call(item.request, item.key, content, tokens, cost, latency, status="invalid_output",
                             error=problem)
        return None
    teacher.cache.put(item.key, CachedResponse(content, str(choice.get("finish_reason") or "stop"), *tokens))
    call_id = teacher.journal_call(item.request, item.key, content, tokens, cost, latency, status="ok")
    return Completion(parsed, content, call_id, tokens[0], tokens[1], cost, 1, False)


async def _collect(client: openai.AsyncOpenAI, teacher: Teacher, batch_id: str, pending: list[_Pending],
                   schema: type[ParsedT], settings: BatchSettings, started: float,
                   on_poll: Callable[[str, int, int], None] | None) -> dict[str, Completion[ParsedT] | None]:
    job = await _wait(client, batch_id, settings, on_poll)
    lines = await _lines(client, job.output_file_id) + await _lines(client, job.error_file_id)
    by_key = {p.key: p for p in pending}
    latency = time.monotonic() - started
    done: dict[str, Completion[ParsedT] | None] = {}
    for line in lines:
        item = by_key.pop(str(line.get("custom_id")), None)
        if item is not None:
            done[item.key] = _book(teacher, item, line, schema, settings.price_factor, latency)
    for item in by_key.values():  # no line at all (a failed or expired job): nothing was billed
        teacher.ledger.settle(item.reservation, 0, 0)
        done[item.key] = None
    teacher.cache.mark_collected(batch_id)
    return done


async def run_batch(teacher: Teacher, requests: list[TeacherRequest], schema: type[ParsedT],
                    settings: BatchSettings, *, on_poll: Callable[[str, int, int], None] | None = None,
                    on_submitted: Callable[[str], None] | None = None) -> list[Completion[ParsedT] | BaseException]:
    """Answer ``requests`` through Batch API jobs (cache hits and budget refusals aside), in order."""
    client = teacher.client()
    keys = [teacher.cache_key(r) for r in requests]
    misses = [(r, k) for r, k in zip(requests, keys, strict=True) if teacher.cache.get(k) is None]
    results: dict[str, Completion[ParsedT] | BaseException | None] = {}
    attached = teacher.cache.pending_batch([k for _, k in misses]) if misses else None
    if attached is not None:  # a job submitted before a crash: collect it rather than pay again
        batch_id, held = attached
        results.update(await _run_job(client, teacher, [m for m in misses if m[1] in set(held)], schema, settings,
                                      on_poll, on_submitted, batch_id=batch_id))
        misses = [m for m in misses if m[1] not in set(held)]
    if misses:
        results.update(await _run_job(client, teacher, misses, schema, settings, on_poll, on_submitted))
    return [await _finish(teacher, request, key, results.get(key), schema)
            for request, key in zip(requests, keys, strict=True)]


async def _run_job(client: openai.AsyncOpenAI, teacher: Teacher, misses: list[tuple[TeacherRequest, str]],
                   schema: type[ParsedT], settings: BatchSettings, on_poll: Callable[[str, int, int], None] | None,
                   on_submitted: Callable[[str], None] | None, *, batch_id: str = ""
                   ) -> dict[str, Completion[ParsedT] | BaseException | None]:
    """Reserve, submit (unless re-attaching to ``batch_id``), wait and collect one job."""
    pending, refused = _fit_in_budget(teacher, misses, settings.price_factor, submitted=bool(batch_id))
    results: dict[str, Completion[ParsedT] | BaseException | None] = dict(refused)
    if not pending:
        return results
    started = time.monotonic()
    batch_id = batch_id or await _submit(client, teacher, pending)
    if on_submitted is not None:
        on_submitted(batch_id)
    results.update(await _collect(client, teacher, batch_id, pending, schema, settings, started, on_poll))
    return results


async def _finish(teacher: Teacher, request: TeacherRequest, key: str,
                  outcome: Completion[ParsedT] | BaseException | None,
                  schema: type[ParsedT]) -> Completion[ParsedT] | BaseException:
    """The batch's answer, or the synchronous path's: a cache hit, a refused call, or a line to ask again."""
    if outcome is not None:
        return outcome
    try:
        return await teacher.complete(request, schema)  # cache hit, or asked again synchronously
    except (BudgetExceeded, openai.OpenAIError, RuntimeError) as exc:
        return exc
