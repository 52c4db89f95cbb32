"""Provider profiles: what each provider is sent, how a 400 is adapted to, keys and URLs from the environment,
and a budget that spends what it is given. Real openai SDK over real loopback HTTP."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from pathlib import Path
from typing import Any

import pytest

from agent.spec import RemoteTeacher
from agent.teacher_endpoint import KEYLESS_PLACEHOLDER, EndpointError, resolve_endpoint
from generators.cache import ResponseCache
from generators.generation import TaskInfo, label_requests, seed_requests
from generators.journal import MemoryJournal
from generators.ledger import BudgetExceeded, Ledger, Prices, format_usd
from generators.providers import PROFILES, ProviderProfile, adapt, profile_for
from generators.schemas import AssignedLabels, GeneratedExamples
from generators.teacher import Teacher, TeacherConfig, TeacherRequest
from tests.capture_server import capture_server
from tests.conftest import TINY_POOL

TASK = TaskInfo(
    "Customer messages to a bank.", {"card_arrival": "waiting for a card", "lost_or_stolen_card": "card lost or stolen"}
)
LABEL_REPLY = {"labels": [{"index": 0, "label": "card_arrival"}]}


def gateway(
    base_url: str,
    tmp_path: Path,
    profile: ProviderProfile,
    *,
    send_brief: bool = False,
    ledger: Ledger | None = None,
    model: str = "gpt-4o-mini",
    temperature: float = 0.9,
) -> tuple[Teacher, MemoryJournal]:
    journal = MemoryJournal()
    config = TeacherConfig(
        base_url=base_url,
        model=model,
        api_key="sk-test",
        profile=profile,
        send_brief=send_brief,
        max_attempts=2,
        timeout_s=5.0,
        temperature=temperature,
    )
    return Teacher(
        config, cache=ResponseCache(tmp_path / "cache.sqlite"), ledger=ledger or Ledger(Prices()), journal=journal
    ), journal


def send(teacher: Teacher, requests: list[TeacherRequest], schema: Any) -> list[Any]:
    async def main() -> list[Any]:
        try:
            return list(await asyncio.gather(*(teacher.complete(r, schema) for r in requests), return_exceptions=True))
        finally:
            await teacher.aclose()

    return asyncio.run(main())


def label_request(text: str = "where is my new card?") -> TeacherRequest:
    return label_requests(TASK, [text], per_call=10, round=1)[0]


# -- the profile table -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "model", "expected"),
    [
        ("openai", "gpt-4o-mini", "openai"),
        ("openai", "gpt-5.1", "openai-reasoning"),
        ("openai", "o4-mini", "openai-reasoning"),
        ("openai", "o1", "openai-reasoning"),
        ("anthropic", "claude-sonnet-4-5", "anthropic"),
        ("ollama", "gpt-5-looking-name", "ollama"),
    ],
)
def test_profile_is_chosen_from_provider_and_model(provider: str, model: str, expected: str) -> None:
    assert profile_for(provider, model).name == expected


def test_spec_overrides_a_profile_field_by_field() -> None:
    profile = PROFILES["openai"].overridden({"structured_output": "json_object", "reports_usage": None})
    assert profile.structured_output == "json_object" and profile.reports_usage is True
    with pytest.raises(ValueError, match="unknown provider profile field"):
        PROFILES["openai"].overridden({"max_tokenz": 3})


# -- what a real provider receives -------------------------------------------------------------------


def test_openai_reasoning_model_gets_max_completion_tokens_no_temperature_and_a_strict_enum_schema(
    tmp_path: Path,
) -> None:
    with capture_server(LABEL_REPLY) as (url, recorder):
        teacher, journal = gateway(url, tmp_path, profile_for("openai", "gpt-5-mini"), model="gpt-5-mini")
        [result] = send(teacher, [label_request()], AssignedLabels)
    assert result.parsed.labels[0].label == "card_arrival"
    [body] = recorder.bodies
    assert set(body) == {"model", "messages", "max_completion_tokens", "response_format"}
    # The label reply is bounded by its size (1 text), plus room for hidden reasoning.
    assert body["max_completion_tokens"] == 10 + 20 + PROFILES["openai-reasoning"].reasoning_allowance
    schema = body["response_format"]["json_schema"]
    assert schema["strict"] is True and schema["name"] == "label"
    assert schema["schema"]["properties"]["labels"]["items"]["properties"]["label"]["enum"] == list(TASK.labels)
    prompt = "\n".join(m["content"] for m in body["messages"])
    assert "brief" not in prompt and "where is my new card?" in prompt
    assert recorder.headers[0]["authorization"] == "Bearer sk-test"
    assert journal.calls[0].tokens_in == 100 and journal.calls[0].adaptation is None


def test_chat_model_labels_at_temperature_zero_and_generates_at_the_spec_temperature(tmp_path: Path) -> None:
    generate = seed_requests(TASK, "card_arrival", 3, per_call=3, rng=random.Random(0), examples=["my card?"])[0]
    with capture_server({"examples": [{"text": "card not here", "label": "card_arrival"}]}) as (url, recorder):
        teacher, _ = gateway(url, tmp_path, PROFILES["openai"])
        send(teacher, [generate], GeneratedExamples)
    with capture_server(LABEL_REPLY) as (url, labels):
        teacher, _ = gateway(url, tmp_path / "b", PROFILES["openai"])
        send(teacher, [label_request()], AssignedLabels)
    assert recorder.bodies[0]["temperature"] == 0.9 and labels.bodies[0]["temperature"] == 0.0
    assert recorder.bodies[0]["max_completion_tokens"] == 20 + 3 * 120


def test_anthropic_gets_prompt_only_json_and_a_capped_temperature(tmp_path: Path) -> None:
    with capture_server({"examples": [{"text": "card not here", "label": "card_arrival"}]}) as (url, recorder):
        teacher, _ = gateway(url, tmp_path, PROFILES["anthropic"], temperature=1.3)
        generate = seed_requests(TASK, "card_arrival", 2, per_call=2, rng=random.Random(0), examples=[])[0]
        send(teacher, [generate], GeneratedExamples)
    [body] = recorder.bodies
    assert "response_format" not in body and body["temperature"] == 1.0 and "max_tokens" in body


def test_the_brief_goes_to_the_simulator_only(tmp_path: Path) -> None:
    with capture_server(LABEL_REPLY) as (url, recorder):
        real, _ = gateway(url, tmp_path, PROFILES["vllm"])
        send(real, [label_request()], AssignedLabels)
        simulated, _ = gateway(url, tmp_path / "sim", PROFILES["vllm"], send_brief=True)
        send(simulated, [label_request("a second text")], AssignedLabels)
    assert "distill_brief" not in recorder.bodies[0]
    assert recorder.bodies[1]["distill_brief"] == {
        "action": "label",
        "labels": list(TASK.labels),
        "texts": ["a second text"],
    }


def test_a_reply_in_prose_or_a_fence_is_accepted_and_missing_usage_is_bounded(tmp_path: Path) -> None:
    with capture_server(LABEL_REPLY, usage=False) as (url, recorder):
        teacher, journal = gateway(url, tmp_path, PROFILES["generic"])
        [result] = send(teacher, [label_request()], AssignedLabels)
    assert result.parsed.labels[0].label == "card_arrival"
    body = recorder.bodies[0]
    assert "response_format" not in body
    # No usage: tokens are booked as bytes, an upper bound on any byte-level BPE count.
    call = journal.calls[0]
    assert call.tokens_in >= sum(len(m["content"]) for m in body["messages"]) and call.tokens_out > 0


# -- adapting to a 400 -------------------------------------------------------------------------------

OPENAI_MAX_TOKENS = (
    "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead."
)
OPENAI_TEMPERATURE = (
    "Unsupported value: 'temperature' does not support 0.9 with this model. Only the default (1) value is supported."
)


def test_adapt_renames_drops_and_downgrades() -> None:
    renamed = adapt(PROFILES["vllm"], OPENAI_MAX_TOKENS, "max_tokens")
    assert renamed is not None and renamed.profile.token_limit_param == "max_completion_tokens"
    dropped = adapt(PROFILES["openai"], OPENAI_TEMPERATURE, "temperature")
    assert dropped is not None and dropped.profile.sends_temperature is False
    assert adapt(dropped.profile, OPENAI_TEMPERATURE, "temperature") is None  # never the same fix twice
    relaxed = adapt(PROFILES["openai"], "Invalid schema for response_format 'label': ...", "response_format")
    assert relaxed is not None and relaxed.profile.strict_schema is False
    weaker = adapt(relaxed.profile, "response_format json_schema is not supported", None)
    assert weaker is not None and weaker.profile.structured_output == "json_object"
    unrecognized = adapt(PROFILES["openai"], "Unrecognized request argument supplied: temperature", None)
    assert unrecognized is not None and unrecognized.profile.sends_temperature is False
    assert adapt(PROFILES["openai"], "Invalid 'messages[0].content': string too long.", "messages") is None


# -- keys and URLs, as the openai SDK does -----------------------------------------------------------


def test_sdk_environment_conventions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9999/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    endpoint = resolve_endpoint(RemoteTeacher(provider="openai", model="gpt-4o-mini"))
    assert (endpoint.base_url, endpoint.api_key) == ("http://127.0.0.1:9999/v1", "sk-from-env")
    monkeypatch.delenv("OPENAI_BASE_URL")
    monkeypatch.delenv("OPENAI_API_KEY")
    assert resolve_endpoint(RemoteTeacher(provider="ollama", model="llama3.2")).api_key == KEYLESS_PLACEHOLDER
    assert resolve_endpoint(RemoteTeacher(provider="ollama", model="m")).base_url == "http://127.0.0.1:11434/v1"
    with pytest.raises(EndpointError, match="OPENAI_API_KEY is not set"):
        resolve_endpoint(RemoteTeacher(provider="openai", model="gpt-4o-mini"))
    with pytest.raises(EndpointError, match="ANTHROPIC_API_KEY is not set"):
        resolve_endpoint(RemoteTeacher(provider="anthropic", model="claude-haiku-4-5"))
    with pytest.raises(EndpointError, match=r"teacher\.base_url: provider 'generic' has no usual URL"):
        resolve_endpoint(RemoteTeacher(provider="generic", model="m"))


# -- the ledger ----------------------------------------------------------------------------------------


def test_ledger_caps_the_output_at_what_the_budget_affords() -> None:
    ledger = Ledger(Prices(input_per_mtok=0.0, output_per_mtok=1_000_000.0), max_usd=1000.0)  # $1 per output token
    first = ledger.reserve(10, 600)
    assert first.max_output_tokens == 600
    second = ledger.reserve(10, 600, min_output=300)
    assert second.max_output_tokens == 400  # all that is left
    with pytest.raises(BudgetExceeded, match=r"spent \$0.00, in flight \$1,000.00"):
        ledger.reserve(10, 600, min_output=1)
    ledger.settle(first, 10, 100)
    ledger.settle(second, 10, 50)
    assert ledger.spent_usd == 150.0 and ledger.reserve(10, 600).max_output_tokens == 600


def test_money_prints_with_enough_digits_to_be_non_zero() -> None:
    assert format_usd(0.0000213) == "$0.0000213" and format_usd(0.0025) == "$0.00250"
    assert format_usd(12.3456) == "$12.35" and format_usd(0) == "$0.00"


def test_concurrent_calls_adapt_once_to_a_reasoning_model_and_all_succeed(make_simulator: Any, tmp_path: Path) -> None:
    server = make_simulator(pool=TINY_POOL, profile="openai-reasoning")
    # A profile that sends max_tokens and a temperature: both rejected by a reasoning model.
    teacher, journal = gateway(server.base_url, tmp_path, PROFILES["vllm"], send_brief=True, model="sim-teacher")
    requests = [
        seed_requests(TASK, "card_arrival", 2, per_call=2, rng=random.Random(i), examples=[])[0] for i in range(8)
    ]
    requests = [dataclasses.replace(r, sample_index=i) for i, r in enumerate(requests)]
    results = send(teacher, requests, GeneratedExamples)
    assert all(not isinstance(r, BaseException) for r in results), results
    assert teacher.adaptations == [
        "max_tokens rejected: sending max_completion_tokens instead",
        "temperature rejected: using the model's default",
    ]
    assert teacher.profile.token_limit_param == "max_completion_tokens" and not teacher.profile.sends_temperature
    assert [c.status for c in journal.calls] == ["ok"] * 8
    stats = server.stats()
    assert stats["actions"] == {"generate": 8}  # every 400 came before any work; nothing was answered twice


def test_prompt_reservation_learns_the_providers_tokens_per_byte() -> None:
    ledger = Ledger(Prices(input_per_mtok=1.0, output_per_mtok=1.0))
    assert ledger.prompt_bound(4000) == 4000  # nothing reported yet: a token is at least one byte
    first = ledger.reserve(4000, 100)
    ledger.settle(first, 1000, 50)  # the provider counted 0.25 tokens per byte
    assert ledger.prompt_bound(4000) == 1250  # the highest ratio seen, plus 25%
    second = ledger.reserve(4000, 100)
    ledger.settle(second, 2000, 50)  # a denser prompt raises the bound for the rest of the run
    assert ledger.prompt_bound(4000) == 2500 and ledger.prompt_bound(100) == 63
