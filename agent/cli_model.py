"""Commands that use a trained model: ``predict`` and ``export-onnx``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Protocol

import typer

from agent.cli_errors import fail, handles_errors

DEFER = "defer"  # predict's answer below the deferral threshold


def register(app: typer.Typer) -> None:
    app.command()(predict)
    app.command("export-onnx")(export_onnx)


class Classifier(Protocol):
    labels: list[str]

    def predict(self, texts: list[str]) -> list[tuple[str, float]]: ...


@handles_errors
def predict(
    model_dir: Annotated[Path, typer.Argument(help="A model folder (e.g. <run>/model) or its onnx/ folder.")],
    texts: Annotated[list[str] | None, typer.Argument(help="Texts to classify.", show_default=False)] = None,
    file: Annotated[Path | None, typer.Option("--file", help="A text file, one text per line, or - for stdin.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSONL: {text, label, confidence} per line.")] = False,
    onnx: Annotated[
        bool, typer.Option("--onnx", help="Run MODEL_DIR/onnx (from `distill export-onnx`) instead of PyTorch.")
    ] = False,
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold",
            min=0.0,
            max=1.0,
            help="Answer 'defer' below this confidence (default: the threshold saved with the model, "
            "chosen on held-back; 0 never defers).",
        ),
    ] = None,
    cascade: Annotated[
        Path | None,
        typer.Option(
            "--cascade",
            metavar="SPEC_OR_RUN",
            help="Ask the teacher below the threshold, through the run's gateway: its cache (repeats are free), "
            "journal and budget. A run directory, or a spec when MODEL_DIR is that run's model folder.",
        ),
    ] = None,
) -> None:
    """Classify texts with a trained student: label and confidence (PyTorch, or the int8 ONNX graph)."""
    items = list(texts or [])
    if file is not None:
        source = sys.stdin.read() if str(file) == "-" else _read_text(file)
        items += [line for line in source.splitlines() if line.strip()]
    if not items:
        fail("give TEXT arguments or --file FILE")
    target = _cascade_target(cascade, model_dir) if cascade is not None else None  # bad input: before any work
    student = _load(model_dir, onnx)
    if threshold is None:
        from trainers.deferral import stored_threshold
        from trainers.onnx_model import is_onnx_folder, onnx_folder

        threshold = stored_threshold(onnx_folder(model_dir) if onnx or is_onnx_folder(model_dir) else model_dir)
    if target is not None:
        _answer_with_cascade(target, items, student, threshold, as_json)
        return
    for text, (label, confidence) in zip(items, student.predict(items), strict=True):
        deferred = confidence < threshold
        if as_json:
            record = {"text": text, "label": DEFER if deferred else label, "confidence": round(confidence, 4)}
            if deferred:
                record["best_label"] = label
            typer.echo(json.dumps(record))
        else:
            shown = f"{DEFER} ({label})" if deferred else label
            typer.echo(f"{shown}\t{confidence:.3f}\t{text}")


def _cascade_target(spec_or_run: Path, model_dir: Path) -> Any:
    from agent.cascade import resolve_target
    from trainers.onnx_model import is_onnx_folder

    folder = model_dir.parent if is_onnx_folder(model_dir) else model_dir  # <run>/model/onnx → <run>/model
    labels_file = folder / "labels.json"
    if not labels_file.is_file():
        fail(f"MODEL_DIR: {model_dir} is not a distill model (no labels.json) — use <run>/model")
    return resolve_target(spec_or_run, folder, json.loads(labels_file.read_text(encoding="utf-8")))


def _answer_with_cascade(target: Any, items: list[str], student: Classifier, threshold: float, as_json: bool) -> None:
    """Student answers at or above ``threshold``, the teacher below; a summary line on stderr."""
    from agent.cascade import cascade
    from agent.console import console

    result = cascade(target, items, student.predict(items), threshold, student.labels)
    for a in result.answers:
        if as_json:
            record: dict[str, Any] = {"text": a.text, "label": a.label, "confidence": round(a.confidence, 4)}
            record["source"] = a.source
            if a.label != a.student_label:
                record["student_label"] = a.student_label
            typer.echo(json.dumps(record))
        else:
            shown = f"{a.label} ({a.student_label})" if a.label == DEFER else a.label
            typer.echo(f"{shown}\t{a.confidence:.3f}\t{a.source}\t{a.text}")
    # Always printed (stderr, so --json output stays JSONL): what the teacher was asked and what it cost.
    console.print(result.summary(), markup=False, soft_wrap=True)


def _load(model_dir: Path, onnx: bool) -> Classifier:
    """The ONNX runner for an onnx/ folder or with --onnx (no torch import); else the PyTorch student."""
    from trainers.onnx_model import OnnxClassifier, is_onnx_folder, onnx_folder

    if onnx or is_onnx_folder(model_dir):
        folder = onnx_folder(model_dir)
        if not is_onnx_folder(folder):
            fail(f"MODEL_DIR: {model_dir} has no ONNX export — run `distill export-onnx {model_dir}` first")
        return OnnxClassifier(folder)
    if not (model_dir / "labels.json").is_file():
        fail(f"MODEL_DIR: {model_dir} is not a distill model (no labels.json) — use <run>/model")
    from trainers.student import load_student

    return load_student(model_dir)


@handles_errors
def export_onnx(
    model_dir: Annotated[Path, typer.Argument(help="A model folder (e.g. <run>/model).")],
    texts: Annotated[
        Path | None,
        typer.Option(
            "--texts",
            help="Texts to check the ONNX labels on (one per line, or JSONL with 'text'). "
            "Default: the run's test split when MODEL_DIR is <run>/model.",
        ),
    ] = None,
    min_agreement: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Refuse (exit 1) when ONNX gives PyTorch's label on fewer texts."),
    ] = 0.99,
) -> None:
    """Export the student as one int8 ONNX graph (MODEL_DIR/onnx) after checking its labels against PyTorch."""
    from agent.classify.export import export_onnx as run_export
    from agent.classify.export import parity_texts

    if not (model_dir / "labels.json").is_file():
        fail(f"MODEL_DIR: {model_dir} is not a distill model (no labels.json) — use <run>/model")
    checked_on = parity_texts(model_dir, texts)
    entry = run_export(model_dir, checked_on, min_agreement)
    typer.echo(
        f"wrote {model_dir / entry['file']} ({entry['size_mb']} MB): same label as PyTorch on "
        f"{entry['agreement_with_pytorch']:.2%} of {entry['checked_on']}"
    )


def _read_text(path: Path) -> str:
    from agent.data_files import read_user_text

    return read_user_text(path, "--file")
