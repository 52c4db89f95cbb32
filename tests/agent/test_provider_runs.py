"""A whole small classifier run against every conformance profile of the simulator: each rejects what that
provider rejects, with its status and error body, and the run still finishes without a failed call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.status import run_status
from agent.store import RunStore
from tests.run_helpers import run_spec, write_spec

# (conformance profile, model name, the adaptations the gateway must make to be accepted)
CASES = [
    # A reasoning model the name gives away: asked right from the first call.
    ("openai-reasoning", "o4-mini", []),
    # A reasoning model behind a name the profile table does not know: the 400 teaches the gateway.
    ("openai-reasoning", "sim-teacher", ["temperature rejected: using the model's default"]),
    ("openai-chat", "gpt-4o-mini", []),
    ("anthropic", "claude-haiku-4-5", []),
    ("vllm", "sim-teacher", []),
    ("ollama", "sim-teacher", []),
]


@pytest.mark.parametrize(("profile", "model", "adaptations"), CASES, ids=[f"{p}-{m}" for p, m, _ in CASES])
def test_a_run_finishes_against_every_provider_profile(
    tmp_path: Path, tiny_model: str, profile: str, model: str, adaptations: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISTILL_QUIET", "1")
    teacher: dict[str, Any] = {
        "provider": "simulator",
        "model": model,
        "pool": "pool.jsonl",
        "knobs": {"profile": profile},
        "price_input_per_mtok": 1.0,
        "price_output_per_mtok": 2.0,
    }
    spec_path = write_spec(tmp_path, tiny_model, teacher, max_rounds=1)

    run_dir, result = run_spec(spec_path, tmp_path / "run")

    status = run_status(run_dir)
    assert [r["round"] for r in status["rounds"]] == [0, 1]
    assert status["rounds"][1]["examples_kept"] > 0
    assert status["adaptations"] == adaptations
    store = RunStore(run_dir / "run.sqlite")
    calls = store.query("SELECT status, COUNT(*) n FROM teacher_calls GROUP BY status")
    store.close()
    counts = {row["status"]: row["n"] for row in calls}
    assert counts.get("error", 0) == 0 and counts["ok"] > 0, counts
    assert status["teacher"]["cost_usd"] > 0 and result.model_dir.is_dir()
    assert yaml.safe_load(spec_path.read_text())["teacher"]["knobs"]["profile"] == profile
