"""`distill predict --cascade`: the student above the threshold, the teacher (the simulator over HTTP) below it,
through the run's cache, journal and budget; and the coverage–accuracy–cost curve saved with the model."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner, Result

from agent.cli_model import register
from agent.coverage import coverage_rows, format_coverage_rows, read_coverage
from agent.store import RunStore
from simulator import SimulatorConfig, SimulatorServer
from tests.conftest import TINY_POOL
from tests.run_helpers import FIXTURES, SECRET, run_spec, served_simulator, write_spec

app = typer.Typer()
register(app)
POOL = [json.loads(line) for line in TINY_POOL.read_text().splitlines()]
GOLD = {row["text"]: row["label"] for row in POOL}


@dataclass(frozen=True)
class Run:
    run_dir: Path
    spec_path: Path
    server: SimulatorServer


def cli(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def answers(result: Result) -> list[dict[str, Any]]:
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def _run(tmp_path: Path, tiny_model: str, server: SimulatorServer, **loop: Any) -> Path:
    spec_path = write_spec(tmp_path, tiny_model, served_simulator(server), **loop)
    run_dir, _ = run_spec(spec_path, tmp_path / "run")
    return run_dir


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, tiny_model: str) -> Iterator[Run]:
    """A finished one-round tiny run (no active learning), its simulator still serving."""
    tmp_path = tmp_path_factory.mktemp("cascade")
    with pytest.MonkeyPatch.context() as env, SimulatorServer(SimulatorConfig(api_key=SECRET), TINY_POOL) as server:
        env.setenv("DISTILL_TEST_KEY", SECRET)
        env.setenv("DISTILL_QUIET", "1")
        run_dir = _run(tmp_path, tiny_model, server, max_rounds=0)
        yield Run(run_dir, tmp_path / "spec.yaml", server)


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISTILL_TEST_KEY", SECRET)


def journal(run_dir: Path) -> tuple[int, float]:
    store = RunStore(run_dir / "run.sqlite")
    try:
        return store.call_summary()["calls"], store.spent()[0]
    finally:
        store.close()


def student_only(run: Run, texts: list[str]) -> list[dict[str, Any]]:
    return answers(cli("predict", run.run_dir / "model", *texts, "--json", "--threshold", "0"))


def test_the_student_answers_above_the_threshold_and_the_teacher_below_it(run: Run) -> None:
    texts = [row["text"] for row in POOL[:24]]
    plain = student_only(run, texts)
    ranked = sorted(set(p["confidence"] for p in plain))  # distinct: a tiny model may tie some texts
    middle = len(ranked) // 2
    cut = (ranked[middle - 1] + ranked[middle]) / 2  # between two answers: rounding cannot flip one
    assert ranked[middle - 1] < cut < ranked[middle]
    deferred = [p["text"] for p in plain if p["confidence"] < cut]
    calls_before, spent_before = journal(run.run_dir)
    run.server.reset_stats()

    done = cli("predict", run.run_dir / "model", *texts, "--json", "--threshold", str(cut), "--cascade", run.run_dir)

    got = answers(done)
    assert [g["text"] for g in got] == texts
    for mine, student in zip(got, plain, strict=True):
        if student["confidence"] >= cut:
            assert mine == {**student, "source": "student"}
        else:  # the simulator answers a pool text with its gold label (no label noise)
            assert mine["source"] == "teacher" and mine["label"] == GOLD[mine["text"]]
            assert mine["confidence"] == student["confidence"]
    expected_calls = math.ceil(len(deferred) / 4)  # loop.batch_per_call 4
    assert run.server.stats()["actions"] == {"label": expected_calls}
    calls, spent = journal(run.run_dir)
    assert calls == calls_before + expected_calls and spent > spent_before
    assert f"the student answered {len(texts) - len(deferred)} of {len(texts)}" in done.stderr
    assert f"the teacher {len(deferred)} in {expected_calls} calls (0 from the cache" in done.stderr

    # Asked again: every answer comes from the cache; nothing is sent or paid.
    again = cli("predict", run.run_dir / "model", *texts, "--json", "--threshold", str(cut), "--cascade", run.run_dir)
    assert answers(again) == got
    assert run.server.stats()["actions"] == {"label": expected_calls}
    assert journal(run.run_dir)[1] == spent
    assert f"({expected_calls} from the cache, $0.00)" in again.stderr


def test_a_spec_file_uses_its_budget_with_the_runs_journal_and_the_budget_binds(run: Run, tmp_path: Path) -> None:
    """budget.max_usd counts what the run and its cascades spent: at the limit the teacher is not called."""
    spent = journal(run.run_dir)[1]
    spec = yaml.safe_load(run.spec_path.read_text())
    spec["budget"] = {"max_usd": spent}
    tight = run.spec_path.parent / "tight.yaml"
    tight.write_text(yaml.safe_dump(spec))
    texts = [row["text"] + " (asked once)" for row in POOL[40:48]]  # never asked: not in the cache
    run.server.reset_stats()

    done = cli("predict", run.run_dir / "model", *texts, "--json", "--threshold", "1", "--cascade", tight)

    got = answers(done)
    assert all(g["label"] == "defer" and g["source"] == "student" and "student_label" in g for g in got)
    assert run.server.stats()["requests"] == 0 and journal(run.run_dir)[1] == spent
    assert "8 left as 'defer': the budget refused a call (budget.max_usd=" in done.stderr

    # A budget for a few calls: some texts are answered, the rest deferred, and the limit holds.
    spec["budget"] = {"max_usd": spent + 0.002}
    tight.write_text(yaml.safe_dump(spec))
    many = [row["text"] + " (asked again)" for row in POOL[30:90]]  # 15 calls of 4
    got = answers(cli("predict", run.run_dir / "model", *many, "--json", "--threshold", "1", "--cascade", tight))
    teacher = [g for g in got if g["source"] == "teacher"]
    assert 0 < len(teacher) < len(many) and all(g["label"] == "defer" for g in got if g["source"] == "student")
    assert spent < journal(run.run_dir)[1] <= spent + 0.002


def test_bad_cascade_targets_exit_2_with_one_line_and_nothing_written(run: Run, tmp_path: Path) -> None:
    before = journal(run.run_dir)
    model = run.run_dir / "model"
    missing = cli("predict", model, "hello", "--cascade", tmp_path / "nowhere")
    assert missing.exit_code == 2 and "--cascade:" in missing.output and "does not exist" in missing.output
    assert "Traceback" not in missing.output

    spec = yaml.safe_load(run.spec_path.read_text())
    spec["name"] = "another"
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(spec))
    for name in ("seed.jsonl", "validation.jsonl", "test.jsonl"):
        (tmp_path / name).write_text((run.spec_path.parent / name).read_text())
    wrong = cli("predict", model, "hello", "--threshold", "1", "--cascade", other)
    assert wrong.exit_code == 2 and "pass that run's directory instead" in wrong.output

    not_a_run = cli("predict", model, "hello", "--cascade", tmp_path)
    assert not_a_run.exit_code == 2 and "holds no run.sqlite" in not_a_run.output
    assert journal(run.run_dir) == before


def test_the_model_carries_the_coverage_curve_with_the_teacher_cost_per_1k(run: Run) -> None:
    entry = json.loads((run.run_dir / "model" / "distill_student.json").read_text())["deferral"]
    cost = entry["teacher_cost"]
    # No active learning in this run: no paid label call to measure, so the spec's prices are used.
    assert cost["source"] == "estimated" and cost["usd_per_text"] > 0
    rows = coverage_rows(run.run_dir)
    assert len(rows) == len(entry["curve_heldback"]) > 0 and entry["curve_test"]
    for row, point in zip(rows, entry["curve_heldback"], strict=True):
        assert (row.threshold, row.coverage, row.accuracy) == (point["threshold"], point["coverage"], point["accuracy"])
        assert row.cost_per_1k == pytest.approx((1 - row.coverage) * cost["usd_per_text"] * 1000)
    assert sum(r.chosen for r in rows) <= 1
    cells = format_coverage_rows(rows)
    assert cells[0][1].endswith("%") and cells[0][3].startswith("$")
    assert coverage_rows(run.run_dir / "nowhere") == []


def test_the_teacher_cost_is_measured_from_the_runs_paid_label_calls(
    tmp_path: Path, tiny_model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISTILL_QUIET", "1")
    task_pool = [json.loads(line) for line in (FIXTURES / "pool.jsonl").read_text().splitlines()]
    unlabeled = tmp_path / "unlabeled.jsonl"
    unlabeled.write_text("".join(json.dumps({"text": row["text"]}) + "\n" for row in task_pool[200:260]))
    with SimulatorServer(SimulatorConfig(api_key=SECRET), TINY_POOL) as server:
        spec_path = write_spec(tmp_path, tiny_model, served_simulator(server), max_rounds=1, active_per_round=8)
        spec = yaml.safe_load(spec_path.read_text())
        spec["task"]["unlabeled"] = str(unlabeled)
        spec_path.write_text(yaml.safe_dump(spec))
        run_dir, _ = run_spec(spec_path, tmp_path / "run")
    store = RunStore(run_dir / "run.sqlite")
    try:
        paid = store.calls_by_prompt()["label"]
        active = [e for e in store.example_provenance("train") if e.origin == "active"]
    finally:
        store.close()
    found = read_coverage(run_dir / "model")
    assert found is not None and len(active) == 8
    assert found.cost.source == "measured" and found.cost.usd_per_text == pytest.approx(paid["usd"] / 8)
    assert f"{paid['calls']} paid label calls that labeled 8 texts" in found.cost.detail
