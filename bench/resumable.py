"""Per-seed results a benchmark keeps across an interruption (``--resume``).

Benchmarks write their JSON after every seed, so a run cut short keeps what it measured; ``--resume`` reads
those seeds back instead of paying for them again, but only when they were measured with the same settings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def kept_seed_results(path: Path | None, key: str, settings: dict[str, Any], seeds: list[int]) -> list[dict[str, Any]]:
    """The ``path[key]`` entries for ``seeds`` of an earlier run whose recorded ``settings`` equal these."""
    if path is None or not path.exists():
        return []
    earlier = json.loads(path.read_text())
    if key not in earlier:
        return []
    differing = sorted(name for name, value in settings.items() if earlier.get(name) != value)
    if differing:
        raise SystemExit(
            f"{path}: its {key} were measured with another {', '.join(differing)}; "
            "drop --resume to measure again, or pass the same settings"
        )
    return [entry for entry in earlier[key] if entry["seed"] in seeds]
