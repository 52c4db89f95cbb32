"""The ``distill`` command line. Heavy imports (torch, transformers) happen inside commands only."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Annotated

import typer

from agent.cli_errors import fail, handles_errors, set_debug
from agent.cli_simulate import simulate
from agent.cli_strategies import chat, strategies_app

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode="rich",
    help="distill: black-box LLM distillation. A teacher behind an OpenAI-compatible API writes and labels "
    "data; a small local student learns from it, guided by its own measured weaknesses (PGKD).",
)
app.add_typer(strategies_app, name="strategies")
app.command("chat")(handles_errors(chat))
app.command(
    "simulate",
    help="Serve the teacher simulator: an OpenAI-compatible server on loopback, backed "
    "by a labeled pool, with fault-injection knobs. Prints its URL once ready.",
)(handles_errors(simulate))

# Command groups in their own modules; each ``register(app)`` adds its commands.
for _module in ("agent.cli_model", "agent.cli_report", "agent.cli_data", "agent.cli_serve"):
    importlib.import_module(_module).register(app)

RunDirArg = Annotated[Path, typer.Argument(help="A run directory made by `distill run`.", show_default=False)]


@app.callback()
def _options(
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of an unexpected error.")] = False,
) -> None:
    set_debug(debug)


@app.command()
@handles_errors
def run(
    spec: Annotated[Path, typer.Argument(help="Task spec (YAML). See examples/banking77/spec.yaml.")],
    run_dir: Annotated[
        Path | None, typer.Option("--run-dir", help="Where the run lives (default runs/<name>-<time>).")
    ] = None,
    fresh: Annotated[
        bool,
        typer.Option(
            "--fresh",
            help="Start over in an existing --run-dir: its records and models are deleted, its cache.sqlite "
            "(the teacher's paid answers) is kept.",
        ),
    ] = False,
) -> None:
    """Run a spec: train a classifier, or teach strategies to a student LLM (task.kind dialogue).

    A classifier run seeds, then loops generate → filter → train → evaluate → decide, and exports the best round.

    The spec, its data files and the teacher's key are checked before anything is written. Ctrl-C stops at
    the next safe point (twice: at once); `distill resume RUN_DIR` continues after a stop or a crash."""
    from agent.lifecycle import start

    _echo_lines(start(spec, run_dir, fresh=fresh).summary)


@app.command()
@handles_errors
def resume(run_dir: RunDirArg) -> None:
    """Continue a run that stopped or crashed, from its last durable step (no repeated paid calls)."""
    from agent.lifecycle import resume as resume_run

    _echo_lines(resume_run(run_dir).summary)


def _echo_lines(lines: list[str]) -> None:
    for line in lines:
        typer.echo(line)


@app.command()
@handles_errors
def plan(
    spec: Annotated[Path, typer.Argument(help="Task spec (YAML).", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Expected teacher calls, tokens and cost per round and in total, before any paid call (sends nothing)."""
    from agent.plan import plan_run, render_plan
    from agent.spec import load_any_spec

    data = plan_run(load_any_spec(spec))
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        render_plan(data)


@app.command()
@handles_errors
def status(
    run_dir: RunDirArg,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Rounds, held-back/feedback/test macro-F1, decisions, teacher cost and the stop reason."""
    from agent.status import render_status, run_status

    if not (run_dir / "run.sqlite").is_file():
        fail(f"RUN_DIR: {run_dir} holds no run.sqlite — pass a folder made by `distill run`")
    data = run_status(run_dir)
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        render_status(data)


def main() -> None:  # pragma: no cover - console entry point convenience
    app()
