"""`distill train`: another student on a finished run's kept data, with no teacher call.

One real run of the tiny task against the simulator over loopback; the simulator keeps serving while
`distill train` runs in a subprocess, so its request counter proves that nothing was sent.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.retrain import retrain
from agent.store import RunStatus, RunStore
from simulator import SimulatorConfig, SimulatorServer
from tests.conftest import TINY_POOL
from tests.run_helpers import LABELS, run_spec, served_simulator, write_spec


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, tiny_model: str) -> Iterator[tuple[Path, SimulatorServer]]:
    """A finished one-round run, and the simulator that taught it (still serving)."""
    folder = tmp_path_factory.mktemp("retrain")
    server = SimulatorServer(SimulatorConfig(), TINY_POOL).start()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DISTILL_TEST_KEY", "k")
        patch.setenv("DISTILL_QUIET", "1")
        run_dir, _ = run_spec(write_spec(folder, tiny_model, served_simulator(server), max_rounds=1), folder / "run")
        yield run_dir, server
    server.stop()


def distill(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "DISTILL_QUIET": "1", "DISTILL_TEST_KEY": "k"},
    )


def journal(run_dir: Path) -> list[dict[str, object]]:
    store = RunStore(run_dir / "run.sqlite")
    try:
        return [dict(r) for r in store.query("SELECT * FROM teacher_calls ORDER BY id")]
    finally:
        store.close()


def test_train_makes_a_working_model_with_no_teacher_call(served: tuple[Path, SimulatorServer], tmp_path: Path) -> None:
    run_dir, server = served
    before, sent = journal(run_dir), server.stats()["requests"]
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("student:\n  epochs: 2\n  min_steps: 10\n  seed: 7\n  head_init: random\n")
    out = tmp_path / "other"
    proc = distill("train", str(run_dir), "--student", str(recipe), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert journal(run_dir) == before and server.stats()["requests"] == sent  # not one teacher call

    meta = json.loads((out / "distill_student.json").read_text())
    run_meta = json.loads((run_dir / "model" / "distill_student.json").read_text())
    config = meta["config"]
    assert (config["epochs"], config["min_steps"], config["seed"], config["head_init"]) == (2, 10, 7, "random")
    assert config["base_model"] == run_meta["config"]["base_model"] and config["lr"] == run_meta["config"]["lr"]
    store = RunStore(run_dir / "run.sqlite")
    kept = len(store.examples("train", kept=True))
    store.close()
    card = meta["card"]
    assert card["train_examples"] == kept and card["retrained_from"]["teacher_calls_made"] == 0
    for split in ("heldback", "test"):
        evaluation = json.loads((out / f"eval_{split}.json").read_text())
        assert card["metrics"][split]["macro_f1"] == evaluation["macro_f1"]
        assert f"{split} macro-F1: {evaluation['macro_f1']:.3f}" in proc.stdout
    assert json.loads((out / "labels.json").read_text()) == LABELS and (out / "README.md").is_file()
    # Calibrated like the run's rounds: the temperature is the held-back fit of the new student's logits.
    from trainers.calibration import fit_temperature
    from trainers.encoder import EncoderClassifier

    store = RunStore(run_dir / "run.sqlite")
    heldback = store.examples("heldback")
    store.close()
    student = EncoderClassifier.load(out)
    logits = student.predict_logits([r.text for r in heldback])
    assert meta["temperature"] == student.temperature
    assert student.temperature == fit_temperature(logits, [LABELS.index(r.label) for r in heldback])

    predicted = distill("predict", str(out), "--json", "my card never arrived")
    assert predicted.returncode == 0, predicted.stderr
    assert json.loads(predicted.stdout.splitlines()[0])["label"] in LABELS


def test_another_base_model_and_the_default_folder(
    served: tuple[Path, SimulatorServer], tiny_model: str, tmp_path: Path
) -> None:
    run_dir, server = served
    sent = server.stats()["requests"]
    copy = tmp_path / "encoder"
    copy.symlink_to(Path(tiny_model), target_is_directory=True)
    result = retrain(run_dir, base_model=str(copy))
    assert result.model_dir.parent == run_dir / "students" and result.model_dir.name.startswith("encoder-")
    saved = json.loads((result.model_dir / "distill_student.json").read_text())["config"]
    assert saved["base_model"] == str(copy.resolve()) and set(result.metrics) == {"feedback", "heldback", "test"}
    card = json.loads((result.model_dir / "distill_student.json").read_text())["card"]
    readme = (result.model_dir / "README.md").read_text()
    assert card["base_model"] == Path(tiny_model).name and all(
        str(folder) not in json.dumps(card) + readme for folder in (tmp_path, Path(tiny_model).parent)
    )
    assert server.stats()["requests"] == sent


def test_bad_input_is_one_line_exit_2_and_writes_nothing(served: tuple[Path, SimulatorServer], tmp_path: Path) -> None:
    run_dir, _ = served
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: 0\nlearning_rate: 1\n")
    cases = [
        (["--student", str(bad)], f"--student: {bad}: epochs: Input should be greater than or equal to 1"),
        (["--base-model", str(tmp_path / "none")], f"--base-model: {tmp_path}/none is not a folder"),
    ]
    out = tmp_path / "out"
    errors: list[list[str]] = []
    for args, expected in cases:
        proc = distill("train", str(run_dir), *args, "--out", str(out))
        errors.append([line for line in proc.stderr.splitlines() if line.startswith("error:")])
        assert proc.returncode == 2 and errors[-1] and expected in errors[-1][0], proc.stderr
        assert not out.exists()
    assert len(errors[0]) == 2 and f"--student: {bad}: learning_rate: Extra inputs are not permitted" in errors[0][1]

    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "x").write_text("mine")
    proc = distill("train", str(run_dir), "--out", str(taken))
    assert proc.returncode == 2 and "--out: " in proc.stderr and (taken / "x").read_text() == "mine"


def test_an_unfinished_run_is_refused(served: tuple[Path, SimulatorServer], tmp_path: Path) -> None:
    run_dir, _ = served
    store = RunStore(run_dir / "run.sqlite")
    store.set_run_status(RunStatus.INTERRUPTED)
    store.close()
    try:
        proc = distill("train", str(run_dir), "--out", str(tmp_path / "out"))
    finally:
        store = RunStore(run_dir / "run.sqlite")
        store.set_run_status(RunStatus.FINISHED)
        store.close()
    assert proc.returncode == 2
    assert f"RUN_DIR: {run_dir} is interrupted, not finished — `distill resume {run_dir}` finishes it first" in (
        proc.stderr
    )


def test_a_kill_mid_training_leaves_no_model_folder_and_a_rerun_finishes(
    served: tuple[Path, SimulatorServer], tmp_path: Path
) -> None:
    run_dir, server = served
    before, sent = journal(run_dir), server.stats()["requests"]
    recipe = tmp_path / "long.yaml"
    recipe.write_text("min_steps: 2000\n")  # long enough to be killed while training
    out = tmp_path / "model"
    args = [sys.executable, "-m", "agent", "train", str(run_dir), "--student", str(recipe), "--out", str(out)]
    proc = subprocess.Popen(args, env={**os.environ, "DISTILL_QUIET": "1"}, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".model.*")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL and not out.exists()  # never half a model under its name
    recipe.write_text("min_steps: 10\n")
    assert distill("train", str(run_dir), "--student", str(recipe), "--out", str(out)).returncode == 0
    assert (out / "labels.json").is_file() and journal(run_dir) == before and server.stats()["requests"] == sent
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.yaml", "model"]  # the killed run's leftovers cleared
