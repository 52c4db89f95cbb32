"""The ``brief``: the machine-readable twin of a teacher prompt, for the teacher simulator only (DESIGN §5).

A real teacher receives the natural-language prompt alone, which carries everything it needs. When the
teacher *is* the simulator, the gateway also sends the brief out of band, as one extra top-level field
of the request body (``extra_body`` of the openai SDK)::

    {"model": ..., "messages": [...], "distill_brief": {"action": "generate", "label": "card_arrival", "n": 16}}

So no real provider ever sees (or bills) it, and the simulator never has to parse prose.
"""

from __future__ import annotations

from typing import Any

BRIEF_FIELD = "distill_brief"


class BriefError(ValueError):
    """The request carries no brief, or the brief is not a JSON object with a string action."""


def brief_body(brief: dict[str, Any]) -> dict[str, Any]:
    """The ``extra_body`` that carries ``brief`` to the simulator."""
    if not isinstance(brief.get("action"), str):
        raise BriefError("a brief needs a string 'action'")
    return {BRIEF_FIELD: brief}


def parse_brief(body: dict[str, Any]) -> dict[str, Any]:
    """The brief of a chat-completions request body (the simulator's side)."""
    brief = body.get(BRIEF_FIELD)
    if brief is None:
        raise BriefError(
            f"no '{BRIEF_FIELD}' in the request body: the simulator answers distill's gateway, "
            "which sends one when the teacher is the simulator"
        )
    if not isinstance(brief, dict) or not isinstance(brief.get("action"), str):
        raise BriefError(f"'{BRIEF_FIELD}' must be a JSON object with a string 'action'")
    return brief
