"""Conformance profiles over real loopback HTTP: each rejects what its provider rejects, with its error body.

Requests go through the openai SDK as the gateway sends them (the brief in ``extra_body``); the expected
bodies are the providers' own (sources in ``simulator/conformance.py``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from generators.brief import BRIEF_FIELD, brief_body
from simulator import SimulatorServer

MakeSim = Callable[..., SimulatorServer]
SYSTEM = "You label banking questions."
MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": "Label: where is my card?"},
]
LABEL_BRIEF = {"action": "label", "labels": ["card_arrival", "exchange_rate"], "texts": ["where is my card?"]}
FENCED = re.compile(r"Here is the JSON you asked for:\n\n```json\n(?P<json>.*)\n```", re.DOTALL)


def strict_schema(**overrides: Any) -> dict[str, Any]:
    """A response_format with a strict-valid schema for the label action's answer; overrides patch the item."""
    item = {
        "type": "object",
        "properties": {"index": {"type": "integer"}, "label": {"type": "string"}},
        "required": ["index", "label"],
        "additionalProperties": False,
        **overrides,
    }
    schema = {
        "type": "object",
        "properties": {"labels": {"type": "array", "items": item}},
        "required": ["labels"],
        "additionalProperties": False,
    }
    return {"type": "json_schema", "json_schema": {"name": "label_answer", "schema": schema, "strict": True}}


def sdk(server: SimulatorServer, api_key: str = "x") -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=api_key, max_retries=0)


def create(
    server: SimulatorServer,
    *,
    messages: list[ChatCompletionMessageParam] = MESSAGES,
    extra: dict[str, Any] | None = None,
    **params: Any,
) -> str:
    """One label request as the gateway sends it (the brief in extra_body); returns the reply's content."""
    reply = sdk(server).chat.completions.create(
        model="claude-sonnet-4-5", messages=messages, extra_body={**brief_body(LABEL_BRIEF), **(extra or {})}, **params
    )
    return reply.choices[0].message.content or ""


def rejection(server: SimulatorServer, **params: Any) -> openai.BadRequestError:
    with pytest.raises(openai.BadRequestError) as caught:
        create(server, **params)
    return caught.value


def label_answer(content: str, *, fenced: bool) -> dict[str, Any]:
    """The JSON answer: bare under constrained decoding, else inside a ```json fence after a sentence."""
    match = FENCED.fullmatch(content)
    assert (match is not None) == fenced, content
    result: dict[str, Any] = json.loads(match["json"] if match else content)
    return result


def non_strict(response_format: dict[str, Any]) -> dict[str, Any]:
    return {**response_format, "json_schema": {**response_format["json_schema"], "strict": False}}


def openai_body(message: str, param: str | None, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}


# ---------------------------------------------------------------------------------------------- rejections

_TOO_LONG = "x" * 32_000  # 8,000 tokens at 4 characters per token
_PROMPT_TOKENS = math.ceil((len(SYSTEM) + len(_TOO_LONG)) / 4)

REJECTIONS = [
    pytest.param(
        "openai-reasoning",
        {"max_tokens": 500},
        openai_body(
            "Unsupported parameter: 'max_tokens' is not supported with this model. "
            "Use 'max_completion_tokens' instead.",
            "max_tokens",
            "unsupported_parameter",
        ),
        id="reasoning-max_tokens",
    ),
    pytest.param(
        "openai-reasoning",
        {"temperature": 0.9},
        openai_body(
            "Unsupported value: 'temperature' does not support 0.9 with this model. "
            "Only the default (1) value is supported.",
            "temperature",
            "unsupported_value",
        ),
        id="reasoning-temperature",
    ),
    pytest.param(
        "openai-reasoning",
        {"temperature": 0},
        openai_body(
            "Unsupported value: 'temperature' does not support 0 with this model. "
            "Only the default (1) value is supported.",
            "temperature",
            "unsupported_value",
        ),
        id="reasoning-temperature-zero",
    ),
    pytest.param(
        "openai-reasoning",
        {"top_p": 0.5},
        openai_body(
            "Unsupported parameter: 'top_p' is not supported with this model.", "top_p", "unsupported_parameter"
        ),
        id="reasoning-top_p",
    ),
    pytest.param(
        "openai-reasoning",
        {"reasoning_effort": "none"},
        openai_body(
            "Unsupported value: 'reasoning_effort' does not support 'none' with this model. "
            "Supported values are: 'minimal', 'low', 'medium', and 'high'.",
            "reasoning_effort",
            "unsupported_value",
        ),
        id="reasoning-effort",
    ),
    pytest.param(
        "openai-reasoning",
        {"max_completion_tokens": 200_000},
        openai_body(
            "max_completion_tokens is too large: 200000. This model supports at most 128000 completion tokens, "
            "whereas you provided 200000.",
            "max_completion_tokens",
            "invalid_value",
        ),
        id="reasoning-output-cap",
    ),
    pytest.param(
        "openai-reasoning",
        {"extra": {"thinking": {"type": "enabled"}}},
        openai_body("Unrecognized request argument supplied: thinking", None, None),
        id="reasoning-unknown-field",
    ),
    pytest.param(
        "openai-reasoning",
        {"extra": {"top_k": 5, "guided_json": {}}},
        openai_body("Unrecognized request arguments supplied: guided_json, top_k", None, None),
        id="reasoning-unknown-fields",
    ),
    pytest.param(
        "openai-reasoning",
        {"response_format": strict_schema(additionalProperties=True)},
        openai_body(
            "Invalid schema for response_format 'label_answer': In context=('properties', 'labels', 'items'), "
            "'additionalProperties' is required to be supplied and to be false.",
            "response_format",
            "invalid_json_schema",
        ),
        id="reasoning-strict-closed",
    ),
    pytest.param(
        "openai-chat",
        {"response_format": strict_schema(required=["index"])},
        openai_body(
            "Invalid schema for response_format 'label_answer': In context=('properties', 'labels', 'items'), "
            "'required' is required to be supplied and to be an array including every key in properties. "
            "Missing 'label'.",
            "response_format",
            "invalid_json_schema",
        ),
        id="chat-strict-required",
    ),
    pytest.param(
        "openai-chat",
        {"temperature": 2.5},
        openai_body(
            "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got 2.5 instead.",
            "temperature",
            "decimal_above_max_value",
        ),
        id="chat-temperature-high",
    ),
    pytest.param(
        "openai-chat",
        {"temperature": -0.5},
        openai_body(
            "Invalid 'temperature': decimal below minimum value. Expected a value >= 0, but got -0.5 instead.",
            "temperature",
            "decimal_below_min_value",
        ),
        id="chat-temperature-low",
    ),
    pytest.param(
        "openai-chat",
        {"reasoning_effort": "low"},
        openai_body("Unrecognized request argument supplied: reasoning_effort", None, None),
        id="chat-reasoning_effort",
    ),
    pytest.param(
        "openai-chat",
        {"max_tokens": 20_000},
        openai_body(
            "max_tokens is too large: 20000. This model supports at most 16384 completion tokens, "
            "whereas you provided 20000.",
            "max_tokens",
            "invalid_value",
        ),
        id="chat-output-cap",
    ),
    pytest.param(
        "anthropic",
        {"n": 2},
        {"error": {"type": "invalid_request_error", "message": "n: only n=1 is supported, got 2"}},
        id="anthropic-n",
    ),
    pytest.param(
        "anthropic",
        {"temperature": 0.5, "top_p": 0.9},
        {
            "error": {
                "type": "invalid_request_error",
                "message": "`temperature` and `top_p` cannot both be specified for this model. Please use only one.",
            }
        },
        id="anthropic-temperature-and-top_p",
    ),
    pytest.param(
        "anthropic",
        {"max_completion_tokens": 100_000},
        {
            "error": {
                "type": "invalid_request_error",
                "message": "max_tokens: 100000 > 64000, which is the maximum allowed number of output tokens "
                "for claude-sonnet-4-5",
            }
        },
        id="anthropic-output-cap",
    ),
    pytest.param(
        "vllm",
        {"max_tokens": 9000},
        {
            "error": {
                "message": "max_tokens=9000 cannot be greater than max_model_len=max_total_tokens=8192. "
                "Please request fewer output tokens. (parameter=max_tokens, value=9000)",
                "type": "BadRequestError",
                "param": "max_tokens",
                "code": 400,
            }
        },
        id="vllm-output-cap",
    ),
    pytest.param(
        "vllm",
        {"max_completion_tokens": 1000, "messages": [{"role": "system", "content": SYSTEM + _TOO_LONG}]},
        {
            "error": {
                "message": f"This model's maximum context length is 8192 tokens. However, you requested 1000 output "
                f"tokens and your prompt contains {_PROMPT_TOKENS} input tokens, for a total of "
                f"{_PROMPT_TOKENS + 1000} tokens. Please reduce the length of the input prompt or the number of "
                f"requested output tokens. (parameter=input_tokens, value={_PROMPT_TOKENS})",
                "type": "BadRequestError",
                "param": "input_tokens",
                "code": 400,
            }
        },
        id="vllm-context-length",
    ),
    pytest.param(
        "ollama",
        {"reasoning_effort": "max"},
        {
            "error": {
                "message": 'invalid reasoning value: \'max\' (must be "high", "medium", "low", or "none")',
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            }
        },
        id="ollama-reasoning_effort",
    ),
    pytest.param(
        "ollama",
        {"extra": {"reasoning": {"effort": "extreme"}}},
        {
            "error": {
                "message": 'invalid reasoning value: \'extreme\' (must be "high", "medium", "low", or "none")',
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            }
        },
        id="ollama-reasoning.effort",
    ),
]


@pytest.mark.parametrize(("profile", "params", "expected"), REJECTIONS)
def test_profile_rejects_with_the_providers_status_and_body(
    make_simulator: MakeSim, profile: str, params: dict[str, Any], expected: dict[str, Any]
) -> None:
    server = make_simulator(profile=profile)
    error = rejection(server, **params)
    assert error.status_code == 400 and error.response.json() == expected
    assert error.body == expected["error"]  # what the SDK hands the gateway's adaptation logic
    stats = server.stats()
    assert stats["outcomes"]["400"] == 1 and stats["actions"] == {}  # refused before the action ran


def test_the_provider_refuses_before_the_simulator_reads_the_brief(make_simulator: MakeSim) -> None:
    server = make_simulator(profile="openai-reasoning")
    payload = {"model": "gpt-5", "messages": MESSAGES, "max_tokens": 10}  # no brief at all
    response = httpx.post(server.base_url + "/chat/completions", json=payload, trust_env=False)
    assert response.status_code == 400 and response.json()["error"]["code"] == "unsupported_parameter"
    # Once the provider would accept the request, the simulator's own protocol error shows up.
    del payload["max_tokens"]
    response = httpx.post(server.base_url + "/chat/completions", json=payload, trust_env=False)
    assert response.status_code == 400 and response.json()["error"]["code"] == "missing_brief"


# ---------------------------------------------------------------------------------------------- accepted requests

ACCEPTED = [
    pytest.param(
        "openai-reasoning",
        {"max_completion_tokens": 4000, "reasoning_effort": "minimal", "temperature": 1},
        strict_schema(),
        False,
        id="reasoning-json_schema",
    ),
    pytest.param(
        "openai-reasoning",
        {},
        non_strict(strict_schema(additionalProperties=True)),
        False,
        id="reasoning-non-strict-schema-is-not-checked",
    ),
    pytest.param("openai-reasoning", {"max_completion_tokens": 4000}, None, True, id="reasoning-no-format"),
    pytest.param(
        "openai-chat",
        {"max_tokens": 16_384, "temperature": 2, "top_p": 1, "seed": 3},
        strict_schema(),
        False,
        id="chat-max_tokens",
    ),
    pytest.param(
        "openai-chat", {"max_completion_tokens": 1000, "temperature": 0}, {"type": "json_object"}, False, id="chat-mct"
    ),
    pytest.param(
        "anthropic",
        {"temperature": 1.7, "max_tokens": 64_000, "seed": 1, "logprobs": True, "reasoning_effort": "high"},
        strict_schema(required=["index"]),  # ignored, so never validated
        True,
        id="anthropic-ignores-response_format",
    ),
    pytest.param(
        "anthropic",
        {"max_completion_tokens": 1000, "extra": {"metadata": {"user_id": "u"}, "top_k": 5}},
        {"type": "json_object"},
        True,
        id="anthropic-ignores-unknown-fields",
    ),
    pytest.param(
        "vllm",
        {"max_tokens": 8000, "extra": {"guided_decoding_backend": "xgrammar", "top_k": 20}},
        strict_schema(additionalProperties=True),  # vLLM compiles the schema; OpenAI's strict rules do not apply
        False,
        id="vllm-json_schema",
    ),
    pytest.param("vllm", {"temperature": 1.5}, None, True, id="vllm-no-format"),
    pytest.param(
        "ollama",
        {"max_completion_tokens": 1_000_000, "reasoning_effort": "none", "logit_bias": {"42": 1}},
        strict_schema(),
        False,
        id="ollama-json_schema-ignores-max_completion_tokens",
    ),
    pytest.param("ollama", {"max_tokens": 500}, {"type": "json_object"}, False, id="ollama-json_object"),
    pytest.param("ollama", {"temperature": 0.2}, {"type": "text"}, True, id="ollama-text"),
]


@pytest.mark.parametrize(("profile", "params", "response_format", "fenced"), ACCEPTED)
def test_profile_accepts_what_the_provider_accepts(
    make_simulator: MakeSim, profile: str, params: dict[str, Any], response_format: dict[str, Any] | None, fenced: bool
) -> None:
    server = make_simulator(profile=profile)
    if response_format is not None:
        params = {**params, "response_format": response_format}
    answer = label_answer(create(server, **params), fenced=fenced)
    assert answer == {"labels": [{"index": 0, "label": "card_arrival"}]}
    assert server.stats()["outcomes"]["ok"] == 1


def test_without_a_profile_everything_is_accepted_and_bare(make_simulator: MakeSim) -> None:
    server = make_simulator()
    content = create(server, max_tokens=10**6, temperature=7, top_p=0.1, extra={"anything": [1]})
    assert label_answer(content, fenced=False)["labels"][0]["label"] == "card_arrival"


def test_fenced_replies_keep_the_usage_accounting(make_simulator: MakeSim) -> None:
    server = make_simulator(profile="anthropic")
    reply = sdk(server).chat.completions.create(
        model="claude-sonnet-4-5", messages=MESSAGES, extra_body=brief_body(LABEL_BRIEF)
    )
    content = reply.choices[0].message.content or ""
    assert FENCED.fullmatch(content) and reply.usage is not None
    assert reply.usage.completion_tokens == math.ceil(len(content) / 4)
    prompt_chars = sum(len(str(m["content"])) for m in MESSAGES)
    assert reply.usage.prompt_tokens == math.ceil(prompt_chars / 4)  # the brief is not part of the prompt


def test_the_brief_field_itself_is_never_rejected(make_simulator: MakeSim) -> None:
    server = make_simulator(profile="openai-chat")
    payload = {"model": "gpt-4o", "messages": MESSAGES, BRIEF_FIELD: LABEL_BRIEF}
    response = httpx.post(server.base_url + "/chat/completions", json=payload, trust_env=False)
    assert response.status_code == 200
    assert label_answer(response.json()["choices"][0]["message"]["content"], fenced=True)["labels"][0]["index"] == 0


# ---------------------------------------------------------------------------------------------- authorisation

UNAUTHORISED = [
    pytest.param(
        "openai-reasoning",
        openai_body("Incorrect API key provided.", None, "invalid_api_key"),
        id="openai",
    ),
    pytest.param(
        "anthropic", {"error": {"type": "authentication_error", "message": "invalid x-api-key"}}, id="anthropic"
    ),
    pytest.param("vllm", {"error": "Unauthorized"}, id="vllm"),
    pytest.param(
        "ollama",
        {"error": {"message": "unauthorized", "type": "api_error", "param": None, "code": None}},
        id="ollama",
    ),
]


@pytest.mark.parametrize(("profile", "expected"), UNAUTHORISED)
def test_a_configured_key_is_checked_in_the_providers_shape(
    make_simulator: MakeSim, profile: str, expected: dict[str, Any]
) -> None:
    server = make_simulator(profile=profile, api_key="sk-right")
    with pytest.raises(openai.AuthenticationError) as caught:
        sdk(server, api_key="sk-wrong").chat.completions.create(
            model="m", messages=MESSAGES, extra_body=brief_body(LABEL_BRIEF)
        )
    assert caught.value.status_code == 401 and caught.value.response.json() == expected
    assert "sk-wrong" not in caught.value.response.text
    reply = sdk(server, api_key="sk-right").chat.completions.create(
        model="m", messages=MESSAGES, extra_body=brief_body(LABEL_BRIEF)
    )
    assert reply.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("profile", ["vllm", "ollama"])
def test_local_servers_take_any_key_when_none_is_configured(make_simulator: MakeSim, profile: str) -> None:
    server = make_simulator(profile=profile)
    for key in ("ollama", "EMPTY"):  # the placeholders their docs tell SDK users to pass
        reply = sdk(server, api_key=key).chat.completions.create(
            model="m", messages=MESSAGES, extra_body=brief_body(LABEL_BRIEF)
        )
        assert reply.choices[0].message.content
