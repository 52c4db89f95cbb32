"""The simulator as a distill teacher server: the object the ``distill.teacher_servers`` entry point names.

pyproject.toml registers it (``simulator = "simulator.plugin:plugin"``); the agent finds it with
``agent.teacher_endpoint.teacher_server("simulator")`` and never imports this package by name
(tests/test_architecture.py checks that). It offers what ``agent.teacher_endpoint.TeacherServer``
describes: the knob model, a background server for a run, a foreground server for ``distill simulate``.

Importing this module stays cheap (pydantic only); the server side loads when one is started.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from simulator.config import SimulatorConfig, SimulatorKnobs, describe

if TYPE_CHECKING:
    from agent.teacher_endpoint import TeacherServer


class SimulatorPlugin:
    """The teacher simulator behind the generic teacher-server seam."""

    name = "simulator"
    knobs = SimulatorKnobs

    @contextmanager
    def start(
        self, knobs: SimulatorKnobs, *, model: str, pool: Path, policy: Path | None, api_key: str | None
    ) -> Iterator[str]:
        """Serve on a free loopback port in a background thread; yields the base URL (``…/v1``)."""
        from simulator.server import SimulatorServer

        with SimulatorServer(_config(knobs, model, policy, api_key), pool) as server:
            yield server.base_url

    def serve_forever(
        self,
        knobs: SimulatorKnobs,
        *,
        model: str,
        pool: Path,
        policy: Path | None,
        api_key: str | None,
        host: str,
        port: int,
    ) -> None:
        """Serve in the foreground until SIGINT/SIGTERM, printing one line with the URL once ready."""
        from simulator.server import serve_forever

        serve_forever(_config(knobs, model, policy, api_key), pool, host=host, port=port)


def _config(knobs: SimulatorKnobs, model: str, policy: Path | None, api_key: str | None) -> SimulatorConfig:
    """The server's config; a bad model id or policy file is a ``ValueError`` of one line per problem."""
    try:
        return SimulatorConfig(**knobs.model_dump(), model=model, policy_path=policy and str(policy), api_key=api_key)
    except ValidationError as exc:
        raise ValueError("; ".join(describe(exc))) from None


plugin: TeacherServer = SimulatorPlugin()  # mypy checks that it keeps the seam's contract
