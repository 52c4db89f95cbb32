"""Reuse what was bought: train another student on a finished run's kept data, with no teacher call.

``distill train RUN_DIR [--student FILE.yaml | --base-model PATH] [--out DIR]`` reads the run's kept
training examples and its evaluation splits from the store (read-only), trains a fresh encoder student
with the run's ``student:`` settings overridden by the YAML's keys (another recipe) and/or another
base model, evaluates it on feedback, held-back and test, and writes a model folder like the run's own
model (weights, labels, full config, card, ``eval_<split>.json``). The teacher is never opened: no
request is sent and the run's journal is untouched.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from agent import console
from agent.data_export import check_output_folder, stored_classification_spec
from agent.data_files import read_user_text
from agent.errors import InputError
from agent.run_kind import STORE_FILE
from agent.spec import RunSpec
from agent.store import ExampleRow, RunStatus, RunStore
from generators.generation import OUT_OF_SCOPE
from trainers.atomic import write_folder
from trainers.causal_config import CausalLMConfig
from trainers.config import EncoderConfig
from trainers.model_card import base_model_name, public_name

EVAL_SPLITS = ("feedback", "heldback", "test")
STUDENTS_DIR = "students"


@dataclass(frozen=True)
class Retrained:
    model_dir: Path
    metrics: dict[str, dict[str, float]]  # split → accuracy, macro_f1, ece
    summary: list[str]  # what the CLI prints


@dataclass(frozen=True)
class _RunData:
    spec: RunSpec
    run_id: str
    train: list[ExampleRow]
    splits: dict[str, list[ExampleRow]]
    run_model_metrics: dict[str, float | None]  # the run's own best model: macro-F1 per split
    origins: dict[str, int]
    drops: dict[str, int]


def retrain(
    run_dir: Path,
    *,
    student_file: Path | None = None,
    base_model: str | None = None,
    out: Path | None = None,
    force: bool = False,
) -> Retrained:
    """Train, evaluate and export another student on ``run_dir``'s kept data; sends nothing to the teacher."""
    data = _read_run(run_dir)
    config = student_config(data.spec.student, student_file, base_model)
    out = out or run_dir / STUDENTS_DIR / f"{_model_name(config)}-{time.strftime('%Y%m%d-%H%M%S')}"
    check_output_folder(run_dir, out, "--out", force=force)
    metrics: dict[str, dict[str, float]] = {}
    write_folder(out, lambda folder: metrics.update(_train_and_save(data, config, folder)))
    return Retrained(out, metrics, _summary(data, out, metrics))


def student_config(
    run_student: EncoderConfig | CausalLMConfig, student_file: Path | None, base_model: str | None
) -> EncoderConfig:
    """The run's student settings, overridden by the keys of ``student_file`` and then by ``base_model``.

    Encoder students only: a run whose student is a causal LM starts from the encoder defaults."""
    settings = run_student.model_dump() if isinstance(run_student, EncoderConfig) else {}
    if student_file is not None:
        settings.update(_student_yaml(student_file))
    if base_model is not None:
        folder = Path(base_model).expanduser()
        if not folder.is_dir():
            raise InputError(f"--base-model: {base_model} is not a folder — give a local Hugging Face encoder folder")
        settings["base_model"] = str(folder.resolve())
    try:
        return EncoderConfig.model_validate(settings)
    except ValidationError as exc:
        where = f"--student: {student_file}" if student_file is not None else "--base-model"
        raise InputError(
            [f"{where}: {'.'.join(map(str, e['loc']))}: {e['msg']} — fix the value" for e in exc.errors()]
        ) from None


def _student_yaml(path: Path) -> dict[str, Any]:
    """The settings in a student YAML: the ``student:`` keys, bare or under ``student:``."""
    try:
        data = yaml.safe_load(read_user_text(path, "--student"))
    except yaml.YAMLError as exc:
        raise InputError(
            f"--student: {path} is not valid YAML ({' '.join(str(exc).split())}) — fix the syntax"
        ) from None
    if isinstance(data, dict) and isinstance(data.get("student"), dict):
        data = data["student"]
    if not isinstance(data, dict):
        raise InputError(
            f"--student: {path} is not a mapping of student settings — write e.g. 'epochs: 8' and 'lr: 3e-5', "
            "one per line (the keys of a spec's student: section)"
        )
    base = data.get("base_model")
    if isinstance(base, str) and not Path(base).is_absolute() and (path.parent / base).is_dir():
        data = {**data, "base_model": str((path.parent / base).resolve())}  # relative to the YAML, like a spec
    return data


def _read_run(run_dir: Path) -> _RunData:
    spec = stored_classification_spec(run_dir)
    store = RunStore(run_dir / STORE_FILE)
    try:
        info = store.run_info()
        if info is None or info.status != RunStatus.FINISHED:
            state = info.status if info is not None else "not started"
            raise InputError(
                f"RUN_DIR: {run_dir} is {state}, not finished — `distill resume {run_dir}` finishes it first"
            )
        train = store.examples("train", kept=True)
        if not train:
            raise InputError(f"RUN_DIR: {run_dir} kept no training examples — there is nothing to train on")
        best = _run_best_round(run_dir)
        return _RunData(
            spec=spec,
            run_id=info.id,
            train=train,
            splits={split: store.examples(split) for split in EVAL_SPLITS},
            run_model_metrics={
                split: (store.metric(best, split, "macro_f1") if best is not None else None) for split in EVAL_SPLITS
            },
            origins=store.origin_counts("train", kept=True),
            drops=store.drop_counts(),
        )
    finally:
        store.close()


def _run_best_round(run_dir: Path) -> int | None:
    meta = run_dir / "model" / "distill_student.json"
    if not meta.is_file():
        return None
    best = json.loads(meta.read_text(encoding="utf-8")).get("card", {}).get("best_round")
    return best if isinstance(best, int) else None


def _train_and_save(data: _RunData, config: EncoderConfig, folder: Path) -> dict[str, dict[str, float]]:
    from agent.classify.context import task_info
    from trainers.encoder import EncoderClassifier
    from trainers.evaluate import evaluate
    from trainers.rejection import decide

    labels = list(task_info(data.spec).labels)  # with out_of_scope when the task has it
    student = EncoderClassifier.create(labels, config)
    with console.progress(f"training on {len(data.train)} kept examples", None) as advance_to:
        stats = student.train(
            [e.text for e in data.train], [e.label for e in data.train], progress=lambda d, t: advance_to(d, t)
        )
    heldback = data.splits.get("heldback") or []
    if heldback:  # calibrated like the run's own rounds: on held-back only, never on test
        from trainers.calibration import fit_temperature

        logits = student.predict_logits([r.text for r in heldback])
        gold = [labels.index(r.label) for r in heldback]
        student.temperature = fit_temperature(logits, gold)
        if data.spec.task.out_of_scope:  # the rejection rule, chosen on held-back as a run chooses it
            from trainers.calibration import softmax
            from trainers.rejection import choose_rejection

            student.rejection = choose_rejection(softmax(logits, student.temperature), gold, labels, OUT_OF_SCOPE)
    metrics: dict[str, dict[str, float]] = {}
    evaluations: dict[str, dict[str, Any]] = {}
    for split, rows in data.splits.items():
        if rows:
            texts = [r.text for r in rows]
            proba = student.predict_proba(texts)
            decided = decide(proba, labels, student.rejection)  # the answers predict gives
            result = evaluate([r.label for r in rows], proba, labels, texts=texts, decided=decided)
            evaluations[split] = result.to_dict()
            metrics[split] = {m: evaluations[split][m] for m in ("accuracy", "macro_f1", "ece")}
    export_student(student, folder, _card(data, config, metrics))
    for split, evaluation in evaluations.items():
        (folder / f"eval_{split}.json").write_text(json.dumps(evaluation, indent=1))
    stats_dict = {k: getattr(stats, k) for k in ("steps", "epochs", "seconds", "examples_per_s", "final_loss")}
    (folder / "train_stats.json").write_text(json.dumps(stats_dict, indent=2))
    return metrics


def export_student(student: Any, folder: Path, card: dict[str, Any]) -> None:
    """Write the model folder the way the run exports its model (``agent.classify.export``)."""
    student.save(folder, card=card)


def _card(data: _RunData, config: EncoderConfig, metrics: dict[str, dict[str, float]]) -> dict[str, Any]:
    """The card, like the run's model's; it names no path of this machine (base and teacher by public name)."""
    from agent.classify.context import task_info

    spec = data.spec
    base = base_model_name(config.base_model)
    return {
        "task": spec.name,
        "description": spec.task.description,
        "method": "retrained on a finished run's kept data (distill train)",
        "train_examples": len(data.train),
        "labels": list(task_info(spec).labels),
        "label_descriptions": {label.name: label.description for label in spec.task.labels},
        "base_model": base.name,
        "base_model_on_hub": base.on_hub,
        "license": spec.card.license,
        "language": list(spec.card.language),
        "tags": list(spec.card.tags),
        "metrics": {split: metrics.get(split, {}) for split in EVAL_SPLITS},
        "test_note": "test metrics are reported only; no decision was made on any split",
        "training_examples_by_origin": data.origins,
        "dropped_by_filter": data.drops,
        "teacher": {"provider": spec.teacher.provider, "model": public_name(spec.teacher.model)},
        "retrained_from": {
            "run": data.run_id,
            "run_model_macro_f1": data.run_model_metrics,
            "teacher_calls_made": 0,
        },
        "notes": ["trained on every example the run's filters kept (all rounds), with no new teacher call"],
    }


def _model_name(config: EncoderConfig) -> str:
    name = Path(config.base_model).name if config.base_model else "minilm"
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name) or "student"


def _summary(data: _RunData, out: Path, metrics: dict[str, dict[str, float]]) -> list[str]:
    lines = [f"model directory: {out}", f"trained on {len(data.train)} kept examples; teacher calls: 0"]
    for split in ("heldback", "test"):
        if split in metrics:
            theirs = data.run_model_metrics.get(split)
            compare = f" (the run's model: {theirs:.3f})" if theirs is not None else ""
            lines.append(f"{split} macro-F1: {metrics[split]['macro_f1']:.3f}{compare}")
    return lines
