"""What the model card says about a run: task, metrics with confidence intervals, data provenance,
teacher, cost, guidelines, caveats. ``trainers.model_card`` renders it; it is also stored as data.

Everything comes from the run store and the best round's stored evaluations, so a resumed run writes
the same card. The card names no path of this machine and no endpoint or key: the teacher is its
provider and model name, the base model its Hub id (or folder name).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from agent.classify.context import VALIDATION_SPLITS, RunContext
from agent.classify.guidelines import pair_labels
from agent.store import ExampleRow, RunStore
from agent.strategies import StrategyLibrary
from trainers.bootstrap import intervals_from_evaluation
from trainers.model_card import BaseModelName, base_model_name, public_name

SPLITS = (*VALIDATION_SPLITS, "test")
METRICS = ("accuracy", "macro_f1", "ece")


SMOLLM2_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"  # what the packaged SmolLM2 GGUF was quantized from


def _base_model(ctx: RunContext) -> BaseModelName:
    student = ctx.spec.student
    if student.kind == "causal_lm" and student.base_model.strip().lower() == "smollm2":
        return BaseModelName(SMOLLM2_HUB_ID, True)
    return base_model_name(student.base_model)


def model_card(ctx: RunContext, best: int) -> dict[str, Any]:
    """The card of the model of round ``best``: trained on the examples kept up to that round."""
    metrics = {split: {m: ctx.store.metric(best, split, m) for m in METRICS} for split in SPLITS}
    train = [e for e in ctx.store.examples("train") if e.round <= best]
    origins = dict(sorted(Counter(e.origin for e in train if e.kept).items()))
    base = _base_model(ctx)
    t = ctx.spec.teacher
    return {
        "task": ctx.spec.name,
        "description": ctx.spec.task.description,
        "best_round": best,
        "method": ctx.method,
        "train_examples": sum(origins.values()),
        "labels": ctx.labels,
        "label_descriptions": {label.name: label.description for label in ctx.spec.task.labels},
        "base_model": base.name,
        "base_model_on_hub": base.on_hub,
        "license": ctx.spec.card.license,
        "language": list(ctx.spec.card.language),
        "tags": list(ctx.spec.card.tags),
        "datasets": list(ctx.spec.card.datasets),
        "metrics": metrics,
        "confidence_intervals": confidence_intervals(ctx, best),
        "test_note": "test metrics are reported only; decisions used the held-back validation split",
        "training_examples_by_origin": origins,
        "data_by_round": data_by_round(ctx.store, train),
        "dropped_by_filter": _drops_up_to(ctx.store, {e.round for e in train}),
        "teacher": {"provider": t.provider, "model": public_name(t.model)},
        "teacher_usage": ctx.store.call_summary(),
        "labeling_guidelines": [
            {"id": g.id, "labels": pair_labels(g.scope, ctx.labels), "text": g.text, "status": g.status}
            for g in StrategyLibrary(ctx.store).current()
            if g.scope.startswith("pair:")
        ],
        "limitations": limitations(metrics, origins),
        "notes": run_notes(ctx.store),
    }


def confidence_intervals(ctx: RunContext, best: int) -> dict[str, dict[str, Any]]:
    """Bootstrap intervals of accuracy and macro-F1 per split, from the round's stored per-item predictions."""
    out = {}
    for split in SPLITS:
        path = ctx.model_dir(best) / f"eval_{split}.json"
        if path.is_file():
            evaluation = json.loads(path.read_text(encoding="utf-8"))
            if evaluation.get("items"):
                intervals = intervals_from_evaluation(evaluation, seed=ctx.spec.student.seed)
                out[split] = {name: interval.to_dict() for name, interval in intervals.items()}
    return out


def data_by_round(store: RunStore, train: list[ExampleRow]) -> list[dict[str, Any]]:
    """Per round: training examples stored, kept (by origin) and dropped (by filter)."""
    rows = []
    for round in sorted({e.round for e in train}):
        examples = [e for e in train if e.round == round]
        kept = [e for e in examples if e.kept]
        rows.append(
            {
                "round": round,
                "stored": len(examples),
                "kept": len(kept),
                "kept_by_origin": dict(sorted(Counter(e.origin for e in kept).items())),
                "dropped": sum(1 for e in examples if e.kept is False),
                "dropped_by_filter": store.drop_counts(round),
            }
        )
    return rows


def _drops_up_to(store: RunStore, rounds: set[int]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for round in rounds:
        total.update(store.drop_counts(round))
    return dict(sorted(total.items()))


def limitations(metrics: dict[str, dict[str, float | None]], origins: dict[str, int]) -> list[str]:
    """Measured caveats: the held-back − test gap and how much of the training data the teacher made."""
    out = []
    heldback, test = metrics["heldback"].get("macro_f1"), metrics["test"].get("macro_f1")
    if heldback is not None and test is not None:
        out.append(
            f"Macro-F1 on the held-back validation part is {heldback:.3f}, on the test set {test:.3f}: a gap of "
            f"{heldback - test:+.3f}. The best round was chosen on held-back validation, so its score is "
            "optimistic; the test score is the estimate for new data like the test set."
        )
    total = sum(origins.values())
    if total:
        share = {origin: 100 * origins.get(origin, 0) / total for origin in ("generated", "active", "real")}
        out.append(
            f"{share['generated']:.1f}% of the {total} training examples were written by the teacher "
            f"(synthetic), {share['active']:.1f}% are real texts labeled by the teacher and {share['real']:.1f}% "
            "are your own labeled examples. Synthetic text tends to be cleaner and less varied than real traffic."
        )
    return out


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
