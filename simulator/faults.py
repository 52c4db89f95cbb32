"""Per-request faults: a seeded draw (or a scripted queue), latency, broken content, and the counters.

The fault of a request is decided first, then its latency is slept, then the request is answered;
a scripted queue of outcomes overrides the random draw, FIFO, for deterministic retry tests.
"""

from __future__ import annotations

import random
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from simulator.config import SimulatorConfig

# What /_sim/script accepts; "5xx" picks 500 or 503 at random, like the rate_5xx knob.
SCRIPTABLE = frozenset({"ok", "429", "500", "503", "5xx", "hang", "malformed", "truncated"})
# The stats buckets: every chat-completions request lands in exactly one.
OUTCOME_BUCKETS = ("ok", "429", "5xx", "hang", "malformed", "truncated", "400", "401")


class FaultPlan:
    """Decides each request's outcome and latency from one seeded RNG (scripted outcomes first)."""

    def __init__(self, config: SimulatorConfig) -> None:
        self._config = config
        self._rng = random.Random(config.seed)
        self._script: deque[str] = deque()

    def script(self, outcomes: list[str]) -> None:
        """Queue forced outcomes for the next requests; raises ``ValueError`` on an unknown one."""
        unknown = [o for o in outcomes if o not in SCRIPTABLE]
        if unknown:
            raise ValueError(f"unknown outcomes {unknown}; use any of {sorted(SCRIPTABLE)}")
        self._script.extend(outcomes)

    @property
    def pending(self) -> int:
        return len(self._script)

    def next_outcome(self) -> str:
        """``ok``, ``429``, ``500``, ``503``, ``hang``, ``malformed`` or ``truncated``."""
        outcome = self._script.popleft() if self._script else self._draw()
        if outcome == "5xx":
            outcome = self._rng.choice(("500", "503"))
        return outcome

    def latency_s(self) -> float:
        """Normal(latency_ms, jitter_ms), clipped at 0, in seconds."""
        config = self._config
        if config.jitter_ms == 0:
            return config.latency_ms / 1000
        return max(0.0, self._rng.gauss(config.latency_ms, config.jitter_ms)) / 1000

    def _draw(self) -> str:
        # One uniform number against cumulative rates: at most one fault per request.
        u, edge = self._rng.random(), 0.0
        config = self._config
        for outcome, rate in (
            ("429", config.rate_429),
            ("5xx", config.rate_5xx),
            ("hang", config.rate_hang),
            ("malformed", config.rate_malformed),
            ("truncated", config.rate_truncated),
        ):
            edge += rate
            if u < edge:
                return outcome
        return "ok"


def malformed(content: str) -> str:
    """A chatty preamble, then the JSON cut in half: fails ``json.loads``, as real models sometimes do."""
    return "Sure! Here are the examples you asked for:\n\n" + content[: max(1, len(content) // 2)]


def truncated(content: str) -> str:
    """The JSON cut mid-way, as when the output hits max_tokens (a proper prefix of an object never parses)."""
    return content[: max(1, (len(content) * 3) // 5)]


def bucket(outcome: str) -> str:
    """The stats bucket of an outcome (500 and 503 share ``5xx``)."""
    return "5xx" if outcome in ("500", "503") else outcome


@dataclass
class SimStats:
    """Counters over /v1/chat/completions requests (only ever touched from the server's event loop)."""

    requests: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    actions: Counter[str] = field(default_factory=Counter)
    status_codes: Counter[str] = field(default_factory=Counter)

    def record(self, outcome: str, status: int) -> None:
        self.outcomes[bucket(outcome)] += 1
        self.status_codes[str(status)] += 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "outcomes": {name: self.outcomes.get(name, 0) for name in OUTCOME_BUCKETS},
            "actions": dict(self.actions),
            "status_codes": dict(self.status_codes),
        }
