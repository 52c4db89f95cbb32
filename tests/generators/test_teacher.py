"""The teacher gateway against the real simulator over loopback HTTP, through the real openai SDK."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

import pytest

from generators.cache import ResponseCache
from generators.generation import TaskInfo, seed_requests
from generators.journal import MemoryJournal
from generators.ledger import BudgetExceeded, Ledger, Prices, prompt_token_bound
from generators.schemas import GeneratedExamples
from generators.teacher import InvalidOutput, Teacher, TeacherConfig, TeacherError, TeacherRequest

TASK = TaskInfo(
    "Customer messages to a bank.",
    {
        "card_arrival": "the customer waits for a card",
        "lost_or_stolen_card": "card lost or stolen",
        "exchange_rate": "questions about exchange rates",
    },
)


def make_teacher(
    base_url: str, tmp_path: Path, *, ledger: Ledger | None = None, key: str = "sk-test", **overrides: Any
) -> tuple[Teacher, MemoryJournal]:
    settings: dict[str, Any] = {
        "max_attempts": 4,
        "max_retry_wait_s": 5.0,
        "backoff_initial_s": 0.05,
        "timeout_s": 5.0,
        "send_brief": True,
        **overrides,
    }
    journal = MemoryJournal()
    teacher = Teacher(
        TeacherConfig(base_url=base_url, model="sim-teacher", api_key=key, **settings),
        cache=ResponseCache(tmp_path / "cache.sqlite"),
        ledger=ledger or Ledger(Prices()),
        journal=journal,
    )
    return teacher, journal


def request(label: str = "card_arrival", n: int = 3, index: int = 0) -> TeacherRequest:
    import random

    task = TaskInfo(TASK.description, {**TASK.labels, label: TASK.labels.get(label, "")})
    req = seed_requests(task, label, n, per_call=n, rng=random.Random(index), examples=[])[0]
    return dataclasses.replace(req, sample_index=index)


def complete(teacher: Teacher, req: TeacherRequest) -> Any:
    async def main() -> Any:
        try:
            return await teacher.complete(req, GeneratedExamples)
        finally:
            await teacher.aclose()

    return asyncio.run(main())


def test_generate_round_trip_is_journaled(simulator: Any, tmp_path: Path) -> None:
    teacher, journal = make_teacher(simulator.base_url, tmp_path)
    result = complete(teacher, request(n=3))
    assert 1 <= len(result.parsed.examples) <= 3
    assert {e.label for e in result.parsed.examples} == {"card_arrival"}
    assert result.tokens_in > 0 and result.tokens_out > 0 and not result.cache_hit
    [call] = journal.calls
    assert call.status == "ok" and call.attempts == 1 and call.prompt_id == "seed_generate"


def test_retry_after_is_honoured(simulator: Any, tmp_path: Path) -> None:
    simulator.script(["429", "ok"])  # the simulator's 429 carries Retry-After: 1 (its default)
    teacher, _journal = make_teacher(simulator.base_url, tmp_path, backoff_initial_s=0.01)
    started = time.monotonic()
    result = complete(teacher, request())
    waited = time.monotonic() - started
    assert result.attempts == 2
    assert waited >= 0.95, f"retried after {waited:.2f}s, ignoring Retry-After: 1"
    assert simulator.stats()["requests"] == 2


def test_retry_after_is_capped(simulator: Any, tmp_path: Path) -> None:
    simulator.script(["429", "ok"])
    teacher, _ = make_teacher(simulator.base_url, tmp_path, max_retry_wait_s=0.1)
    started = time.monotonic()
    complete(teacher, request())
    assert time.monotonic() - started < 0.9


def test_5xx_and_timeouts_are_retried(simulator: Any, tmp_path: Path) -> None:
    simulator.script(["500", "503", "hang", "ok"])
    teacher, journal = make_teacher(simulator.base_url, tmp_path, timeout_s=0.5, max_attempts=5)
    result = complete(teacher, request())
    assert result.attempts == 4
    assert journal.calls[-1].attempts == 4
    assert simulator.stats()["requests"] == 4


def test_400_is_not_retried(simulator: Any, tmp_path: Path) -> None:
    teacher, journal = make_teacher(simulator.base_url, tmp_path)
    bad = request(label="no_such_label")  # the simulator answers 400 for an unknown label
    with pytest.raises(TeacherError, match="1 attempt"):
        complete(teacher, bad)
    assert simulator.stats()["requests"] == 1
    assert journal.calls[-1].status == "error"


def test_attempts_are_bounded(simulator: Any, tmp_path: Path) -> None:
    simulator.script(["503"] * 10)
    teacher, _journal = make_teacher(simulator.base_url, tmp_path, max_attempts=3)
    with pytest.raises(TeacherError, match="3 attempt"):
        complete(teacher, request())
    assert simulator.stats()["requests"] == 3


def test_invalid_json_is_repaired_by_one_reask(simulator: Any, tmp_path: Path) -> None:
    simulator.script(["malformed", "ok"])
    teacher, journal = make_teacher(simulator.base_url, tmp_path)
    result = complete(teacher, request())
    assert result.parsed.examples
    assert [c.status for c in journal.calls] == ["invalid_output", "ok"]
    assert simulator.stats()["requests"] == 2


def test_truncated_output_is_reasked_then_fails_loudly(simulator: Any, tmp_path: Path) -> None:
    simulator.script(["truncated"] * 6)
    teacher, journal = make_teacher(simulator.base_url, tmp_path, invalid_output_exchanges=2)
    with pytest.raises(InvalidOutput, match="finish_reason=length"):
        complete(teacher, request())
    # Two exchanges of (request + one re-ask), then give up loudly; every bad reply is journaled.
    assert simulator.stats()["requests"] == 4
    assert [c.status for c in journal.calls] == ["invalid_output"] * 4


def test_a_fresh_exchange_follows_a_failed_reask(simulator: Any, tmp_path: Path) -> None:
    simulator.script(["malformed", "malformed", "ok"])  # bad, bad re-ask, then a fresh exchange succeeds
    teacher, journal = make_teacher(simulator.base_url, tmp_path)
    result = complete(teacher, request())
    assert result.parsed.examples
    assert [c.status for c in journal.calls] == ["invalid_output", "invalid_output", "ok"]


def test_identical_second_run_sends_zero_requests(simulator: Any, tmp_path: Path) -> None:
    requests = [request(index=i) for i in range(5)]

    def one_run() -> list[Any]:
        teacher, _ = make_teacher(simulator.base_url, tmp_path)

        async def main() -> list[Any]:
            try:
                return list(await asyncio.gather(*(teacher.complete(r, GeneratedExamples) for r in requests)))
            finally:
                await teacher.aclose()

        return asyncio.run(main())

    first = one_run()
    sent = simulator.stats()["requests"]
    assert sent == 5  # distinct sample indices are distinct cache entries
    second = one_run()
    assert simulator.stats()["requests"] == sent
    assert all(r.cache_hit for r in second)
    assert [r.content for r in first] == [r.content for r in second]


def test_budget_never_exceeded_with_32_concurrent_calls(make_simulator: Any, tmp_path: Path) -> None:
    server = make_simulator(latency_ms=50)
    prices = Prices(input_per_mtok=1000.0, output_per_mtok=1000.0)  # $0.001 per token: the budget binds
    probe = request(label="exchange_rate", n=1, index=31)
    worst_case = prices.cost(prompt_token_bound(probe.messages), probe.output_tokens)
    ledger = Ledger(prices, max_usd=worst_case * 5.5)
    teacher, journal = make_teacher(server.base_url, tmp_path, ledger=ledger, max_concurrency=32)

    async def main() -> list[Any]:
        try:
            reqs = [request(label="exchange_rate", n=1, index=i) for i in range(32)]
            return list(
                await asyncio.gather(*(teacher.complete(r, GeneratedExamples) for r in reqs), return_exceptions=True)
            )
        finally:
            await teacher.aclose()

    results = asyncio.run(main())
    refused = [r for r in results if isinstance(r, BudgetExceeded)]
    done = [r for r in results if not isinstance(r, BaseException)]
    assert refused and len(done) >= 5
    spent = sum(c.cost_usd for c in journal.calls)
    assert spent <= ledger.max_usd  # type: ignore[operator]
    assert ledger.spent_usd <= ledger.max_usd  # type: ignore[operator]
    assert server.stats()["requests"] == len(done)  # a refused call never reached the network
