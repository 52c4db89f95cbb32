"""``distill predict`` and ``distill export-onnx`` on a real (tiny) student folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner, Result

from agent.cli_model import register
from tests.trainers.test_export import standard_call, tiny_task, trained_student
from trainers.encoder import EncoderClassifier

app = typer.Typer()
register(app)


def cli(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def predictions(result: Result) -> list[dict[str, object]]:
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.fixture(scope="module")
def model_dir(tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained_student(tiny_model).save(tmp_path_factory.mktemp("predict") / "model", card={"task": "tiny"})


@pytest.fixture(scope="module")
def texts_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("texts") / "texts.jsonl"
    texts, labels = tiny_task("test")
    path.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in zip(texts, labels, strict=True)))
    return path


def test_predict_gives_the_labels_of_the_standard_sentence_transformers_call(model_dir: Path) -> None:
    texts, _ = tiny_task("test")
    ours = predictions(cli("predict", model_dir, *texts, "--json"))
    theirs = standard_call(model_dir, texts)  # a fresh process that never imports distill
    assert [p["label"] for p in ours] == theirs["labels"]
    best = [max(row) for row in theirs["probs"]]  # type: ignore[call-overload]
    assert [p["confidence"] for p in ours] == pytest.approx(best, abs=1e-4)
    assert [p["text"] for p in ours] == texts


def test_export_onnx_records_agreement_and_predict_runs_the_onnx_graph(model_dir: Path, texts_file: Path) -> None:
    # A tiny random student has near-ties that int8 may flip (the next test): 0.8 lets this one test recording.
    done = cli("export-onnx", model_dir, "--texts", texts_file, "--min-agreement", "0.8")
    assert done.exit_code == 0, done.output
    parity = json.loads((model_dir / "onnx" / "parity.json").read_text())
    assert parity["texts"] == 30 and parity["source"] == "file texts.jsonl" and parity["threshold"] == 0.8
    assert parity["batch_size"] == 64
    assert parity["agreement"] >= 0.8 and f"{parity['agreement']:.2%}" in done.stdout
    card = json.loads((model_dir / "distill_student.json").read_text())["card"]
    assert card["task"] == "tiny" and card["onnx_int8"]["agreement_with_pytorch"] == round(parity["agreement"], 4)
    assert "30 texts (file texts.jsonl)" in (model_dir / "README.md").read_text()

    texts, _ = tiny_task("test")
    torch_run = predictions(cli("predict", model_dir, *texts, "--json"))
    onnx_run = predictions(cli("predict", model_dir, *texts, "--json", "--onnx"))
    onnx_folder_run = predictions(cli("predict", model_dir / "onnx", *texts, "--json"))
    assert onnx_run == onnx_folder_run and [set(p) for p in onnx_run] == [set(p) for p in torch_run]
    agree = sum(o["label"] == t["label"] for o, t in zip(onnx_run, torch_run, strict=True)) / len(texts)
    assert agree == parity["agreement"]


def test_export_onnx_refuses_a_graph_that_disagrees(model_dir: Path, texts_file: Path, tmp_path: Path) -> None:
    """A student with two near-identical head rows: int8 rounding decides between them, not the model."""
    folder = Path(shutil.copytree(model_dir, tmp_path / "model"))
    shutil.rmtree(folder / "onnx", ignore_errors=True)
    student = EncoderClassifier.load(folder)
    with torch.no_grad():
        head = student.model.head
        head.weight[1] = head.weight[0] + 1e-4 * torch.randn(
            head.weight.shape[1], generator=torch.Generator().manual_seed(0)
        )
        head.bias[1] = head.bias[0]
    student.save(folder)
    done = cli("export-onnx", folder, "--texts", texts_file)
    assert done.exit_code == 1
    assert "ONNX int8 gives PyTorch's label on" in done.output and "not written" in done.output
    assert not (folder / "onnx").exists() and not (folder / ".onnx-staging").exists()
    assert cli("export-onnx", folder, "--texts", texts_file, "--min-agreement", "0").exit_code == 0
    assert json.loads((folder / "onnx" / "parity.json").read_text())["agreement"] < 0.99


def test_export_onnx_needs_texts_outside_a_run(model_dir: Path) -> None:
    done = cli("export-onnx", model_dir)
    assert done.exit_code == 2 and "--texts FILE" in done.output


def test_predict_on_a_folder_without_onnx_says_how_to_make_one(model_dir: Path, tmp_path: Path) -> None:
    folder = Path(shutil.copytree(model_dir, tmp_path / "model", ignore=shutil.ignore_patterns("onnx")))
    done = cli("predict", folder, "some text", "--onnx")
    assert done.exit_code == 2 and "distill export-onnx" in done.output


def test_predict_answers_with_the_saved_temperature_in_pytorch_and_onnx(
    model_dir: Path, texts_file: Path, tmp_path: Path
) -> None:
    from trainers.calibration import softmax
    from trainers.encoder import save_temperature
    from trainers.onnx_model import OnnxClassifier

    folder = Path(shutil.copytree(model_dir, tmp_path / "model", ignore=shutil.ignore_patterns("onnx")))
    save_temperature(folder, 2.5)
    texts, _ = tiny_task("test")
    logits = EncoderClassifier.load(folder).predict_logits(texts)
    ours = predictions(cli("predict", folder, *texts, "--json"))
    assert [p["confidence"] for p in ours] == pytest.approx(softmax(logits, 2.5).max(axis=1).tolist(), abs=1e-4)

    assert cli("export-onnx", folder, "--texts", texts_file, "--min-agreement", "0").exit_code == 0
    onnx = OnnxClassifier(folder / "onnx")
    assert onnx.temperature == 2.5
    calibrated = onnx.predict_proba(texts)
    onnx.temperature = 1.0
    assert np.allclose(calibrated, softmax(np.log(onnx.predict_proba(texts)), 2.5))
    onnx_run = predictions(cli("predict", folder, *texts, "--json", "--onnx"))
    assert [p["confidence"] for p in onnx_run] == pytest.approx(calibrated.max(axis=1).tolist(), abs=1e-4)


def test_predict_defers_below_the_saved_threshold_and_threshold_overrides(
    model_dir: Path, texts_file: Path, tmp_path: Path
) -> None:
    from agent.classify.export import write_deferral

    texts, _ = tiny_task("test")
    folder = Path(shutil.copytree(model_dir, tmp_path / "model", ignore=shutil.ignore_patterns("onnx")))
    old = predictions(cli("predict", folder, *texts, "--json"))  # an old folder: no threshold, never defers
    assert all(p["label"] != "defer" and "best_label" not in p for p in old)
    confidences = sorted(float(p["confidence"]) for p in old)  # type: ignore[arg-type]
    cut = confidences[len(confidences) // 2]
    write_deferral(folder, {"threshold": cut})

    planted = predictions(cli("predict", folder, *texts, "--json"))
    for before, after in zip(old, planted, strict=True):
        if float(before["confidence"]) < cut:  # type: ignore[arg-type]
            assert after == {**before, "label": "defer", "best_label": before["label"]}
        else:
            assert after == before
    assert sum(p["label"] == "defer" for p in planted) == sum(c < cut for c in confidences) > 0
    assert predictions(cli("predict", folder, *texts, "--json", "--threshold", "0")) == old
    everything = predictions(cli("predict", folder, *texts, "--json", "--threshold", "1"))
    assert all(p["label"] == "defer" for p in everything if float(p["confidence"]) < 1)  # type: ignore[arg-type]
    plain = cli("predict", folder, texts[0], "--threshold", "1").stdout
    assert plain.startswith("defer (")

    # The ONNX folder carries the threshold in its config (it ships alone).
    assert cli("export-onnx", folder, "--texts", texts_file, "--min-agreement", "0").exit_code == 0
    assert json.loads((folder / "onnx" / "onnx_config.json").read_text())["deferral_threshold"] == cut
    onnx_run = predictions(cli("predict", folder / "onnx", *texts, "--json"))
    assert all((p["label"] == "defer") == (float(p["confidence"]) < cut) for p in onnx_run)  # type: ignore[arg-type]
    assert all(
        p["label"] != "defer"
        for p in predictions(cli("predict", folder, *texts, "--onnx", "--json", "--threshold", "0"))
    )
