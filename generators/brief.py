"""The ``brief`` block: the machine-readable tail of every teacher prompt (DESIGN §5).

Every prompt template ends its last user message with a fenced block::

    ```brief
    {"action": "generate", "label": "card_arrival", "n": 16, ...}
    ```

A real LLM reads it as part of its instructions; the teacher simulator parses it.
"""

from __future__ import annotations

import json
import re
from typing import Any

_BRIEF_RE = re.compile(r"```brief\s*\n(.*?)\n```", re.DOTALL)


class BriefError(ValueError):
    """The prompt carries no brief block, or the block is not a JSON object with an action."""


def render_brief(brief: dict[str, Any]) -> str:
    """Return the fenced brief block for ``brief`` (stable key order, so cache keys are stable)."""
    if "action" not in brief:
        raise BriefError("a brief needs an 'action' key")
    return "```brief\n" + json.dumps(brief, ensure_ascii=False, sort_keys=True) + "\n```"


def parse_brief(text: str) -> dict[str, Any]:
    """Return the JSON object of the *last* brief block in ``text``."""
    matches = _BRIEF_RE.findall(text)
    if not matches:
        raise BriefError("no ```brief block found in the last user message")
    try:
        brief = json.loads(matches[-1])
    except json.JSONDecodeError as exc:
        raise BriefError(f"the brief block is not valid JSON: {exc}") from exc
    if not isinstance(brief, dict) or not isinstance(brief.get("action"), str):
        raise BriefError("the brief block must be a JSON object with a string 'action'")
    return brief
