"""`distill serve MODEL_DIR`: a causal student behind an OpenAI-compatible API (vLLM on a GPU, else transformers)."""

from __future__ import annotations

import contextlib
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from agent.cli_errors import fail, handles_errors


class Backend(StrEnum):
    auto = "auto"
    vllm = "vllm"
    transformers = "transformers"


def register(app: typer.Typer) -> None:
    app.command()(serve)


@handles_errors
def serve(
    model_dir: Annotated[Path, typer.Argument(help="A causal student folder (e.g. <run>/model of a causal_lm run).")],
    host: Annotated[
        str, typer.Option(help="Interface to listen on; 127.0.0.1 keeps it on this machine.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    name: Annotated[str, typer.Option("--name", help="The model name clients send.")] = "distill-student",
    backend: Annotated[
        Backend,
        typer.Option(
            help="auto: vLLM when it is installed and a CUDA GPU is present, else transformers; or vllm, transformers."
        ),
    ] = Backend.auto,
) -> None:
    """Serve a causal student at http://HOST:PORT/v1 (chat completions) until Ctrl-C.

    Starts `vllm serve` when vLLM is installed and a GPU is present. Otherwise it serves the model with
    transformers, one request at a time, and says what to install or run for more throughput."""
    import os

    from trainers.serving import ServeError, plan, serve_transformers

    try:
        chosen = plan(model_dir, backend.value, host=host, port=port, name=name)
    except ServeError as error:
        fail(str(error))
    typer.echo(f"serving {name} at http://{host}:{port}/v1 with {chosen.note}", err=True)
    if chosen.command is not None:
        os.execvp(chosen.command[0], chosen.command)  # vLLM takes over this process, signals included
    # uvicorn re-raises the Ctrl-C it shut down on; for a server that is the normal way to stop, not an error.
    with contextlib.suppress(KeyboardInterrupt):
        serve_transformers(model_dir, host=host, port=port, name=name)
    typer.echo("server stopped", err=True)
