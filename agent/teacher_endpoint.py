"""Where the teacher is and how to talk to it: base URL, key and provider profile, from spec and environment.

The openai SDK's conventions hold when the spec leaves them out: ``OPENAI_BASE_URL`` and
``OPENAI_API_KEY``. A local server (vLLM, Ollama, llama.cpp) needs no key at all.

A teacher that distill starts itself (the simulator) is a plugin: a ``TeacherServer`` registered
under the ``distill.teacher_servers`` entry point and found by ``teacher_server(name)``, in the style
of simonw/llm's plugins. Production code never imports the simulator package by name.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel

from agent.errors import DistillError
from generators.providers import PROFILES, ProviderProfile, profile_for

if TYPE_CHECKING:  # agent.spec imports this module at run time, to validate teacher.knobs
    from agent.spec import RemoteTeacher, SimulatorTeacher

TEACHER_SERVERS = "distill.teacher_servers"  # the entry-point group of teacher-server plugins

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


class TeacherServerMissing(DistillError):
    """No plugin of that name is installed (exit 1: the installation, not the input, needs fixing)."""


class TeacherServer(Protocol):
    """A teacher server distill can start itself, registered under the ``distill.teacher_servers`` entry point.

    ``knobs`` is its settings model (names, defaults, descriptions, validation): a spec's
    ``teacher.knobs`` is validated against it and ``distill simulate`` has one option per field. ``start``
    and ``serve_forever`` raise ``ValueError`` (one line per problem) for a bad model id, policy or pool,
    ``OSError`` when they cannot listen.
    """

    @property
    def knobs(self) -> type[BaseModel]: ...

    def start(
        self, knobs: Any, *, model: str, pool: Path, policy: Path | None, api_key: str | None
    ) -> AbstractContextManager[str]:
        """Serve on a free loopback port in a background thread while the context is open; yields the base URL."""
        ...

    def serve_forever(
        self,
        knobs: Any,
        *,
        model: str,
        pool: Path,
        policy: Path | None,
        api_key: str | None,
        host: str,
        port: int,
    ) -> None:
        """Serve in the foreground until SIGINT/SIGTERM; prints one line with the URL once it accepts connections."""
        ...


def teacher_server(name: str) -> TeacherServer:
    """The installed teacher-server plugin ``name``, or ``TeacherServerMissing`` saying how to install it."""
    found = entry_points(group=TEACHER_SERVERS, name=name)
    if not found:
        raise TeacherServerMissing(
            f"teacher server {name!r} is not installed (no {name!r} entry point in group {TEACHER_SERVERS}) — "
            "run `pip install -e .` in the distill checkout, which registers the simulator"
        )
    plugin: TeacherServer = next(iter(found)).load()
    return plugin


@dataclass(frozen=True)
class Endpoint:
    base_url: str
    api_key: str = field(repr=False)
    profile: ProviderProfile
    key_env: str | None = None  # the variable the key came from (named in errors; the key itself never is)


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
        return Endpoint(base_url, key, profile, key_env)
    if teacher.api_key_env or profile.needs_key:
        raise EndpointError(
            f"teacher.api_key_env: environment variable {key_env} is not set — export "
            f"{key_env}=<your key> (the key never goes in the spec)"
        )
    return Endpoint(base_url, KEYLESS_PLACEHOLDER, profile)


def simulator_profile(teacher: SimulatorTeacher) -> ProviderProfile:
    """The profile of the provider the simulator emulates (its conformance profile), or a lenient default."""
    emulated = _EMULATED_PROVIDER.get(teacher.knobs.get("profile") or "")
    base = profile_for(emulated, teacher.model) if emulated else PROFILES["vllm"]
    return _overridden(base, teacher)
