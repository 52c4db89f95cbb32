"""What each teacher provider accepts: a small declared table, and how a request adapts to a 400.

A ``ProviderProfile`` says how to phrase one chat-completions request for a provider family: which
token-limit parameter it takes, whether it accepts a temperature (reasoning models accept only the
default), how it does structured output, and whether it reports usage. The profile is chosen from
``teacher.provider`` and the model name, and the spec may override any field.

Sources for the table (checked 2026-12): OpenAI's API reference and the error bodies its reasoning
models return (``Unsupported parameter: 'max_tokens' is not supported with this model. Use
'max_completion_tokens' instead.``; ``Unsupported value: 'temperature' does not support 0.9 with this
model. Only the default (1) value is supported.``); Anthropic's "OpenAI SDK compatibility" page
(response_format ignored, temperature capped at 1, max_tokens and max_completion_tokens accepted);
vLLM's, Ollama's and llama.cpp's OpenAI-compatible servers (max_tokens, temperature, response_format
json_schema through constrained decoding, usage reported, no key needed).

When a provider still rejects a parameter with a 400 (a new model, a gateway with other rules),
``adapt`` reads the error and returns the profile that avoids it: rename the token parameter, drop the
temperature or reasoning effort, or fall back to a weaker structured-output mode. The gateway applies
it once, records it, and keeps it for the rest of the run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

TokenLimitParam = Literal["max_tokens", "max_completion_tokens"]
# json_object_schema: {"type": "json_object", "schema": ...}, the grammar-constrained JSON mode of llama.cpp's
# servers (llama-cpp-python's accepts no "json_schema" type: its request model answers 422).
StructuredOutput = Literal["json_schema", "json_object_schema", "json_object", "prompt"]
PROVIDERS = ("openai", "anthropic", "vllm", "ollama", "llama_cpp", "generic")

# From strongest to weakest: a provider that rejects one mode is asked with the next.
_STRUCTURED_FALLBACK: dict[str, StructuredOutput] = {
    "json_schema": "json_object",
    "json_object_schema": "json_object",
    "json_object": "prompt",
}
# Reasoning models spend completion tokens on hidden reasoning before the answer: OpenAI's
# max_completion_tokens bounds both, so the answer needs this much room on top of its own size.
_REASONING_ALLOWANCE = 2048
_OPENAI_REASONING_MODEL = re.compile(r"^(o\d|gpt-5)", re.IGNORECASE)


@dataclass(frozen=True)
class ProviderProfile:
    """How to phrase a chat-completions request for one provider family."""

    name: str
    token_limit_param: TokenLimitParam = "max_tokens"
    sends_temperature: bool = True  # False: send no temperature (the model accepts only its default)
    max_temperature: float = 2.0  # higher requested temperatures are clamped
    structured_output: StructuredOutput = "json_schema"  # prompt: JSON asked for in the prompt, then validated
    strict_schema: bool = True  # json_schema with strict: true (needs strict-valid schemas, which ours are)
    reports_usage: bool = True  # False: tokens are estimated from the text (bytes: a safe upper bound)
    reasoning_effort: str | None = None  # sent only when set (OpenAI reasoning models)
    reasoning_allowance: int = 0  # extra completion tokens reserved for hidden reasoning
    default_base_url: str | None = None
    default_api_key_env: str | None = None
    needs_key: bool = True  # False: a local server; no key needed (a placeholder satisfies the SDK)

    def overridden(self, overrides: dict[str, Any]) -> ProviderProfile:
        """This profile with the spec's field-by-field overrides (None values are ignored)."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown provider profile field(s) {unknown}; known: {sorted(known)}")
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


_OPENAI_URL = "https://api.openai.com/v1"
PROFILES: dict[str, ProviderProfile] = {
    "openai": ProviderProfile(
        "openai",
        token_limit_param="max_completion_tokens",
        default_base_url=_OPENAI_URL,
        default_api_key_env="OPENAI_API_KEY",
    ),
    "openai-reasoning": ProviderProfile(
        "openai-reasoning",
        token_limit_param="max_completion_tokens",
        sends_temperature=False,
        reasoning_allowance=_REASONING_ALLOWANCE,
        default_base_url=_OPENAI_URL,
        default_api_key_env="OPENAI_API_KEY",
    ),
    "anthropic": ProviderProfile(
        "anthropic",
        max_temperature=1.0,
        structured_output="prompt",
        default_base_url="https://api.anthropic.com/v1/",
        default_api_key_env="ANTHROPIC_API_KEY",
    ),
    "vllm": ProviderProfile("vllm", default_base_url="http://127.0.0.1:8000/v1", needs_key=False),
    "ollama": ProviderProfile("ollama", default_base_url="http://127.0.0.1:11434/v1", needs_key=False),
    "llama_cpp": ProviderProfile(
        "llama_cpp",
        structured_output="json_object_schema",
        default_base_url="http://127.0.0.1:8080/v1",
        needs_key=False,
    ),
    # Unknown servers: the parameter every server knows, and JSON asked for in the prompt only.
    "generic": ProviderProfile("generic", structured_output="prompt", reports_usage=False, needs_key=False),
}


def profile_for(provider: str, model: str) -> ProviderProfile:
    """The profile of ``provider``; OpenAI's reasoning models (gpt-5*, o1/o3/o4…) get their own."""
    if provider == "openai" and _OPENAI_REASONING_MODEL.match(model):
        return PROFILES["openai-reasoning"]
    if provider not in PROFILES:
        raise ValueError(f"unknown provider {provider!r}; known: {', '.join(PROVIDERS)}")
    return PROFILES[provider]


# ---------------------------------------------------------------------------------------------- the wire request


def request_params(
    profile: ProviderProfile, *, temperature: float, max_output_tokens: int, schema_name: str, schema: dict[str, Any]
) -> dict[str, Any]:
    """The sampling, length and format parameters of one request, phrased for ``profile``."""
    params: dict[str, Any] = {profile.token_limit_param: max_output_tokens}
    if profile.sends_temperature:
        params["temperature"] = min(temperature, profile.max_temperature)
    if profile.reasoning_effort:
        params["reasoning_effort"] = profile.reasoning_effort
    if profile.structured_output == "json_schema":
        params["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": schema_name, "schema": schema, "strict": profile.strict_schema},
        }
    elif profile.structured_output == "json_object_schema":
        params["response_format"] = {"type": "json_object", "schema": schema}
    elif profile.structured_output == "json_object":
        params["response_format"] = {"type": "json_object"}
    return params


# ---------------------------------------------------------------------------------------------- adapting to a 400

_UNSUPPORTED_PARAM = re.compile(r"Unsupported (?:parameter|value): '([A-Za-z_.]+)'")
_UNRECOGNIZED = re.compile(r"Unrecognized request arguments? supplied: ([A-Za-z_, ]+)")
_EXTRA_FORBIDDEN = re.compile(r"'?([A-Za-z_]+)'?\W+Extra inputs are not permitted")


@dataclass(frozen=True)
class Adaptation:
    """A change of profile that avoids one rejected parameter, and a line saying what changed."""

    profile: ProviderProfile
    description: str


def rejected_param(message: str, param: str | None) -> str | None:
    """The request parameter a 400 names, from its ``param`` field or its message."""
    if param:
        return param.split(".")[0]
    for pattern in (_UNSUPPORTED_PARAM, _UNRECOGNIZED, _EXTRA_FORBIDDEN):
        match = pattern.search(message)
        if match:
            return match.group(1).split(",")[0].strip().split(".")[0]
    if "response_format" in message or "json_schema" in message:
        return "response_format"
    return None


def adapt(profile: ProviderProfile, message: str, param: str | None) -> Adaptation | None:
    """The profile that avoids the parameter a 400 rejected, or None when it is not ours to fix."""
    name = rejected_param(message, param)
    if name in ("max_tokens", "max_completion_tokens") and profile.token_limit_param == name:
        other: TokenLimitParam = "max_completion_tokens" if name == "max_tokens" else "max_tokens"
        return Adaptation(replace(profile, token_limit_param=other), f"{name} rejected: sending {other} instead")
    if name in ("temperature", "top_p") and profile.sends_temperature:
        return Adaptation(replace(profile, sends_temperature=False), f"{name} rejected: using the model's default")
    if name == "reasoning_effort" and profile.reasoning_effort:
        return Adaptation(replace(profile, reasoning_effort=None), "reasoning_effort rejected: not sent")
    if name == "response_format" or (name is None and "schema" in message.lower()):
        if profile.structured_output == "json_schema" and profile.strict_schema:
            return Adaptation(
                replace(profile, strict_schema=False), "strict json_schema rejected: sending the schema without strict"
            )
        weaker = _STRUCTURED_FALLBACK.get(profile.structured_output)
        if weaker:
            return Adaptation(
                replace(profile, structured_output=weaker),
                f"response_format {profile.structured_output} rejected: using {weaker}",
            )
    return None
