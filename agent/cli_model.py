"""Commands that use a trained model: ``predict``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from agent.cli_errors import fail, handles_errors


def register(app: typer.Typer) -> None:
    app.command()(predict)


@handles_errors
def predict(
    model_dir: Annotated[Path, typer.Argument(help="A model folder (e.g. <run>/model).")],
    texts: Annotated[list[str] | None, typer.Argument(help="Texts to classify.", show_default=False)] = None,
    file: Annotated[Path | None, typer.Option("--file", help="A text file, one text per line, or - for stdin.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSONL: {text, label, confidence} per line.")] = False,
) -> None:
    """Classify texts with a trained student: label and confidence."""
    items = list(texts or [])
    if file is not None:
        source = sys.stdin.read() if str(file) == "-" else _read_text(file)
        items += [line for line in source.splitlines() if line.strip()]
    if not items:
        fail("give TEXT arguments or --file FILE")
    if not (model_dir / "labels.json").is_file():
        fail(f"MODEL_DIR: {model_dir} is not a distill model (no labels.json) — use <run>/model")
    from trainers.encoder import EncoderClassifier

    student = EncoderClassifier.load(model_dir)
    for text, (label, confidence) in zip(items, student.predict(items), strict=True):
        if as_json:
            typer.echo(json.dumps({"text": text, "label": label, "confidence": round(confidence, 4)}))
        else:
            typer.echo(f"{label}\t{confidence:.3f}\t{text}")


def _read_text(path: Path) -> str:
    from agent.data_files import read_user_text

    return read_user_text(path, "--file")
