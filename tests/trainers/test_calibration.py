"""Temperature scaling: the fitter itself, where it is fitted (held-back, never test), and how it travels."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from agent.classify.fit import evaluate_round
from tests.trainers.test_export import tiny_task, trained_student
from trainers import calibration
from trainers.calibration import fit_temperature, nll, softmax
from trainers.encoder import STUDENT_FILE, EncoderClassifier


def overconfident(scale: float, n: int = 3000, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from known probabilities, and logits = ``scale`` × their true log-probabilities."""
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(n, k)) * 1.5
    log_p = raw - np.log(np.exp(raw).sum(axis=1, keepdims=True))
    targets = np.array([rng.choice(k, p=np.exp(row)) for row in log_p])
    return scale * log_p, targets


@pytest.mark.parametrize("scale", [3.0, 0.5])
def test_fit_recovers_the_known_temperature_and_lowers_nll(scale: float) -> None:
    logits, targets = overconfident(scale)
    temperature = fit_temperature(logits, targets)
    assert temperature == pytest.approx(scale, rel=0.1)
    assert nll(logits, targets, temperature) < nll(logits, targets) - 0.05
    assert fit_temperature(logits, targets) == temperature  # deterministic


def test_scaling_keeps_the_argmax_and_an_empty_split_means_no_scaling() -> None:
    logits, _ = overconfident(3.0, n=50)
    assert (softmax(logits, 3.0).argmax(axis=1) == logits.argmax(axis=1)).all()
    assert fit_temperature(np.zeros((0, 5)), np.zeros(0, dtype=int)) == 1.0


# -- in the round loop's evaluate step --------------------------------------------------------------


@dataclass
class FakeStore:
    """The three store calls ``evaluate_round`` makes, over the tiny task's splits."""

    splits: dict[str, list[SimpleNamespace]]
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)

    def examples(self, split: str) -> list[SimpleNamespace]:
        return self.splits.get(split, [])

    def record_metrics(self, round: int, split: str, rows: list[tuple[str, str | None, float]]) -> None:
        self.metrics[split] = {name: value for name, label, value in rows if label is None}

    def set_round_status(self, round: int, status: object) -> None:
        pass


def rows(texts: list[str], labels: list[str]) -> list[SimpleNamespace]:
    return [SimpleNamespace(text=t, label=y) for t, y in zip(texts, labels, strict=True)]


def fake_context(model_root: Path, test_labels: list[str] | None = None) -> Any:
    val_texts, val_labels = tiny_task("validation")
    test_texts, gold = tiny_task("test")
    splits = {
        "feedback": rows(val_texts[:8], val_labels[:8]),
        "heldback": rows(val_texts[8:], val_labels[8:]),
        "test": rows(test_texts, test_labels or gold),
    }
    labels = sorted(set(tiny_task("pool")[1]))
    spec = SimpleNamespace(task=SimpleNamespace(out_of_scope=False))  # no out-of-scope rule to choose
    return SimpleNamespace(
        labels=labels, spec=spec, store=FakeStore(splits), model_dir=lambda r: model_root / f"round-{r:02d}"
    )


@pytest.fixture(scope="module")
def saved_round(tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("calibration")
    trained_student(tiny_model).save(root / "round-00")
    return root


def evaluated_copy(saved_round: Path, tmp_path: Path, test_labels: list[str] | None = None) -> Any:
    shutil.copytree(saved_round / "round-00", tmp_path / "round-00")
    ctx = fake_context(tmp_path, test_labels)
    evaluate_round(ctx, 0)
    return ctx


def test_temperature_is_fitted_on_heldback_only(
    saved_round: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[np.ndarray] = []
    real_fit = calibration.fit_temperature

    def recording_fit(logits: Any, targets: Any) -> float:
        seen.append(np.asarray(logits))
        return real_fit(logits, targets)

    monkeypatch.setattr(calibration, "fit_temperature", recording_fit)
    ctx = evaluated_copy(saved_round, tmp_path / "a")
    student = EncoderClassifier.load(tmp_path / "a" / "round-00")
    heldback = student.predict_logits([r.text for r in ctx.store.examples("heldback")])
    assert len(seen) == 1 and np.allclose(seen[0], heldback)

    # The test split's gold labels turned upside down: the same temperature, other test metrics.
    flipped = [ctx.labels[(ctx.labels.index(y) + 1) % len(ctx.labels)] for y in tiny_task("test")[1]]
    other = evaluated_copy(saved_round, tmp_path / "b", test_labels=flipped)
    temperature = ctx.store.metrics["heldback"]["temperature"]
    assert other.store.metrics["test"]["temperature"] == temperature
    assert other.store.metrics["test"]["accuracy"] != ctx.store.metrics["test"]["accuracy"]
    assert student.temperature == temperature  # saved in the round's folder


def test_evaluate_records_ece_before_and_after_per_split(saved_round: Path, tmp_path: Path) -> None:
    ctx = evaluated_copy(saved_round, tmp_path)
    for split in ("feedback", "heldback", "test"):
        metrics = ctx.store.metrics[split]
        assert {"ece", "ece_uncalibrated", "temperature"} <= set(metrics)
        stored = json.loads((tmp_path / "round-00" / f"eval_{split}.json").read_text())
        assert stored["ece"] == metrics["ece"] and stored["ece_uncalibrated"] == metrics["ece_uncalibrated"]
    student = EncoderClassifier.load(tmp_path / "round-00")
    heldback = ctx.store.examples("heldback")
    targets = [ctx.labels.index(r.label) for r in heldback]
    logits = student.predict_logits([r.text for r in heldback])
    assert nll(logits, targets, student.temperature) <= nll(logits, targets)


# -- saved with the model ----------------------------------------------------------------------------


def test_a_reloaded_model_predicts_with_its_temperature(saved_round: Path, tmp_path: Path) -> None:
    student = EncoderClassifier.load(saved_round / "round-00")
    texts = tiny_task("test")[0]
    logits = student.predict_logits(texts)
    student.temperature = 2.5
    folder = student.save(tmp_path / "model")
    again = EncoderClassifier.load(folder)  # as agent/classify/export.py does: load the round, save again
    assert again.save(tmp_path / "exported") and EncoderClassifier.load(tmp_path / "exported").temperature == 2.5
    assert np.allclose(again.predict_proba(texts), softmax(logits, 2.5))
    assert again.predict(texts)[0][1] == pytest.approx(softmax(logits, 2.5)[0].max())


def test_a_folder_without_a_temperature_predicts_as_before(saved_round: Path, tmp_path: Path) -> None:
    folder = Path(shutil.copytree(saved_round / "round-00", tmp_path / "old"))
    meta = json.loads((folder / STUDENT_FILE).read_text())
    meta.pop("temperature")
    (folder / STUDENT_FILE).write_text(json.dumps(meta))
    student = EncoderClassifier.load(folder)
    texts = tiny_task("test")[0]
    assert student.temperature == 1.0
    assert np.allclose(student.predict_proba(texts), softmax(student.predict_logits(texts)))


def test_training_resets_the_temperature(saved_round: Path) -> None:
    student = EncoderClassifier.load(saved_round / "round-00")
    student.temperature = 3.0
    texts, labels = tiny_task("seed")
    student.config = student.config.model_copy(update={"min_steps": 1, "max_steps": 1})
    student.train(texts, labels)
    assert student.temperature == 1.0
