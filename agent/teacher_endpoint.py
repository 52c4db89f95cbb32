"""Where the teacher is and how to talk to it: base URL, key and provider profile, from spec and environment.

The openai SDK's conventions hold when the spec leaves them out: ``OPENAI_BASE_URL`` and
``OPENAI_API_KEY``. A local server (vLLM, Ollama, llama.cpp) needs no key at all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from agent.spec import RemoteTeacher, SimulatorTeacher
from generators.providers import PROFILES, ProviderProfile, profile_for

# The SDK refuses to start without some key; a keyless local server ignores whatever is sent.
KEYLESS_PLACEHOLDER = "no-key-needed"
# The simulator's conformance profiles emulate these providers, so the client phrases requests for them.
_EMULATED_PROVIDER = {
    "openai-reasoning": "openai",
    "openai-chat": "openai",
    "anthropic": "anthropic",
    "vllm": "vllm",
    "ollama": "ollama",
}


class EndpointError(ValueError):
    """The teacher cannot be reached as configured; the message names the field or variable and the fix."""


@dataclass(frozen=True)
class Endpoint:
    base_url: str
    api_key: str = field(repr=False)
    profile: ProviderProfile


def _overridden(profile: ProviderProfile, teacher: RemoteTeacher | SimulatorTeacher) -> ProviderProfile:
    return profile.overridden(teacher.profile.model_dump())


def resolve_endpoint(teacher: RemoteTeacher) -> Endpoint:
    """Base URL, key and profile of a remote teacher, or ``EndpointError`` saying what to set."""
    profile = _overridden(profile_for(teacher.provider, teacher.model), teacher)
    base_url = teacher.base_url or os.environ.get("OPENAI_BASE_URL") or profile.default_base_url
    if not base_url:
        raise EndpointError(
            f"teacher.base_url: provider {teacher.provider!r} has no usual URL — set base_url in "
            "the spec, or export OPENAI_BASE_URL"
        )
    key_env = teacher.api_key_env or profile.default_api_key_env or "OPENAI_API_KEY"
    key = os.environ.get(key_env)
    if key:
        return Endpoint(base_url, key, profile)
    if teacher.api_key_env or profile.needs_key:
        raise EndpointError(
            f"teacher.api_key_env: environment variable {key_env} is not set — export "
            f"{key_env}=<your key> (the key never goes in the spec)"
        )
    return Endpoint(base_url, KEYLESS_PLACEHOLDER, profile)


def simulator_profile(teacher: SimulatorTeacher) -> ProviderProfile:
    """The profile of the provider the simulator emulates (its conformance profile), or a lenient default."""
    emulated = _EMULATED_PROVIDER.get(teacher.knobs.profile or "")
    base = profile_for(emulated, teacher.model) if emulated else PROFILES["vllm"]
    return _overridden(base, teacher)
