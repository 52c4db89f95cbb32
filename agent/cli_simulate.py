"""``distill simulate``: serve the teacher simulator in the foreground (registered in ``agent.cli``).

The simulator is a plugin (entry point ``distill.teacher_servers``: ``simulator``), never imported by
name. Its knobs are defined once, in its knob model: this command has one option per knob, built
from the model's fields (name, type, default, description), next to the options of its own (pool,
port, host, model, policy, API key variable). The plugin is looked up once, when this module is
imported (an entry-point scan of a few tens of milliseconds); its server loads only when it serves.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel, ValidationError

from agent.cli_errors import fail
from agent.teacher_endpoint import TeacherServer, TeacherServerMissing, teacher_server

PLUGIN = "simulator"


def _find_plugin() -> TeacherServer | TeacherServerMissing:
    try:
        return teacher_server(PLUGIN)
    except TeacherServerMissing as exc:
        return exc  # reported when the command runs, so that the rest of the CLI still works


_PLUGIN = _find_plugin()


def _api_key(env_name: str | None) -> str | None:
    if env_name is None:
        return None
    key = os.environ.get(env_name)
    if not key:
        fail(f"--api-key-env: the environment variable {env_name} is not set or empty; export the key there")
    return key


def _knob_problems(error: ValidationError) -> str:
    """``--rate-429: Input should be less than or equal to 1, got 2.0`` (a check across knobs names them itself)."""
    lines = []
    for problem in error.errors():
        message = str(problem["msg"]).removeprefix("Value error, ")
        if not problem["loc"]:
            lines.append(message)
            continue
        option = "--" + str(problem["loc"][0]).replace("_", "-")
        got = "" if problem["type"] == "value_error" else f", got {problem['input']!r}"
        lines.append(f"{option}: {message}{got}")
    return "; ".join(lines)


def simulate(**options: Any) -> None:
    """Serve the teacher simulator: an OpenAI-compatible server backed by a labeled pool, with fault knobs.

    Prints one line, `distill simulator listening on http://HOST:PORT/v1`, once it accepts connections;
    stops cleanly (exit code 0) on Ctrl-C or SIGTERM.
    """
    if isinstance(_PLUGIN, TeacherServerMissing):
        fail(str(_PLUGIN), code=_PLUGIN.exit_code)
    pool: Path = options.pop("pool")
    policy: Path | None = options.pop("policy_path")
    if not pool.is_file():
        fail(f"--pool: no such file: {pool}")
    if policy is not None and not policy.is_file():
        fail(f"--policy: no such file: {policy}")
    host, port, model = options.pop("host"), options.pop("port"), options.pop("model")
    api_key = _api_key(options.pop("api_key_env"))
    try:
        knobs = _PLUGIN.knobs.model_validate(options)
    except ValidationError as exc:
        fail(_knob_problems(exc))
    try:
        _PLUGIN.serve_forever(knobs, model=model, pool=pool, policy=policy, api_key=api_key, host=host, port=port)
    except ValueError as exc:  # a bad model id, policy or pool line: the message names it
        fail(str(exc))
    except OSError as exc:  # e.g. the port is taken
        fail(f"cannot listen on {host}:{port}: {exc}", code=1)


def _knob_parameters(knobs: type[BaseModel]) -> list[inspect.Parameter]:
    """One ``--name`` option per knob: the field's type, default and description."""
    return [
        _keyword(
            name,
            Annotated[field.annotation, typer.Option(help=field.description, show_default=field.default is not None)],
            field.default,
        )
        for name, field in knobs.model_fields.items()
    ]


def _keyword(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def _parameters(plugin: TeacherServer | TeacherServerMissing) -> list[inspect.Parameter]:
    """The command's options: its own, with the knobs of the plugin (when installed) in the middle."""
    knobs = [] if isinstance(plugin, TeacherServerMissing) else _knob_parameters(plugin.knobs)
    return [
        _keyword(
            "pool",
            Annotated[
                Path,
                typer.Option(
                    "--pool",
                    show_default=False,
                    help='JSONL file of human-written {"text", "label"} lines backing the simulator.',
                ),
            ],
            inspect.Parameter.empty,
        ),
        _keyword(
            "port",
            Annotated[int, typer.Option(help="Port to listen on; 0 picks a free port (the URL line shows it).")],
            0,
        ),
        _keyword(
            "host", Annotated[str, typer.Option(help="Interface to bind; keep loopback unless you must.")], "127.0.0.1"
        ),
        _keyword(
            "model",
            Annotated[str, typer.Option(help="Model id listed by /v1/models and reported in completions.")],
            "sim-teacher",
        ),
        *knobs,
        _keyword(
            "policy_path",
            Annotated[
                Path | None,
                typer.Option(
                    "--policy",
                    show_default=False,
                    help="Policy YAML (flows of intents with checkable criteria) for the strategy-teaching actions "
                    "scenario, respond, judge and strategize; without it those actions answer 400.",
                ),
            ],
            None,
        ),
        _keyword(
            "api_key_env",
            Annotated[
                str | None,
                typer.Option(
                    show_default=False,
                    help="NAME of an environment variable holding an API key that clients must send as a Bearer "
                    "token (the key itself never goes on the command line).",
                ),
            ],
            None,
        ),
    ]


# typer reads a command's options from its signature: this one is built from the plugin's knob model.
simulate.__signature__ = inspect.Signature(_parameters(_PLUGIN), return_annotation=None)  # type: ignore[attr-defined]
