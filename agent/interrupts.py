"""Ctrl-C during a run: the first press stops at the next safe point, the second stops at once.

First press: no new teacher call is sent (calls already in flight finish, and their paid answers are
cached and journaled), and the run stops before its next step. Second press: ``KeyboardInterrupt`` at
once; every store write is a transaction, so the store stays consistent and ``resume`` continues. Either
way the run ends with ``RunInterrupted``: exit 130 and the ``distill resume`` line to type.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from agent import console
from agent.errors import DistillError

SIGINT_EXIT = 130  # 128 + SIGINT, what shells report for a Ctrl-C


class RunInterrupted(DistillError):
    """The user stopped the run; it is resumable."""

    exit_code = SIGINT_EXIT

    def __init__(self, run_dir: Path | None = None) -> None:
        super().__init__(f"interrupted — continue with: distill resume {run_dir or 'RUN_DIR'}")


class StopRequests:
    """The first Ctrl-C's flag and what to tell when it comes (the teacher gateway stops dispatching)."""

    def __init__(self) -> None:
        self.requested = False
        self._listeners: list[Callable[[], None]] = []

    def on_request(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)
        if self.requested:
            listener()

    def request(self) -> None:
        self.requested = True
        for listener in self._listeners:
            listener()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        console.warn(
            "stopping at the next safe point: calls in flight finish and are kept, no new call is sent "
            "(Ctrl-C again to stop at once; nothing paid for is lost either way)"
        )
        self.request()

    @contextmanager
    def installed(self) -> Iterator[StopRequests]:
        """Route SIGINT here for the block (main thread only; elsewhere, e.g. in a test thread, a no-op)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = signal.signal(signal.SIGINT, self._handle)
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)
