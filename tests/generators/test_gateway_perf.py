"""The gateway's hot path under concurrency: group-committed cache writes, sharded connection pools, lean reads."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import sqlite3
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

from generators.cache import CachedResponse, ResponseCache
from generators.generation import TaskInfo, seed_requests
from generators.http import POOL_CONNECTIONS, _PoolShards, read_completion
from generators.journal import CallRecord
from generators.ledger import Ledger, Prices
from generators.schemas import GeneratedExamples
from generators.teacher import Teacher, TeacherConfig, TeacherRequest

TASK = TaskInfo(
    "Customer messages to a bank.",
    {"card_arrival": "the customer waits for a card", "exchange_rate": "questions about exchange rates"},
)


def _committed(path: Path) -> set[str]:
    """Keys another connection sees: what is committed, not what one connection has buffered."""
    db = sqlite3.connect(path)
    try:
        return {row[0] for row in db.execute("SELECT key FROM responses")}
    finally:
        db.close()


def test_aput_is_committed_before_it_returns_and_concurrent_puts_share_commits(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    cache = ResponseCache(path)
    commits: list[int] = []
    write_rows = cache._write_rows

    def counting(rows: list[Any]) -> None:
        commits.append(len(rows))
        write_rows(rows)

    cache._write_rows = counting  # type: ignore[method-assign]

    async def one(i: int) -> None:
        await cache.aput(f"k{i}", CachedResponse(f"c{i}", "stop", 1, 2))
        assert f"k{i}" in _committed(path)  # durable before the caller goes on
        assert cache.get(f"k{i}") == CachedResponse(f"c{i}", "stop", 1, 2)

    async def main() -> None:
        await asyncio.gather(*(one(i) for i in range(200)))

    asyncio.run(main())
    assert sum(commits) == 200 and len(commits) < 200  # grouped: fewer transactions than rows
    assert len(cache) == 200
    cache.put("sync", CachedResponse("s", "stop", 0, 0))  # the synchronous path still works beside it
    assert "sync" in _committed(path)
    cache.close()


def test_aput_a_failed_commit_reaches_every_waiter(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "cache.sqlite")

    def broken(rows: list[Any]) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    cache._write_rows = broken  # type: ignore[method-assign]

    async def main() -> list[Any]:
        return list(
            await asyncio.gather(
                *(cache.aput(f"k{i}", CachedResponse("c", "stop", 0, 0)) for i in range(5)), return_exceptions=True
            )
        )

    assert all(isinstance(r, sqlite3.OperationalError) for r in asyncio.run(main()))
    cache.close()


def test_read_completion_takes_what_create_took_and_rejects_what_is_not_a_completion() -> None:
    request = httpx2.Request("POST", "http://t/v1/chat/completions")
    body = {
        "choices": [{"message": {"content": None}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4},
    }
    assert read_completion(httpx2.Response(200, json=body, request=request)) == ("", "stop", (3, 4))
    body = {"choices": [{"message": {"content": "{}"}, "finish_reason": None}]}
    assert read_completion(httpx2.Response(200, json=body, request=request)) == ("{}", "", None)
    for bad in (b"not json", b"[]", b'{"choices": []}'):
        with pytest.raises(openai.APIResponseValidationError):
            read_completion(httpx2.Response(200, content=bad, request=request))


def test_pools_are_sharded_above_one_pool_and_release_their_slots(make_simulator: Any, tmp_path: Path) -> None:
    server = make_simulator(latency_ms=30, jitter_ms=10)
    slots = 3 * POOL_CONNECTIONS
    teacher = Teacher(
        TeacherConfig(
            base_url=server.base_url, model="sim-teacher", api_key="sk-test", send_brief=True, max_concurrency=slots
        ),
        cache=ResponseCache(tmp_path / "cache.sqlite"),
        ledger=Ledger(Prices()),
        journal=_Journal(),
    )
    transport = teacher.client()._client._transport
    assert isinstance(transport, _PoolShards) and len(transport._pools) == 3

    def req(i: int) -> TeacherRequest:
        label = ("card_arrival", "exchange_rate")[i % 2]
        base = seed_requests(TASK, label, 1, per_call=1, rng=random.Random(i), examples=[])[0]
        return dataclasses.replace(base, sample_index=i)

    async def main() -> list[Any]:
        try:
            return list(await asyncio.gather(*(teacher.complete(req(i), GeneratedExamples) for i in range(2 * slots))))
        finally:
            assert transport._in_flight == [0, 0, 0]  # every response body closed gave its slot back
            await teacher.aclose()

    results = asyncio.run(main())
    assert len(results) == 2 * slots and teacher.http_requests == 2 * slots
    assert len(teacher.cache) == 2 * slots


def test_small_concurrency_keeps_one_pool(tmp_path: Path) -> None:
    teacher = Teacher(
        TeacherConfig(base_url="http://127.0.0.1:9/v1", model="m", api_key="k", max_concurrency=8),
        cache=ResponseCache(tmp_path / "cache.sqlite"),
        ledger=Ledger(Prices()),
        journal=_Journal(),
    )
    assert not isinstance(teacher.client()._client._transport, _PoolShards)
    asyncio.run(teacher.aclose())


class _Journal:
    def __init__(self) -> None:
        self.calls: list[CallRecord] = []

    def record_call(self, call: CallRecord) -> int:
        self.calls.append(call)
        return len(self.calls)


def test_a_proxy_in_the_environment_keeps_the_sdk_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    teacher = Teacher(
        TeacherConfig(base_url="http://127.0.0.1:9/v1", model="m", api_key="k", max_concurrency=256),
        cache=ResponseCache(tmp_path / "cache.sqlite"),
        ledger=Ledger(Prices()),
        journal=_Journal(),
    )
    assert not isinstance(teacher.client()._client._transport, _PoolShards)  # httpx mounts env proxies itself
    asyncio.run(teacher.aclose())
