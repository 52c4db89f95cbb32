"""``distill simulate``: serve the teacher simulator in the foreground (registered in ``agent.cli``).

Knob help texts come from ``SimulatorConfig`` itself; a test checks that the defaults here match its defaults.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.markup import escape

from simulator.config import SimulatorConfig, knob_help


def _knob(name: str) -> Any:
    """A typer option for config field ``name``, with the field's help text."""
    return typer.Option(help=knob_help(name))


def _fail(message: str, code: int = 2) -> NoReturn:
    from agent.console import console

    console.print(f"[red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


def _api_key(env_name: str | None) -> str | None:
    if env_name is None:
        return None
    key = os.environ.get(env_name)
    if not key:
        _fail(f"--api-key-env: the environment variable {env_name} is not set or empty; export the key there")
    return key


def simulate(
    pool: Annotated[
        Path,
        typer.Option(
            "--pool",
            show_default=False,
            help='JSONL file of human-written {"text", "label"} lines backing the simulator.',
        ),
    ],
    port: Annotated[int, typer.Option(help="Port to listen on; 0 picks a free port (the URL line shows it).")] = 0,
    host: Annotated[str, typer.Option(help="Interface to bind; keep loopback unless you must.")] = "127.0.0.1",
    model: Annotated[str, _knob("model")] = "sim-teacher",
    latency_ms: Annotated[float, _knob("latency_ms")] = 0.0,
    jitter_ms: Annotated[float, _knob("jitter_ms")] = 0.0,
    rate_429: Annotated[float, _knob("rate_429")] = 0.0,
    retry_after_s: Annotated[float, _knob("retry_after_s")] = 1.0,
    rate_5xx: Annotated[float, _knob("rate_5xx")] = 0.0,
    rate_hang: Annotated[float, _knob("rate_hang")] = 0.0,
    hang_s: Annotated[float, _knob("hang_s")] = 30.0,
    rate_malformed: Annotated[float, _knob("rate_malformed")] = 0.0,
    rate_truncated: Annotated[float, _knob("rate_truncated")] = 0.0,
    label_noise: Annotated[float, _knob("label_noise")] = 0.0,
    dup_rate: Annotated[float, _knob("dup_rate")] = 0.0,
    copy_rate: Annotated[float, _knob("copy_rate")] = 0.0,
    refusal_rate: Annotated[float, _knob("refusal_rate")] = 0.0,
    diversity_width: Annotated[int, _knob("diversity_width")] = 8,
    batch_delay_s: Annotated[float, _knob("batch_delay_s")] = 0.0,
    batch_failure_rate: Annotated[float, _knob("batch_failure_rate")] = 0.0,
    seed: Annotated[int, _knob("seed")] = 0,
    profile: Annotated[str | None, typer.Option(show_default=False, help=knob_help("profile"))] = None,
    policy_path: Annotated[
        Path | None, typer.Option("--policy", show_default=False, help=knob_help("policy_path"))
    ] = None,
    api_key_env: Annotated[
        str | None,
        typer.Option(
            show_default=False,
            help="NAME of an environment variable holding an API key that clients must send as a Bearer token "
            "(the key itself never goes on the command line).",
        ),
    ] = None,
) -> None:
    """Serve the teacher simulator: an OpenAI-compatible server backed by a labeled pool, with fault knobs.

    Prints one line, `distill simulator listening on http://HOST:PORT/v1`, once it accepts connections;
    stops cleanly (exit code 0) on Ctrl-C or SIGTERM.
    """
    if not pool.is_file():
        _fail(f"--pool: no such file: {pool}")
    if policy_path is not None and not policy_path.is_file():
        _fail(f"--policy: no such file: {policy_path}")
    try:
        config = SimulatorConfig(
            model=model,
            seed=seed,
            latency_ms=latency_ms,
            jitter_ms=jitter_ms,
            rate_429=rate_429,
            retry_after_s=retry_after_s,
            rate_5xx=rate_5xx,
            rate_hang=rate_hang,
            hang_s=hang_s,
            rate_malformed=rate_malformed,
            rate_truncated=rate_truncated,
            label_noise=label_noise,
            dup_rate=dup_rate,
            copy_rate=copy_rate,
            refusal_rate=refusal_rate,
            diversity_width=diversity_width,
            batch_delay_s=batch_delay_s,
            batch_failure_rate=batch_failure_rate,
            api_key=_api_key(api_key_env),
            policy_path=None if policy_path is None else str(policy_path),
            profile=profile,
        )
    except ValueError as exc:
        _fail(str(exc))
    _serve(config, pool, host, port)


def _serve(config: SimulatorConfig, pool: Path, host: str, port: int) -> None:
    # Imported here: uvicorn, starlette and scikit-learn are only needed once we really serve.
    from simulator.server import serve_forever

    try:
        serve_forever(config, pool, host=host, port=port)
    except ValueError as exc:  # a bad pool line: the message names the file and line
        _fail(f"--pool: {exc}")
    except OSError as exc:  # e.g. the port is taken
        _fail(f"cannot listen on {host}:{port}: {exc}", code=1)
