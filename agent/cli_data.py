"""Commands that reuse what a run bought: ``export`` (its data, with provenance and a card) and ``train``
(another student on its kept data, with no teacher call)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agent.cli_errors import handles_errors

RunDir = Annotated[Path, typer.Argument(help="A run directory made by `distill run`.", show_default=False)]


def register(app: typer.Typer) -> None:
    app.command("export")(export)
    app.command("train")(train)


@handles_errors
def export(
    run_dir: RunDir,
    data: Annotated[Path, typer.Option("--data", help="Folder to write: the examples and a dataset card.")],
    fmt: Annotated[
        str, typer.Option("--format", help="jsonl: examples.jsonl; hf: a `datasets` DatasetDict (save_to_disk).")
    ] = "jsonl",
    force: Annotated[bool, typer.Option("--force", help="Replace a non-empty --data folder.")] = False,
) -> None:
    """Export the run's examples (kept and dropped) with their provenance and a dataset card (README.md).

    Reads the run only: it works while the run is going on."""
    from agent.data_export import export_data
    from agent.errors import InputError

    if fmt not in ("jsonl", "hf"):
        raise InputError(f"--format: {fmt!r} is not a format — use jsonl or hf")
    result = export_data(run_dir, data, "hf" if fmt == "hf" else "jsonl", force=force)
    counts = ", ".join(f"{split} {n}" for split, n in result.counts.items())
    typer.echo(f"data: {result.out} ({counts})")


@handles_errors
def train(
    run_dir: RunDir,
    student: Annotated[
        Path | None,
        typer.Option("--student", help="YAML of student settings (the spec's `student:` keys) over the run's."),
    ] = None,
    base_model: Annotated[
        str | None, typer.Option("--base-model", help="Local Hugging Face encoder folder to fine-tune instead.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Model folder to write (default <run>/students/<name>-<time>).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace a non-empty --out folder.")] = False,
) -> None:
    """Train another student on a finished run's kept data, with no teacher call; evaluate and export it."""
    from agent.retrain import retrain

    result = retrain(run_dir, student_file=student, base_model=base_model, out=out, force=force)
    for line in result.summary:
        typer.echo(line)
