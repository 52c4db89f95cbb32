"""What deferring costs: the teacher's price per labeled text, and the coverage–accuracy–cost curve.

A cascade answers with the student where its calibrated confidence reaches the threshold and asks the
teacher for the rest, so each point of the held-back coverage curve has a teacher bill per 1,000
messages (``trainers.deferral.cost_curve``). The price of one labeled text is *measured* from the run's
journal when the run paid for label calls (active learning): their USD over the texts they labeled.
Otherwise it is *estimated* from the spec's prices and the label prompt the cascade would send
(characters / 4 for its tokens, the template's output bound for the reply). The curve is computed at
export and saved with the model (``distill_student.json`` → ``deferral``), so ``status`` and the report
read one stored answer instead of recomputing it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.plan import CHARS_PER_TOKEN
from agent.spec import RunSpec
from agent.store import RunStore
from generators.generation import label_requests
from generators.ledger import Prices, format_usd
from trainers.deferral import STUDENT_FILE, TeacherCost

LABEL_PROMPT = "label"  # the template the cascade and active learning label texts with
_STAND_IN = "an example message of typical length for this task"


def teacher_cost(store: RunStore, spec: RunSpec, sample_texts: list[str]) -> TeacherCost:
    """USD per labeled text: measured from the run's paid label calls if any, else estimated from ``spec``."""
    paid = store.calls_by_prompt().get(LABEL_PROMPT)
    if paid and paid["usd"] > 0:
        origins = store.call_origins()
        texts = sum(
            1
            for e in store.example_provenance("train")
            if e.origin == "active" and e.teacher_call_id in origins and not origins[e.teacher_call_id].cache_hit
        )
        if texts:
            detail = f"{format_usd(paid['usd'])} over {paid['calls']} paid label calls that labeled {texts} texts"
            return TeacherCost(paid["usd"] / texts, "measured", detail)
    return estimated_cost(spec, sample_texts)


def estimated_cost(spec: RunSpec, sample_texts: list[str]) -> TeacherCost:
    """The spec's prices × one label call of ``loop.batch_per_call`` of these texts, per text."""
    from agent.classify.context import task_info

    chunk = sample_texts[: spec.loop.batch_per_call] or [_STAND_IN]
    request = label_requests(task_info(spec), chunk, per_call=len(chunk), round=0)[0]
    tokens_in = math.ceil(sum(len(m["content"]) for m in request.messages) / CHARS_PER_TOKEN)
    prices = Prices(spec.teacher.price_input_per_mtok, spec.teacher.price_output_per_mtok)
    usd = prices.cost(tokens_in, request.output_tokens) / len(chunk)
    detail = (
        f"spec prices × a label call of {len(chunk)} texts: ~{tokens_in} prompt tokens (characters / "
        f"{CHARS_PER_TOKEN}), ≤ {request.output_tokens} output tokens; no paid label call in the run to measure"
    )
    return TeacherCost(usd, "estimated", detail)


# -- what `distill status` and the report show ----------------------------------------------------------


@dataclass(frozen=True)
class CoverageRow:
    """One threshold of the held-back curve: the student's share, its accuracy there, the teacher's bill."""

    threshold: float
    coverage: float  # share of messages the student answers (confidence ≥ threshold)
    accuracy: float  # the student's accuracy on the messages it answers
    cost_per_1k: float  # USD the teacher is paid per 1,000 messages for the rest
    chosen: bool  # the threshold the model was exported with


@dataclass(frozen=True)
class Coverage:
    rows: list[CoverageRow]
    cost: TeacherCost
    threshold: float
    test: dict[str, float] | None  # the chosen threshold measured on test (reported only)


def read_coverage(model_dir: Path) -> Coverage | None:
    """The curve saved with a model folder at export; None for folders without one (older versions)."""
    path = model_dir / STUDENT_FILE
    if not path.is_file():
        return None
    entry = json.loads(path.read_text(encoding="utf-8")).get("deferral") or {}
    if "curve_heldback" not in entry or "teacher_cost" not in entry:
        return None
    threshold = float(entry["threshold"])
    cost = TeacherCost(**entry["teacher_cost"])
    rows = [
        CoverageRow(
            threshold=float(p["threshold"]),
            coverage=float(p["coverage"]),
            accuracy=float(p["accuracy"]),
            cost_per_1k=float(p.get("cost_per_1k", (1 - float(p["coverage"])) * cost.usd_per_text * 1000)),
            chosen=False,
        )
        for p in entry["curve_heldback"]
    ]
    rows = _mark_chosen(rows, threshold)
    return Coverage(rows, cost, threshold, entry.get("test"))


def _mark_chosen(rows: list[CoverageRow], threshold: float) -> list[CoverageRow]:
    """Flag the curve point at (or just above) the exported threshold; the curve is thinned, so it may lie between."""
    at_or_above = [i for i, r in enumerate(rows) if r.threshold >= threshold - 1e-12]
    chosen = at_or_above[0] if at_or_above else None
    return [CoverageRow(**{**r.__dict__, "chosen": i == chosen}) for i, r in enumerate(rows)]


def coverage_rows(run_dir: Path) -> list[CoverageRow]:
    """The held-back coverage–accuracy–cost curve of a run's exported model (``<run>/model``); [] if none."""
    found = read_coverage(run_dir / "model")
    return found.rows if found else []


def thin(rows: list[CoverageRow], points: int = 8) -> list[CoverageRow]:
    """About ``points`` rows spread over the curve, always keeping the chosen threshold (for a terminal)."""
    if len(rows) <= points:
        return rows
    step = (len(rows) - 1) / (points - 1)
    keep = {round(i * step) for i in range(points)} | {i for i, r in enumerate(rows) if r.chosen}
    return [rows[i] for i in sorted(keep)]


def format_coverage_rows(rows: list[CoverageRow]) -> list[list[str]]:
    """Cells for a table with ``COVERAGE_HEADERS``: the lead's `distill status` and the report share them."""
    return [
        [
            f"{r.threshold:.3f}" + (" (chosen)" if r.chosen else ""),
            f"{r.coverage:.1%}",
            f"{r.accuracy:.4f}",
            format_usd(r.cost_per_1k),
        ]
        for r in rows
    ]


COVERAGE_HEADERS = ["threshold", "student answers", "student accuracy", "teacher $ per 1k messages"]


def cost_note(cost: TeacherCost) -> str:
    """One sentence saying what a labeled text costs and where that number comes from."""
    return f"teacher cost per labeled text {format_usd(cost.usd_per_text)}, {cost.source}: {cost.detail}"


def coverage_table_data(run_dir: Path) -> dict[str, Any] | None:
    """The curve as plain data for `distill status --json`: rows and the cost basis; None without one."""
    found = read_coverage(run_dir / "model")
    if found is None:
        return None
    return {
        "threshold": found.threshold,
        "teacher_cost": found.cost.to_dict(),
        "rows": [r.__dict__ for r in found.rows],
        "test": found.test,
    }
