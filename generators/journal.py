"""The teacher gateway's audit seam: one ``CallRecord`` per call, written by whoever owns the store.

The gateway does not know about the run store (``agent`` imports ``generators``, never the reverse);
the agent passes an object with a ``record_call`` method.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class CallRecord:
    """One teacher call as journaled: never contains credentials or the provider's base URL."""

    prompt_id: str
    prompt_version: int
    request_hash: str
    sample_index: int
    model: str
    tokens_in: int
    tokens_out: int
    cost_usd: float
    latency_s: float
    attempts: int
    cache_hit: bool
    status: str  # ok | invalid_output | error | budget_exceeded
    error: str | None = None
    round: int | None = None
    adaptation: str | None = None  # how the request was changed after the provider rejected a parameter


class CallJournal(Protocol):
    def record_call(self, call: CallRecord) -> int:
        """Persist ``call`` durably and return its id."""
        ...


class MemoryJournal:
    """A journal kept in memory, for library use without a run store (and for benchmarks)."""

    def __init__(self) -> None:
        self.calls: list[CallRecord] = []

    def record_call(self, call: CallRecord) -> int:
        self.calls.append(call)
        return len(self.calls)
