"""Task specs: valid ones load; bad ones print one line per problem naming the field, exit 2, write nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.spec import SpecError, load_spec

GOOD: dict[str, Any] = {
    "name": "tiny",
    "task": {"description": "bank messages", "labels": [{"name": "a"}, {"name": "b"}]},
    "teacher": {"provider": "simulator", "pool": "pool.jsonl"},
}


def write(tmp_path: Path, data: object) -> Path:
    (tmp_path / "pool.jsonl").write_text('{"text": "x", "label": "a"}\n')
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_good_spec_resolves_paths_relative_to_the_spec(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, GOOD))
    assert spec.teacher.pool == (tmp_path / "pool.jsonl").resolve()  # type: ignore[union-attr]
    assert spec.task.label_names == ["a", "b"]


def test_every_problem_is_reported_with_its_field_path(tmp_path: Path) -> None:
    bad = {
        **GOOD,
        "loop": {"patiense": 3, "max_rounds": -1},
        "teacher": {"provider": "openai", "model": "m", "base_url": "http://x", "api_key_env": "not a name"},
    }
    with pytest.raises(SpecError) as info:
        load_spec(write(tmp_path, bad))
    text = "\n".join(info.value.problems)
    assert "loop.patiense" in text and "remove it" in text
    assert "loop.max_rounds" in text
    assert "teacher.api_key_env" in text
    assert len(info.value.problems) == 3


def test_missing_files_and_duplicate_labels(tmp_path: Path) -> None:
    bad = {**GOOD, "task": {**GOOD["task"], "validation": "nope.jsonl"}}
    with pytest.raises(SpecError, match=r"task\.validation: file nope\.jsonl not found"):
        load_spec(write(tmp_path, bad))
    dup = {**GOOD, "task": {"description": "d", "labels": [{"name": "a"}, {"name": "a"}]}}
    with pytest.raises(SpecError, match="duplicate label names"):
        load_spec(write(tmp_path, dup))


def test_cli_bad_spec_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    spec = write(tmp_path, {**GOOD, "budget": {"max_usd": -5, "max_dollars": 3}})
    run_dir = tmp_path / "run"
    env = {**os.environ, "DISTILL_QUIET": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "agent", "run", str(spec), "--run-dir", str(run_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 2
    assert any("budget.max_usd" in line for line in lines)
    assert any("budget.max_dollars" in line for line in lines)
    assert not run_dir.exists()


def test_openai_teacher_needs_its_key_variable(tmp_path: Path) -> None:
    spec = {
        **GOOD,
        "teacher": {
            "provider": "openai",
            "model": "m",
            "base_url": "http://127.0.0.1:9/v1",
            "api_key_env": "DISTILL_TEST_SURELY_UNSET",
        },
    }
    env = {k: v for k, v in os.environ.items() if k != "DISTILL_TEST_SURELY_UNSET"}
    proc = subprocess.run(
        [sys.executable, "-m", "agent", "run", str(write(tmp_path, spec)), "--run-dir", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "DISTILL_TEST_SURELY_UNSET is not set" in proc.stderr
    assert not (tmp_path / "r").exists()


# -- student: the trainer's own config --------------------------------------------------------------------

# A value other than the default for every setting of the encoder student.
EVERY_STUDENT_SETTING = {
    "kind": "encoder",
    "base_model": "/models/encoder",
    "max_length": 128,
    "epochs": 3,
    "min_steps": 10,
    "max_steps": 500,
    "lr": 1e-4,
    "head_lr": 1e-2,
    "batch_size": 32,
    "seed": 7,
    "warm_start": True,
    "head_init": "random",
    "head_init_c": 1.0,
    "label_smoothing": 0.0,
    "weight_decay": 0.0,
    "warmup_ratio": 0.2,
    "freeze_embeddings": False,
}


def test_every_trainer_setting_can_be_set_from_a_spec(tmp_path: Path) -> None:
    from trainers.config import EncoderConfig

    assert set(EVERY_STUDENT_SETTING) == set(EncoderConfig.model_fields)  # the table above covers them all
    spec = load_spec(write(tmp_path, {**GOOD, "student": EVERY_STUDENT_SETTING}))
    assert spec.student == EncoderConfig(**EVERY_STUDENT_SETTING)
    assert spec.student.model_dump() == EVERY_STUDENT_SETTING
    assert load_spec(write(tmp_path, GOOD)).student == EncoderConfig()  # unset: the measured recipe


@pytest.mark.parametrize(
    ("student", "problem"),
    [
        (
            {"learning_rate": 0.1},
            "student.learning_rate: Extra inputs are not permitted — remove it, or check its "
            "spelling against the documented keys",
        ),
        ({"max_steps": 0}, "student.max_steps: Input should be greater than or equal to 1 — fix the value"),
        (
            {"head_init": "zeros"},
            "student.head_init: Input should be 'logistic' or 'random' — use one of the values listed",
        ),
        ({"label_smoothing": 1.0}, "student.label_smoothing: Input should be less than 1 — fix the value"),
        ({"kind": "bert"}, "student.kind: 'bert' is not a student kind — use encoder or causal_lm"),
        (
            {"kind": "causal_lm", "head_lr": 0.1},
            "student.head_lr: Extra inputs are not permitted — remove it, or check its spelling against the "
            "documented keys",
        ),
    ],
)
def test_student_problems_name_the_field(tmp_path: Path, student: dict[str, object], problem: str) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(write(tmp_path, {**GOOD, "student": student}))
    assert info.value.problems == [problem]


def test_an_adaptive_budget_split_needs_both_sources(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(write(tmp_path, {**GOOD, "loop": {"budget_split": "adaptive"}}))
    assert info.value.problems == [
        "loop.budget_split: adaptive splits the budget between generation and active labeling, so it needs "
        "loop.examples_per_round > 0 and loop.active_per_round > 0 with task.unlabeled — set both, "
        "or budget_split: fixed"
    ]


def test_a_causal_lm_student_is_chosen_by_kind(tmp_path: Path) -> None:
    from trainers.causal_config import CausalLMConfig

    student = {"kind": "causal_lm", "base_model": "smollm2", "lora": True, "lora_r": 8, "max_steps": 50}
    spec = load_spec(write(tmp_path, {**GOOD, "student": student}))
    assert spec.student == CausalLMConfig(base_model="smollm2", lora=True, lora_r=8, max_steps=50)
    shipped = load_spec(Path(__file__).resolve().parents[2] / "examples" / "banking77" / "spec_lm.yaml")
    assert isinstance(shipped.student, CausalLMConfig) and shipped.student.base_model == "smollm2"


def test_a_spec_loads_without_torch_or_the_simulator_server(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from agent.spec import load_spec; "
        f"spec = load_spec(Path({str(write(tmp_path, GOOD))!r})); "
        "print(sorted(m for m in ('torch', 'transformers', 'simulator.server', 'uvicorn') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert proc.stdout.strip() == "[]"


# -- teacher.knobs: validated by the simulator plugin -----------------------------------------------------


def test_knobs_are_validated_by_the_plugin_and_resolved_with_defaults(tmp_path: Path) -> None:
    from simulator.config import SimulatorKnobs

    spec = load_spec(write(tmp_path, {**GOOD, "teacher": {**GOOD["teacher"], "knobs": {"latency_ms": 50}}}))
    knobs = spec.teacher.knobs  # type: ignore[union-attr]
    assert knobs == {**SimulatorKnobs().model_dump(), "latency_ms": 50.0}


@pytest.mark.parametrize(
    ("knobs", "problem"),
    [
        ({"latency_ms": -1}, "teacher.knobs.latency_ms: Input should be greater than or equal to 0 — fix the value"),
        (
            {"latencyms": 5},
            "teacher.knobs.latencyms: Extra inputs are not permitted — remove it, or check its "
            "spelling against the documented keys",
        ),
        (
            {"profile": "gpt"},
            "teacher.knobs.profile: must be one of openai-reasoning, openai-chat, anthropic, vllm, "
            "ollama or unset, got 'gpt'",
        ),
        (
            {"rate_429": 0.5, "rate_5xx": 0.6},
            "teacher.knobs: rate_429 + rate_5xx + rate_hang + rate_malformed + "
            "rate_truncated must sum to at most 1 (one fault per request), got 1.1",
        ),
    ],
)
def test_knob_problems_name_the_field(tmp_path: Path, knobs: dict[str, object], problem: str) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(write(tmp_path, {**GOOD, "teacher": {**GOOD["teacher"], "knobs": knobs}}))
    assert info.value.problems == [problem]


def test_cli_bad_knob_exits_2(tmp_path: Path) -> None:
    spec = write(tmp_path, {**GOOD, "teacher": {**GOOD["teacher"], "knobs": {"rate_429": 2}}})
    proc = subprocess.run(
        [sys.executable, "-m", "agent", "run", str(spec), "--run-dir", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        env={**os.environ, "DISTILL_QUIET": "1"},
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "error: teacher.knobs.rate_429: Input should be less than or equal to 1" in proc.stderr
    assert not (tmp_path / "run").exists()


def test_a_simulator_spec_without_the_plugin_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.metadata

    import agent.teacher_endpoint

    monkeypatch.setattr(agent.teacher_endpoint, "entry_points", lambda **kw: importlib.metadata.EntryPoints(()))
    with pytest.raises(SpecError) as info:
        load_spec(write(tmp_path, GOOD))
    assert info.value.problems == [
        "teacher.provider: teacher server 'simulator' is not installed (no 'simulator' entry point in group "
        "distill.teacher_servers) — run `pip install -e .` in the distill checkout, which registers the simulator"
    ]
    served = {"provider": "simulator", "base_url": "http://127.0.0.1:9/v1"}  # a running one needs no plugin
    assert load_spec(write(tmp_path, {**GOOD, "teacher": served})).teacher.knobs == {}  # type: ignore[union-attr]


# -- task.labels --------------------------------------------------------------------------------------------


def test_more_than_2000_labels_is_a_spec_error_that_says_why(tmp_path: Path) -> None:
    labels = [{"name": f"intent_{i}"} for i in range(2001)]
    with pytest.raises(SpecError) as info:
        load_spec(write(tmp_path, {**GOOD, "task": {"description": "d", "labels": labels}}))
    assert info.value.problems == [
        "task.labels: 2,001 labels, more than the 2,000 supported — per-label teacher prompts and generation "
        "quotas stop making sense at that size; group related labels into coarser classes (one classifier per group)"
    ]
    spec = load_spec(write(tmp_path, {**GOOD, "task": {"description": "d", "labels": labels[:2000]}}))
    assert len(spec.task.labels) == 2000


def test_the_spec_student_section_reaches_the_trained_model(
    tmp_path: Path, tiny_model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """train_round passes the spec's EncoderConfig through: settings the old hand copy dropped now apply."""
    from tests.run_helpers import run_spec, write_spec

    monkeypatch.setenv("DISTILL_QUIET", "1")
    path = write_spec(tmp_path, tiny_model, {"provider": "simulator", "pool": "pool.jsonl"}, max_rounds=0)
    data = yaml.safe_load(path.read_text())
    data["student"].update(max_steps=5, freeze_embeddings=False, label_smoothing=0.0, head_init="random")
    path.write_text(yaml.safe_dump(data))

    run_dir, _ = run_spec(path, tmp_path / "run")

    model = run_dir / "models" / "round-00"
    saved = json.loads((model / "distill_student.json").read_text())["config"]
    assert saved == load_spec(path).student.model_dump()
    assert (saved["max_steps"], saved["freeze_embeddings"], saved["head_init"]) == (5, False, "random")
    assert json.loads((model / "train_stats.json").read_text())["steps"] == 5


def test_a_spec_saved_with_a_bom_loads(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert load_spec(path).name == "tiny"


def test_a_spec_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    path.write_bytes(path.read_bytes() + b"# caf\xe9\n")
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    [problem] = caught.value.problems
    lines = path.read_bytes().count(b"\n")
    assert f"line {lines} is not valid UTF-8" in problem and "save the file as UTF-8" in problem


def test_invalid_yaml_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text("name: [unclosed\ntask: {\n")
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    [problem] = caught.value.problems
    assert "\n" not in problem and "not valid YAML" in problem


def test_deploy_takes_at_most_one_target(tmp_path: Path) -> None:
    assert load_spec(write(tmp_path, GOOD)).deploy.target_accuracy is None  # default: never defer
    spec = load_spec(write(tmp_path, {**GOOD, "deploy": {"max_defer_rate": 0.2}}))
    assert spec.deploy.max_defer_rate == 0.2
    both = {**GOOD, "deploy": {"target_accuracy": 0.9, "max_defer_rate": 0.2}}
    with pytest.raises(SpecError) as info:
        load_spec(write(tmp_path, both))
    assert any("not both" in p for p in info.value.problems)
    with pytest.raises(SpecError):
        load_spec(write(tmp_path, {**GOOD, "deploy": {"target_accuracy": 1.5}}))
