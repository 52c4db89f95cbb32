"""One free request before a run writes or pays anything: does the teacher accept the key?

``GET /models`` costs nothing on every OpenAI-compatible server we target and needs the same
authentication as a completion, so a wrong or revoked key (401/403) or an unreachable server is
reported as one line before a run directory exists. Servers that do not list models (404, 405, …)
pass: only a refused key or no server at all is decisive. Anthropic is skipped: its OpenAI layer is
documented for chat completions, not for listing models with a bearer key, so a 401 there would
not mean the key is wrong. The in-process simulator is started later, with a key it makes itself.
"""

from __future__ import annotations

import os

import openai

from agent.errors import InputError, RunFailure
from agent.spec import DialogueRunSpec, RemoteTeacher, RunSpec, SimulatorTeacher
from agent.teacher_endpoint import KEYLESS_PLACEHOLDER, resolve_endpoint

PREFLIGHT_TIMEOUT_S = 15.0


def check_teacher(spec: RunSpec | DialogueRunSpec) -> None:
    """Raise ``InputError`` if the teacher refuses the key, ``RunFailure`` if it cannot be reached."""
    target = _target(spec)
    if target is None:
        return
    base_url, key, key_env = target
    client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=1, timeout=PREFLIGHT_TIMEOUT_S)
    try:
        client.models.list()
    except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
        where = f"the key in ${key_env}" if key_env else "the request without a key"
        raise InputError(
            f"teacher: {base_url} refused {where} ({exc.status_code}) — check the key and that it may use "
            f"model {spec.teacher.model!r}; nothing was written or paid"
        ) from None
    except openai.APIStatusError:
        return  # the server does not list models; the first completion will tell
    except openai.APIConnectionError as exc:  # includes timeouts
        raise RunFailure(
            f"teacher.base_url: cannot reach {base_url} ({type(exc).__name__}) — is the server running and the "
            "URL right? nothing was written or paid"
        ) from None
    finally:
        client.close()


def _target(spec: RunSpec | DialogueRunSpec) -> tuple[str, str, str | None] | None:
    teacher = spec.teacher
    if isinstance(teacher, SimulatorTeacher):
        if teacher.base_url is None:
            return None
        key_env = teacher.api_key_env
        return teacher.base_url, os.environ.get(key_env or "", "") or KEYLESS_PLACEHOLDER, key_env
    assert isinstance(teacher, RemoteTeacher)
    if teacher.provider == "anthropic":
        return None
    endpoint = resolve_endpoint(teacher)
    return endpoint.base_url, endpoint.api_key, endpoint.key_env
