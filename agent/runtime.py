"""Wiring from a spec to live objects: the teacher gateway (and simulator), its cache, ledger, journal."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from agent.spec import DialogueRunSpec, OpenAITeacher, RunSpec, SimulatorTeacher, check_credentials
from agent.store import RunStore
from generators.cache import ResponseCache
from generators.ledger import BudgetExceeded, Ledger, Prices
from generators.teacher import Completion, Teacher, TeacherConfig, TeacherError, TeacherRequest

T = TypeVar("T")
ParsedT = TypeVar("ParsedT", bound=BaseModel)


def _teacher_config(spec: RunSpec | DialogueRunSpec, base_url: str, api_key: str) -> TeacherConfig:
    t = spec.teacher
    return TeacherConfig(
        base_url=base_url, model=t.model, api_key=api_key, max_concurrency=t.max_concurrency,
        timeout_s=t.timeout_s, max_attempts=t.max_attempts, max_retry_wait_s=t.max_retry_wait_s,
        temperature=t.temperature, max_output_tokens=t.max_output_tokens, structured_output=t.structured_output,
    )


@contextmanager
def open_teacher(spec: RunSpec | DialogueRunSpec, store: RunStore, cache_path: Path) -> Iterator[Teacher]:
    """A ``Teacher`` for this run; starts the simulator on loopback when the spec asks for it."""
    spent_usd, spent_tokens = store.spent()
    ledger = Ledger(Prices(spec.teacher.price_input_per_mtok, spec.teacher.price_output_per_mtok),
                    max_usd=spec.budget.max_usd, max_tokens=spec.budget.max_teacher_tokens,
                    spent_usd=spent_usd, spent_tokens=spent_tokens)
    cache = ResponseCache(cache_path)
    try:
        if isinstance(spec.teacher, SimulatorTeacher):
            with _simulator(spec.teacher) as (base_url, key):
                yield Teacher(_teacher_config(spec, base_url, key), cache=cache, ledger=ledger, journal=store)
        else:
            assert isinstance(spec.teacher, OpenAITeacher)
            check_credentials(spec)
            key = os.environ[spec.teacher.api_key_env]
            yield Teacher(_teacher_config(spec, spec.teacher.base_url, key), cache=cache, ledger=ledger,
                          journal=store)
    finally:
        cache.close()


@contextmanager
def _simulator(teacher: SimulatorTeacher) -> Iterator[tuple[str, str]]:
    # Imported here: the simulator (starlette, uvicorn) is only needed for simulator runs.
    from generators.simulator import SimulatorConfig, SimulatorServer

    key = "sim-" + secrets.token_hex(16)  # a throwaway key, so auth is exercised as with a provider
    policy = str(teacher.policy) if teacher.policy else None
    config = SimulatorConfig(model=teacher.model, api_key=key, policy_path=policy, **teacher.knobs.model_dump())
    with SimulatorServer(config, teacher.pool) as server:
        yield server.base_url, key


async def _gather_limited(factories: Sequence[Callable[[], Awaitable[T]]],
                          on_done: Callable[[], None] | None) -> list[T | BaseException]:
    async def one(factory: Callable[[], Awaitable[T]]) -> T | BaseException:
        try:
            return await factory()
        except (TeacherError, BudgetExceeded) as exc:
            return exc
        finally:
            if on_done:
                on_done()

    return await asyncio.gather(*(one(f) for f in factories))


def run_requests(teacher: Teacher, requests: list[TeacherRequest], schema: type[ParsedT],
                 on_done: Callable[[], None] | None = None) -> list[Completion[ParsedT] | BaseException]:
    """Send ``requests`` concurrently (the gateway bounds concurrency); failures come back as values."""

    async def main() -> list[Completion[ParsedT] | BaseException]:
        try:
            factories = [lambda r=r: teacher.complete(r, schema) for r in requests]
            return await _gather_limited(factories, on_done)
        finally:
            await teacher.aclose()

    return asyncio.run(main())


def package_versions() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    versions: dict[str, Any] = {}
    for name in ("distill-agent", "openai", "transformers", "torch", "trl", "scikit-learn"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return versions
