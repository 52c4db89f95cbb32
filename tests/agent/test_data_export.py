"""`distill export`: a finished run's examples, kept and dropped, with provenance and a dataset card.

One real run of the tiny task (the simulator over loopback with duplicates and refusals switched on,
so the filters drop some), then the CLI in a subprocess, as a user runs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.run_lock import run_lock
from agent.store import RunStore
from simulator import SimulatorConfig, SimulatorServer
from tests.conftest import TINY_POOL
from tests.run_helpers import LABELS, run_spec, served_simulator, write_spec
from trainers.markup import md_cell, md_text

HOSTILE = "Messages | to a <script>alert(1)</script> *bank*"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory, tiny_model: str) -> Iterator[Path]:
    """A finished one-round run whose filters dropped duplicates and refusals; its description is hostile."""
    folder = tmp_path_factory.mktemp("export")
    server = SimulatorServer(SimulatorConfig(dup_rate=0.3, refusal_rate=0.1), TINY_POOL).start()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DISTILL_TEST_KEY", "k")
        patch.setenv("DISTILL_QUIET", "1")
        spec_path = write_spec(folder, tiny_model, served_simulator(server), max_rounds=1)
        data = yaml.safe_load(spec_path.read_text())
        data["task"]["description"] = HOSTILE
        spec_path.write_text(yaml.safe_dump(data))
        run_dir, _ = run_spec(spec_path, folder / "run")
    server.stop()
    yield run_dir


def distill(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "DISTILL_QUIET": "1"},
    )


def stored(run_dir: Path) -> dict[str, Any]:
    store = RunStore(run_dir / "run.sqlite")
    try:
        return {
            "train": store.examples("train", kept=True),
            "dropped": store.examples("train", kept=False),
            **{split: store.examples(split) for split in ("feedback", "heldback", "test")},
            "calls": {r["id"]: dict(r) for r in store.query("SELECT * FROM teacher_calls")},
        }
    finally:
        store.close()


def test_jsonl_export_has_every_example_with_its_provenance(finished_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "data"
    proc = distill("export", str(finished_run), "--data", str(out))
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in (out / "examples.jsonl").read_text().splitlines()]
    db = stored(finished_run)
    assert db["dropped"], "the fixture's filters dropped something"
    for split in ("train", "dropped", "feedback", "heldback", "test"):
        assert sorted(r["id"] for r in records if r["split"] == split) == sorted(e.id for e in db[split]), split
    assert len(records) == sum(len(db[s]) for s in ("train", "dropped", "feedback", "heldback", "test"))
    assert f"train {len(db['train'])}, dropped {len(db['dropped'])}" in proc.stdout

    generated = [r for r in records if r["origin"] == "generated"]
    assert generated
    for r in generated:
        call = db["calls"][r["teacher_call_id"]]
        assert (r["prompt_id"], r["prompt_version"], r["teacher_model"]) == (
            call["prompt_id"],
            call["prompt_version"],
            "sim-teacher",
        )
        assert r["verdicts"] and all(set(v) == {"filter", "kept", "reason"} for v in r["verdicts"])
    for r in (r for r in records if r["split"] == "dropped"):
        assert r["kept"] is False and r["dropped_by"]
        assert all(v["reason"] for v in r["verdicts"] if not v["kept"])
    seeds = [r for r in records if r["origin"] == "real" and r["split"] in ("train", "dropped")]
    assert len(seeds) == 6 and all(r["teacher_call_id"] is None and r["round"] == 0 for r in seeds)


def test_the_card_counts_by_label_and_filter_and_escapes_user_text(finished_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "data"
    assert distill("export", str(finished_run), "--data", str(out)).returncode == 0
    card = (out / "README.md").read_text()
    db = stored(finished_run)
    splits = ("train", "dropped", "feedback", "heldback", "test")
    label = LABELS[0]
    counts = [sum(e.label == label for e in db[s]) for s in splits]
    assert f"| {md_cell(label)} | " + " | ".join(map(str, [*counts, sum(counts)])) + " |" in card
    verdicts = [v for line in (out / "examples.jsonl").open() for v in json.loads(line)["verdicts"]]
    kept = Counter(v["filter"] for v in verdicts if v["kept"])
    dropped = Counter(v["filter"] for v in verdicts if not v["kept"])
    assert dropped
    for name in set(kept) | set(dropped):
        assert f"| {md_cell(name)} | {kept[name]} | {dropped[name]} | " in card
    assert "| round | train | dropped | total |\n|---|---|---|---|\n| 0 | " in card
    assert card.startswith('---\nlicense: "other"') and "task_categories" in card
    assert "provider's terms of use" in card and md_text("sim-teacher") in card
    assert "<script>" not in card and "&lt;script&gt;alert(1)&lt;/script&gt;" in card and "\\*bank\\*" in card


def test_hf_export_loads_back_with_its_splits(finished_run: Path, tmp_path: Path) -> None:
    from datasets import load_from_disk

    out = tmp_path / "hf"
    proc = distill("export", str(finished_run), "--data", str(out), "--format", "hf")
    assert proc.returncode == 0, proc.stderr
    data = load_from_disk(str(out))
    db = stored(finished_run)
    assert set(data) == {"train", "dropped", "feedback", "heldback", "test"}
    for split in data:
        assert data[split].num_rows == len(db[split])
    assert sorted(data["train"]["text"]) == sorted(e.text for e in db["train"])
    assert all(row["dropped_by"] for row in data["dropped"])
    assert (out / "README.md").is_file()


def test_a_non_empty_folder_is_refused_without_force(finished_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    proc = distill("export", str(finished_run), "--data", str(out))
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and errors == [
        f"error: --data: {out} is not empty — choose a new folder, or add --force to replace what is there"
    ]
    assert (out / "mine.txt").read_text() == "keep me"
    assert distill("export", str(finished_run), "--data", str(out), "--force").returncode == 0
    assert not (out / "mine.txt").exists() and (out / "examples.jsonl").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]  # no temporary folder left behind
    proc = distill("export", str(finished_run), "--data", str(finished_run), "--force")
    assert proc.returncode == 2 and "holds the run itself" in proc.stderr and (finished_run / "run.sqlite").is_file()


def test_export_reads_while_a_run_holds_the_lock(finished_run: Path, tmp_path: Path) -> None:
    with run_lock(finished_run):
        proc = distill("export", str(finished_run), "--data", str(tmp_path / "data"))
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--format", "parquet"], "error: --format: 'parquet' is not a format — use jsonl or hf"),
        ([], "is not a distill run (no run.sqlite)"),
    ],
)
def test_bad_arguments_are_one_line_exit_2(tmp_path: Path, finished_run: Path, args: list[str], expected: str) -> None:
    run_dir = finished_run if args else tmp_path
    proc = distill("export", str(run_dir), "--data", str(tmp_path / "out"), *args)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1 and expected in errors[0], proc.stderr
    assert not (tmp_path / "out").exists()
