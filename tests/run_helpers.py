"""A tiny 3-label classification run for tests: its spec, written beside copies of the fixture data."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

FIXTURES = Path(__file__).parent / "fixtures" / "tiny_task"
LABELS = ["card_arrival", "lost_or_stolen_card", "exchange_rate"]
SECRET = "sk-live-THIS-MUST-NEVER-BE-WRITTEN-0123456789"


def write_spec(tmp_path: Path, tiny_model: str, teacher: dict[str, Any], **loop: Any) -> Path:
    for name in ("seed.jsonl", "validation.jsonl", "test.jsonl", "pool.jsonl"):
        shutil.copy(FIXTURES / name, tmp_path / name)
    spec = {
        "name": "tiny",
        "task": {
            "description": "Messages to a bank.",
            "labels": [{"name": n, "description": n} for n in LABELS],
            "seed_examples": "seed.jsonl",
            "validation": "validation.jsonl",
            "test": "test.jsonl",
        },
        "teacher": teacher,
        "student": {"base_model": tiny_model, "epochs": 3, "min_steps": 20, "batch_size": 8, "lr": 1e-3, "seed": 0},
        "loop": {
            "max_rounds": 2,
            "seed_per_label": 4,
            "examples_per_round": 12,
            "patience": 5,
            "batch_per_call": 4,
            **loop,
        },
        # The tiny random encoder maps every text near every other (cosine ~0.98), so near-duplicate
        # and near-leak checks would drop everything; exact matching still runs at any threshold.
        "filters": {"near_duplicate_threshold": 0.9999, "leakage_threshold": 0.9999},
        "budget": {"max_usd": 5.0},
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def served_simulator(server: Any) -> dict[str, Any]:
    """A teacher section for a simulator already serving at ``server`` (as `distill simulate` would)."""
    return {
        "provider": "simulator",
        "base_url": server.base_url,
        "model": "sim-teacher",
        "api_key_env": "DISTILL_TEST_KEY",
        "price_input_per_mtok": 1.0,
        "price_output_per_mtok": 2.0,
    }


def run_spec(spec_path: Path, run_dir: Path, **options: Any) -> tuple[Path, Any]:
    """`distill run SPEC --run-dir RUN_DIR` in process: the run directory and the kind's result."""
    from agent.lifecycle import start
    from agent.run_kind import RunOptions

    outcome = start(spec_path, run_dir, options=RunOptions(**options))
    return outcome.run_dir, outcome.result
