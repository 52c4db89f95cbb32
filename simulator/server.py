"""The simulator's HTTP face: an OpenAI-compatible Starlette app, served by uvicorn on loopback.

Endpoints: ``GET /v1/models``, ``POST /v1/chat/completions`` (non-streaming), OpenAI's Files and Batch
APIs (``/v1/files``, ``/v1/batches``: ``simulator.batches``), and a small control plane for
tests: ``GET /_sim/stats``, ``POST /_sim/reset_stats``, ``POST /_sim/script``.

The brief travels out of band, in the body's ``distill_brief`` field (``generators.brief``). With a
conformance profile (``simulator.conformance``), each request is first checked as that
provider would check it, and refused with its status and error body.

Run it in a background thread with ``SimulatorServer`` (tests, the agent, the demo), or in the
foreground with ``serve_forever`` (``distill simulate``).
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import json
import logging
import signal
import socket
import time
from collections.abc import Callable, Generator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import httpx
import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from generators.brief import BRIEF_FIELD, BriefError, parse_brief

# The handler modules register their actions in simulator.registry when imported.
from simulator import actions as _actions  # noqa: F401  (generate, label)
from simulator import strategy_actions as _strategy_actions  # noqa: F401  (scenario … guidelines)
from simulator.batches import BatchEndpoints, BatchStore
from simulator.config import SimulatorConfig
from simulator.conformance import (
    PROFILES,
    ConformanceProfile,
    Rejection,
    estimate_tokens,
    message_text,
    unconstrained_reply,
)
from simulator.faults import FaultPlan, SimStats, malformed, truncated
from simulator.pool import PoolIndex, load_pool
from simulator.registry import ACTIONS, ActionContext, ActionError, Handler
from simulator.sampling import PoolUsage
from trainers.loopback import BackgroundServer, bind_socket, uvicorn_config, v1_url

_log = logging.getLogger(__name__)
_HANG_POLL_S = 0.1  # how often a hanging request checks for a gone client or a shutdown


class RequestError(Exception):
    """The chat-completions request itself is unusable (400)."""

    def __init__(self, message: str, code: str = "invalid_request") -> None:
        super().__init__(message)
        self.message, self.code = message, code


@dataclass
class SimulatorState:
    """Everything the endpoints share. Mutated only on the server's event loop (plus ``closing``)."""

    config: SimulatorConfig
    index: PoolIndex
    actions: Mapping[str, Handler]
    faults: FaultPlan = field(init=False)
    stats: SimStats = field(default_factory=SimStats)
    context: ActionContext = field(init=False)
    closing: bool = False  # set from any thread at shutdown, so hanging requests end at once
    ids: itertools.count[int] = field(default_factory=itertools.count)
    profile: ConformanceProfile | None = field(init=False)  # None: accept any request (lenient)
    batches: BatchStore = field(init=False)  # uploaded files and Batch API jobs

    def __post_init__(self) -> None:
        self.faults = FaultPlan(self.config)
        self.profile = None if self.config.profile is None else PROFILES[self.config.profile]
        self.batches = BatchStore(self.config)
        # A separate stream from the fault RNG, so scripting faults does not change the content drawn.
        self.context = ActionContext(
            self.config, self.index, PoolUsage(len(self.index)), np.random.default_rng([self.config.seed, 1])
        )

    def snapshot(self) -> dict[str, Any]:
        """The /_sim/stats document."""
        counters = self.context.counters
        return {
            **self.stats.to_dict(),
            "items_served": counters["served"],
            "injected": {kind: counters[kind] for kind in ("noise", "dup", "copy", "refusal")},
            "pool": {"size": len(self.index), "used": int(self.context.usage.used.sum())},
            "scripted_pending": self.faults.pending,
            **self.batches.counters(),
        }

    def reset_stats(self) -> None:
        self.stats = SimStats()
        self.context.counters.clear()
        self.batches.reset_counters()


# ---------------------------------------------------------------------------------------------- responses


def error_body(message: str, type_: str, code: str | None) -> dict[str, Any]:
    """OpenAI's error body."""
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def openai_error(
    status: int, message: str, type_: str, code: str | None, headers: dict[str, str] | None = None
) -> JSONResponse:
    """An error in OpenAI's shape, so the SDK raises its usual typed exceptions."""
    return JSONResponse(error_body(message, type_, code), status_code=status, headers=headers)


def _fault_response(outcome: str, config: SimulatorConfig) -> JSONResponse:
    if outcome == "429":
        seconds = config.retry_after_s
        header = str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"
        return openai_error(
            429,
            "Rate limit reached for requests (simulated). Please try again later.",
            "requests",
            "rate_limit_exceeded",
            headers={"Retry-After": header},
        )
    if outcome == "503":
        return openai_error(
            503, "The server is overloaded or not ready yet (simulated).", "server_error", "service_unavailable"
        )
    return openai_error(
        500, "The server had an error while processing your request (simulated).", "server_error", "internal_error"
    )


def _completion(
    state: SimulatorState, model: str, content: str, finish_reason: str, prompt_chars: int
) -> dict[str, Any]:
    prompt, completion = estimate_tokens(prompt_chars), estimate_tokens(len(content))
    return {
        "id": f"chatcmpl-sim-{next(state.ids):08d}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "distill-simulator",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
    }


@dataclass(frozen=True)
class ChatResult:
    """A chat-completions answer without its HTTP request: status, JSON body, and its stats bucket."""

    status: int
    body: dict[str, Any]
    bucket: str

    def response(self) -> JSONResponse:
        return JSONResponse(self.body, status_code=self.status)


@dataclass(frozen=True)
class _Admitted:
    """A request the provider and the simulator accept: its messages, brief and action."""

    messages: list[tuple[str, str]]
    brief: dict[str, Any]
    handler: Handler


def _error_result(status: int, message: str, type_: str, code: str | None, bucket: str) -> ChatResult:
    return ChatResult(status, error_body(message, type_, code), bucket)


# ---------------------------------------------------------------------------------------------- request parsing


async def _read_body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RequestError("the request body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    return body


def _check_simulator_limits(body: dict[str, Any]) -> None:
    """What the simulator itself cannot do, whatever provider it plays (checked after the profile's rules)."""
    if body.get("stream"):
        raise RequestError("stream=true is not supported by the simulator", code="unsupported_parameter")
    if body.get("n", 1) not in (1, None):
        raise RequestError(
            "n > 1 is not supported by the simulator; send separate requests", code="unsupported_parameter"
        )


def _message(message: Any) -> tuple[str, str]:
    """(role, text) of one message; the text of a content-part list is its text parts joined."""
    if not isinstance(message, dict) or not isinstance(message.get("role"), str):
        raise RequestError("each message must be an object with a 'role'")
    return message["role"], message_text(message)


def _messages(body: dict[str, Any]) -> list[tuple[str, str]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("'messages' must be a non-empty list", code="missing_messages")
    return [_message(m) for m in messages]


def _brief(body: dict[str, Any]) -> dict[str, Any]:
    """The out-of-band brief (``generators.brief``); a 400 says whether it is missing or malformed."""
    try:
        return parse_brief(body)
    except BriefError as exc:
        code = "missing_brief" if body.get(BRIEF_FIELD) is None else "invalid_brief"
        raise RequestError(str(exc), code=code) from exc


# ---------------------------------------------------------------------------------------------- endpoints


class _Endpoints:
    """The route handlers, closed over one ``SimulatorState``."""

    def __init__(self, state: SimulatorState) -> None:
        self.state = state

    def _authorised(self, request: Request) -> bool:
        key = self.state.config.api_key
        if key is None:
            return True
        given = request.headers.get("authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {key}".encode())

    def guard(self, request: Request) -> Response | None:
        """None when ``request`` may use the /v1 routes, else the refusal to send."""
        return None if self._authorised(request) else self._unauthorised()

    def _unauthorised(self) -> JSONResponse:
        # Never echo the key that was sent: error bodies end up in logs.
        profile = self.state.profile
        if profile is None:
            return openai_error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        return self._rejected(profile, profile.unauthorised)

    @staticmethod
    def _rejected(profile: ConformanceProfile, rejection: Rejection) -> JSONResponse:
        return JSONResponse(profile.error_body(rejection), status_code=rejection.status)

    async def models(self, request: Request) -> Response:
        if not self._authorised(request):
            return self._unauthorised()
        model = {"id": self.state.config.model, "object": "model", "created": 0, "owned_by": "distill-simulator"}
        return JSONResponse({"object": "list", "data": [model]})

    async def chat_completions(self, request: Request) -> Response:
        state = self.state
        state.stats.requests += 1
        if not self._authorised(request):
            return self._finish("401", self._unauthorised())
        outcome = state.faults.next_outcome()  # decided before the latency, as with a real provider's queue
        await asyncio.sleep(state.faults.latency_s())
        if outcome in ("429", "500", "503"):
            return self._finish(outcome, _fault_response(outcome, state.config))
        try:
            body = await _read_body(request)
        except RequestError as exc:  # the simulator's own protocol: always OpenAI's error shape
            response = openai_error(400, exc.message, "invalid_request_error", exc.code)
            return self._finish("hang" if outcome == "hang" else "400", response)
        result = self._admit(body)
        if isinstance(result, _Admitted):
            if outcome == "hang" and not await self._hang(request):
                # The client gave up (it never sees this) or we are shutting down; nothing is drawn from the pool.
                result = _error_result(
                    503, "The server is shutting down (simulated).", "server_error", "service_unavailable", "hang"
                )
            else:
                result = self._run(body, result, outcome)
        return self._finish("hang" if outcome == "hang" else result.bucket, result.response())

    def answer(self, body: dict[str, Any], outcome: str = "ok") -> ChatResult:
        """Answer one chat-completions body as ``/v1/chat/completions`` would (no latency, no hang, no
        transport fault): the provider's checks, the brief, the action, the reply. The Batch API's lines."""
        result = self._admit(body)
        return self._run(body, result, outcome) if isinstance(result, _Admitted) else result

    def batch_answer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """One Batch API line's answer: (status, JSON body)."""
        result = self.answer(body)
        return result.status, result.body

    def _admit(self, body: dict[str, Any]) -> ChatResult | _Admitted:
        """The provider's checks, then the simulator's; the brief's action, or the error answer."""
        state = self.state
        try:
            # The provider's own rules come first: a real provider validates before it generates anything.
            if state.profile is not None and (rejection := state.profile.check(body)) is not None:
                return ChatResult(rejection.status, state.profile.error_body(rejection), str(rejection.status))
            _check_simulator_limits(body)
            messages = _messages(body)
            brief = _brief(body)
        except RequestError as exc:  # the simulator's own protocol: always OpenAI's error shape
            return _error_result(400, exc.message, "invalid_request_error", exc.code, "400")
        handler = state.actions.get(brief["action"])
        if handler is None:
            known = ", ".join(sorted(state.actions))
            message = f"unknown brief action {brief['action']!r}; the simulator knows: {known}"
            return _error_result(400, message, "invalid_request_error", "unknown_action", "400")
        state.stats.actions[brief["action"]] += 1
        return _Admitted(messages, brief, handler)

    def _run(self, body: dict[str, Any], admitted: _Admitted, outcome: str) -> ChatResult:
        """Run the brief's action and phrase its reply."""
        action = admitted.brief["action"]
        try:
            result = admitted.handler(admitted.brief, self.state.context)
        except ActionError as exc:
            return _error_result(exc.status, exc.message, "invalid_request_error", exc.code, str(exc.status))
        except Exception as exc:  # a simulator bug: answer like a provider would, and say so loudly in the log
            _log.exception("simulator action %r failed", action)
            return _error_result(
                500, f"simulator bug in action {action!r}: {exc!r}", "server_error", "internal_error", "5xx"
            )
        return ChatResult(200, self._reply(body, admitted.messages, result, outcome), outcome)

    def _reply(
        self, body: dict[str, Any], messages: list[tuple[str, str]], result: dict[str, Any], outcome: str
    ) -> dict[str, Any]:
        content, finish_reason = json.dumps(result, ensure_ascii=False), "stop"
        profile = self.state.profile
        if profile is not None and not profile.constrains_output(body):
            content = unconstrained_reply(result)  # no constrained decoding: prose around a ```json fence
        if outcome == "malformed":
            content = malformed(content)
        elif outcome == "truncated":
            content, finish_reason = truncated(content), "length"
        model = body.get("model") if isinstance(body.get("model"), str) else self.state.config.model
        prompt_chars = sum(len(text) for _, text in messages)
        return _completion(self.state, str(model), content, finish_reason, prompt_chars)

    async def _hang(self, request: Request) -> bool:
        """Sleep ``hang_s``; False as soon as the client disconnects or the server shuts down."""
        deadline = time.monotonic() + self.state.config.hang_s
        while (left := deadline - time.monotonic()) > 0:
            if self.state.closing or await request.is_disconnected():
                return False
            await asyncio.sleep(min(_HANG_POLL_S, left))
        return True

    def _finish(self, bucket: str, response: Response) -> Response:
        self.state.stats.record(bucket, response.status_code)
        return response

    async def stats(self, request: Request) -> Response:
        return JSONResponse(self.state.snapshot())

    async def reset_stats(self, request: Request) -> Response:
        self.state.reset_stats()
        return JSONResponse(self.state.snapshot())

    async def script(self, request: Request) -> Response:
        try:
            body = await request.json()
            outcomes = body["outcomes"]
            if not isinstance(outcomes, list) or not all(isinstance(o, str) for o in outcomes):
                raise ValueError("'outcomes' must be a list of strings")
            self.state.faults.script(outcomes)
        except (ValueError, KeyError, TypeError) as exc:
            return openai_error(400, f"bad script: {exc}", "invalid_request_error", "bad_script")
        return JSONResponse({"scripted_pending": self.state.faults.pending})


async def _not_found(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 404)
    message = f"{request.method} {request.url.path} is not served by the simulator"
    return openai_error(status, message, "invalid_request_error", "not_found" if status == 404 else None)


def create_app(state: SimulatorState) -> Starlette:
    """The Starlette app serving ``state``."""
    endpoints = _Endpoints(state)
    return Starlette(
        exception_handlers={404: _not_found, 405: _not_found},
        routes=[
            Route("/v1/models", endpoints.models, methods=["GET"]),
            Route("/v1/chat/completions", endpoints.chat_completions, methods=["POST"]),
            *BatchEndpoints(state.batches, endpoints.batch_answer, endpoints.guard).routes(),
            Route("/_sim/stats", endpoints.stats, methods=["GET"]),
            Route("/_sim/reset_stats", endpoints.reset_stats, methods=["POST"]),
            Route("/_sim/script", endpoints.script, methods=["POST"]),
        ],
    )


def build_state(
    config: SimulatorConfig, pool_path: Path | str, actions: Mapping[str, Handler] | None = None
) -> SimulatorState:
    """Load and index the pool (raises ``ValueError``/``FileNotFoundError`` on a bad pool)."""
    return SimulatorState(config, PoolIndex(load_pool(Path(pool_path))), ACTIONS if actions is None else actions)


# ---------------------------------------------------------------------------------------------- serving


class SimulatorServer:
    """The simulator in a background thread, as a context manager::

    with SimulatorServer(SimulatorConfig(latency_ms=50), "pool.jsonl") as sim:
        client = openai.OpenAI(base_url=sim.base_url, api_key="x")
    """

    def __init__(
        self,
        config: SimulatorConfig,
        pool_path: Path | str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        startup_timeout_s: float = 30.0,
        actions: Mapping[str, Handler] | None = None,
    ) -> None:
        self.config = config
        self.state = build_state(self.config, pool_path, actions)
        self._serving = BackgroundServer(
            name="teacher simulator", host=host, port=port, startup_timeout_s=startup_timeout_s
        )
        self.base_url = ""

    def start(self) -> SimulatorServer:
        """Start serving and return once the server accepts connections."""
        self.base_url = self._serving.start(create_app(self.state))
        return self

    def stop(self) -> None:
        """Shut down: hanging requests end at once, then uvicorn closes (idempotent)."""
        self.state.closing = True
        self._serving.stop()

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def root_url(self) -> str:
        """The server's root (``base_url`` without ``/v1``), where ``/_sim/*`` lives."""
        return self.base_url.removesuffix("/v1")

    def _control(self, method: str, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        # trust_env=False: a proxy from the environment must never see loopback traffic.
        with httpx.Client(trust_env=False, timeout=10) as client:
            response = client.request(method, self.root_url + path, json=payload)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def stats(self) -> dict[str, Any]:
        """The /_sim/stats counters (see ``SimulatorState.snapshot``)."""
        return self._control("GET", "/_sim/stats")

    def reset_stats(self) -> dict[str, Any]:
        return self._control("POST", "/_sim/reset_stats")

    def script(self, outcomes: list[str]) -> None:
        """Force the outcomes of the next requests, FIFO: ok, 429, 500, 503, 5xx, hang, malformed, truncated."""
        self._control("POST", "/_sim/script", {"outcomes": outcomes})


class _ForegroundServer(uvicorn.Server):
    """uvicorn for ``serve_forever``: announces its URL once serving, and exits 0 on SIGINT/SIGTERM.

    uvicorn's own signal capture re-raises the signal after shutdown, which would end the process
    with the signal's status instead of 0.
    """

    def __init__(self, config: uvicorn.Config, state: SimulatorState, on_ready: Callable[[], None]) -> None:
        super().__init__(config)
        self._state, self._on_ready = state, on_ready

    @contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        handlers = {sig: signal.signal(sig, self._exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)

    def _exit(self, sig: int, frame: FrameType | None) -> None:
        self._state.closing = True
        self.force_exit = self.should_exit  # a second signal stops waiting for open requests
        self.should_exit = True

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self._on_ready()


def serve_forever(config: SimulatorConfig, pool_path: Path | str, host: str = "127.0.0.1", port: int = 0) -> None:
    """Serve in the foreground until SIGINT/SIGTERM; prints one line with the URL once it accepts connections."""
    state = build_state(config, pool_path)
    sock = bind_socket(host, port)
    url = v1_url(sock)
    server = _ForegroundServer(
        uvicorn_config(create_app(state), library=False),
        state,
        on_ready=lambda: print(f"distill simulator listening on {url}", flush=True),
    )
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
