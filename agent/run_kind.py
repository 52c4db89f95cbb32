"""What the lifecycle (``agent.lifecycle``) and a run kind (classifier, dialogue) exchange."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from agent.classify.context import StepObserver
from agent.errors import InputError
from agent.interrupts import StopRequests
from agent.spec import DialogueRunSpec, RunSpec, parse_any_spec
from agent.store import RunStore

Embed = Callable[[list[str]], np.ndarray]
SPEC_FILE = "spec.json"  # the resolved spec, as the run saw it
STORE_FILE = "run.sqlite"


@dataclass
class RunOptions:
    """What a caller may inject: tests and benchmarks pass an embedder, a student client, an observer."""

    observer: StepObserver | None = None
    embed: Embed | None = None
    student: Any = None  # an open dialogue StudentClient (tests, benchmarks); None: open the spec's
    stop: StopRequests = field(default_factory=StopRequests)


@dataclass(frozen=True)
class RunOutcome:
    run_dir: Path
    summary: list[str]  # what the CLI prints when the run ends
    result: Any  # the kind's own result: LoopResult (classifier) or the held-out summary (dialogue)


class RunKind(Protocol):
    def execute(self, spec: Any, run_dir: Path, store: RunStore, options: RunOptions) -> RunOutcome: ...


def load_run_spec(run_dir: Path) -> RunSpec | DialogueRunSpec:
    """The resolved spec stored in ``run_dir``; an input error if it is not a run directory."""
    path = run_dir / SPEC_FILE
    if not path.is_file():
        raise InputError(
            f"RUN_DIR: {run_dir} is not a distill run (no {SPEC_FILE}) — pass a folder made by `distill run`"
        )
    return parse_any_spec(json.loads(path.read_text(encoding="utf-8")), run_dir)
