"""The saved student is a sentence-transformers model: the standard call gives the student's logits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from trainers.config import EncoderConfig
from trainers.encoder import EncoderClassifier

TINY_TASK = Path(__file__).parents[1] / "fixtures" / "tiny_task"

# Run in a fresh interpreter: the standard call must need no distill code at all.
STANDARD_CALL = """
import json, sys
from sentence_transformers import SentenceTransformer
folder, texts = sys.argv[1], json.loads(sys.argv[2])
model = SentenceTransformer(folder, device="cpu")
logits = model.encode(texts, convert_to_tensor=True)
labels = json.load(open(folder + "/labels.json"))
probs = logits.softmax(-1)
assert not any(m == "agent" or m.startswith(("agent.", "trainers")) for m in sys.modules), "distill code imported"
print(json.dumps({"labels": [labels[i] for i in probs.argmax(-1).tolist()], "probs": probs.tolist()}))
"""


def tiny_task(split: str) -> tuple[list[str], list[str]]:
    rows = [json.loads(line) for line in (TINY_TASK / f"{split}.jsonl").read_text().splitlines()]
    return [r["text"] for r in rows], [r["label"] for r in rows]


def trained_student(base: str) -> EncoderClassifier:
    texts, labels = tiny_task("pool")
    config = EncoderConfig(base_model=base, epochs=1, min_steps=30, lr=3e-3, head_lr=3e-2, batch_size=16, seed=0)
    student = EncoderClassifier.create(sorted(set(labels)), config)
    student.train(texts, labels)
    return student


@pytest.fixture(scope="module")
def saved(tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[EncoderClassifier, Path]:
    student = trained_student(tiny_model)
    return student, student.save(tmp_path_factory.mktemp("export") / "model", card={"task": "tiny"})


def standard_call(folder: Path, texts: list[str]) -> dict[str, list[object]]:
    done = subprocess.run(
        [sys.executable, "-c", STANDARD_CALL, str(folder), json.dumps(texts)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=folder.parent,  # not the repo root: nothing of distill is importable by accident
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, list[object]] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_sentence_transformers_loads_the_folder_and_gives_the_students_probabilities(
    saved: tuple[EncoderClassifier, Path],
) -> None:
    student, folder = saved
    texts, _ = tiny_task("test")
    result = standard_call(folder, texts)
    np.testing.assert_allclose(np.array(result["probs"]), student.predict_proba(texts), atol=1e-5)
    assert result["labels"] == [label for label, _ in student.predict(texts)]


def test_labels_are_plain_json_and_only_safetensors_hold_weights(saved: tuple[EncoderClassifier, Path]) -> None:
    student, folder = saved
    st_config = json.loads((folder / "config_sentence_transformers.json").read_text())
    assert st_config["id2label"] == {str(i): label for i, label in enumerate(student.labels)}
    assert json.loads((folder / "labels.json").read_text()) == student.labels
    weights = sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.suffix in {".safetensors", ".bin", ".pt", ".pkl"}
    )
    assert weights == ["0_Transformer/model.safetensors", "3_Dense/model.safetensors"]
    assert not (folder / "config.json").exists()  # see the next test


def test_transformers_pipeline_refuses_the_folder_instead_of_adding_a_random_head(
    saved: tuple[EncoderClassifier, Path],
) -> None:
    from transformers import pipeline

    with pytest.raises(ValueError, match="Unrecognized model"):
        pipeline("text-classification", model=str(saved[1]))


def test_load_round_trips_the_new_layout(saved: tuple[EncoderClassifier, Path]) -> None:
    student, folder = saved
    texts, _ = tiny_task("validation")
    loaded = EncoderClassifier.load(folder)
    np.testing.assert_array_equal(loaded.predict_proba(texts), student.predict_proba(texts))
    assert loaded.labels == student.labels and loaded.config == student.config


def save_format_1(student: EncoderClassifier, directory: Path) -> None:
    """The folder as distill wrote it before the sentence-transformers layout (format_version 1)."""
    from safetensors.torch import save_file

    directory.mkdir(parents=True)
    student.model.encoder.save_pretrained(str(directory))
    student.tokenizer.save_pretrained(str(directory))
    head = {k: v.detach().contiguous() for k, v in student.model.head.state_dict().items()}
    save_file(head, str(directory / "head.safetensors"))
    (directory / "labels.json").write_text(json.dumps(student.labels))
    meta = {"format": "distill-encoder-classifier", "format_version": 1, "pooling": "mean", "normalize": True}
    meta |= {"config": student.config.model_dump(mode="json"), "card": {}}
    (directory / "distill_student.json").write_text(json.dumps(meta))


def test_folders_of_format_1_still_load(saved: tuple[EncoderClassifier, Path], tmp_path: Path) -> None:
    student, _ = saved
    save_format_1(student, tmp_path / "old")
    texts, _ = tiny_task("validation")
    loaded = EncoderClassifier.load(tmp_path / "old")
    np.testing.assert_array_equal(loaded.predict_proba(texts), student.predict_proba(texts))
    assert loaded.labels == student.labels


def test_a_foreign_sentence_transformers_folder_is_refused_with_the_reason(
    saved: tuple[EncoderClassifier, Path], tmp_path: Path
) -> None:
    import shutil

    folder = Path(shutil.copytree(saved[1], tmp_path / "model"))
    pooling = folder / "1_Pooling" / "config.json"
    pooling.write_text(json.dumps({**json.loads(pooling.read_text()), "pooling_mode_mean_tokens": False}))
    with pytest.raises(ValueError, match=r"not a distill student's pipeline .*Pooling\(mean\)"):
        EncoderClassifier.load(folder)
