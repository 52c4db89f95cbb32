"""Labeled files may use the label out_of_scope only when the task has that outcome."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from agent.data_files import DataFileError, check_data_files
from agent.spec import load_spec

OOS = "out_of_scope"


def line(text: str, label: str) -> str:
    return json.dumps({"text": text, "label": label}) + "\n"


def spec_with_oos_lines(tmp_path: Path, out_of_scope: bool) -> Path:
    files = {
        "pool.jsonl": line("where is my card", "a") + line("what is the rate", "b") + line("reset my PIN", "c"),
        "seed.jsonl": line("card not here yet", "a") + line("how do I change my PIN", OOS),
        "val.jsonl": line("card still missing", "a") + line("rates today?", "b") + line("close my account", OOS),
        "test.jsonl": line("my card never came", "a") + line("verify my identity", OOS),
    }
    for name, content in files.items():
        (tmp_path / name).write_text(content)
    spec = {
        "name": "oos",
        "task": {
            "description": "bank messages",
            "labels": [{"name": "a"}, {"name": "b"}],
            "out_of_scope": out_of_scope,
            "seed_examples": "seed.jsonl",
            "validation": "val.jsonl",
            "test": "test.jsonl",
        },
        "teacher": {"provider": "simulator", "pool": "pool.jsonl"},
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_out_of_scope_lines_are_accepted_when_the_task_has_the_outcome(tmp_path: Path) -> None:
    assert check_data_files(load_spec(spec_with_oos_lines(tmp_path, out_of_scope=True))) == []


def test_out_of_scope_lines_without_the_outcome_name_the_line_and_the_fix(tmp_path: Path) -> None:
    spec = load_spec(spec_with_oos_lines(tmp_path, out_of_scope=False))
    try:
        check_data_files(spec)
    except DataFileError as error:
        message = str(error)
    else:
        raise AssertionError("an out_of_scope label was accepted without task.out_of_scope")
    assert message == (
        f"task.seed_examples: {tmp_path}/seed.jsonl line 2 has label 'out_of_scope', the 'none of these' outcome "
        "— set task.out_of_scope: true to use it, or remove the line"
    )


def test_cli_run_exits_2_with_one_line_and_writes_nothing(tmp_path: Path) -> None:
    spec = spec_with_oos_lines(tmp_path, out_of_scope=False)
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "agent", "run", str(spec), "--run-dir", str(run_dir)],
        capture_output=True,
        text=True,
        env={**os.environ, "DISTILL_QUIET": "1"},
        timeout=120,
    )
    errors = [text for text in proc.stderr.splitlines() if text.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1, proc.stderr
    assert "seed.jsonl line 2 has label 'out_of_scope'" in errors[0] and "task.out_of_scope: true" in errors[0]
    assert not run_dir.exists()
