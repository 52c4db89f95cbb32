"""Conformance profiles: the simulator rejects what a real provider rejects, with that provider's error body.

With ``SimulatorConfig(profile=...)`` every ``/v1/chat/completions`` body is checked *before* the brief's
action runs, as a real provider validates a request before generating. A profile is one row of
``PROFILES``: how the provider shapes an error body, the checks it applies (small functions, in the
order the provider applies them), and whether it honours ``response_format`` with constrained decoding.
Where it does not, or when the request asks for no JSON format, the reply looks like what a model
without constrained decoding writes: a sentence, then the JSON in a ```json fence.

The simulator's own protocol field (``distill_brief``, ``generators.brief.BRIEF_FIELD``) is never
rejected: a real provider never sees it.

Sources (read 2026-12; the exact strings are copied from real error bodies where one was found):

- OpenAI reasoning models (gpt-5*, o1/o3/o4-mini) on chat completions:
  ``Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens'
  instead.`` (param max_tokens, code unsupported_parameter): github.com/griptape-ai/ComfyUI-Griptape/issues/312,
  github.com/fish2018/YPrompt/issues/26. ``Unsupported value: 'temperature' does not support 0.2 with this
  model. Only the default (1) value is supported.`` (code unsupported_value): github.com/holoviz/lumen/pull/1087,
  github.com/gabrii/Cursor-Azure-GPT-5/issues/33. ``Unsupported parameter: 'top_p' is not supported with this
  model.``: github.com/aandrew-me/tgpt/issues/333, github.com/lobehub/lobehub/pull/7747; presence_penalty
  likewise for gpt-5-mini: github.com/nextai-translator/nextai-translator/issues/1781. reasoning_effort
  values of gpt-5: ``Unsupported value: 'reasoning_effort' does not support 'none' with this model.
  Supported values are: 'minimal', 'low', 'medium', and 'high'.``: github.com/Kilo-Org/cloud/pull/3807.
- OpenAI, any model: an unknown body field is ``Unrecognized request argument supplied: X`` (param and
  code null), also what gpt-4o answers to reasoning_effort: github.com/AAswordman/Operit/issues/1048.
  Ranges: ``Invalid 'n': integer above maximum value. Expected a value <= 128, but got 130 instead.``
  (code integer_above_max_value): github.com/thisisartium/continuous-alignment-testing/issues/25; the
  decimal form for temperature/top_p follows it. Output cap: ``max_tokens is too large: 20000. This model
  supports at most 16384 completion tokens, whereas you provided 20000.`` (gpt-4o; several client
  parsers quote it). Strict json_schema: ``Invalid schema for response_format 'NAME': In context=(),
  'additionalProperties' is required to be supplied and to be false.`` and ``In context=('properties',
  'organizations', 'items'), 'required' is required to be supplied and to be an array including every
  key in properties. Missing 'roles'.``: github.com/vercel/ai/issues/6484 and the structured-outputs guide.
- Anthropic's OpenAI SDK compatibility (docs.anthropic.com/en/api/openai-sdk): response_format, seed,
  logprobs, metadata, presence/frequency_penalty, logit_bias, store, user, reasoning_effort, ... are
  ignored; temperature above 1 is capped at 1; max_tokens and max_completion_tokens both accepted; n must
  be exactly 1; "most unsupported fields are silently ignored"; errors keep OpenAI's ``{"error": {...}}``
  envelope. Current models reject temperature together with top_p ("`temperature` and `top_p` cannot both
  be specified for this model. Please use only one.": github.com/di-sukharev/opencommit/issues/520)
  and cap output (``max_tokens: 100000 > 64000, which is the maximum allowed number of output tokens for
  ...``, quoted by several client parsers).
- vLLM's OpenAI server (vllm-project/vllm vllm/entrypoints/openai/engine/protocol.py): requests are
  pydantic models with ``extra="allow"`` (unknown fields are logged and ignored); errors are
  ``{"error": {"message", "type": "BadRequestError", "param", "code": 400}}`` (``ErrorInfo``; before
  about v0.10 the body was flat, ``{"object": "error", ...}``). Context length (v0.18+, VLLMValidationError
  in vllm/renderers/params.py): ``This model's maximum context length is N tokens. However, you requested
  M output tokens and your prompt contains P input tokens, for a total of T tokens. Please reduce the
  length of the input prompt or the number of requested output tokens. (parameter=input_tokens, value=P)``
  and ``max_tokens=M cannot be greater than max_model_len=max_total_tokens=N. Please request fewer output
  tokens. (parameter=max_tokens, value=M)``. An omitted max_tokens counts as 0. A 401 (``--api-key``) is
  ``{"error": "Unauthorized"}``. response_format json_schema is honoured (structured outputs).
- Ollama's /v1 compatibility (ollama/ollama openai/openai.go): the request struct knows model, messages,
  stream, max_tokens, seed, stop, temperature, top_p, frequency/presence_penalty, response_format (json_object
  and, since 0.5, json_schema, both decoded with constraints), tools, reasoning, reasoning_effort; Go's
  decoder ignores everything else (max_completion_tokens, n, logit_bias, ...). ``invalid reasoning value:
  'x' (must be "high", "medium", "low", or "none")`` is a 400. Errors are ``{"error": {"message", "type":
  "invalid_request_error", "param": null, "code": null}}``. Ollama checks no key (docs: "required but
  ignored"); the simulator's api_key knob is still honoured, in Ollama's envelope.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from generators.brief import BRIEF_FIELD


@dataclass(frozen=True)
class Rejection:
    """What a provider answers instead of a completion; rendered by the profile's error style."""

    message: str
    param: str | None = None
    code: str | None = None
    status: int = 400
    type_: str = "invalid_request_error"


Check = Callable[[dict[str, Any]], Rejection | None]
ErrorStyle = Callable[[Rejection], dict[str, Any]]


# ---------------------------------------------------------------------------------------------- helpers


def message_text(message: Any) -> str:
    """The text of one chat message; a content-part list counts its text parts (what a provider tokenizes)."""
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, list):
        content = "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return content if isinstance(content, str) else ""


def estimate_tokens(chars: int) -> int:
    """Tokens of ``chars`` characters of English text: about 4 characters per token (OpenAI's rule of thumb)."""
    return math.ceil(chars / 4)


def prompt_tokens(body: dict[str, Any]) -> int:
    """The prompt's token estimate, the same one the simulator reports in ``usage.prompt_tokens``."""
    messages = body.get("messages")
    return estimate_tokens(sum(len(message_text(m)) for m in messages) if isinstance(messages, list) else 0)


def _number(value: float) -> str:
    """A number as OpenAI prints it in messages: 0, 0.9, 2.5."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _numeric(body: dict[str, Any], name: str) -> float | None:
    """``body[name]`` when it is a number (a bool is not), else None: type errors are not what profiles model."""
    value = body.get(name)
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _given(body: dict[str, Any], name: str) -> bool:
    """Whether the request sets ``name`` (the SDK never sends unset parameters; a null counts as unset)."""
    return body.get(name) is not None


def _quoted_list(values: tuple[str, ...]) -> str:
    """'a', 'b', and 'c': OpenAI's way of listing supported values."""
    quoted = [f"'{v}'" for v in values]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + ", and " + quoted[-1]


def _output_tokens(body: dict[str, Any]) -> tuple[str, int] | None:
    """(parameter name, value) of the output cap the request sets; max_completion_tokens wins, as in vLLM."""
    for name in ("max_completion_tokens", "max_tokens"):
        value = _numeric(body, name)
        if value is not None:
            return name, int(value)
    return None


# ---------------------------------------------------------------------------------------------- checks
# Each factory returns one check; a profile lists its checks in the order the provider applies them.


def unrecognized_fields(known: frozenset[str]) -> Check:
    """OpenAI: a top-level field it does not know is a 400 naming it (and nothing else: param and code null)."""

    def check(body: dict[str, Any]) -> Rejection | None:
        unknown = sorted(set(body) - known - {BRIEF_FIELD})
        if not unknown:
            return None
        noun = "argument" if len(unknown) == 1 else "arguments"
        return Rejection(f"Unrecognized request {noun} supplied: {', '.join(unknown)}")

    return check


def unsupported_parameters(hints: Mapping[str, str]) -> Check:
    """OpenAI reasoning models: parameters the model does not take at all, whatever their value."""

    def check(body: dict[str, Any]) -> Rejection | None:
        for name, hint in hints.items():
            if _given(body, name):
                message = f"Unsupported parameter: '{name}' is not supported with this model.{hint}"
                return Rejection(message, param=name, code="unsupported_parameter")
        return None

    return check


def default_only(name: str, default: float) -> Check:
    """OpenAI reasoning models: ``name`` may only be its default (temperature 1)."""

    def check(body: dict[str, Any]) -> Rejection | None:
        value = _numeric(body, name)
        if value is None or value == default:
            return None
        message = (
            f"Unsupported value: '{name}' does not support {_number(value)} with this model. "
            f"Only the default ({_number(default)}) value is supported."
        )
        return Rejection(message, param=name, code="unsupported_value")

    return check


def decimal_range(name: str, low: float, high: float) -> Check:
    """OpenAI: a number outside the parameter's documented range (temperature [0, 2], top_p [0, 1])."""

    def check(body: dict[str, Any]) -> Rejection | None:
        value = _numeric(body, name)
        if value is None or low <= value <= high:
            return None
        above = value > high
        side, bound = ("above maximum", f"<= {_number(high)}") if above else ("below minimum", f">= {_number(low)}")
        message = f"Invalid '{name}': decimal {side} value. Expected a value {bound}, but got {_number(value)} instead."
        return Rejection(message, param=name, code=f"decimal_{'above_max' if above else 'below_min'}_value")

    return check


def openai_reasoning_effort(supported: tuple[str, ...]) -> Check:
    """OpenAI reasoning models: reasoning_effort must be one the model supports (gpt-5: minimal..high)."""

    def check(body: dict[str, Any]) -> Rejection | None:
        value = body.get("reasoning_effort")
        if value is None or value in supported:
            return None
        message = (
            f"Unsupported value: 'reasoning_effort' does not support '{value}' with this model. "
            f"Supported values are: {_quoted_list(supported)}."
        )
        return Rejection(message, param="reasoning_effort", code="unsupported_value")

    return check


def openai_output_cap(limit: int) -> Check:
    """OpenAI: a token limit above the model's maximum output."""

    def check(body: dict[str, Any]) -> Rejection | None:
        for name in ("max_tokens", "max_completion_tokens"):
            value = _numeric(body, name)
            if value is not None and value > limit:
                shown = _number(value)
                message = (
                    f"{name} is too large: {shown}. This model supports at most {limit} completion tokens, "
                    f"whereas you provided {shown}."
                )
                return Rejection(message, param=name, code="invalid_value")
        return None

    return check


# Strict mode's two rules for every object schema, in OpenAI's words.
_CLOSED = "'additionalProperties' is required to be supplied and to be false."
_ALL_REQUIRED = (
    "'required' is required to be supplied and to be an array including every key in properties. Missing '{}'."
)


def _strict_problems(node: Any, path: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], str]]:
    """(context, problem) of every object schema under ``node`` that strict mode refuses, depth first."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            yield from _strict_problems(item, (*path, i))
        return
    if not isinstance(node, dict):
        return
    properties = node.get("properties")
    if node.get("type") == "object" or isinstance(properties, dict):
        if node.get("additionalProperties") is not False:
            yield path, _CLOSED
        keys = list(properties) if isinstance(properties, dict) else []
        required = node.get("required")
        missing = [k for k in keys if not isinstance(required, list) or k not in required]
        if missing:
            yield path, _ALL_REQUIRED.format(missing[0])
    for key in ("properties", "$defs", "definitions"):
        children = node.get(key)
        if isinstance(children, dict):
            for name, child in children.items():
                yield from _strict_problems(child, (*path, key, name))
    if "items" in node:
        yield from _strict_problems(node["items"], (*path, "items"))
    for key in ("anyOf", "allOf", "oneOf"):
        if isinstance(node.get(key), list):
            yield from _strict_problems(node[key], (*path, key))


def strict_json_schema(body: dict[str, Any]) -> Rejection | None:
    """OpenAI structured outputs with ``strict: true``: every object closed and every property required."""
    response_format = body.get("response_format")
    if not isinstance(response_format, dict) or response_format.get("type") != "json_schema":
        return None
    spec = response_format.get("json_schema")
    if not isinstance(spec, dict) or spec.get("strict") is not True:
        return None
    for context, problem in _strict_problems(spec.get("schema"), ()):
        message = f"Invalid schema for response_format '{spec.get('name')}': In context={context!r}, {problem}"
        return Rejection(message, param="response_format", code="invalid_json_schema")
    return None


def single_choice(body: dict[str, Any]) -> Rejection | None:
    """Anthropic (compatibility layer): n must be exactly 1. The wording is ours; the docs give no message."""
    n = body.get("n")
    if n is None or n == 1:
        return None
    return Rejection(f"n: only n=1 is supported, got {n}", param="n")


def exclusive_sampling(body: dict[str, Any]) -> Rejection | None:
    """Anthropic, current models: temperature and top_p together are refused."""
    if _given(body, "temperature") and _given(body, "top_p"):
        return Rejection("`temperature` and `top_p` cannot both be specified for this model. Please use only one.")
    return None


def anthropic_output_cap(limit: int) -> Check:
    """Anthropic: max_tokens (either name maps to it) above the model's maximum output."""

    def check(body: dict[str, Any]) -> Rejection | None:
        requested = _output_tokens(body)
        if requested is None or requested[1] <= limit:
            return None
        message = (
            f"max_tokens: {requested[1]} > {limit}, which is the maximum allowed number of output tokens "
            f"for {body.get('model')}"
        )
        return Rejection(message, param="max_tokens")

    return check


def vllm_context_length(max_model_len: int) -> Check:
    """vLLM: output cap alone above max_model_len, then prompt + output above it (prompt = chars/4)."""

    def check(body: dict[str, Any]) -> Rejection | None:
        name, out = _output_tokens(body) or ("max_tokens", 0)
        if out > max_model_len:
            message = (
                f"{name}={out} cannot be greater than max_model_len=max_total_tokens={max_model_len}. "
                f"Please request fewer output tokens. (parameter={name}, value={out})"
            )
            return Rejection(message, param=name)
        prompt = prompt_tokens(body)
        if prompt + out <= max_model_len:
            return None
        message = (
            f"This model's maximum context length is {max_model_len} tokens. However, you requested {out} "
            f"output tokens and your prompt contains {prompt} input tokens, for a total of {prompt + out} "
            "tokens. Please reduce the length of the input prompt or the number of requested output "
            f"tokens. (parameter=input_tokens, value={prompt})"
        )
        return Rejection(message, param="input_tokens")

    return check


def ollama_reasoning_effort(body: dict[str, Any]) -> Rejection | None:
    """Ollama: reasoning.effort (or reasoning_effort) must be high, medium, low or none."""
    reasoning = body.get("reasoning")
    effort = reasoning.get("effort") if isinstance(reasoning, dict) else body.get("reasoning_effort")
    if not effort or effort in ("high", "medium", "low", "none"):
        return None
    return Rejection(f'invalid reasoning value: \'{effort}\' (must be "high", "medium", "low", or "none")')


# ---------------------------------------------------------------------------------------------- error bodies


def openai_error_body(rejection: Rejection) -> dict[str, Any]:
    return {
        "error": {
            "message": rejection.message,
            "type": rejection.type_,
            "param": rejection.param,
            "code": rejection.code,
        }
    }


def anthropic_error_body(rejection: Rejection) -> dict[str, Any]:
    # OpenAI's envelope (the compatibility docs promise consistent error formats), Anthropic's fields.
    return {"error": {"type": rejection.type_, "message": rejection.message}}


def vllm_error_body(rejection: Rejection) -> dict[str, Any]:
    if rejection.status == 401:  # the --api-key middleware answers before any OpenAI-shaped handling
        return {"error": "Unauthorized"}
    kind = {400: "BadRequestError", 404: "NotFoundError"}.get(rejection.status, "InternalServerError")
    return {"error": {"message": rejection.message, "type": kind, "param": rejection.param, "code": rejection.status}}


def ollama_error_body(rejection: Rejection) -> dict[str, Any]:
    kind = {400: "invalid_request_error", 404: "not_found_error"}.get(rejection.status, "api_error")
    return {"error": {"message": rejection.message, "type": kind, "param": None, "code": None}}


# ---------------------------------------------------------------------------------------------- the table

# Chat-completions request fields in OpenAI's API reference (platform.openai.com/docs/api-reference/chat/create).
# fmt: off
_OPENAI_FIELDS = frozenset({
    "audio", "frequency_penalty", "function_call", "functions", "logit_bias", "logprobs", "max_completion_tokens",
    "max_tokens", "messages", "metadata", "modalities", "model", "n", "parallel_tool_calls", "prediction",
    "presence_penalty", "prompt_cache_key", "prompt_cache_retention", "reasoning_effort", "response_format",
    "safety_identifier", "seed", "service_tier", "stop", "store", "stream", "stream_options", "temperature",
    "tool_choice", "tools", "top_logprobs", "top_p", "user", "verbosity", "web_search_options",
})
# fmt: on
# Sampling knobs a reasoning model refuses outright (its only sampling control is reasoning_effort).
_REASONING_UNSUPPORTED = {
    "max_tokens": " Use 'max_completion_tokens' instead.",
    "top_p": "",
    "presence_penalty": "",
    "frequency_penalty": "",
    "logprobs": "",
    "top_logprobs": "",
    "logit_bias": "",
}


@dataclass(frozen=True)
class ConformanceProfile:
    """One provider: its checks, in order, its error body, and whether it decodes JSON under constraints."""

    name: str
    checks: tuple[Check, ...]
    error_style: ErrorStyle
    honours_response_format: bool = True
    unauthorised: Rejection = Rejection("Incorrect API key provided.", code="invalid_api_key", status=401)

    def check(self, body: dict[str, Any]) -> Rejection | None:
        """The provider's first objection to ``body``, or None when it would accept the request."""
        for check in self.checks:
            rejection = check(body)
            if rejection is not None:
                return rejection
        return None

    def error_body(self, rejection: Rejection) -> dict[str, Any]:
        return self.error_style(rejection)

    def constrains_output(self, body: dict[str, Any]) -> bool:
        """Whether the reply is bare JSON: the provider honours response_format and the request asks for JSON."""
        response_format = body.get("response_format")
        kind = response_format.get("type") if isinstance(response_format, dict) else None
        return self.honours_response_format and kind in ("json_object", "json_schema")


PROFILES: dict[str, ConformanceProfile] = {
    profile.name: profile
    for profile in (
        ConformanceProfile(
            "openai-reasoning",
            error_style=openai_error_body,
            checks=(
                unrecognized_fields(_OPENAI_FIELDS),
                unsupported_parameters(_REASONING_UNSUPPORTED),
                default_only("temperature", 1),
                openai_reasoning_effort(("minimal", "low", "medium", "high")),  # gpt-5; o-series lacks minimal
                openai_output_cap(128_000),  # gpt-5; o3/o4-mini: 100,000
                strict_json_schema,
            ),
        ),
        ConformanceProfile(
            "openai-chat",
            error_style=openai_error_body,
            checks=(
                unrecognized_fields(_OPENAI_FIELDS - {"reasoning_effort", "verbosity"}),  # reasoning-model fields
                decimal_range("temperature", 0, 2),
                decimal_range("top_p", 0, 1),
                openai_output_cap(16_384),  # gpt-4o and gpt-4o-mini; gpt-4.1: 32,768
                strict_json_schema,
            ),
        ),
        ConformanceProfile(
            "anthropic",
            error_style=anthropic_error_body,
            honours_response_format=False,
            unauthorised=Rejection("invalid x-api-key", status=401, type_="authentication_error"),
            checks=(single_choice, exclusive_sampling, anthropic_output_cap(64_000)),
        ),
        ConformanceProfile(
            "vllm",
            error_style=vllm_error_body,
            checks=(vllm_context_length(8192),),
            unauthorised=Rejection("Unauthorized", status=401),
        ),
        ConformanceProfile(
            "ollama",
            error_style=ollama_error_body,
            checks=(ollama_reasoning_effort,),
            unauthorised=Rejection("unauthorized", status=401),
        ),
    )
}
PROFILE_NAMES = tuple(PROFILES)


def unconstrained_reply(result: dict[str, Any]) -> str:
    """What a model without constrained decoding answers when asked for JSON: a sentence, then a fence."""
    return f"Here is the JSON you asked for:\n\n```json\n{json.dumps(result, ensure_ascii=False, indent=2)}\n```"
