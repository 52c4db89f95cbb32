"""Wiring from a spec to live objects: the teacher gateway (and a local teacher server), its cache, ledger, journal."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from agent.errors import RunFailure
from agent.interrupts import RunInterrupted
from agent.spec import DialogueRunSpec, RunSpec, SimulatorTeacher, SpecError
from agent.store import RunStore
from agent.teacher_endpoint import (
    KEYLESS_PLACEHOLDER,
    EndpointError,
    resolve_endpoint,
    simulator_profile,
    teacher_server,
)
from generators.batch import BatchSettings, run_batch
from generators.cache import ResponseCache
from generators.ledger import BudgetExceeded, Ledger, Prices
from generators.providers import ProviderProfile
from generators.teacher import Completion, KeyRefused, NotSent, Teacher, TeacherConfig, TeacherError, TeacherRequest

T = TypeVar("T")
ParsedT = TypeVar("ParsedT", bound=BaseModel)


def _teacher_config(
    spec: RunSpec | DialogueRunSpec, base_url: str, api_key: str, profile: ProviderProfile, *, simulator: bool
) -> TeacherConfig:
    t = spec.teacher
    return TeacherConfig(
        base_url=base_url,
        model=t.model,
        api_key=api_key,
        profile=profile,
        send_brief=simulator,
        max_concurrency=t.max_concurrency,
        timeout_s=t.timeout_s,
        max_attempts=t.max_attempts,
        max_retry_wait_s=t.max_retry_wait_s,
        temperature=t.temperature,
        max_output_tokens=t.max_output_tokens,
    )


def run_ledger(spec: RunSpec | DialogueRunSpec, store: RunStore) -> Ledger:
    """The run's ledger, starting from what the store says was already spent (a resume continues the count)."""
    spent_usd, spent_tokens = store.spent()
    return Ledger(
        Prices(spec.teacher.price_input_per_mtok, spec.teacher.price_output_per_mtok),
        max_usd=spec.budget.max_usd,
        max_tokens=spec.budget.max_teacher_tokens,
        spent_usd=spent_usd,
        spent_tokens=spent_tokens,
    )


@contextmanager
def open_teacher(spec: RunSpec | DialogueRunSpec, store: RunStore, cache_path: Path) -> Iterator[Teacher]:
    """A ``Teacher`` for this run; starts the simulator (a teacher-server plugin) on loopback when the spec asks."""
    ledger = run_ledger(spec, store)
    cache = ResponseCache(cache_path)
    try:
        if isinstance(spec.teacher, SimulatorTeacher) and spec.teacher.base_url is not None:
            key = os.environ.get(spec.teacher.api_key_env or "", "") or KEYLESS_PLACEHOLDER
            config = _teacher_config(spec, spec.teacher.base_url, key, simulator_profile(spec.teacher), simulator=True)
            yield Teacher(config, cache=cache, ledger=ledger, journal=store)
        elif isinstance(spec.teacher, SimulatorTeacher):
            with _local_server(spec.teacher) as (base_url, key):
                config = _teacher_config(spec, base_url, key, simulator_profile(spec.teacher), simulator=True)
                yield Teacher(config, cache=cache, ledger=ledger, journal=store)
        else:
            try:
                endpoint = resolve_endpoint(spec.teacher)
            except EndpointError as exc:
                raise SpecError([str(exc)]) from None
            config = _teacher_config(spec, endpoint.base_url, endpoint.api_key, endpoint.profile, simulator=False)
            yield Teacher(config, cache=cache, ledger=ledger, journal=store)
    finally:
        cache.close()


@contextmanager
def _local_server(teacher: SimulatorTeacher) -> Iterator[tuple[str, str]]:
    """Start the teacher-server plugin the spec names (found by entry point, never imported by name)."""
    server = teacher_server(teacher.provider)
    key = "sim-" + secrets.token_hex(16)  # a throwaway key, so auth is exercised as with a provider
    knobs = server.knobs.model_validate(teacher.knobs)
    assert teacher.pool is not None  # the spec requires a pool or a base_url
    with server.start(knobs, model=teacher.model, pool=teacher.pool, policy=teacher.policy, api_key=key) as url:
        yield url, key


async def _gather_limited(
    factories: Sequence[Callable[[], Awaitable[T]]], on_done: Callable[[], None] | None
) -> list[T | BaseException]:
    async def one(factory: Callable[[], Awaitable[T]]) -> T | BaseException:
        try:
            return await factory()
        except (TeacherError, BudgetExceeded) as exc:
            return exc
        finally:
            if on_done:
                on_done()

    return await asyncio.gather(*(one(f) for f in factories))


def _unless_the_run_must_end(results: list[T]) -> list[T]:
    """Failures come back as values, except two that end the run (resumable): a refused key, which every
    later call would meet too, and calls left unsent because the user pressed Ctrl-C. Either way the
    step is not marked done, so ``resume`` sends exactly the missing calls (the rest come from the cache)."""
    refused = next((r for r in results if isinstance(r, KeyRefused)), None)
    if refused is not None:
        raise RunFailure(f"teacher: {refused}")
    if any(isinstance(r, NotSent) for r in results):
        raise RunInterrupted()
    return results


def run_requests(
    teacher: Teacher, requests: list[TeacherRequest], schema: type[ParsedT], on_done: Callable[[], None] | None = None
) -> list[Completion[ParsedT] | BaseException]:
    """Send ``requests`` concurrently (the gateway bounds concurrency); failures come back as values."""

    async def main() -> list[Completion[ParsedT] | BaseException]:
        try:
            factories = [lambda r=r: teacher.complete(r, schema) for r in requests]
            return await _gather_limited(factories, on_done)
        finally:
            await teacher.aclose()

    return _unless_the_run_must_end(asyncio.run(main()))


def run_batch_requests(
    teacher: Teacher,
    requests: list[TeacherRequest],
    schema: type[ParsedT],
    settings: BatchSettings,
    on_poll: Callable[[str, int, int], None] | None = None,
) -> list[Completion[ParsedT] | BaseException]:
    """Send ``requests`` as one OpenAI Batch API job (see ``generators.batch``); failures come back as values."""

    async def main() -> list[Completion[ParsedT] | BaseException]:
        try:
            return await run_batch(teacher, requests, schema, settings, on_poll=on_poll)
        finally:
            await teacher.aclose()

    return _unless_the_run_must_end(asyncio.run(main()))


def batch_settings(spec: RunSpec | DialogueRunSpec) -> BatchSettings | None:
    """The Batch API settings when the spec asks for it, else None (synchronous calls)."""
    t = spec.teacher
    return BatchSettings(price_factor=t.batch_price_factor, poll_s=t.batch_poll_s) if t.batch else None


def package_versions() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    versions: dict[str, Any] = {}
    for name in ("distill-agent", "openai", "transformers", "torch", "trl", "scikit-learn"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return versions
