"""A tiny run with a ``deploy`` target: the exported model carries a threshold chosen on held-back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.run_helpers import SECRET, run_spec, served_simulator, write_spec
from trainers.deferral import choose_threshold, measure


def test_the_exported_model_carries_a_threshold_chosen_on_heldback(
    tmp_path: Path, tiny_model: str, make_simulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISTILL_TEST_KEY", SECRET)
    monkeypatch.setenv("DISTILL_QUIET", "1")
    server = make_simulator(api_key=SECRET)
    spec_path = write_spec(tmp_path, tiny_model, served_simulator(server), max_rounds=0)
    spec = yaml.safe_load(spec_path.read_text())
    spec["deploy"] = {"target_accuracy": 0.5}
    spec_path.write_text(yaml.safe_dump(spec))
    run_dir, _ = run_spec(spec_path, tmp_path / "run")

    entry = json.loads((run_dir / "model" / "distill_student.json").read_text())["deferral"]
    round_dir = run_dir / "models" / "round-00"  # the only round, so the best one

    def items(split: str) -> tuple[list[float], list[bool]]:
        rows = json.loads((round_dir / f"eval_{split}.json").read_text())["items"]
        return [r["confidence"] for r in rows], [r["correct"] for r in rows]

    expected = choose_threshold(*items("heldback"), target_accuracy=0.5)
    assert expected.n > 0 and entry["chosen_on"] == "heldback"
    assert entry["threshold"] == expected.threshold and entry["reason"] == expected.reason
    assert entry["target"] == {"target_accuracy": 0.5, "max_defer_rate": None}
    assert entry["heldback"] == {
        "n": expected.n,
        "coverage": expected.coverage,
        "accuracy_answered": expected.accuracy_answered,
    }
    assert entry["curve_heldback"] and entry["test"] == measure(*items("test"), expected.threshold)

    # distill status shows the same curve, with the teacher's cost of what the student defers
    from typer.testing import CliRunner

    from agent.cli import app

    shown = CliRunner().invoke(app, ["status", str(run_dir), "--json"])
    assert shown.exit_code == 0, shown.output
    coverage = json.loads(shown.output)["coverage"]
    assert coverage["threshold"] == entry["threshold"]
    assert [r["coverage"] for r in coverage["rows"]] == [p["coverage"] for p in entry["curve_heldback"]]
    assert sum(r["chosen"] for r in coverage["rows"]) == 1
    text = CliRunner().invoke(app, ["status", str(run_dir)])
    assert text.exit_code == 0 and "deferral: the student answers above the threshold" in text.output
    assert "(chosen)" in text.output and "teacher cost per labeled text" in text.output
