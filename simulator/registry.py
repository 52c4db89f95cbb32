"""The brief-action registry: action name → handler, the context handlers get, and the error they raise.

A handler takes the parsed brief and an ``ActionContext`` and returns the JSON object the prompt
template's output schema describes. Handler modules (``simulator.actions``: generate, label;
``simulator.strategy_actions``: scenario, respond, judge, strategize, guidelines) join with
``@register_action("name")``; the server imports them and looks actions up here only. Kept apart from
the handlers so that handler modules depend on the registry, never on each other.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simulator.config import SimulatorConfig
from simulator.pool import PoolIndex
from simulator.sampling import PoolUsage

Brief = dict[str, Any]
Handler = Callable[[Brief, "ActionContext"], dict[str, Any]]


class ActionError(Exception):
    """The brief cannot be served; the server answers with an OpenAI-style error of ``status``."""

    def __init__(self, message: str, code: str = "invalid_brief", status: int = 400) -> None:
        super().__init__(message)
        self.message, self.code, self.status = message, code, status


@dataclass
class ActionContext:
    """What handlers may use: the knobs, the pool index, mutable usage, a seeded RNG, injection counters."""

    config: SimulatorConfig
    index: PoolIndex
    usage: PoolUsage
    rng: np.random.Generator
    # "served" pool items, and injected "noise"/"dup"/"copy"/"refusal" examples (reset with the stats).
    counters: Counter[str] = field(default_factory=Counter)


ACTIONS: dict[str, Handler] = {}


def register_action(name: str) -> Callable[[Handler], Handler]:
    """Decorator: make ``handler`` answer briefs whose ``action`` is ``name``."""

    def decorate(handler: Handler) -> Handler:
        if name in ACTIONS:
            raise ValueError(f"simulator action {name!r} is already registered")
        ACTIONS[name] = handler
        return handler

    return decorate
