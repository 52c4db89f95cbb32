"""A money budget is spent, not left unused, and never crossed: a whole run against the simulator over HTTP."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.plan import plan_run
from agent.spec import load_spec
from agent.status import run_status
from tests.run_helpers import SECRET, run_spec, served_simulator, write_spec


def test_a_run_spends_at_least_90_percent_of_max_usd_and_never_more(
    tmp_path: Path, tiny_model: str, make_simulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISTILL_TEST_KEY", SECRET)
    monkeypatch.setenv("DISTILL_QUIET", "1")
    server = make_simulator(api_key=SECRET)
    teacher = {**served_simulator(server), "price_input_per_mtok": 1.0, "price_output_per_mtok": 4.0}
    spec_path = write_spec(tmp_path, tiny_model, teacher, max_rounds=20, examples_per_round=24, patience=50)
    # A budget the planned run would spend about twice over: it must bind mid-run.
    max_usd = round(plan_run(load_spec(spec_path))["usd"] / 2, 6)
    data = yaml.safe_load(spec_path.read_text())
    data["budget"] = {"max_usd": max_usd}
    spec_path.write_text(yaml.safe_dump(data))

    run_dir, result = run_spec(spec_path, tmp_path / "run")

    status = run_status(run_dir)
    spent = status["teacher"]["cost_usd"]
    assert 0.9 * max_usd <= spent <= max_usd, (spent, max_usd)
    assert any("budget" in reason for reason in result.stop_reasons), result.stop_reasons
    assert status["rounds"][-1]["round"] < 20  # the budget, not the round cap, ended the run
    # Money is printed with enough digits to be non-zero (it once said "spent $0.0000").
    assert re.search(r"\$\d[\d,]*\.\d*[1-9]", status["stop_reason"]), status["stop_reason"]


def test_the_budget_that_once_stopped_at_3_percent_is_spent(
    tmp_path: Path, tiny_model: str, make_simulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gpt-4o-mini prices and max_usd 0.0025: the run once stopped after spending 3% of it."""
    monkeypatch.setenv("DISTILL_TEST_KEY", SECRET)
    monkeypatch.setenv("DISTILL_QUIET", "1")
    server = make_simulator(api_key=SECRET)
    teacher = {**served_simulator(server), "price_input_per_mtok": 0.15, "price_output_per_mtok": 0.6}
    spec_path = write_spec(tmp_path, tiny_model, teacher, max_rounds=20, examples_per_round=24, patience=50)
    data = yaml.safe_load(spec_path.read_text())
    data["budget"] = {"max_usd": 0.0025}  # the budget the issue saw stop a run after spending 3% of it
    spec_path.write_text(yaml.safe_dump(data))
    run_dir, _ = run_spec(spec_path, tmp_path / "run")
    spent = run_status(run_dir)["teacher"]["cost_usd"]
    assert 0.9 * 0.0025 <= spent <= 0.0025, spent
