"""A tiny distillation run against a real OpenAI-compatible LLM server that nobody here wrote: llama.cpp's,
serving SmolLM2-135M-Instruct as the teacher. It asserts the mechanics (calls made, usage recorded from the
server, replies parsed or dropped with a reason, the run finishing), not the quality of a 135M model's data.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from agent.status import run_status
from agent.store import RunStore
from generators.generation import TaskInfo, label_requests
from generators.providers import PROFILES, request_params
from tests.real_server import llama_cpp_server, require_llama_cpp
from tests.run_helpers import LABELS, run_spec, write_spec


@pytest.fixture(scope="module")
def llama_url() -> Iterator[str]:
    require_llama_cpp()
    with llama_cpp_server(model_alias="smollm2") as url:
        yield url


def test_the_servers_schema_mode_constrains_a_label_reply(llama_url: str) -> None:
    task = TaskInfo("Messages to a bank.", {name: name.replace("_", " ") for name in LABELS})
    [request] = label_requests(
        task, ["my card has not arrived yet", "what rate do you use for euros?"], per_call=10, round=0
    )
    params = request_params(
        PROFILES["llama_cpp"],
        temperature=0.0,
        max_output_tokens=request.output_tokens,
        schema_name=request.prompt_id,
        schema=request.schema,
    )
    client = openai.OpenAI(base_url=llama_url, api_key="no-key-needed", max_retries=0, timeout=120)
    response = client.chat.completions.create(model="smollm2", messages=request.messages, **params)  # type: ignore[arg-type]
    reply = json.loads(response.choices[0].message.content or "")
    assert all(item["label"] in LABELS for item in reply["labels"])  # the enum held: the grammar enforced it
    assert response.usage is not None and response.usage.prompt_tokens > 100 and response.usage.completion_tokens > 0


def test_a_tiny_run_with_llama_cpp_as_the_teacher(
    llama_url: str, tiny_model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISTILL_QUIET", "1")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # a local server needs no key
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    teacher = {
        "provider": "llama_cpp",
        "base_url": llama_url,
        "model": "smollm2",
        "max_concurrency": 2,
        "timeout_s": 300,
        "max_attempts": 2,
        "temperature": 0.7,
    }
    spec_path = write_spec(
        tmp_path, tiny_model, teacher, max_rounds=1, seed_per_label=2, examples_per_round=6, batch_per_call=2
    )

    run_dir, result = run_spec(spec_path, tmp_path / "run")

    status = run_status(run_dir)
    assert status["status"] == "finished" and [r["round"] for r in status["rounds"]] == [0, 1]
    store = RunStore(run_dir / "run.sqlite")
    try:
        calls = store.query("SELECT prompt_id, status, tokens_in, tokens_out, error FROM teacher_calls")
        generated = store.query(
            "SELECT e.id, COUNT(d.id) verdicts FROM examples e LEFT JOIN filter_decisions d"
            " ON d.example_id = e.id WHERE e.origin = 'generated' GROUP BY e.id"
        )
    finally:
        store.close()
    prompts = {row["prompt_id"] for row in calls}
    assert {"seed_generate", "pgkd_generate"} <= prompts
    ok = [row for row in calls if row["status"] == "ok"]
    assert ok, [dict(row) for row in calls]
    # Usage comes from the server's own tokenizer, not from our byte estimate.
    assert all(0 < row["tokens_in"] < 4000 and row["tokens_out"] > 0 for row in ok)
    assert all(row["error"] for row in calls if row["status"] != "ok")  # a reply not used says why
    assert all(row["verdicts"] > 0 for row in generated)  # every example written was kept or dropped, with a verdict
    assert status["adaptations"] == [] and result.model_dir.is_dir()
