"""A recording OpenAI-compatible endpoint on loopback: it keeps every request body and answers a fixed reply.

It shows exactly what a real provider would receive from the gateway (parameters, headers, prompt), which
the simulator, which must read the brief, cannot show for a non-simulator teacher.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from trainers.loopback import BackgroundServer


@dataclass
class Recorder:
    reply: dict[str, Any]
    usage: bool = True
    status: int = 200  # another status answers every call with an OpenAI-style error body
    bodies: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)

    async def chat(self, request: Request) -> JSONResponse:
        self.bodies.append(await request.json())
        self.headers.append(dict(request.headers))
        if self.status != 200:
            error = {"message": f"status {self.status} from the capture server", "type": "invalid_request_error"}
            return JSONResponse({"error": error}, status_code=self.status)
        content = json.dumps(self.reply)
        body: dict[str, Any] = {
            "id": "chatcmpl-capture",
            "object": "chat.completion",
            "created": 0,
            "model": self.bodies[-1]["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        }
        if self.usage:
            body["usage"] = {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
        return JSONResponse(body)


@contextmanager
def capture_server(reply: dict[str, Any], *, usage: bool = True, status: int = 200) -> Iterator[tuple[str, Recorder]]:
    """Serve a ``Recorder`` on loopback; yields (base URL ending in /v1, recorder)."""
    recorder = Recorder(reply, usage=usage, status=status)
    app = Starlette(routes=[Route("/v1/chat/completions", recorder.chat, methods=["POST"])])
    server = BackgroundServer(name="capture server")
    base_url = server.start(app)
    try:
        yield base_url, recorder
    finally:
        server.stop()
