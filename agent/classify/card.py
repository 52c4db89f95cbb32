"""What the model card says about a run: task, metrics, data provenance, teacher, cost, guidelines, caveats."""

from __future__ import annotations

from typing import Any

from agent.classify.context import VALIDATION_SPLITS, RunContext
from agent.store import RunStore
from agent.strategies import StrategyLibrary


def model_card(ctx: RunContext, best: int) -> dict[str, Any]:
    metrics = {
        split: {m: ctx.store.metric(best, split, m) for m in ("accuracy", "macro_f1", "ece")}
        for split in (*VALIDATION_SPLITS, "test")
    }
    t = ctx.spec.teacher
    return {
        "task": ctx.spec.name,
        "best_round": best,
        "labels": ctx.labels,
        "metrics": metrics,
        "training_examples_by_origin": ctx.store.origin_counts("train", kept=True),
        "dropped_by_filter": ctx.store.drop_counts(),
        "teacher": {"provider": t.provider, "model": t.model},
        "teacher_usage": ctx.store.call_summary(),
        "method": ctx.method,
        "notes": run_notes(ctx.store),
        "test_note": "test metrics are reported only; decisions used the held-back validation split",
        "labeling_guidelines": [
            {"id": g.id, "labels": g.scope.removeprefix("pair:").split("|"), "text": g.text, "status": g.status}
            for g in StrategyLibrary(ctx.store).current()
            if g.scope.startswith("pair:")
        ],
    }


def run_notes(store: RunStore) -> list[str]:
    """Caveats a reader of the model card must see, derived from the stored data (so resume keeps them)."""
    notes = []
    if "generated" in store.origin_counts("heldback"):
        notes.append(
            "validation set built from teacher-labeled data (no task.validation given): its scores "
            "measure agreement with the teacher, not with real users' data"
        )
    if not store.examples("test"):
        notes.append("no test set given: no unbiased estimate of quality is reported")
    return notes
