"""`distill plan`: expected calls, tokens and cost from the rendered requests, before any paid call."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from agent.plan import plan_run
from agent.spec import load_any_spec, load_spec

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_SPECS = sorted((ROOT / "examples").glob("*/spec*.yaml"))


def distill(*args: str) -> subprocess.CompletedProcess[str]:
    executable = Path(sys.executable).parent / "distill"
    return subprocess.run([str(executable), *args], capture_output=True, text=True, timeout=120, cwd=ROOT)


@pytest.mark.parametrize("spec_path", EXAMPLE_SPECS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_plan_works_on_every_example_spec(spec_path: Path) -> None:
    plan = plan_run(load_any_spec(spec_path))
    assert plan["calls"] == sum(line["calls"] for line in plan["lines"]) > 0
    assert plan["tokens_in"] > 0 and plan["tokens_out"] > 0
    assert all(line["tokens_in"] > 0 and line["worst_tokens_out"] >= line["tokens_out"] for line in plan["lines"])


def test_plan_counts_the_calls_the_loop_will_send() -> None:
    spec = load_spec(ROOT / "examples" / "banking77" / "spec.yaml")
    plan = plan_run(spec)
    labels, loop = len(spec.task.labels), spec.loop
    seed_calls = sum(line["calls"] for line in plan["lines"] if line["prompt_id"] == "seed_generate")
    assert seed_calls == labels * -(-loop.seed_per_label // loop.batch_per_call)
    pgkd_rounds = {line["round"] for line in plan["lines"] if line["prompt_id"] == "pgkd_generate"}
    assert pgkd_rounds == {str(r) for r in range(1, spec.effective_max_rounds + 1)}
    usd = (
        plan["tokens_in"] * spec.teacher.price_input_per_mtok / 1e6
        + plan["tokens_out"] * spec.teacher.price_output_per_mtok / 1e6
    )
    assert plan["usd"] == pytest.approx(usd) and plan["worst_usd"] > plan["usd"]


def test_plan_cli_warns_when_a_money_budget_cannot_bind(tmp_path: Path) -> None:
    data = yaml.safe_load((ROOT / "examples" / "banking77" / "spec.yaml").read_text())
    data["teacher"].update(price_input_per_mtok=0, price_output_per_mtok=0)
    data["budget"] = {"max_usd": 2.0}
    for key in ("seed_examples", "validation", "test"):
        data["task"][key] = str(ROOT / "examples" / "banking77" / data["task"][key])
    data["teacher"]["pool"] = str(ROOT / "examples" / "banking77" / data["teacher"]["pool"])
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    result = distill("plan", str(path), "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["usd"] == 0 and plan["max_usd"] == 2.0
    assert any("prices are 0" in w and "price_input_per_mtok" in w for w in plan["warnings"])
    shown = distill("plan", str(path))
    assert "warning:" in shown.stdout and "total" in shown.stdout
    assert list(tmp_path.iterdir()) == [path]  # planning writes nothing


def test_plan_of_a_bad_spec_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text("name: x\ntask: {description: d, labels: [{name: a}, {name: b}]}\nteacher: {provider: opneai}\n")
    result = distill("plan", str(path))
    assert result.returncode == 2
    output = result.stdout + result.stderr
    assert "teacher.provider" in output and "Traceback" not in output
