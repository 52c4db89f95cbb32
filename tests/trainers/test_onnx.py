"""The int8 ONNX graph of a (tiny, real) student gives PyTorch's labels, and runs without torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.trainers.test_export import tiny_task, trained_student
from trainers.encoder import EncoderClassifier
from trainers.onnx_model import (
    MODEL_FILE,
    OnnxClassifier,
    check_agreement,
    export_int8,
    is_onnx_folder,
    onnx_folder,
)

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def exported(tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[EncoderClassifier, Path]:
    student = trained_student(tiny_model)
    return student, export_int8(student, tmp_path_factory.mktemp("onnx") / "onnx")


def test_int8_graph_gives_the_pytorch_labels(exported: tuple[EncoderClassifier, Path]) -> None:
    student, folder = exported
    texts, _ = tiny_task("test")
    onnx = OnnxClassifier(folder)
    assert onnx.labels == student.labels
    torch_proba, onnx_proba = student.predict_proba(texts), onnx.predict_proba(texts)
    np.testing.assert_allclose(onnx_proba, torch_proba, atol=0.05)  # int8 moves probabilities ~0.02 here
    top2 = np.sort(torch_proba, axis=1)[:, -2:]
    decided = top2[:, 1] - top2[:, 0] > 0.1  # what int8 rounding cannot flip; near-ties it may
    assert decided.sum() >= len(texts) // 2  # the comparison below must cover most texts
    np.testing.assert_array_equal(onnx_proba.argmax(axis=1)[decided], torch_proba.argmax(axis=1)[decided])
    result = check_agreement(student, onnx, texts, "tiny test split")
    assert result.texts == len(texts) and result.source == "tiny test split" and result.batch_size == 64
    assert result.agreement == 1 - result.disagreements / len(texts) >= 0.8
    assert result.max_probability_diff == pytest.approx(np.abs(onnx_proba - torch_proba).max())


def test_the_graph_is_int8_and_batch_and_length_are_dynamic(exported: tuple[EncoderClassifier, Path]) -> None:
    import onnx

    _, folder = exported
    graph = onnx.load(str(folder / MODEL_FILE)).graph
    ops = {node.op_type for node in graph.node}
    assert {"MatMulInteger", "DynamicQuantizeLinear"} <= ops  # weights quantized, activations at run time
    for tensor in graph.input:
        dims = tensor.type.tensor_type.shape.dim
        assert [d.dim_param for d in dims] == [f"{tensor.name}_batch", f"{tensor.name}_tokens"]
    alone, batched = OnnxClassifier(folder, batch_size=1), OnnxClassifier(folder, batch_size=64)
    texts, _ = tiny_task("test")
    # Activations are quantized with one scale per batch, so neighbours move probabilities a little.
    np.testing.assert_allclose(alone.predict_proba(texts), batched.predict_proba(texts), atol=0.05)
    one = alone
    assert one.predict_proba([]).shape == (0, len(one.labels))


def test_the_onnx_folder_runs_in_a_process_without_torch(exported: tuple[EncoderClassifier, Path]) -> None:
    _, folder = exported
    code = (
        "import sys; from trainers.onnx_model import OnnxClassifier; "
        f"print(OnnxClassifier({str(folder)!r}).predict(['my card is lost'])[0][0]); "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() in json.loads((folder / "labels.json").read_text())


def test_folder_lookup(exported: tuple[EncoderClassifier, Path], tmp_path: Path) -> None:
    _, folder = exported
    assert is_onnx_folder(folder) and onnx_folder(folder) == folder
    assert onnx_folder(tmp_path) == tmp_path / "onnx" and not is_onnx_folder(tmp_path)
    with pytest.raises(FileNotFoundError, match="distill export-onnx"):
        OnnxClassifier(tmp_path)
