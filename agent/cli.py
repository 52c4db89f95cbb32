"""The ``distill`` command line. Heavy imports (torch, transformers) happen inside commands only."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from agent.cli_simulate import simulate
from agent.cli_strategies import chat, strategies_app
from agent.spec import SpecError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode="rich",
    help="distill: black-box LLM distillation. A teacher behind an OpenAI-compatible API writes and labels "
    "data; a small local student learns from it, guided by its own measured weaknesses (PGKD).",
)
app.add_typer(strategies_app, name="strategies")
app.command("chat")(chat)
app.command(
    "simulate",
    help="Serve the teacher simulator: an OpenAI-compatible server on loopback, backed "
    "by a labeled pool, with fault-injection knobs. Prints its URL once ready.",
)(simulate)

RunDirArg = Annotated[Path, typer.Argument(help="A run directory made by `distill run`.", show_default=False)]


def _fail(problems: list[str], code: int = 2) -> None:
    from agent.console import console

    for line in problems:
        console.print(f"[red]error:[/] {line}", soft_wrap=True)
    raise typer.Exit(code)


def _finish(run_dir: Path, model_dir: Path, reasons: list[str]) -> None:
    from agent.store import RunStore

    store = RunStore(run_dir / "run.sqlite")
    best = json.loads((model_dir / "distill_student.json").read_text())["card"]
    test_f1 = best["metrics"]["test"]["macro_f1"]
    store.close()
    typer.echo(f"stopped: {'; '.join(reasons)}")
    typer.echo(f"run directory: {run_dir}")
    typer.echo(f"model directory: {model_dir}")
    typer.echo(
        f"best round: {best['best_round']}; test macro-F1: "
        + (f"{test_f1:.3f}" if test_f1 is not None else "n/a (no task.test)")
    )


@app.command()
def run(
    spec: Annotated[Path, typer.Argument(help="Task spec (YAML). See examples/banking77/spec.yaml.")],
    run_dir: Annotated[
        Path | None, typer.Option("--run-dir", help="Where the run lives (default runs/<name>-<time>).")
    ] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Delete an existing --run-dir first.")] = False,
) -> None:
    """Run a spec: train a classifier, or teach strategies to a student LLM (task.kind dialogue).

    A classifier run seeds, then loops generate → filter → train → evaluate → decide, and exports the best round.

    Prints the run directory first; `distill resume RUN_DIR` continues it after a crash or a stop."""
    from agent.run import start
    from agent.spec import DialogueRunSpec, load_any_spec

    try:
        if isinstance(load_any_spec(spec), DialogueRunSpec):
            _run_dialogue(spec, run_dir, fresh)
            return
        directory, result = start(spec, run_dir, fresh=fresh)
    except SpecError as exc:
        _fail(exc.problems)
        return
    except ValueError as exc:
        _fail([str(exc)])
        return
    _finish(directory, result.model_dir, result.stop_reasons)


def _run_dialogue(spec_path: Path, run_dir: Path | None, fresh: bool) -> None:
    from agent.dialogue.run import create_dialogue_run, execute_dialogue, print_summary
    from agent.run import prepare_run_dir
    from agent.spec import DialogueRunSpec, check_credentials, load_any_spec

    spec = load_any_spec(spec_path)
    assert isinstance(spec, DialogueRunSpec)
    check_credentials(spec)
    directory = prepare_run_dir(spec.name, run_dir, fresh)
    create_dialogue_run(spec, directory)
    print_summary(execute_dialogue(directory))
    typer.echo(f"run directory: {directory}")
    typer.echo(f"audit: distill strategies list {directory}")


@app.command()
def plan(
    spec: Annotated[Path, typer.Argument(help="Task spec (YAML).", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Expected teacher calls, tokens and cost per round and in total, before any paid call (sends nothing)."""
    from agent.plan import plan_run, render_plan
    from agent.spec import load_any_spec

    try:
        data = plan_run(load_any_spec(spec))
    except SpecError as exc:
        _fail(exc.problems)
        return
    except ValueError as exc:  # a bad data file: the message names the file and line
        _fail([str(exc)])
        return
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        render_plan(data)


@app.command()
def resume(run_dir: RunDirArg) -> None:
    """Continue a run that stopped or crashed, from its last durable step (no repeated paid calls)."""
    from agent.run import execute

    spec_file = run_dir / "spec.json"
    try:
        if spec_file.is_file() and json.loads(spec_file.read_text()).get("task", {}).get("kind") == "dialogue":
            from agent.dialogue.run import execute_dialogue, print_summary

            print_summary(execute_dialogue(run_dir))
            typer.echo(f"run directory: {run_dir}")
            typer.echo(f"audit: distill strategies list {run_dir}")
            return
        result = execute(run_dir)
    except SpecError as exc:
        _fail(exc.problems)
        return
    _finish(run_dir, result.model_dir, result.stop_reasons)


@app.command()
def status(
    run_dir: RunDirArg,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Rounds, held-back/feedback/test macro-F1, decisions, teacher cost and the stop reason."""
    from agent.status import render_status, run_status

    if not (run_dir / "run.sqlite").is_file():
        _fail([f"RUN_DIR: {run_dir} holds no run.sqlite — pass a folder made by `distill run`"])
    data = run_status(run_dir)
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        render_status(data)


@app.command()
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
        _fail(["give TEXT arguments or --file FILE"])
    if not (model_dir / "labels.json").is_file():
        _fail([f"MODEL_DIR: {model_dir} is not a distill model (no labels.json) — use <run>/model"])
    from trainers.encoder import EncoderClassifier

    student = EncoderClassifier.load(model_dir)
    for text, (label, confidence) in zip(items, student.predict(items), strict=True):
        if as_json:
            typer.echo(json.dumps({"text": text, "label": label, "confidence": round(confidence, 4)}))
        else:
            typer.echo(f"{label}\t{confidence:.3f}\t{text}")


def _read_text(path: Path) -> str:
    if not path.is_file():
        _fail([f"--file: {path} not found"])
    return path.read_text(encoding="utf-8")


def main() -> None:  # pragma: no cover - console entry point convenience
    app()
