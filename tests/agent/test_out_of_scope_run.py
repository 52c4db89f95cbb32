"""A tiny run with task.out_of_scope, deploy and an unlabeled pool, end to end over the real simulator.

The tiny task's pool holds three Banking77 intents; the task has two in scope, so exchange_rate
messages are what out of scope means: the test file labels them out_of_scope, the simulator answers
out_of_scope for them and serves them when asked for out-of-scope examples.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from agent.cli_model import register
from agent.store import RunStore
from tests.run_helpers import FIXTURES, SECRET, run_spec, served_simulator
from trainers.calibration import softmax
from trainers.encoder import EncoderClassifier
from trainers.evaluate import out_of_scope_metrics
from trainers.rejection import Rejection, choose_rejection

OOS = "out_of_scope"
IN_SCOPE = ["card_arrival", "lost_or_stolen_card"]
OUTSIDE = "exchange_rate"


def stored(run_dir: Path, split: str) -> list[Any]:
    store = RunStore(run_dir / "run.sqlite")
    try:
        return store.examples(split)
    finally:
        store.close()


def relabel(source: Path, target: Path, keep_outside: bool) -> None:
    rows = [json.loads(text) for text in source.read_text().splitlines() if text.strip()]
    out = [{**r, "label": OOS} if r["label"] == OUTSIDE else r for r in rows if keep_outside or r["label"] != OUTSIDE]
    target.write_text("".join(json.dumps(r) + "\n" for r in out))


def oos_spec(tmp_path: Path, tiny_model: str, teacher: dict[str, Any]) -> Path:
    shutil.copy(FIXTURES / "pool.jsonl", tmp_path / "pool.jsonl")  # simulator pool and unlabeled traffic
    relabel(FIXTURES / "seed.jsonl", tmp_path / "seed.jsonl", keep_outside=False)
    relabel(FIXTURES / "test.jsonl", tmp_path / "test.jsonl", keep_outside=True)
    spec = {
        "name": "tiny-oos",
        "task": {
            "description": "Messages to a bank.",
            "labels": [{"name": n, "description": n} for n in IN_SCOPE],
            "out_of_scope": True,
            "seed_examples": "seed.jsonl",
            "test": "test.jsonl",
            "unlabeled": "pool.jsonl",
        },
        "teacher": teacher,
        "student": {"base_model": tiny_model, "epochs": 3, "min_steps": 20, "batch_size": 8, "lr": 1e-3, "seed": 0},
        "loop": {
            "max_rounds": 1,
            "seed_per_label": 6,
            "validation_per_label": 6,  # no validation file: the teacher writes one, out_of_scope included
            "examples_per_round": 9,
            "active_per_round": 12,
            "patience": 5,
            "batch_per_call": 6,
            "label_audit": False,
        },
        "filters": {"near_duplicate_threshold": 0.9999, "leakage_threshold": 0.9999},
        "budget": {"max_usd": 5.0},
        "deploy": {"target_accuracy": 0.5},
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, tiny_model: str) -> Path:
    from simulator import SimulatorConfig, SimulatorServer

    tmp_path = tmp_path_factory.mktemp("oos")
    server = SimulatorServer(SimulatorConfig(api_key=SECRET), FIXTURES / "pool.jsonl").start()
    patch = pytest.MonkeyPatch()
    patch.setenv("DISTILL_TEST_KEY", SECRET)
    patch.setenv("DISTILL_QUIET", "1")
    try:
        run_dir, _ = run_spec(oos_spec(tmp_path, tiny_model, served_simulator(server)), tmp_path / "run")
    finally:
        server.stop()
        patch.undo()
    return run_dir


def test_the_teacher_writes_and_answers_out_of_scope(finished: Path) -> None:
    pool = {json.loads(t)["text"]: json.loads(t)["label"] for t in (FIXTURES / "pool.jsonl").read_text().splitlines()}
    train, heldback = stored(finished, "train"), stored(finished, "heldback")
    generated = [e for e in train if e.label == OOS and e.origin == "generated"]
    assert generated and all(pool[e.text] == OUTSIDE for e in generated)  # near-domain: other intents' messages
    assert any(e.label == OOS for e in heldback)  # the teacher-built validation has the outcome too
    active = [e for e in train if e.origin == "active"]
    outside = [e for e in active if pool[e.text] == OUTSIDE]
    assert outside and all(e.label == OOS for e in outside)  # labeled out_of_scope by the teacher
    assert all(e.label == pool[e.text] for e in active if pool[e.text] != OUTSIDE)


def test_each_split_stores_the_out_of_scope_metrics_of_what_the_model_answers(finished: Path) -> None:
    round_dir = finished / "models" / "round-01"
    store = RunStore(finished / "run.sqlite")
    try:
        for split in ("heldback", "test"):
            data = json.loads((round_dir / f"eval_{split}.json").read_text())
            gold = [item["gold"] for item in data["items"]]
            expected = out_of_scope_metrics(gold, [item["predicted"] for item in data["items"]], OOS)
            assert set(expected) == {"in_scope_accuracy", "oos_recall", "oos_precision"}
            for name, value in expected.items():
                assert store.metric(1, split, name) == pytest.approx(value) and data[name] == pytest.approx(value)
            assert data["accuracy"] == pytest.approx(sum(i["correct"] for i in data["items"]) / len(gold))
    finally:
        store.close()
    assert sum(i["gold"] == OOS for i in data["items"]) == 10  # test: the file's exchange_rate lines


def test_the_rejection_rule_is_chosen_on_heldback_only(finished: Path) -> None:
    round_dir = finished / "models" / "round-01"
    student = EncoderClassifier.load(round_dir)
    heldback = stored(finished, "heldback")
    proba = softmax(student.predict_logits([e.text for e in heldback]), student.temperature)
    expected = choose_rejection(proba, [student.labels.index(e.label) for e in heldback], student.labels, OOS)
    assert student.rejection == expected and expected.n == len(heldback) and expected.n_out_of_scope > 0
    recorded = json.loads((round_dir / "eval_test.json").read_text())["rejection"]
    assert Rejection.from_dict(recorded) == expected


def test_distill_predict_answers_out_of_scope_with_the_exported_rule(finished: Path) -> None:
    model = finished / "model"
    student = EncoderClassifier.load(model)
    assert student.rejection is not None and student.labels == [*IN_SCOPE, OOS]
    texts = [json.loads(t)["text"] for t in (finished.parent / "test.jsonl").read_text().splitlines()]
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["predict", str(model), *texts, "--json", "--threshold", "0"])
    assert result.exit_code == 0, result.output
    answered = [json.loads(text)["label"] for text in result.stdout.splitlines()]
    assert answered == [label for label, _ in student.predict(texts)] and OOS in answered


def test_distill_train_retrains_with_out_of_scope_and_its_rule(finished: Path, tmp_path: Path) -> None:
    from agent.retrain import retrain

    done = retrain(finished, out=tmp_path / "again")
    assert json.loads((done.model_dir / "labels.json").read_text())[-1] == "out_of_scope"
    rejection = json.loads((done.model_dir / "distill_student.json").read_text())["rejection"]
    assert rejection["label"] == "out_of_scope" and rejection["mode"] in ("class", "confidence", "both")
