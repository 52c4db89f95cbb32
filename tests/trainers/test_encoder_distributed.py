"""The encoder student under ``accelerate launch`` with 2 CPU processes (gloo) trains as data parallelism must.

Both runs walk the same seeded global batches (5, 5, 5 and a short 1); each of 2 processes takes its slice
of every batch (3 + 2; the batch of one leaves process 1 a zero-weighted pass), its loss is the slice's sum
over the global batch size × 2, and DDP averages the gradients: the averaged gradient is the global batch's
mean, as in one process. With dropout off (a tiny BERT built with dropout 0) the weights must then equal the
one-process run's up to float summation order. With dropout on, each process draws its own masks, which is
the one way data-parallel training may differ.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from safetensors.torch import load_file

from trainers.encoder import EncoderClassifier
from trainers.export import layout
from trainers.tiny import build_tiny_encoder

ROWS = [
    ("I lost my card yesterday", "lost_card"),
    ("my card never arrived", "card_arrival"),
    ("where is my new card", "card_arrival"),
    ("someone stole my card", "lost_card"),
    ("how do I top up by transfer", "top_up"),
    ("add money to my account please", "top_up"),
    ("the card still has not come", "card_arrival"),
    ("my wallet with the card is gone", "lost_card"),
] * 2
ACCELERATE = Path(sys.executable).with_name("accelerate")
REPO = Path(__file__).resolve().parents[2]


def _launch(command: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def _weights(folder: Path) -> dict[str, Any]:
    return {
        f"{path.relative_to(folder)}:{key}": tensor
        for path in sorted(folder.rglob("*.safetensors"))
        for key, tensor in load_file(str(path)).items()
    }


def test_two_gloo_processes_train_the_same_encoder_as_one(tmp_path: Path) -> None:
    base = build_tiny_encoder(tmp_path / "enc", [t for t, _ in ROWS], dropout=0.0)
    data = tmp_path / "examples.jsonl"
    lines = [{"text": f"{t} #{i}", "label": lab, "split": "train"} for i, (t, lab) in enumerate(ROWS)]
    lines.append({"text": "a test message", "label": "top_up", "split": "test"})  # not read: --split train
    data.write_text("".join(json.dumps(line) + "\n" for line in lines))
    config = tmp_path / "encoder.json"
    config.write_text(
        json.dumps({"base_model": base, "batch_size": 5, "epochs": 1, "min_steps": 0, "seed": 3, "lr": 1e-3})
    )
    module = ["-m", "trainers.encoder_launch", "--data", str(data), "--config", str(config)]
    one = _launch([sys.executable, *module, "--out", str(tmp_path / "one"), "--stats", str(tmp_path / "one.json")])
    assert one.returncode == 0, one.stderr[-3000:]
    launch = [str(ACCELERATE), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1"]
    launch += ["--mixed_precision", "no", "--dynamo_backend", "no"]
    two = _launch([*launch, *module, "--out", str(tmp_path / "two"), "--stats", str(tmp_path / "two.json")])
    assert two.returncode == 0, two.stderr[-3000:]

    stats = [json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "two")]
    assert [s["processes"] for s in stats] == [1, 2]
    assert stats[0]["steps"] == stats[1]["steps"] == 4  # 16 texts in batches of 5: 5, 5, 5, 1
    assert abs(stats[0]["final_loss"] - stats[1]["final_loss"]) < 1e-5  # the logged loss is the global batch's
    a, b = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    assert a.keys() == b.keys() and len(a) > 10
    before = load_file(str(Path(base) / "model.safetensors"))
    after = load_file(str(layout(tmp_path / "one").encoder_dir / "model.safetensors"))
    assert before.keys() == after.keys()
    assert max(float((after[k] - before[k]).abs().max()) for k in before) > 1e-4  # it trained
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-6  # and 2 processes trained the same model
    for folder in ("one", "two"):
        student = EncoderClassifier.load(tmp_path / folder)
        assert student.labels == ["card_arrival", "lost_card", "top_up"]  # the data's labels, sorted


def test_a_bad_line_is_named_and_nothing_is_written(tmp_path: Path) -> None:
    data = tmp_path / "examples.jsonl"
    data.write_text('{"text": "fine", "label": "a"}\n{"text": "no label"}\n')
    done = _launch([sys.executable, "-m", "trainers.encoder_launch", "--data", str(data), "--out", str(tmp_path / "m")])
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f'error: {data}:2: expected {{"text": "...", "label": "..."}} with string values'
    ]
    assert not (tmp_path / "m").exists()
