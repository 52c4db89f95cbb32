"""The live state one classifier run's steps share: spec, run dir, store, teacher, embedder."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from agent.interrupts import StopRequests
from agent.spec import RunSpec
from agent.store import RunStore
from generators.generation import TaskInfo
from generators.teacher import Teacher

VALIDATION_SPLITS = ("feedback", "heldback")
StepObserver = Callable[[int, str], None]  # (round, step name), called after each step that ran


@dataclass
class RunContext:
    spec: RunSpec
    run_dir: Path
    store: RunStore
    teacher: Teacher
    embed: Callable[[list[str]], np.ndarray] | None
    method: str = "pgkd"  # pgkd | pgkd_nosmooth | uniform
    budget_hit: str | None = None
    stop: StopRequests = field(default_factory=StopRequests)  # the first Ctrl-C sets it
    observer: StepObserver | None = None  # told about each finished step (progress, tests that crash a run)

    @property
    def task(self) -> TaskInfo:
        """The task as prompts see it; with ``task.out_of_scope``, ``out_of_scope`` is one more outcome."""
        return task_info(self.spec)

    @property
    def labels(self) -> list[str]:
        """Every outcome the teacher may answer and the student learns (``out_of_scope`` included)."""
        return list(self.task.labels)

    def rng(self, round: int, purpose: str) -> random.Random:
        return random.Random(f"{self.spec.student.seed}:{round}:{purpose}")

    def model_dir(self, round: int) -> Path:
        return self.run_dir / "models" / f"round-{round:02d}"


def task_info(spec: RunSpec) -> TaskInfo:
    """The spec's task with its outcome set: the labels, plus ``out_of_scope`` when the task has it."""
    task = spec.task
    return TaskInfo.of(task.description, {lab.name: lab.description for lab in task.labels}, task.out_of_scope)
