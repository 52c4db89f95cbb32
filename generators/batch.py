"""The OpenAI Batch API path: many requests in one uploaded file, answered within hours at a lower price.

``run_batch(teacher, requests, schema)`` serves cache hits at once, reserves the budget for the rest at
the batch price, uploads them as JSONL through ``/v1/files``, creates a job at ``/v1/batches``, polls
it (bounded in time), downloads the output, and puts every line through the same validation, cache,
journal and ledger as a synchronous call. A line that failed or whose reply is invalid is asked again
through the synchronous path (``Teacher.complete``), which re-asks and retries as usual.

The job id is written to the cache database before any wait: a resume after a crash re-attaches to a
job still holding the requests it would send, instead of paying for them again. Identical requests
are one line of the job (a file whose ``custom_id`` repeats is refused). Every Files and Batch API call
is retried like a chat call (transient errors, Retry-After), except that creating a job is not retried
after a timeout, which may have created it. Usage is booked as the synchronous path books it: as
reported where the profile trusts it, else a safe upper bound.
"""

from __future__ import annotations

import asyncio
import io
import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import openai
from pydantic import BaseModel
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from generators.cache import CachedResponse
from generators.ledger import BudgetExceeded, Reservation, prompt_token_bound
from generators.teacher import Completion, Teacher, TeacherRequest, is_retryable, retry_after_seconds

ParsedT = TypeVar("ParsedT", bound=BaseModel)
T = TypeVar("T")
_FINAL = frozenset({"completed", "failed", "expired", "cancelled"})


class BatchError(RuntimeError):
    """The batch job did not finish in time (``BatchSettings.timeout_s``); a resume re-attaches to it."""


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


async def _api(teacher: Teacher, call: Callable[[], Awaitable[T]], *, retry_timeouts: bool = True) -> T:
    """One Files or Batch API call, retried like a chat call (429, 5xx, connection errors; Retry-After honoured).

    The SDK runs with ``max_retries=0`` (tenacity is the gateway's one retry layer), so without this one
    transient 503 during a day of polling would end the job's collection. ``retry_timeouts=False`` for a call
    that may have taken effect although its answer was lost (creating a job: a second one would be paid for).
    """
    config = teacher.config

    def retryable(exc: BaseException) -> bool:
        return is_retryable(exc) and (retry_timeouts or not isinstance(exc, openai.APITimeoutError))

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        hinted = retry_after_seconds(exc) if exc else None
        if hinted is not None:
            return min(hinted, config.max_retry_wait_s)
        ceiling = min(config.max_retry_wait_s, config.backoff_initial_s * 2 ** (state.attempt_number - 1))
        return random.uniform(ceiling / 2, ceiling)

    retrying = AsyncRetrying(
        retry=retry_if_exception(retryable), stop=stop_after_attempt(config.max_attempts), wait=wait, reraise=True
    )
    async for attempt in retrying:
        with attempt:
            return await call()
    raise AssertionError("unreachable: tenacity re-raises the last error")


def _fit_in_budget(
    teacher: Teacher, misses: list[tuple[TeacherRequest, str]], factor: float, *, submitted: bool
) -> tuple[list[_Pending], dict[str, BudgetExceeded]]:
    """Reserve each request at the batch price; refuse what the budget cannot pay for, unless already submitted
    (a job from before a crash is billed whatever we do now: collecting it is the only way not to pay twice)."""
    pending, refused = [], {}
    for request, key in misses:
        wanted = min(teacher.config.max_output_tokens, request.output_tokens + teacher.profile.reasoning_allowance)
        try:
            reservation = teacher.ledger.reserve(
                prompt_token_bound(request.messages), wanted, min_output=wanted // 2, price_factor=factor
            )
        except BudgetExceeded as exc:
            if not submitted:
                refused[key] = exc
                continue
            reservation = Reservation(0.0, 0, wanted)
        pending.append(_Pending(request, key, reservation))
    return pending, refused


def _jsonl(teacher: Teacher, pending: list[_Pending]) -> bytes:
    lines = [
        json.dumps(
            {
                "custom_id": p.key,
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": teacher.batch_body(p.request, p.reservation.max_output_tokens),
            },
            ensure_ascii=False,
        )
        for p in pending
    ]
    return ("\n".join(lines) + "\n").encode("utf-8")


# A cache row for an uploaded input file whose job id is not known yet: a crash between creating the job
# and writing its id leaves this row, and a resume finds the job by its input file instead of paying again.
UPLOADED = "uploaded-file:"


async def _submit(client: openai.AsyncOpenAI, teacher: Teacher, pending: list[_Pending]) -> str:
    content = _jsonl(teacher, pending)
    upload = await _api(
        teacher, lambda: client.files.create(file=("distill-batch.jsonl", io.BytesIO(content)), purpose="batch")
    )
    teacher.cache.record_batch(UPLOADED + upload.id, [p.key for p in pending])
    return await _create_job(client, teacher, UPLOADED + upload.id, [p.key for p in pending])


async def _create_job(client: openai.AsyncOpenAI, teacher: Teacher, uploaded: str, keys: list[str]) -> str:
    """The job for an uploaded file: the one already created from it (found by input file), or a new one."""
    file_id = uploaded.removeprefix(UPLOADED)
    existing = await _api(teacher, lambda: client.batches.list(limit=100))
    job_id = next((job.id for job in existing.data if job.input_file_id == file_id), None)
    if job_id is None:
        job = await _api(
            teacher,
            lambda: client.batches.create(
                input_file_id=file_id,
                endpoint="/v1/chat/completions",
                completion_window="24h",
                metadata={"source": "distill"},
            ),
            retry_timeouts=False,
        )
        job_id = job.id
    teacher.cache.record_batch(job_id, keys)  # durable before any wait
    teacher.cache.mark_collected(uploaded)
    return job_id


async def _wait(
    client: openai.AsyncOpenAI,
    teacher: Teacher,
    batch_id: str,
    settings: BatchSettings,
    on_poll: Callable[[str, int, int], None] | None,
) -> Any:
    deadline = time.monotonic() + settings.timeout_s
    while True:
        job = await _api(teacher, lambda: client.batches.retrieve(batch_id))
        if on_poll is not None and job.request_counts is not None:
            on_poll(job.status, job.request_counts.completed + job.request_counts.failed, job.request_counts.total)
        if job.status in _FINAL:
            return job
        if time.monotonic() > deadline:
            raise BatchError(
                f"batch {batch_id} still {job.status} after {settings.timeout_s:.0f} s; "
                "`distill resume` re-attaches to it"
            )
        await asyncio.sleep(settings.poll_s)


async def _lines(client: openai.AsyncOpenAI, teacher: Teacher, file_id: str | None) -> list[dict[str, Any]]:
    if not file_id:
        return []
    content = await _api(teacher, lambda: client.files.content(file_id))
    lines = []
    for raw in content.text.splitlines():
        try:
            line = json.loads(raw) if raw.strip() else None
        except json.JSONDecodeError:
            continue  # an unreadable line: its request has no answer and goes the synchronous way
        if isinstance(line, dict):
            lines.append(line)
    return lines


def _reply(line: dict[str, Any]) -> tuple[str, str, dict[str, Any] | None] | None:
    """(content, finish_reason, usage) of an answered line; None for a failed or unreadable one."""
    response = line.get("response")
    body = response.get("body") if isinstance(response, dict) else None
    if not isinstance(response, dict) or response.get("status_code") != 200 or not isinstance(body, dict):
        return None
    try:
        choice = body["choices"][0]
        content = choice["message"].get("content") or ""
        usage = body.get("usage")
        if not isinstance(content, str):
            return None
        return content, str(choice.get("finish_reason") or ""), usage if isinstance(usage, dict) else None
    except (KeyError, IndexError, TypeError, AttributeError):
        return None


def _tokens(teacher: Teacher, request: TeacherRequest, content: str, usage: dict[str, Any] | None) -> tuple[int, int]:
    """The line's usage, as the synchronous path books it: reported when trusted, else a safe upper bound."""
    if usage is not None and teacher.profile.reports_usage:
        try:
            return int(usage["prompt_tokens"]), int(usage["completion_tokens"])
        except (KeyError, TypeError, ValueError):
            pass
    return prompt_token_bound(request.messages), len(content.encode("utf-8"))


async def _book(
    teacher: Teacher, item: _Pending, line: dict[str, Any], schema: type[ParsedT], factor: float, latency: float
) -> Completion[ParsedT] | None:
    """Validate one output line; cache and journal it. None when it failed or is invalid (asked again later)."""
    reply = _reply(line)
    if reply is None:
        teacher.ledger.settle(item.reservation, 0, 0)
        response, body = line.get("response"), None
        if isinstance(response, dict):
            body = response.get("body")
        problem = body.get("error") if isinstance(body, dict) else None
        error = json.dumps(line.get("error") or problem or "no response")[:500]
        teacher.journal_call(item.request, item.key, "", (0, 0), 0.0, latency, status="error", error=error)
        return None
    content, finish_reason, usage = reply
    tokens = _tokens(teacher, item.request, content, usage)
    cost = teacher.ledger.settle(item.reservation, *tokens, price_factor=factor)
    parsed, problem = teacher.validate_reply(content, finish_reason, schema)
    if parsed is None:
        teacher.journal_call(
            item.request, item.key, content, tokens, cost, latency, status="invalid_output", error=problem
        )
        return None
    # Durable before it is used; the lines of a job are committed together (ResponseCache.aput groups them).
    await teacher.cache.aput(item.key, CachedResponse(content, finish_reason or "stop", *tokens))
    call_id = teacher.journal_call(item.request, item.key, content, tokens, cost, latency, status="ok")
    return Completion(parsed, content, call_id, tokens[0], tokens[1], cost, 1, False)


async def _collect(
    teacher: Teacher,
    batch_id: str,
    lines: list[dict[str, Any]],
    pending: list[_Pending],
    schema: type[ParsedT],
    settings: BatchSettings,
    latency: float,
) -> dict[str, Completion[ParsedT] | None]:
    """Book every line of a finished job; a request without a line (a failed or expired job) is settled at 0."""
    by_key = {p.key: p for p in pending}
    matched = [(item, line) for line in lines if (item := by_key.pop(str(line.get("custom_id")), None)) is not None]
    booked = await asyncio.gather(
        *(_book(teacher, item, line, schema, settings.price_factor, latency) for item, line in matched)
    )
    done: dict[str, Completion[ParsedT] | None] = {
        item.key: result for (item, _), result in zip(matched, booked, strict=True)
    }
    for item in by_key.values():  # no line at all: nothing was billed
        teacher.ledger.settle(item.reservation, 0, 0)
        done[item.key] = None
    teacher.cache.mark_collected(batch_id)
    return done


async def run_batch(
    teacher: Teacher,
    requests: list[TeacherRequest],
    schema: type[ParsedT],
    settings: BatchSettings,
    *,
    on_poll: Callable[[str, int, int], None] | None = None,
    on_submitted: Callable[[str], None] | None = None,
) -> list[Completion[ParsedT] | BaseException]:
    """Answer ``requests`` through Batch API jobs (cache hits and budget refusals aside), in order."""
    client = teacher.client()
    keys = [teacher.cache_key(r) for r in requests]
    # One line per distinct request: a job refuses a file whose custom_ids repeat, and one answer serves both.
    misses = list({k: (r, k) for r, k in zip(requests, keys, strict=True) if teacher.cache.get(k) is None}.values())
    results: dict[str, Completion[ParsedT] | BaseException | None] = {}
    # Among all the keys, not only the misses: a crash while booking a job's lines leaves some of them cached.
    attached = teacher.cache.pending_batch(keys) if misses else None
    if attached is not None:  # a job submitted before a crash: collect it rather than pay again
        batch_id, held = attached[0], set(attached[1])
        mine = [m for m in misses if m[1] in held]
        if mine:
            results.update(
                await _run_job(client, teacher, mine, schema, settings, on_poll, on_submitted, batch_id=batch_id)
            )
        else:  # every line it holds is already cached: nothing left to collect
            teacher.cache.mark_collected(batch_id)
        misses = [m for m in misses if m[1] not in held]
    if misses:
        results.update(await _run_job(client, teacher, misses, schema, settings, on_poll, on_submitted))
    return list(
        await asyncio.gather(
            *(
                _finish(teacher, request, key, results.get(key), schema)
                for request, key in zip(requests, keys, strict=True)
            )
        )
    )


async def _run_job(
    client: openai.AsyncOpenAI,
    teacher: Teacher,
    misses: list[tuple[TeacherRequest, str]],
    schema: type[ParsedT],
    settings: BatchSettings,
    on_poll: Callable[[str, int, int], None] | None,
    on_submitted: Callable[[str], None] | None,
    *,
    batch_id: str = "",
) -> dict[str, Completion[ParsedT] | BaseException | None]:
    """Reserve, submit (unless re-attaching to ``batch_id``), wait and collect one job."""
    pending, refused = _fit_in_budget(teacher, misses, settings.price_factor, submitted=bool(batch_id))
    results: dict[str, Completion[ParsedT] | BaseException | None] = dict(refused)
    if not pending:
        return results
    started = time.monotonic()
    try:
        if batch_id.startswith(UPLOADED):  # a crash after the upload: find or create its job
            batch_id = await _create_job(client, teacher, batch_id, [p.key for p in pending])
        batch_id = batch_id or await _submit(client, teacher, pending)
        if on_submitted is not None:
            on_submitted(batch_id)
        job = await _wait(client, teacher, batch_id, settings, on_poll)
        lines = await _lines(client, teacher, job.output_file_id) + await _lines(client, teacher, job.error_file_id)
    except BaseException:
        # Nothing booked yet: give the reservations back (a submitted job stays recorded for a resume).
        for item in pending:
            teacher.ledger.settle(item.reservation, 0, 0)
        raise
    results.update(await _collect(teacher, batch_id, lines, pending, schema, settings, time.monotonic() - started))
    return results


async def _finish(
    teacher: Teacher,
    request: TeacherRequest,
    key: str,
    outcome: Completion[ParsedT] | BaseException | None,
    schema: type[ParsedT],
) -> Completion[ParsedT] | BaseException:
    """The batch's answer, or the synchronous path's: a cache hit, a refused call, or a line to ask again."""
    if outcome is not None:
        return outcome
    try:
        return await teacher.complete(request, schema)  # cache hit, or asked again synchronously
    except (BudgetExceeded, openai.OpenAIError, RuntimeError) as exc:
        return exc
