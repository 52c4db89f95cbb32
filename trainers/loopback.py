"""Serving an ASGI app over loopback HTTP from a background thread.

Shared by the teacher simulator and the local student LLM server (``trainers.llm_server``): both are real
OpenAI-compatible servers that a test, the demo or a run starts in-process and talks to over HTTP.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind the listening socket ourselves, so the real port is known before uvicorn starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio only disables Nagle (TCP_NODELAY) on sockets that say they are TCP,
    # and without it every response waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def v1_url(sock: socket.socket) -> str:
    """The OpenAI-style base URL (ending in ``/v1``) of a bound socket."""
    host, port = sock.getsockname()[:2]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/v1"


def uvicorn_config(app: Any, *, library: bool) -> uvicorn.Config:
    # As a library, leave the host process's logging configuration alone (log_config=None).
    extra: dict[str, Any] = {"log_config": None} if library else {}
    return uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        loop="asyncio",
        http="h11",
        timeout_graceful_shutdown=2,
        **extra,
    )


class BackgroundServer:
    """uvicorn serving one app from a daemon thread; ``start`` returns once connections are accepted."""

    def __init__(self, *, name: str, host: str = "127.0.0.1", port: int = 0, startup_timeout_s: float = 30.0) -> None:
        self.name = name
        self._host, self._port, self._startup_timeout_s = host, port, startup_timeout_s
        self._sock: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self, app: Any) -> str:
        """Serve ``app``; returns the base URL (``http://host:port/v1``)."""
        self._sock = bind_socket(self._host, self._port)
        self._server = uvicorn.Server(uvicorn_config(app, library=True))
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._sock]},
            name=f"distill-{self.name.replace(' ', '-')}",
            daemon=True,
        )
        url = v1_url(self._sock)
        self._thread.start()
        deadline = time.monotonic() + self._startup_timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the {self.name} failed to start; see the log above")
            time.sleep(0.01)
        return url

    def stop(self) -> None:
        """Ask uvicorn to exit, force it after 10 s, close the socket (idempotent)."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
            if self._thread.is_alive():
                self._server.force_exit = True
                self._thread.join(timeout=5)
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = self._sock = None
