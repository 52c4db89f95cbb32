"""The teacher gateway: the one narrow seam between distill and the teacher LLM (DESIGN §4).

``Teacher.complete(request, schema_model)`` sends a chat completion through the real async ``openai``
SDK to any OpenAI-compatible endpoint. Around that single call:

- tenacity is the *only* retry layer (the SDK runs with ``max_retries=0``): 408/409/429/5xx, timeouts
  and connection errors are retried with jittered exponential backoff, honouring ``Retry-After``
  (capped); any other 4xx fails at once; attempts are bounded;
- a semaphore bounds concurrency; above ``POOL_CONNECTIONS`` slots the connections are spread over several
  pools (httpcore scans a pool's connections on every request, so one big pool costs CPU per call);
- the request is phrased for the provider's profile (token-limit parameter, temperature, structured
  output); a 400 naming a parameter the provider does not take is answered once by adapting the
  profile (``generators.providers.adapt``), recorded in the journal, and kept for the run;
- the reply is validated with pydantic against the prompt's schema, with one re-ask when invalid;
- a content-addressed cache makes identical requests free (each reply committed and fsynced before the
  caller sees it, off the event loop); a ledger reserves each call's realistic output bound when it takes
  its concurrency slot and caps its output tokens at what the budget still affords, so no call can cross
  the budget;
- the simulator's brief travels out of band (``extra_body``), only when the teacher is the simulator;
- every call, cached or not, failed or not, is journaled. The API key appears nowhere but in the
  SDK's Authorization header; error texts are scrubbed of it before they are stored.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx2
import openai
from openai import RequestOptions
from pydantic import BaseModel, ValidationError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from generators.brief import brief_body
from generators.cache import CachedResponse, ResponseCache, request_key
from generators.http import pooled_http_client, read_completion
from generators.journal import CallJournal, CallRecord
from generators.ledger import BudgetExceeded, Ledger, Reservation, prompt_token_bound
from generators.providers import PROFILES, Adaptation, ProviderProfile, adapt, request_params

ParsedT = TypeVar("ParsedT", bound=BaseModel)

RETRYABLE_STATUS = frozenset({408, 409, 429})
# A request adapts to at most this many rejected parameters (e.g. max_tokens, then temperature).
MAX_ADAPTATIONS = 3
# What ``chat.completions.create`` sends with every request: the API key as a bearer token.
_CHAT_OPTIONS: RequestOptions = {"security": {"bearer_auth": True}}


class TeacherError(RuntimeError):
    """A teacher call failed for good (non-retryable error, attempts exhausted, or invalid twice)."""


class InvalidOutput(TeacherError):
    """The teacher's reply did not match the schema, even after one re-ask."""


class KeyRefused(TeacherError):
    """The teacher answered 401/403: the key is wrong, revoked or lacks access. Every later call would fail too."""


class NotSent(TeacherError):
    """The call was never sent: the run is stopping (``Teacher.stop_dispatch``). Nothing to journal or pay."""


@dataclass(frozen=True)
class TeacherConfig:
    """How to reach the teacher. ``api_key`` is held in memory only; never journaled or cached."""

    base_url: str
    model: str
    api_key: str = field(repr=False)
    profile: ProviderProfile = PROFILES["vllm"]
    send_brief: bool = False  # True only for the simulator: a real provider must never see the brief
    max_concurrency: int = 8
    timeout_s: float = 60.0
    max_attempts: int = 6
    max_retry_wait_s: float = 30.0
    backoff_initial_s: float = 0.5
    temperature: float = 0.9  # generation; requests that need determinism (labeling, judging) ask for 0
    max_output_tokens: int = 4096  # ceiling on any call's output, reasoning included
    invalid_output_exchanges: int = 2  # each: one request plus one re-ask when the reply is invalid

    def __post_init__(self) -> None:
        if self.max_concurrency < 1:
            raise ValueError("max_concurrency must be ≥ 1")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be ≥ 1 (the first attempt counts)")


@dataclass(frozen=True)
class TeacherRequest:
    """One prompt, rendered. ``sample_index`` keeps N samples of one prompt distinct in the cache.

    ``output_tokens`` is the template's realistic bound on the reply for this request's size; the
    ledger reserves it and the call may not produce more. ``brief`` is the simulator's machine-readable
    twin of the prompt; it is sent only to the simulator and is not part of the cache key.
    """

    prompt_id: str
    prompt_version: int
    messages: list[dict[str, str]]
    schema: dict[str, Any]
    sample_index: int = 0
    temperature: float | None = None
    output_tokens: int = 1024
    round: int | None = None
    brief: dict[str, Any] | None = None


@dataclass(frozen=True)
class Completion(Generic[ParsedT]):
    parsed: ParsedT
    content: str
    call_id: int
    tokens_in: int
    tokens_out: int
    cost_usd: float
    attempts: int
    cache_hit: bool


@dataclass
class _Attempt:
    """The raw outcome of one request (after retries)."""

    content: str
    finish_reason: str
    tokens_in: int
    tokens_out: int
    attempts: int
    adaptation: str | None = None  # what this call changed to be accepted (journaled)


def _status_of(exc: BaseException) -> int | None:
    return exc.status_code if isinstance(exc, openai.APIStatusError) else None


def is_retryable(exc: BaseException) -> bool:
    """Timeouts, connection errors, 408/409/429 and 5xx are transient; other 4xx are not."""
    if isinstance(exc, openai.APITimeoutError | openai.APIConnectionError):
        return True
    status = _status_of(exc)
    return status is not None and (status in RETRYABLE_STATUS or status >= 500)


def retry_after_seconds(exc: BaseException) -> float | None:
    """The provider's ``Retry-After`` (seconds form, or ``retry-after-ms``), if any."""
    if not isinstance(exc, openai.APIStatusError):
        return None
    headers = exc.response.headers
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            continue  # an HTTP-date: fall back to backoff rather than parse calendars
    return None


class Teacher:
    """Async gateway to an OpenAI-compatible teacher with retries, cache, budget and journal."""

    def __init__(self, config: TeacherConfig, *, cache: ResponseCache, ledger: Ledger, journal: CallJournal) -> None:
        self.config = config
        self.cache = cache
        self.ledger = ledger
        self.journal = journal
        self.profile = config.profile  # changes only by adaptation to a provider's 400
        self.adaptations: list[str] = []
        self.http_requests = 0
        self._client: openai.AsyncOpenAI | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._settled: asyncio.Condition | None = None  # notified whenever a reservation is released
        self._rng = random.Random()
        self._dispatch_stopped = False

    # -- lifecycle ------------------------------------------------------------------------------

    def _ensure_client(self) -> tuple[openai.AsyncOpenAI, asyncio.Semaphore]:
        # Created lazily inside the running loop: asyncio primitives bind to the loop that uses them.
        if self._client is None or self._semaphore is None:
            self._client = openai.AsyncOpenAI(
                base_url=self.config.base_url,
                api_key=self.config.api_key,
                max_retries=0,
                timeout=self.config.timeout_s,
                http_client=pooled_http_client(self.config.max_concurrency, self.config.timeout_s),
            )
            self._semaphore = asyncio.Semaphore(self.config.max_concurrency)
        return self._client, self._semaphore

    def client(self) -> openai.AsyncOpenAI:
        """The SDK client (for the Batch API path, which shares this gateway's cache, ledger and journal)."""
        return self._ensure_client()[0]

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
        self._client, self._semaphore, self._settled = None, None, None

    def stop_dispatch(self) -> None:
        """Send no new call from now on (calls in flight finish; cached answers are still served).

        Safe to call from a signal handler: it only sets a flag that ``_send_and_book`` reads.
        """
        self._dispatch_stopped = True

    # -- public ---------------------------------------------------------------------------------

    async def complete(self, request: TeacherRequest, schema_model: type[ParsedT]) -> Completion[ParsedT]:
        """Return the validated reply to ``request``: from the cache if seen, else from the teacher."""
        key = self.cache_key(request)
        cached = self.cache.get(key)
        if cached is not None:
            parsed = schema_model.model_validate_json(extract_json(cached.content))
            call_id = self._journal(
                request,
                key,
                _Attempt(cached.content, cached.finish_reason, 0, 0, 0),
                cost=0.0,
                latency=0.0,
                cache_hit=True,
                status="ok",
            )
            return Completion(parsed, cached.content, call_id, 0, 0, 0.0, 0, True)
        return await self._complete_uncached(request, schema_model, key)

    def cache_key(self, request: TeacherRequest) -> str:
        return request_key(self._identity(request), request.sample_index)

    def batch_body(self, request: TeacherRequest, max_output_tokens: int) -> dict[str, Any]:
        """The request body as one line of a Batch API file (extra fields merged in, as the SDK would send them)."""
        payload = self._payload(request, request.messages, max_output_tokens)
        return {**{k: v for k, v in payload.items() if k != "extra_body"}, **payload.get("extra_body", {})}

    def journal_call(
        self,
        request: TeacherRequest,
        key: str,
        content: str,
        tokens: tuple[int, int],
        cost: float,
        latency: float,
        *,
        status: str,
        error: str | None = None,
    ) -> int:
        """Journal a call answered outside ``complete`` (a Batch API line)."""
        attempt = _Attempt(content, "stop", tokens[0], tokens[1], 1)
        return self._journal(request, key, attempt, cost, latency, cache_hit=False, status=status, error=error)

    def _identity(self, request: TeacherRequest) -> dict[str, Any]:
        """What the answer depends on: the cache key. Not the wire phrasing (profile, adaptations, output cap),
        so an adapted or budget-capped request still finds the answer paid for before."""
        return {
            "model": self.config.model,
            "messages": request.messages,
            "schema": request.schema,
            "temperature": self._temperature(request),
        }

    def _temperature(self, request: TeacherRequest) -> float:
        return self.config.temperature if request.temperature is None else request.temperature

    # -- internals ------------------------------------------------------------------------------

    async def _complete_uncached(
        self, request: TeacherRequest, schema_model: type[ParsedT], key: str
    ) -> Completion[ParsedT]:
        """Send, validate, and on invalid output re-ask once (showing the model its reply and the problem).

        If the re-ask is invalid too, the exchange starts over from the original request, up to
        ``invalid_output_exchanges`` times: at a few percent of garbled replies (flaky gateways), two
        bad replies in a row are expected every few hundred calls, and the data is worth one more try.
        """
        problem = ""
        for _ in range(self.config.invalid_output_exchanges):
            attempt, cost, latency = await self._send_and_book(request, request.messages, key)
            parsed, problem = self._validate(attempt, schema_model)
            if parsed is None:
                self._journal(
                    request, key, attempt, cost, latency, cache_hit=False, status="invalid_output", error=problem
                )
                reask = self._reask_messages(request, attempt.content, problem)
                attempt, cost, latency = await self._send_and_book(request, reask, key)
                parsed, problem = self._validate(attempt, schema_model)
            if parsed is not None:
                # Written before it is used: cache and journal are durable when the caller sees the reply.
                # The cache commit runs off the event loop, grouped with concurrent calls' (one fsync for all).
                response = CachedResponse(attempt.content, attempt.finish_reason, attempt.tokens_in, attempt.tokens_out)
                try:
                    await self.cache.aput(key, response)
                except asyncio.CancelledError:
                    # Cancelled while the row commits: it is written all the same, and the paid call is journaled.
                    self._journal(request, key, attempt, cost, latency, cache_hit=False, status="ok")
                    raise
                call_id = self._journal(request, key, attempt, cost, latency, cache_hit=False, status="ok")
                return Completion(
                    parsed,
                    attempt.content,
                    call_id,
                    attempt.tokens_in,
                    attempt.tokens_out,
                    cost,
                    attempt.attempts,
                    False,
                )
            self._journal(request, key, attempt, cost, latency, cache_hit=False, status="invalid_output", error=problem)
        raise InvalidOutput(f"{request.prompt_id}: teacher output invalid after re-asking: {problem}")

    def _wanted_output_tokens(self, request: TeacherRequest) -> int:
        """The call's output bound: its template's size, plus hidden reasoning, under the configured ceiling."""
        return min(self.config.max_output_tokens, request.output_tokens + self.profile.reasoning_allowance)

    async def _send_and_book(
        self, request: TeacherRequest, messages: list[dict[str, str]], key: str
    ) -> tuple[_Attempt, float, float]:
        """Take a concurrency slot, reserve the budget, send (adapting to the provider), settle the ledger."""
        _client, semaphore = self._ensure_client()
        attempts_box = [0]
        async with semaphore:
            if self._dispatch_stopped:
                raise NotSent(f"{request.prompt_id}: not sent, the run is stopping")
            # Reserved only now, with the slot: calls waiting in the queue hold no budget.
            reservation = await self._reserve(request, messages)
            started = time.monotonic()
            try:
                attempt = await self._send_adapting(request, messages, reservation, attempts_box)
            except BaseException as exc:
                self.ledger.settle(reservation, 0, 0)
                await self._announce_settled()
                stopped = isinstance(exc, asyncio.CancelledError | KeyboardInterrupt)
                # A call stopped before its first attempt went out was never sent: nothing to journal. One
                # stopped while in flight may be billed by the provider, so it is journaled as cancelled.
                if attempts_box[0] or not stopped:
                    self._journal(
                        request,
                        key,
                        _Attempt("", "", 0, 0, attempts_box[0]),
                        0.0,
                        time.monotonic() - started,
                        cache_hit=False,
                        status="cancelled" if stopped else "error",
                        error=self._scrub(f"{type(exc).__name__}: {exc}"),
                    )
                if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
                    raise KeyRefused(
                        f"the teacher refused the API key ({exc.status_code}) — check the key and its access to "
                        f"model {self.config.model!r}"
                    ) from None
                if isinstance(exc, openai.OpenAIError):
                    raise TeacherError(
                        self._scrub(
                            f"{request.prompt_id}: teacher call failed after {attempts_box[0]} attempt(s): {exc}"
                        )
                    ) from None
                raise
            cost = self.ledger.settle(reservation, attempt.tokens_in, attempt.tokens_out)
        await self._announce_settled()
        return attempt, cost, time.monotonic() - started

    async def _reserve(self, request: TeacherRequest, messages: list[dict[str, str]]) -> Reservation:
        """Reserve the call's bound; when only calls in flight stand in the way, wait for them to settle.

        They reserved their worst case and usually spend a fraction of it: refusing now would stop a
        run with much of its budget unused.
        """
        wanted = self._wanted_output_tokens(request)
        settled = self._settled_condition()
        async with settled:
            while True:
                try:
                    return self.ledger.reserve(prompt_token_bound(messages), wanted, min_output=wanted // 2)
                except BudgetExceeded as exc:
                    if not exc.wait:
                        raise
                    await settled.wait()  # woken by _announce_settled; the lock makes the wake-up impossible to miss

    def _settled_condition(self) -> asyncio.Condition:
        if self._settled is None:
            self._settled = asyncio.Condition()
        return self._settled

    async def _announce_settled(self) -> None:
        if self._settled is not None:
            async with self._settled:
                self._settled.notify_all()

    async def _send_adapting(
        self, request: TeacherRequest, messages: list[dict[str, str]], reservation: Reservation, attempts_box: list[int]
    ) -> _Attempt:
        """Send; a 400 that names a parameter this provider does not take changes the profile once, then resends.

        A 400 is not billed, so adapting costs nothing; any other 4xx, or a 400 we cannot map to a
        parameter of ours, fails the call at once.
        """
        adopted: list[str] = []
        for _ in range(MAX_ADAPTATIONS + 1):
            phrased_for = self.profile
            payload = self._payload(request, messages, reservation.max_output_tokens)
            try:
                attempt = await self._send_with_retries(payload, messages, attempts_box)
            except (openai.BadRequestError, openai.UnprocessableEntityError) as exc:  # 422: FastAPI-based servers
                if self.profile is not phrased_for:
                    continue  # a concurrent call already adapted the profile while this one was in flight
                adaptation = adapt(self.profile, str(exc.message), _param_of(exc))
                if adaptation is None:
                    raise
                self._adopt(adaptation)
                adopted.append(adaptation.description)
                continue
            attempt.adaptation = "; ".join(adopted) or None
            return attempt
        raise TeacherError(
            f"{request.prompt_id}: still rejected after {MAX_ADAPTATIONS} adaptations: {'; '.join(self.adaptations)}"
        )

    def _adopt(self, adaptation: Adaptation) -> None:
        """Keep ``adaptation`` for the rest of the run (concurrent calls may report the same one: once is enough)."""
        if adaptation.description not in self.adaptations:
            self.adaptations.append(adaptation.description)
        self.profile = adaptation.profile

    async def _send_with_retries(
        self, payload: dict[str, Any], messages: list[dict[str, str]], attempts_box: list[int]
    ) -> _Attempt:
        retrying = AsyncRetrying(
            retry=retry_if_exception(is_retryable),
            stop=stop_after_attempt(self.config.max_attempts),
            wait=self._wait,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                attempts_box[0] = attempt.retry_state.attempt_number
                result = await self._send_once(payload, messages)
                result.attempts = attempts_box[0]
                return result
        raise AssertionError("unreachable: tenacity re-raises the last error")

    def _wait(self, state: RetryCallState) -> float:
        """Retry-After when the provider gives one (capped); else exponential backoff, full jitter."""
        exc = state.outcome.exception() if state.outcome else None
        hinted = retry_after_seconds(exc) if exc else None
        cap = self.config.max_retry_wait_s
        if hinted is not None:
            return min(hinted, cap)
        ceiling = min(cap, self.config.backoff_initial_s * 2 ** (state.attempt_number - 1))
        return self._rng.uniform(ceiling / 2, ceiling)

    async def _send_once(self, payload: dict[str, Any], messages: list[dict[str, str]]) -> _Attempt:
        """POST /chat/completions through the SDK (its auth, headers, timeout and error mapping), read lean.

        ``client.post`` is the SDK's documented way to send a body as is. ``chat.completions.create`` would
        walk the whole body (messages, JSON schema) against its TypedDicts to rename aliased keys, which chat
        requests do not have, and build a pydantic model of the reply; at a few hundred calls a second those
        two were a fifth of the gateway's CPU. Status errors (429, 5xx, 400 with ``param``) are raised by the
        SDK exactly as ``create`` raises them.
        """
        client, _semaphore = self._ensure_client()
        self.http_requests += 1
        extra = payload.get("extra_body")
        body = {k: v for k, v in payload.items() if k != "extra_body"}
        if extra:
            body.update(extra)
        response = await client.post("/chat/completions", body=body, cast_to=httpx2.Response, options=_CHAT_OPTIONS)
        content, finish_reason, usage = read_completion(response)
        if usage is not None and self.profile.reports_usage:
            tokens_in, tokens_out = usage
        else:  # no usage reported: book a safe upper bound (a token is at least one byte)
            tokens_in, tokens_out = prompt_token_bound(messages), len(content.encode("utf-8"))
        return _Attempt(
            content=content, finish_reason=finish_reason, tokens_in=tokens_in, tokens_out=tokens_out, attempts=1
        )

    def _payload(
        self, request: TeacherRequest, messages: list[dict[str, str]], max_output_tokens: int
    ) -> dict[str, Any]:
        """The request as this provider takes it; the brief rides along only to the simulator."""
        payload: dict[str, Any] = {
            "model": self.config.model,
            "messages": messages,
            **request_params(
                self.profile,
                temperature=self._temperature(request),
                max_output_tokens=max_output_tokens,
                schema_name=request.prompt_id,
                schema=request.schema,
            ),
        }
        if self.config.send_brief and request.brief is not None:
            payload["extra_body"] = brief_body(request.brief)
        return payload

    @staticmethod
    def validate_reply(content: str, finish_reason: str, schema_model: type[ParsedT]) -> tuple[ParsedT | None, str]:
        """The parsed reply, or None and what was wrong with it."""
        return Teacher._validate(_Attempt(content, finish_reason, 0, 0, 0), schema_model)

    @staticmethod
    def _validate(attempt: _Attempt, schema_model: type[ParsedT]) -> tuple[ParsedT | None, str]:
        if attempt.finish_reason == "length":
            return None, "the reply was cut off (finish_reason=length)"
        try:
            return schema_model.model_validate_json(extract_json(attempt.content)), ""
        except ValidationError as exc:
            return None, f"not valid JSON for the schema: {exc.errors()[0]['msg']}"

    @staticmethod
    def _reask_messages(request: TeacherRequest, bad_content: str, problem: str) -> list[dict[str, str]]:
        fix = (
            f"Your previous reply could not be used: {problem}. Reply again with only one JSON object "
            "that matches the requested format, no prose, shorter if needed."
        )
        return [
            *request.messages,
            {"role": "assistant", "content": bad_content[:2000]},
            {"role": "user", "content": fix},
        ]

    def _journal(
        self,
        request: TeacherRequest,
        key: str,
        attempt: _Attempt,
        cost: float,
        latency: float,
        *,
        cache_hit: bool,
        status: str,
        error: str | None = None,
    ) -> int:
        return self.journal.record_call(
            CallRecord(
                prompt_id=request.prompt_id,
                prompt_version=request.prompt_version,
                request_hash=key,
                sample_index=request.sample_index,
                model=self.config.model,
                tokens_in=attempt.tokens_in,
                tokens_out=attempt.tokens_out,
                cost_usd=cost,
                latency_s=latency,
                attempts=attempt.attempts,
                cache_hit=cache_hit,
                status=status,
                error=error,
                round=request.round,
                adaptation=attempt.adaptation,
            )
        )

    def _scrub(self, text: str) -> str:
        """Remove the API key from any text before it is stored or shown."""
        key = self.config.api_key
        return text.replace(key, "***") if key and len(key) >= 4 else text


def _param_of(exc: openai.APIStatusError) -> str | None:
    param = getattr(exc, "param", None)
    return param if isinstance(param, str) else None


def extract_json(content: str) -> str:
    """The JSON object in a reply: bare, in a ```json fence, or inside prose (prompt-only JSON mode).

    Models without constrained decoding often wrap the object ("Here is the JSON: {...}"); the object
    spans from the first ``{`` to the last ``}``. A reply with no object is returned as is, so the
    validation error says what was wrong.
    """
    text = _strip_fences(content)
    start, end = text.find("{"), text.rfind("}")
    return text[start : end + 1] if 0 <= start < end else text


def _strip_fences(content: str) -> str:
    """Accept a JSON object wrapped in a ```json fence, as chat models often do."""
    text = content.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        text = text.rsplit("```", 1)[0]
    return text
