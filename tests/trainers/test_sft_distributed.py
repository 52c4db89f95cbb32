"""The causal student under ``accelerate launch`` with 2 CPU processes (gloo) trains as data parallelism must.

Two processes with 2 examples each per step see the same global batches of 4, in the same order, as one
process with batch 4, and DDP averages the gradients over the processes (with the Trainer's token averaging
across devices). So the weights must equal the one-process run's up to float summation order, not just be
"close": the test allows 1e-6, while one optimizer step moves weights by ~1e-3.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from safetensors.torch import load_file

from trainers.tiny_causal import build_tiny_causal_lm

PAIRS = [
    ("I lost my card yesterday", "lost_card"),
    ("my card never arrived", "card_arrival"),
    ("where is my new card", "card_arrival"),
    ("someone stole my card", "lost_card"),
] * 4
ACCELERATE = Path(sys.executable).with_name("accelerate")


def _launch(command: list[str], cwd: Path) -> None:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def test_two_gloo_processes_train_the_same_model_as_one(tmp_path: Path) -> None:
    lm = build_tiny_causal_lm(tmp_path / "lm", [t for pair in PAIRS for t in pair], hidden_size=64)
    data = tmp_path / "data.jsonl"
    data.write_text(
        "".join(json.dumps({"prompt": f"{t} #{i}", "completion": lab}) + "\n" for i, (t, lab) in enumerate(PAIRS))
    )
    # fp32: an equality to 1e-6 is a statement about data parallelism, not about bf16 rounding (auto picks
    # bf16 on a CPU with AVX512-BF16, where each process's differently padded slice rounds differently).
    common = {"base_model": lm, "max_steps": 4, "learning_rate": 1e-3, "seed": 3, "bf16": False}
    (tmp_path / "one.json").write_text(json.dumps(common | {"batch_size": 4}))
    (tmp_path / "two.json").write_text(json.dumps(common | {"batch_size": 2}))  # per process: 2 × 2 = 4
    module = ["-m", "trainers.sft_launch", "--data", str(data), "--cache-dir", str(tmp_path)]
    repo = Path(__file__).resolve().parents[2]
    _launch(
        [
            sys.executable,
            *module,
            "--config",
            str(tmp_path / "one.json"),
            "--out",
            str(tmp_path / "one"),
            "--stats",
            str(tmp_path / "one.stats"),
        ],
        repo,
    )
    _launch(
        [
            str(ACCELERATE),
            "launch",
            "--multi_gpu",
            "--num_processes",
            "2",
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            *module,
            "--config",
            str(tmp_path / "two.json"),
            "--out",
            str(tmp_path / "two"),
            "--stats",
            str(tmp_path / "two.stats"),
        ],
        repo,
    )
    one, two = (json.loads((tmp_path / f"{n}.stats").read_text()) for n in ("one", "two"))
    assert (one["processes"], two["processes"]) == (1, 2)
    assert one["steps"] == two["steps"] == 4 and one["epochs"] == two["epochs"] == 1.0
    assert one["train_tokens"] == two["train_tokens"]  # every example read once, by one of the processes
    base = load_file(str(Path(lm) / "model.safetensors"))
    a, b = (load_file(str(tmp_path / n / "model.safetensors")) for n in ("one", "two"))
    assert max(float((a[k] - base[k]).abs().max()) for k in a) > 1e-4  # it trained
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-6  # and 2 processes trained the same model
