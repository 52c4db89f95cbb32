"""Task specs: valid ones load; bad ones print one line per problem naming the field, exit 2, write nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from agent.spec import SpecError, load_spec

GOOD = {
    "name": "tiny",
    "task": {"description": "bank messages", "labels": [{"name": "a"}, {"name": "b"}]},
    "teacher": {"provider": "simulator", "pool": "pool.jsonl"},
}


def write(tmp_path: Path, data: object) -> Path:
    (tmp_path / "pool.jsonl").write_text('{"text": "x", "label": "a"}\n')
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_good_spec_resolves_paths_relative_to_the_spec(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, GOOD))
    assert spec.teacher.pool == (tmp_path / "pool.jsonl").resolve()  # type: ignore[union-attr]
    assert spec.task.label_names == ["a", "b"]


def test_every_problem_is_reported_with_its_field_path(tmp_path: Path) -> None:
    bad = {
        **GOOD,
        "loop": {"patiense": 3, "max_rounds": -1},
        "teacher": {"provider": "openai", "model": "m", "base_url": "http://x", "api_key_env": "not a name"},
    }
    with pytest.raises(SpecError) as info:
        load_spec(write(tmp_path, bad))
    text = "\n".join(info.value.problems)
    assert "loop.patiense" in text and "remove it" in text
    assert "loop.max_rounds" in text
    assert "teacher.api_key_env" in text
    assert len(info.value.problems) == 3


def test_missing_files_and_duplicate_labels(tmp_path: Path) -> None:
    bad = {**GOOD, "task": {**GOOD["task"], "validation": "nope.jsonl"}}  # type: ignore[dict-item]
    with pytest.raises(SpecError, match=r"task\.validation: file nope\.jsonl not found"):
        load_spec(write(tmp_path, bad))
    dup = {**GOOD, "task": {"description": "d", "labels": [{"name": "a"}, {"name": "a"}]}}
    with pytest.raises(SpecError, match="duplicate label names"):
        load_spec(write(tmp_path, dup))


def test_cli_bad_spec_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    spec = write(tmp_path, {**GOOD, "budget": {"max_usd": -5, "max_dollars": 3}})
    run_dir = tmp_path / "run"
    env = {**os.environ, "DISTILL_QUIET": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "agent", "run", str(spec), "--run-dir", str(run_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 2
    assert any("budget.max_usd" in line for line in lines)
    assert any("budget.max_dollars" in line for line in lines)
    assert not run_dir.exists()


def test_openai_teacher_needs_its_key_variable(tmp_path: Path) -> None:
    spec = {
        **GOOD,
        "teacher": {
            "provider": "openai",
            "model": "m",
            "base_url": "http://127.0.0.1:9/v1",
            "api_key_env": "DISTILL_TEST_SURELY_UNSET",
        },
    }
    env = {k: v for k, v in os.environ.items() if k != "DISTILL_TEST_SURELY_UNSET"}
    proc = subprocess.run(
        [sys.executable, "-m", "agent", "run", str(write(tmp_path, spec)), "--run-dir", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "DISTILL_TEST_SURELY_UNSET is not set" in proc.stderr
    assert not (tmp_path / "r").exists()


def test_student_spec_defaults_are_the_measured_encoder_recipe() -> None:
    """The spec and EncoderConfig each state the recipe's defaults (the spec must load without torch);
    they must not drift apart, or the loop would train a different student than the benchmark measured."""
    from dataclasses import fields

    from agent.spec import StudentSpec
    from trainers.encoder import EncoderConfig

    recipe = {f.name: f.default for f in fields(EncoderConfig)}
    for name, field in StudentSpec.model_fields.items():
        if name in recipe:
            assert field.default == recipe[name], f"student.{name}: spec {field.default} ≠ recipe {recipe[name]}"
