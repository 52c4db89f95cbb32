"""`distill serve`: a causal student behind a real OpenAI-compatible endpoint, and clear refusals."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from trainers.tiny_causal import build_tiny_causal_lm

DISTILL = [sys.executable, "-m", "agent"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(build_tiny_causal_lm(tmp_path_factory.mktemp("serve") / "lm", ["hello there", "card arrived"] * 10))


def test_without_vllm_or_a_gpu_it_serves_with_transformers_and_says_what_would_be_faster(tiny_lm: Path) -> None:
    port = _free_port()
    server = subprocess.Popen(
        [*DISTILL, "serve", str(tiny_lm), "--port", str(port), "--name", "tiny"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base_url = f"http://127.0.0.1:{port}/v1"
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, server.communicate()[1]
            try:
                models = httpx.get(f"{base_url}/models", timeout=2).json()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the server did not start within 90 s"
                time.sleep(0.3)
        assert [m["id"] for m in models["data"]] == ["tiny"]
        client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)
        reply = client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "hello"}], max_tokens=5, temperature=0
        )
        assert reply.choices[0].finish_reason in ("stop", "length")
        assert reply.usage is not None and 1 <= reply.usage.completion_tokens <= 5
    finally:
        server.send_signal(signal.SIGINT)
        _, stderr = server.communicate(timeout=30)
    assert server.returncode == 0, stderr
    first = stderr.splitlines()[0]
    assert first.startswith(f"serving tiny at http://127.0.0.1:{port}/v1 with transformers on the CPU")
    assert "vLLM is not installed" in first and "vllm serve" in first and "llama_cpp.server" in first
    assert stderr.splitlines()[-1] == "server stopped" and "Traceback" not in stderr


def _distill(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DISTILL, *args], capture_output=True, text=True, timeout=120)


def test_asking_for_vllm_where_it_cannot_run_exits_2_with_what_to_install(tiny_lm: Path) -> None:
    done = _distill("serve", str(tiny_lm), "--backend", "vllm")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert "cannot serve with vLLM: vLLM is not installed and no CUDA GPU is visible" in lines[0]
    assert f"vllm serve {tiny_lm}" in lines[0]


def test_an_encoder_classifier_or_a_non_model_folder_is_refused(tmp_path: Path) -> None:
    encoder = tmp_path / "model"
    encoder.mkdir()
    (encoder / "labels.json").write_text(json.dumps(["a", "b"]))
    (encoder / "distill_student.json").write_text(json.dumps({"format": "distill-encoder-classifier"}))
    done = _distill("serve", str(encoder))
    assert done.returncode == 2 and f"distill predict {encoder}" in done.stderr
    done = _distill("serve", str(tmp_path / "nothing"))
    assert done.returncode == 2 and "no config.json" in done.stderr
