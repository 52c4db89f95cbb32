"""The black-box student LLM of strategy teaching: text in, text out, always over an OpenAI-compatible API.

``local:smollm2`` (or ``local:/path/to/hf-folder``) starts an in-process server around a transformers
causal LM, so a local student and a remote one take exactly the same path.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import openai

from agent.spec import SpecError, StudentLLMSpec

STUDENT_SYSTEM = (
    "You are a customer-service agent for an online store. Answer the customer's message in two to four "
    "short sentences: be helpful and specific, and ask for the information you need to act."
)


def deploy_prompt(message: str, strategies: list[str]) -> list[dict[str, str]]:
    """The student's prompt: the base instruction, the retrieved strategies (if any), the customer message."""
    system = STUDENT_SYSTEM
    if strategies:
        system += "\n\nFollow these strategies:\n" + "\n".join(f"{i}. {s}" for i, s in enumerate(strategies, 1))
    return [{"role": "system", "content": system}, {"role": "user", "content": message}]


@dataclass
class StudentClient:
    """Calls the student endpoint; ``temperature`` and ``max_tokens`` are the decoding setting."""

    client: openai.OpenAI
    model: str
    temperature: float
    max_tokens: int
    seed: int = 0

    def answer(self, message: str, strategies: list[str]) -> str:
        response = self.client.chat.completions.create(
            model=self.model,
            messages=deploy_prompt(message, strategies),  # type: ignore[arg-type]
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            seed=self.seed,
        )
        return (response.choices[0].message.content or "").strip()


@contextmanager
def open_student(spec: StudentLLMSpec, *, temperature: float | None = None) -> Iterator[StudentClient]:
    """A client for the student; starts the local server for ``local:`` endpoints."""
    temp = spec.temperature if temperature is None else temperature
    if spec.endpoint.startswith("local:"):
        from trainers.llm_server import LocalChatServer
        from trainers.local_llm import LocalChatModel, model_cache_dir, resolve_local_model

        folder = resolve_local_model(spec.endpoint.removeprefix("local:"), model_cache_dir())
        model = LocalChatModel(folder, max_new_tokens=spec.max_tokens, temperature=temp)
        with LocalChatServer(model, model_name=spec.model) as server:
            client = openai.OpenAI(base_url=server.base_url, api_key="local", max_retries=2, timeout=600)
            yield StudentClient(client, spec.model, temp, spec.max_tokens)
            client.close()
        return
    key = os.environ.get(spec.api_key_env, "") if spec.api_key_env else "none"
    if spec.api_key_env and not key:
        raise SpecError([f"student.api_key_env: environment variable {spec.api_key_env} is not set — export it"])
    client = openai.OpenAI(base_url=spec.endpoint, api_key=key or "none", max_retries=3, timeout=120)
    try:
        yield StudentClient(client, spec.model, temp, spec.max_tokens)
    finally:
        client.close()
