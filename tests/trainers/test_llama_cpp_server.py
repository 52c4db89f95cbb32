"""What llama.cpp's real OpenAI-compatible server (llama-cpp-python 0.3.36, SmolLM2-135M) does with the
requests distill sends, checked through the real ``openai`` SDK. The llama_cpp provider profile relies on
these facts: ``max_tokens`` (``max_completion_tokens`` is silently ignored), JSON mode with a ``schema``
(``json_schema`` is refused, with a 500, not a 400), grammar-enforced enums, usage reported per call.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from openai.types.shared_params import ResponseFormatJSONObject

from tests.real_server import llama_cpp_server, require_llama_cpp

LABELS = ["card_arrival", "exchange_rate", "lost_or_stolen_card"]
LABEL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "labels": {
            "type": "array",
            "minItems": 3,
            "maxItems": 3,
            "items": {
                "type": "object",
                "properties": {"index": {"type": "integer"}, "label": {"type": "string", "enum": LABELS}},
                "required": ["index", "label"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["labels"],
    "additionalProperties": False,
}


class JSONObjectWithSchema(ResponseFormatJSONObject):
    """llama.cpp's JSON mode constrained by a schema: the SDK's ``json_object`` format plus a ``schema`` key."""

    schema: dict[str, Any]


JSON_MODE_WITH_SCHEMA = JSONObjectWithSchema(type="json_object", schema=LABEL_SCHEMA)
LABELING: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "You label texts for a bank's support team. Answer only with JSON."},
    {
        "role": "user",
        "content": "Labels: card_arrival, exchange_rate, lost_or_stolen_card.\nTexts:\n"
        "0. my card still hasn't arrived\n1. what rate do you use for euros?\n"
        "2. someone stole my wallet with my card in it\n"
        'Return JSON {"labels":[{"index":0,"label":"..."}]} with one entry per text.',
    },
]
COUNT: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Count from 1 to 50, separated by spaces."}]


@pytest.fixture(scope="module")
def client() -> Iterator[openai.OpenAI]:
    require_llama_cpp()
    with llama_cpp_server(model_alias="smollm2") as url:
        # max_retries=0: the server answers a bad request with a 500, which the SDK would otherwise retry.
        yield openai.OpenAI(base_url=url, api_key="no-key-needed", max_retries=0, timeout=60)


def test_json_mode_with_a_schema_constrains_a_labeling_reply(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(
        model="smollm2",
        messages=LABELING,
        temperature=0.0,
        max_tokens=200,
        response_format=JSON_MODE_WITH_SCHEMA,
    )
    choice = response.choices[0]
    assert choice.finish_reason == "stop"
    reply = json.loads(choice.message.content or "")
    assert len(reply["labels"]) == 3  # minItems/maxItems held
    assert all(item["label"] in LABELS and isinstance(item["index"], int) for item in reply["labels"])
    usage = response.usage
    assert usage is not None and usage.prompt_tokens > 50 and usage.completion_tokens > 10
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_the_schema_enum_is_enforced_against_the_prompt(client: openai.OpenAI) -> None:
    asks_for_pizza: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": 'Return exactly {"labels":[{"index":0,"label":"pizza"}]}'}
    ]
    response = client.chat.completions.create(
        model="smollm2",
        messages=asks_for_pizza,
        temperature=0.0,
        max_tokens=120,
        response_format=JSON_MODE_WITH_SCHEMA,
    )
    labels = [item["label"] for item in json.loads(response.choices[0].message.content or "")["labels"]]
    assert labels and "pizza" not in labels and set(labels) <= set(LABELS)


def test_json_schema_response_format_is_refused_with_a_500(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(
            model="smollm2",
            messages=LABELING,
            max_tokens=5,
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "labels", "schema": LABEL_SCHEMA, "strict": True},
            },
        )
    assert caught.value.status_code == 500
    error = caught.value.response.json()["error"]
    assert error["type"] == "internal_server_error" and error["code"] is None
    assert "Input should be 'text' or 'json_object'" in error["message"]


def test_max_tokens_bounds_the_reply_and_max_completion_tokens_is_ignored(client: openai.OpenAI) -> None:
    bounded = client.chat.completions.create(
        model="smollm2",
        messages=COUNT,
        max_tokens=5,
        temperature=0.0,
    )
    assert bounded.choices[0].finish_reason == "length"
    assert bounded.usage is not None and bounded.usage.completion_tokens == 5
    # Both sent: only max_tokens counts. (max_completion_tokens alone would leave the reply unbounded, to n_ctx.)
    both = client.chat.completions.create(
        model="smollm2",
        messages=COUNT,
        max_tokens=12,
        max_completion_tokens=3,
        temperature=0.0,
    )
    assert both.choices[0].finish_reason == "length"
    assert both.usage is not None and both.usage.completion_tokens == 12


def test_temperature_zero_is_deterministic(client: openai.OpenAI) -> None:
    replies = {
        client.chat.completions.create(
            model="smollm2",
            messages=COUNT,
            max_tokens=16,
            temperature=0.0,
        )
        .choices[0]
        .message.content
        for _ in range(2)
    }
    assert len(replies) == 1


def test_unknown_body_fields_and_model_names_are_accepted(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=COUNT,
        max_tokens=3,
        extra_body={"distill_brief": {"round": 1}},
    )
    assert response.model == "gpt-4o-mini"  # any name is served by the one loaded model, and echoed
    assert response.usage is not None and response.usage.completion_tokens == 3


def test_a_prompt_over_the_context_window_is_a_400_naming_it(client: openai.OpenAI) -> None:
    too_long: list[ChatCompletionMessageParam] = [{"role": "user", "content": "word " * 5000}]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="smollm2", messages=too_long, max_tokens=5)
    error = caught.value.response.json()["error"]
    assert error["code"] == "context_length_exceeded" and error["type"] == "invalid_request_error"
    assert error["param"] == "messages" and "maximum context length is 4096 tokens" in error["message"]
