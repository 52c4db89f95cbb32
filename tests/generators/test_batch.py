"""The OpenAI Batch API: the simulator's files and batches endpoints, the gateway's batch path (``run_batch``),
a resume that re-attaches to the job it paid for, and a whole run with ``teacher.batch: true``.
Real openai SDK over real loopback HTTP."""

from __future__ import annotations

import asyncio
import io
import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import httpx2
import openai
import pytest

from generators.batch import UPLOADED, BatchSettings, run_batch
from generators.cache import ResponseCache
from generators.generation import TaskInfo, label_requests, seed_requests
from generators.journal import MemoryJournal
from generators.ledger import BudgetExceeded, Ledger, Prices, prompt_token_bound
from generators.providers import PROFILES
from generators.schemas import AssignedLabels, GeneratedExamples
from generators.teacher import Completion, Teacher, TeacherConfig, TeacherRequest
from simulator import SimulatorConfig, SimulatorServer
from tests.conftest import TINY_POOL
from tests.run_helpers import SECRET, run_spec, served_simulator, write_spec

MakeSim = Callable[..., SimulatorServer]
TASK = TaskInfo(
    "Customer messages to a bank.",
    {
        "card_arrival": "waiting for a card",
        "lost_or_stolen_card": "card lost or stolen",
        "exchange_rate": "currency exchange rates",
    },
)
POOL = [json.loads(line) for line in TINY_POOL.read_text().splitlines()]
GOLD = {item["text"]: item["label"] for item in POOL}
PRICES = Prices(input_per_mtok=1.0, output_per_mtok=2.0)
FAST = BatchSettings(poll_s=0.05, timeout_s=30.0)


# -- helpers -------------------------------------------------------------------------------------------


def sdk(server: SimulatorServer, key: str = "sk-test") -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0, timeout=10)


def chat_body(texts: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "model": "sim-teacher",
        "messages": [{"role": "user", "content": "Label: " + " | ".join(texts)}],
        "distill_brief": {"action": "label", "labels": list(TASK.labels), "texts": texts},
        **extra,
    }


def line(custom_id: str, body: Any, **fields: Any) -> dict[str, Any]:
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body, **fields}


def upload(client: openai.OpenAI, lines: list[Any]) -> str:
    text = "\n".join(item if isinstance(item, str) else json.dumps(item, ensure_ascii=False) for item in lines)
    return client.files.create(file=("input.jsonl", io.BytesIO(text.encode())), purpose="batch").id


def submit(client: openai.OpenAI, lines: list[Any]) -> Any:
    return client.batches.create(
        input_file_id=upload(client, lines), endpoint="/v1/chat/completions", completion_window="24h"
    )


def wait_done(client: openai.OpenAI, batch_id: str, timeout_s: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        job = client.batches.retrieve(batch_id)
        if job.status in ("completed", "failed", "cancelled", "expired") or time.monotonic() > deadline:
            return job
        time.sleep(0.05)


def output_lines(client: openai.OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    return [] if file_id is None else [json.loads(x) for x in client.files.content(file_id).text.splitlines()]


def gateway(server: SimulatorServer, cache: Path, ledger: Ledger | None = None) -> tuple[Teacher, MemoryJournal]:
    """A Teacher as tests/test_providers.py builds one, with the brief sent (the teacher is the simulator)."""
    journal = MemoryJournal()
    config = TeacherConfig(
        base_url=server.base_url,
        model="sim-teacher",
        api_key="sk-test",
        profile=PROFILES["openai"],
        send_brief=True,
        max_attempts=2,
        timeout_s=5.0,
    )
    return Teacher(config, cache=ResponseCache(cache), ledger=ledger or Ledger(PRICES), journal=journal), journal


def batch(
    teacher: Teacher, requests: list[TeacherRequest], schema: Any, settings: BatchSettings = FAST, **kwargs: Any
) -> list[Any]:
    async def main() -> list[Any]:
        try:
            return await run_batch(teacher, requests, schema, settings, **kwargs)
        finally:
            await teacher.aclose()

    return asyncio.run(main())


def synchronous(teacher: Teacher, requests: list[TeacherRequest], schema: Any) -> list[Any]:
    async def main() -> list[Any]:
        try:
            return [await teacher.complete(r, schema) for r in requests]
        finally:
            await teacher.aclose()

    return asyncio.run(main())


def labelling(n_texts: int, per_call: int = 2) -> tuple[list[str], list[TeacherRequest]]:
    texts = [item["text"] for item in POOL[::5][:n_texts]]
    return texts, label_requests(TASK, texts, per_call=per_call, round=1)


def labels_of(results: list[Any]) -> list[str]:
    labels: list[str] = []
    for result in results:
        assert isinstance(result, Completion), result
        labels += [item.label for item in sorted(result.parsed.labels, key=lambda i: i.index)]
    return labels


# -- the simulator's endpoints -------------------------------------------------------------------------


def test_upload_create_poll_download_round_trip(make_simulator: MakeSim) -> None:
    server = make_simulator()
    client = sdk(server)
    texts = [item["text"] for item in POOL[:5]]
    file_id = upload(client, [line(f"req-{i}", chat_body([t])) for i, t in enumerate(texts)])
    stored = client.files.retrieve(file_id)
    assert stored.object == "file" and stored.purpose == "batch" and stored.filename == "input.jsonl"
    assert json.loads(client.files.content(file_id).text.splitlines()[0])["custom_id"] == "req-0"

    job = client.batches.create(
        input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h", metadata={"source": "test"}
    )
    assert job.status == "validating" and job.id.startswith("batch_") and job.metadata == {"source": "test"}
    job = wait_done(client, job.id)
    assert job.status == "completed" and job.error_file_id is None and job.errors is None
    assert job.request_counts is not None and (job.request_counts.total, job.request_counts.completed) == (5, 5)
    assert job.completed_at is not None and job.in_progress_at is not None and job.model == "sim-teacher"
    assert job.usage is not None and job.usage.total_tokens > 0

    lines = output_lines(client, job.output_file_id)
    assert [x["custom_id"] for x in lines] == [f"req-{i}" for i in range(5)]
    for item, text in zip(lines, texts, strict=True):
        assert item["id"].startswith("batch_req_") and item["error"] is None
        response = item["response"]
        assert response["status_code"] == 200 and response["request_id"].startswith("req_")
        body = response["body"]
        assert body["object"] == "chat.completion" and body["usage"]["completion_tokens"] > 0
        assert json.loads(body["choices"][0]["message"]["content"])["labels"][0]["label"] == GOLD[text]
    assert client.files.retrieve(job.output_file_id).purpose == "batch_output"

    stats = server.stats()
    assert (stats["files_uploaded"], stats["batches_created"], stats["batch_lines"]) == (1, 1, 5)
    assert stats["requests"] == 0 and stats["actions"] == {"label": 5}  # lines are not chat requests
    assert [b.id for b in client.batches.list().data] == [job.id]


def test_a_bad_input_file_fails_validation_with_line_errors(make_simulator: MakeSim) -> None:
    server = make_simulator()
    client = sdk(server)
    good = chat_body(["where is my card?"])
    job = submit(
        client,
        [
            line("a", good),
            "this is not json",
            line("a", good),  # a duplicate custom_id
            line("b", good, url="/v1/embeddings"),
            line("c", good, method="GET"),
            line("d", [1, 2]),  # a body that is not an object
            {"method": "POST", "url": "/v1/chat/completions", "body": good},  # no custom_id
            line("e", {**good, "model": "other-model"}),
        ],
    )
    job = wait_done(client, job.id)
    assert job.status == "failed" and job.failed_at is not None and job.output_file_id is None
    assert job.errors is not None and job.errors.data is not None
    assert [(e.line, e.code) for e in job.errors.data] == [
        (2, "invalid_json_line"),
        (3, "duplicate_custom_id"),
        (4, "url_mismatch"),
        (5, "invalid_method"),
        (6, "invalid_body"),
        (7, "missing_required_parameter"),
        (8, "model_mismatch"),
    ]
    assert server.stats()["batch_lines"] == 0  # nothing of a refused file is answered

    empty = wait_done(client, submit(client, [""]).id)
    assert empty.status == "failed" and empty.errors is not None and empty.errors.data is not None
    assert empty.errors.data[0].code == "empty_file"

    # What the create call itself refuses, with OpenAI's statuses.
    file_id = upload(client, [line("a", good)])
    with pytest.raises(openai.BadRequestError, match="completion_window"):
        client.batches.create(input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="1h")  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError, match="endpoint"):
        client.batches.create(input_file_id=file_id, endpoint="/v1/embeddings", completion_window="24h")
    with pytest.raises(openai.NotFoundError, match="No such File"):
        client.batches.create(input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h")
    other = client.files.create(file=("x.jsonl", io.BytesIO(b"{}\n")), purpose="assistants").id
    with pytest.raises(openai.BadRequestError, match="purpose 'batch'"):
        client.batches.create(input_file_id=other, endpoint="/v1/chat/completions", completion_window="24h")
    with pytest.raises(openai.BadRequestError, match="purpose"):
        client.files.create(file=("x.jsonl", io.BytesIO(b"{}\n")), purpose="nonsense")  # type: ignore[arg-type]
    assert server.stats()["batches_created"] == 2


def test_partial_failures_and_refused_lines_land_in_the_error_file(make_simulator: MakeSim) -> None:
    server = make_simulator(batch_failure_rate=0.5, seed=3, profile="openai-chat")
    client = sdk(server)
    texts = [item["text"] for item in POOL[:20]]
    too_long = chat_body(["hi"], max_tokens=20_000)  # over gpt-4o's output cap: the profile refuses it
    job = wait_done(
        client,
        submit(client, [line(f"r{i}", chat_body([t])) for i, t in enumerate(texts)] + [line("too-long", too_long)]).id,
    )
    assert job.status == "completed" and job.request_counts is not None
    ok, failed = output_lines(client, job.output_file_id), output_lines(client, job.error_file_id)
    assert (job.request_counts.completed, job.request_counts.failed) == (len(ok), len(failed))
    assert len(ok) + len(failed) == 21 and 3 <= len(failed) <= 18
    assert {x["custom_id"] for x in ok + failed} == {f"r{i}" for i in range(20)} | {"too-long"}
    assert all(x["response"]["status_code"] == 200 for x in ok)
    simulated = [x for x in failed if x["custom_id"] != "too-long"]
    assert simulated and all(
        x["response"]["status_code"] == 500
        and x["error"] is None
        and x["response"]["body"]["error"]["type"] == "server_error"
        for x in simulated
    )
    # A refused line gets exactly what /v1/chat/completions answers to the same body.
    refused = next(x for x in failed if x["custom_id"] == "too-long")["response"]
    with httpx.Client(trust_env=False, timeout=10) as http:
        direct = http.post(server.base_url + "/chat/completions", json=too_long)
    assert (refused["status_code"], refused["body"]) == (direct.status_code, direct.json())
    assert direct.status_code == 400 and "max_tokens is too large" in direct.json()["error"]["message"]


def test_the_delay_is_honoured_with_growing_request_counts(make_simulator: MakeSim) -> None:
    server = make_simulator(batch_delay_s=1.0)
    client = sdk(server)
    created = time.monotonic()
    job = submit(client, [line(f"r{i}", chat_body([item["text"]])) for i, item in enumerate(POOL[:10])])
    seen: list[tuple[float, str, int]] = []
    while True:
        current = client.batches.retrieve(job.id)
        assert current.request_counts is not None
        done = current.request_counts.completed + current.request_counts.failed
        seen.append((time.monotonic() - created, current.status, done))
        if current.status == "completed":
            break
        assert time.monotonic() - created < 5
        time.sleep(0.1)
    assert seen[-1][0] >= 1.0 and seen[-1][2] == 10
    assert all(status == "in_progress" for _, status, _ in seen[:-1]) and len(seen) >= 5
    counts = [done for _, _, done in seen]
    assert counts == sorted(counts) and 0 < counts[len(counts) // 2] < 10  # growing, not all at once


def test_a_cancelled_job_keeps_what_it_answered(make_simulator: MakeSim) -> None:
    server = make_simulator(batch_delay_s=0.6)
    client = sdk(server)
    job = submit(client, [line(f"r{i}", chat_body([item["text"]])) for i, item in enumerate(POOL[:10])])
    time.sleep(0.3)
    assert client.batches.cancel(job.id).status == "cancelling"
    job = wait_done(client, job.id)
    assert job.status == "cancelled" and job.cancelled_at is not None and job.request_counts is not None
    assert 0 < job.request_counts.completed < 10
    assert len(output_lines(client, job.output_file_id)) == job.request_counts.completed
    with pytest.raises(openai.APIStatusError, match="cancel"):
        client.batches.cancel(job.id)


def test_files_and_batches_need_the_key_and_knobs_are_validated(make_simulator: MakeSim) -> None:
    server = make_simulator(api_key=SECRET)
    with pytest.raises(openai.AuthenticationError):
        upload(sdk(server, key="sk-wrong"), [line("a", chat_body(["hi"]))])
    with pytest.raises(openai.AuthenticationError):
        sdk(server, key="sk-wrong").batches.retrieve("batch_x")
    assert server.stats()["files_uploaded"] == 0
    assert submit(sdk(server, key=SECRET), [line("a", chat_body(["hi"]))]).status == "validating"
    for bad in ({"batch_failure_rate": 1.5}, {"batch_failure_rate": -0.1}, {"batch_delay_s": -1}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            SimulatorConfig(**bad)


# -- the gateway's batch path --------------------------------------------------------------------------


def test_run_batch_answers_journals_caches_and_bills_the_batch_price(make_simulator: MakeSim, tmp_path: Path) -> None:
    server = make_simulator(batch_delay_s=0.2)
    texts, requests = labelling(6)
    teacher, journal = gateway(server, tmp_path / "cache.sqlite")
    polls: list[tuple[str, int, int]] = []
    results = batch(teacher, requests, AssignedLabels, on_poll=lambda *p: polls.append(p))
    assert labels_of(results) == [GOLD[t] for t in texts]
    assert all(not r.cache_hit and r.cost_usd > 0 for r in results)
    stats = server.stats()
    assert (stats["files_uploaded"], stats["batches_created"], stats["batch_lines"], stats["requests"]) == (1, 1, 3, 0)
    assert polls and polls[-1] == ("completed", 3, 3)
    assert [c.status for c in journal.calls] == ["ok"] * 3
    assert [c.cost_usd for c in journal.calls] == [r.cost_usd for r in results]
    for result in results:  # half the synchronous price of the same usage
        assert result.cost_usd == pytest.approx(0.5 * PRICES.cost(result.tokens_in, result.tokens_out))
    assert teacher.ledger.spent_usd == pytest.approx(sum(r.cost_usd for r in results))

    # The same requests synchronously, from a fresh simulator and cache: the same usage at twice the cost.
    fresh = make_simulator()
    sync_teacher, _ = gateway(fresh, tmp_path / "sync.sqlite")
    direct = synchronous(sync_teacher, requests, AssignedLabels)
    for ours, theirs in zip(results, direct, strict=True):
        assert (ours.tokens_in, ours.tokens_out) == (theirs.tokens_in, theirs.tokens_out)
        assert ours.cost_usd == pytest.approx(theirs.cost_usd / 2)

    # A second run: every answer from the cache, nothing sent.
    again = batch(teacher, requests, AssignedLabels)
    assert all(r.cache_hit for r in again) and labels_of(again) == labels_of(results)
    stats = server.stats()
    assert (stats["files_uploaded"], stats["batches_created"], stats["requests"]) == (1, 1, 0)


def test_failed_lines_are_answered_through_the_synchronous_path(make_simulator: MakeSim, tmp_path: Path) -> None:
    server = make_simulator(batch_failure_rate=0.5, seed=1)
    texts, requests = labelling(16)
    teacher, journal = gateway(server, tmp_path / "cache.sqlite")
    results = batch(teacher, requests, AssignedLabels)
    assert labels_of(results) == [GOLD[t] for t in texts]
    errors = [c for c in journal.calls if c.status == "error"]
    stats = server.stats()
    assert errors and stats["requests"] == len(errors) and stats["batch_lines"] == 8
    assert all(c.cost_usd == 0 and "simulated batch line failure" in (c.error or "") for c in errors)
    billed = {r.call_id: r for r in results}
    by_factor = [r.cost_usd / PRICES.cost(r.tokens_in, r.tokens_out) for r in billed.values()]
    assert sorted(round(f, 6) for f in by_factor).count(1.0) == len(errors)  # the retried ones: full price
    assert sorted(round(f, 6) for f in by_factor).count(0.5) == 8 - len(errors)


def test_budget_refusals_come_back_as_values(make_simulator: MakeSim, tmp_path: Path) -> None:
    server = make_simulator()
    _, requests = labelling(6)
    probe = Ledger(PRICES)
    wanted = min(4096, requests[0].output_tokens + PROFILES["openai"].reasoning_allowance)
    one = probe.reserve(prompt_token_bound(requests[0].messages), wanted, price_factor=0.5).usd
    teacher, _ = gateway(server, tmp_path / "cache.sqlite", Ledger(PRICES, max_usd=one * 1.05))
    results = batch(teacher, requests, AssignedLabels)
    assert isinstance(results[0], Completion)
    assert all(isinstance(r, BudgetExceeded) for r in results[1:]), results
    stats = server.stats()
    assert (stats["batches_created"], stats["batch_lines"], stats["requests"]) == (1, 1, 0)
    assert teacher.ledger.spent_usd <= one * 1.05


def resume_collects_the_one_job(server: SimulatorServer, cache: Path, requests: list[TeacherRequest]) -> None:
    """A fresh gateway on the same cache answers everything from the job paid for before: no second file or job,
    no synchronous call."""
    fresh, journal = gateway(server, cache)
    results = batch(fresh, requests, GeneratedExamples)
    assert all(isinstance(r, Completion) and r.parsed.examples for r in results), results
    stats = server.stats()
    assert (stats["files_uploaded"], stats["batches_created"], stats["requests"]) == (1, 1, 0)
    assert [c.status for c in journal.calls] == ["ok"] * len(requests)


def test_a_resume_reattaches_to_the_job_it_paid_for(make_simulator: MakeSim, tmp_path: Path) -> None:
    server = make_simulator(batch_delay_s=0.3)
    requests = seed_requests(TASK, "card_arrival", 6, per_call=2, rng=random.Random(0), examples=["where is my card?"])

    class Crash(RuntimeError):
        pass

    def crash(batch_id: str) -> None:
        raise Crash(batch_id)

    teacher, _ = gateway(server, tmp_path / "cache.sqlite")
    with pytest.raises(Crash):
        batch(teacher, requests, GeneratedExamples, on_submitted=crash)
    teacher.cache.close()

    resume_collects_the_one_job(server, tmp_path / "cache.sqlite", requests)
    # Collected: a third run finds every answer cached and re-attaches to nothing.
    third, _ = gateway(server, tmp_path / "cache.sqlite")
    assert all(r.cache_hit for r in batch(third, requests, GeneratedExamples))
    assert server.stats()["batches_created"] == 1


def test_a_crash_before_the_job_id_is_written_still_re_attaches(
    make_simulator: MakeSim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job was created (and will be billed) but the process died before storing its id: the resume finds
    it by its input file rather than creating a second one."""
    server = make_simulator(batch_delay_s=0.2)
    requests = seed_requests(TASK, "card_arrival", 4, per_call=2, rng=random.Random(1), examples=[])

    class Crash(RuntimeError):
        pass

    teacher, _ = gateway(server, tmp_path / "cache.sqlite")
    record = teacher.cache.record_batch

    def record_then_die(batch_id: str, keys: list[str]) -> None:
        if not batch_id.startswith(UPLOADED):
            raise Crash(batch_id)  # the job exists on the provider's side; its id never reaches the disk
        record(batch_id, keys)

    monkeypatch.setattr(teacher.cache, "record_batch", record_then_die)
    with pytest.raises(Crash):
        batch(teacher, requests, GeneratedExamples)
    teacher.cache.close()
    assert server.stats()["batches_created"] == 1

    resume_collects_the_one_job(server, tmp_path / "cache.sqlite", requests)


def test_a_repeated_request_is_one_line_of_the_job(make_simulator: MakeSim, tmp_path: Path) -> None:
    server = make_simulator()
    texts, requests = labelling(2)
    teacher, _ = gateway(server, tmp_path / "cache.sqlite")
    results = batch(teacher, requests + requests, AssignedLabels)
    assert labels_of(results) == [GOLD[t] for t in texts] * 2
    assert server.stats()["batch_lines"] == 1


def test_a_transient_error_while_polling_is_retried(
    make_simulator: MakeSim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK runs with max_retries=0: without the gateway's retries one 503 would end a day of polling."""
    server = make_simulator(batch_delay_s=0.2)
    texts, requests = labelling(2)
    original = openai.resources.batches.AsyncBatches.retrieve
    failures = [openai.APIConnectionError(request=httpx2.Request("GET", server.base_url))]

    async def flaky(self: Any, *args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop()
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(openai.resources.batches.AsyncBatches, "retrieve", flaky)
    teacher, _ = gateway(server, tmp_path / "cache.sqlite")
    assert labels_of(batch(teacher, requests, AssignedLabels)) == [GOLD[t] for t in texts]
    assert not failures and server.stats()["requests"] == 0  # retried, not answered the synchronous way


# -- a whole run ---------------------------------------------------------------------------------------


def test_a_run_with_teacher_batch_sends_round_0_as_one_job_at_half_price(
    tmp_path: Path, tiny_model: str, make_simulator: MakeSim, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent.store import RunStore

    monkeypatch.setenv("DISTILL_TEST_KEY", SECRET)
    monkeypatch.setenv("DISTILL_QUIET", "1")
    server = make_simulator(api_key=SECRET, batch_delay_s=0.3)
    teacher = {**served_simulator(server), "batch": True, "batch_poll_s": 0.2}
    spec_path = write_spec(tmp_path, tiny_model, teacher, max_rounds=1)
    run_dir, _ = run_spec(spec_path, tmp_path / "run")

    stats = server.stats()
    assert (stats["batches_created"], stats["files_uploaded"]) == (1, 1)  # round 0's seed generation, one job
    store = RunStore(run_dir / "run.sqlite")
    calls = store.query("SELECT prompt_id, tokens_in, tokens_out, cost_usd, status, cache_hit FROM teacher_calls")
    store.close()
    seeds = [c for c in calls if c["prompt_id"] == "seed_generate" and c["status"] == "ok"]
    later = [c for c in calls if c["prompt_id"] == "pgkd_generate" and c["status"] == "ok" and not c["cache_hit"]]
    assert seeds and later
    # Input $1 and output $2 per 1M tokens (served_simulator): the batch price is half of it.
    for call in seeds:
        assert call["cost_usd"] == pytest.approx(0.5 * PRICES.cost(call["tokens_in"], call["tokens_out"]))
    for call in later:
        assert call["cost_usd"] == pytest.approx(PRICES.cost(call["tokens_in"], call["tokens_out"]))
    assert stats["batch_lines"] == len(seeds)
