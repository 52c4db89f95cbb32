"""A ``LocalChatModel`` behind an OpenAI-compatible HTTP endpoint on loopback, served from a background thread.

The black-box student is always reached over HTTP, so a local model and a remote endpoint take exactly the
same code path in the agent. Endpoints: ``GET /v1/models`` and ``POST /v1/chat/completions``
(non-streaming; honours ``temperature``, ``max_tokens``/``max_completion_tokens`` and ``seed``).

Usage::

    with LocalChatServer(LocalChatModel(folder)) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="x")
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from trainers.local_llm import Completion, LocalChatModel
from trainers.loopback import BackgroundServer

_log = logging.getLogger(__name__)
MAX_TEMPERATURE = 2.0  # OpenAI's range


class RequestError(Exception):
    """The chat-completions request itself is unusable (400)."""

    def __init__(self, message: str, code: str = "invalid_request", param: str | None = None) -> None:
        super().__init__(message)
        self.message, self.code, self.param = message, code, param


class ChatModel(Protocol):
    """What the server needs of a model: ``LocalChatModel``, or any test double with this method."""

    def chat(
        self, messages: list[dict[str, str]], *, max_new_tokens: int | None = None, temperature: float | None = None
    ) -> tuple[str, int, int]: ...


@dataclass(frozen=True)
class ChatRequest:
    """The parts of a chat-completions body the local model uses; ``None`` means the model's default."""

    messages: list[dict[str, str]]
    max_tokens: int | None
    temperature: float | None
    seed: int | None


# ---------------------------------------------------------------------------------------------- request parsing


def parse_request(body: Any) -> ChatRequest:
    """Validate a chat-completions body; raises ``RequestError`` naming the bad field."""
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    if body.get("stream"):
        raise RequestError(
            "stream=true is not supported by the local student server", "unsupported_parameter", "stream"
        )
    if body.get("n", 1) not in (1, None):
        raise RequestError("n > 1 is not supported; send separate requests", "unsupported_parameter", "n")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    return ChatRequest(
        messages=_messages(body.get("messages")),
        max_tokens=_optional_int(max_tokens, "max_tokens", minimum=1),
        temperature=_temperature(body.get("temperature")),
        seed=_optional_int(body.get("seed"), "seed", minimum=None),
    )


def _messages(messages: Any) -> list[dict[str, str]]:
    if not isinstance(messages, list) or not messages:
        raise RequestError("'messages' must be a non-empty list", "missing_messages", "messages")
    return [_message(m, i) for i, m in enumerate(messages)]


def _message(message: Any, index: int) -> dict[str, str]:
    """{role, content} of one message; a content-part list becomes its text parts joined."""
    where = f"messages[{index}]"
    if not isinstance(message, dict) or not isinstance(message.get("role"), str):
        raise RequestError(f"{where} must be an object with a string 'role'", param=where)
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    if not isinstance(content, str):
        raise RequestError(f"{where}.content must be a string or a list of text parts", param=where)
    return {"role": message["role"], "content": content}


def _optional_int(value: Any, name: str, *, minimum: int | None) -> int | None:
    # bool is an int subclass in Python, but `true` is not a token count.
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
        bound = f" >= {minimum}" if minimum is not None else ""
        raise RequestError(f"'{name}' must be an integer{bound} (got {value!r})", "invalid_value", name)
    return value


def _temperature(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_TEMPERATURE:
        raise RequestError(
            f"'temperature' must be a number from 0 to {MAX_TEMPERATURE:g} (got {value!r})",
            "invalid_value",
            "temperature",
        )
    return float(value)


# ---------------------------------------------------------------------------------------------- responses


def openai_error(status: int, message: str, type_: str, code: str | None, param: str | None = None) -> JSONResponse:
    """An error in OpenAI's shape, so the SDK raises its usual typed exceptions (BadRequestError, ...)."""
    return JSONResponse(
        {"error": {"message": message, "type": type_, "param": param, "code": code}}, status_code=status
    )


def completion_json(done: Completion, *, model: str, id_: str) -> dict[str, Any]:
    """An OpenAI ChatCompletion document, with real token counts from the model's tokenizer."""
    return {
        "id": id_,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": done.text, "refusal": None},
                "logprobs": None,
                "finish_reason": done.finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": done.prompt_tokens,
            "completion_tokens": done.completion_tokens,
            "total_tokens": done.prompt_tokens + done.completion_tokens,
        },
    }


# ---------------------------------------------------------------------------------------------- endpoints


class _Endpoints:
    """The route handlers, closed over the model and the server's request log."""

    def __init__(self, model: ChatModel, model_name: str, requests: list[dict[str, Any]] | None) -> None:
        self.model, self.model_name, self.requests = model, model_name, requests
        self._ids = itertools.count()

    async def models(self, request: Request) -> Response:
        entry = {"id": self.model_name, "object": "model", "created": 0, "owned_by": "distill"}
        return JSONResponse({"object": "list", "data": [entry]})

    async def chat_completions(self, request: Request) -> Response:
        try:
            chat = parse_request(await self._body(request))
        except RequestError as exc:
            return openai_error(400, exc.message, "invalid_request_error", exc.code, exc.param)
        try:
            # In a worker thread: generation takes seconds, and the event loop must keep serving meanwhile.
            done = await run_in_threadpool(self._generate, chat)
        except Exception as exc:  # the model failed, not the request: report it as the server's error
            _log.exception("local student generation failed")
            return openai_error(
                500, f"generation failed: {type(exc).__name__}: {exc}", "server_error", "generation_failed"
            )
        id_ = f"chatcmpl-local-{next(self._ids):08d}"
        return JSONResponse(completion_json(done, model=self.model_name, id_=id_))

    def _generate(self, chat: ChatRequest) -> Completion:
        """Run the model (in a worker thread). Only a ``LocalChatModel`` knows seeds and finish reasons."""
        if isinstance(self.model, LocalChatModel):
            return self.model.complete(
                chat.messages, max_new_tokens=chat.max_tokens, temperature=chat.temperature, seed=chat.seed
            )
        text, prompt, completion = self.model.chat(
            chat.messages, max_new_tokens=chat.max_tokens, temperature=chat.temperature
        )
        capped = chat.max_tokens is not None and completion >= chat.max_tokens
        return Completion(text, prompt, completion, "length" if capped else "stop")

    async def _body(self, request: Request) -> Any:
        """The parsed JSON body, recorded in ``requests`` when it is an object (even if later rejected)."""
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RequestError("the request body is not valid JSON") from exc
        if isinstance(body, dict) and self.requests is not None:
            self.requests.append(body)
        return body


async def _not_found(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 404)
    message = f"{request.method} {request.url.path} is not served by the local student server"
    return openai_error(status, message, "invalid_request_error", "not_found" if status == 404 else None)


def create_app(model: ChatModel, model_name: str, requests: list[dict[str, Any]] | None) -> Starlette:
    """The Starlette app serving ``model`` under ``model_name``; received bodies are appended to ``requests``
    (``None``: not kept, as a long-running server must not grow)."""
    endpoints = _Endpoints(model, model_name, requests)
    return Starlette(
        exception_handlers={404: _not_found, 405: _not_found},
        routes=[
            Route("/v1/models", endpoints.models, methods=["GET"]),
            Route("/v1/chat/completions", endpoints.chat_completions, methods=["POST"]),
        ],
    )


# ---------------------------------------------------------------------------------------------- serving


class LocalChatServer:
    """A ``LocalChatModel`` (or any ``ChatModel``) served on loopback from a background thread, as a context
    manager. The model serialises its own generations; the server adds no lock of its own.

    ``requests`` holds every JSON-object body received, in order, so tests can assert exactly what prompt
    the student was sent over HTTP. ``base_url`` ends in ``/v1``, ready for ``openai.OpenAI(base_url=...)``.
    """

    def __init__(
        self,
        model: ChatModel,
        *,
        model_name: str = "local-student",
        host: str = "127.0.0.1",
        port: int = 0,
        startup_timeout_s: float = 30.0,
    ) -> None:
        self.model, self.model_name = model, model_name
        self.requests: list[dict[str, Any]] = []
        self._serving = BackgroundServer(
            name="local student server", host=host, port=port, startup_timeout_s=startup_timeout_s
        )
        self.base_url = ""

    def start(self) -> LocalChatServer:
        """Start serving and return once the server accepts connections."""
        self.base_url = self._serving.start(create_app(self.model, self.model_name, self.requests))
        return self

    def stop(self) -> None:
        """Shut down (idempotent). A generation already running finishes in its worker thread, unanswered."""
        self._serving.stop()

    def __enter__(self) -> LocalChatServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
