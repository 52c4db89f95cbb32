"""Classification as generation through the whole product: `student.kind: causal_lm` in a real run (the
simulator over HTTP, a tiny Llama trained with TRL), then `distill predict` on the exported model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from agent.store import RunStore
from tests.run_helpers import FIXTURES, LABELS, run_spec, write_spec
from trainers.tiny_causal import build_tiny_causal_lm


def test_a_causal_lm_student_runs_is_calibrated_exported_and_predicts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISTILL_QUIET", "1")
    texts = [json.loads(line)["text"] for line in (FIXTURES / "pool.jsonl").read_text().splitlines()]
    lm = build_tiny_causal_lm(tmp_path / "lm", texts + LABELS * 5, hidden_size=64)
    spec_path = write_spec(tmp_path, "unused", {"provider": "simulator", "pool": "pool.jsonl"}, max_rounds=1)
    spec = yaml.safe_load(spec_path.read_text())
    spec["student"] = {
        "kind": "causal_lm",
        "base_model": lm,
        "max_steps": 40,
        "batch_size": 8,
        "learning_rate": 3e-3,
        "max_length": 96,
    }
    spec["loop"]["label_audit"] = False
    spec_path.write_text(yaml.safe_dump(spec))

    run_dir, _ = run_spec(spec_path, tmp_path / "run")

    model = run_dir / "model"
    meta = json.loads((model / "distill_student.json").read_text())
    assert meta["format"] == "distill-causal-lm-classifier" and meta["config"]["kind"] == "causal_lm"
    assert meta["temperature"] > 0 and json.loads((model / "labels.json").read_text()) == LABELS
    assert (model / "config.json").is_file() and "distill predict" in (model / "README.md").read_text()
    store = RunStore(run_dir / "run.sqlite")
    for split in ("feedback", "heldback", "test"):
        assert store.metric(1, split, "macro_f1") is not None
    # the exported model carries the temperature fitted on held-back for its round
    assert meta["temperature"] in {store.metric(r.idx, "heldback", "temperature") for r in store.round_rows()}
    evaluation = json.loads((run_dir / "models" / "round-01" / "eval_test.json").read_text())
    assert {item["predicted"] for item in evaluation["items"]} <= set(LABELS)  # constrained to the label set

    done = subprocess.run(
        [sys.executable, "-m", "agent", "predict", str(model), "--json", "my card has not arrived", "what rate?"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert [a["text"] for a in answers] == ["my card has not arrived", "what rate?"]
    for answer in answers:
        assert answer["label"] in [*LABELS, "defer"] and 0 < answer["confidence"] <= 1
    refused = subprocess.run(
        [sys.executable, "-m", "agent", "export-onnx", str(model)], capture_output=True, text=True, timeout=300
    )
    assert refused.returncode == 2 and "causal-LM student" in refused.stderr and "distill serve" in refused.stderr
