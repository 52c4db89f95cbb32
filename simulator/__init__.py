"""The teacher simulator (DESIGN §5): an OpenAI-compatible server on loopback backed by a labeled pool.

``SimulatorServer`` runs it in a background thread (tests, the demo); ``serve_forever`` runs it in the
foreground. The agent and ``distill simulate`` reach it only as a plugin (``simulator.plugin``, entry
point ``distill.teacher_servers``). Knobs are defined once, in ``SimulatorKnobs`` (``SimulatorConfig``
adds the model id, API key and policy); brief actions are registered in ``simulator.registry``
(``register_action``).

The server side (uvicorn, starlette, scikit-learn) is imported on first use, so that importing the
config, e.g. for ``distill --help``, stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from simulator.config import SimulatorConfig, SimulatorKnobs

if TYPE_CHECKING:
    from simulator.registry import ActionContext, ActionError, register_action
    from simulator.server import SimulatorServer, serve_forever

_LAZY = {
    "ActionContext": "simulator.registry",
    "ActionError": "simulator.registry",
    "register_action": "simulator.registry",
    "SimulatorServer": "simulator.server",
    "serve_forever": "simulator.server",
}

__all__ = [
    "ActionContext",
    "ActionError",
    "SimulatorConfig",
    "SimulatorKnobs",
    "SimulatorServer",
    "register_action",
    "serve_forever",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
