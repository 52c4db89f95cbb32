"""Filter, train, evaluate: a round's data becomes a model and its measurements."""

from __future__ import annotations

import json
import shutil
from typing import TYPE_CHECKING, Any

from agent import console
from agent.classify.context import VALIDATION_SPLITS, RunContext
from agent.store import RoundStatus
from generators.filters import Candidate, FilterConfig, filter_batch
from generators.generation import OUT_OF_SCOPE

if TYPE_CHECKING:
    from trainers.rejection import Rejection


def filter_round(ctx: RunContext, round: int) -> dict[str, int]:
    """Verdicts for the round's unfiltered examples; returns drop counts by filter."""
    fresh = [e for e in ctx.store.examples("train", round=round) if e.kept is None]
    kept_train = [e.text for e in ctx.store.examples("train", kept=True)]
    protected = [e.text for split in (*VALIDATION_SPLITS, "test") for e in ctx.store.examples(split)]
    f = ctx.spec.filters
    config = FilterConfig(
        frozenset(ctx.labels), f.min_chars, f.max_chars, f.near_duplicate_threshold, f.leakage_threshold
    )
    verdicts = filter_batch(
        [Candidate(e.id, e.text, e.label) for e in fresh],
        train_texts=kept_train,
        protected_texts=protected,
        config=config,
        embed=ctx.embed,
    )
    ctx.store.record_filter_decisions(
        [(v.example_id, v.filter, v.kept, v.reason, v.score) for v in verdicts],
        mark_round=(round, RoundStatus.FILTERED),
    )
    return ctx.store.drop_counts(round)


def train_round(ctx: RunContext, round: int) -> dict[str, Any]:
    """Fine-tune the student on all kept training data; the model lands in models/round-NN/."""
    from trainers.config import EncoderConfig
    from trainers.encoder import EncoderClassifier
    from trainers.student import Student, create_student

    out = ctx.model_dir(round)
    config = ctx.spec.student  # the spec's student section is the trainer's own config (encoder or causal LM)
    previous = ctx.model_dir(round - 1)
    student: Student
    if isinstance(config, EncoderConfig) and config.warm_start and round > 0 and (previous / "labels.json").is_file():
        student = EncoderClassifier.load(previous)
    else:
        student = create_student(ctx.labels, config)
    train = ctx.store.examples("train", kept=True)
    with console.progress(f"round {round} training on {len(train)} examples", None) as advance_to:
        stats = student.train(
            [e.text for e in train], [e.label for e in train], progress=lambda done, total: advance_to(done, total)
        )
    if out.exists():
        shutil.rmtree(out)
    student.save(out, card={"round": round, "train_examples": len(train)})
    stats_dict = {k: getattr(stats, k) for k in ("steps", "epochs", "seconds", "examples_per_s", "final_loss")}
    (out / "train_stats.json").write_text(json.dumps(stats_dict, indent=2))
    ctx.store.set_round_status(round, RoundStatus.TRAINED)
    return stats_dict


def evaluate_round(ctx: RunContext, round: int) -> dict[str, dict[str, float]]:
    """Fit the temperature (and, with out_of_scope, the rejection rule) on held-back, then evaluate
    feedback, held-back and test; store the metrics.

    ``ece`` is measured on the calibrated probabilities (what ``predict`` answers with),
    ``ece_uncalibrated`` on the plain softmax. The test split is scored, never fitted on. With
    ``task.out_of_scope`` the scores are those of the answers the rule decides (what ``predict``
    answers), plus ``in_scope_accuracy``, ``oos_recall`` and ``oos_precision``.
    """
    from trainers.calibration import softmax
    from trainers.encoder import save_rejection, save_temperature
    from trainers.evaluate import evaluate, expected_calibration_error
    from trainers.rejection import decide
    from trainers.student import load_student

    out = ctx.model_dir(round)
    student = load_student(out)
    rows_by_split = {split: ctx.store.examples(split) for split in (*VALIDATION_SPLITS, "test")}
    logits = {split: student.predict_logits([r.text for r in rows]) for split, rows in rows_by_split.items() if rows}
    temperature = _fit_on_heldback(ctx, rows_by_split["heldback"], logits.get("heldback"))
    save_temperature(out, temperature)  # before EVALUATED: a rerun after a kill fits the same T again
    rejection = _reject_on_heldback(ctx, rows_by_split["heldback"], logits.get("heldback"), temperature)
    save_rejection(out, rejection)
    summary: dict[str, dict[str, float]] = {}
    for split, split_logits in logits.items():
        rows = rows_by_split[split]
        gold, texts = [r.label for r in rows], [r.text for r in rows]
        proba = softmax(split_logits, temperature)
        decided = decide(proba, ctx.labels, rejection) if rejection else None
        data = evaluate(gold, proba, ctx.labels, texts=texts, decided=decided).to_dict()
        raw = softmax(split_logits)
        targets = [ctx.labels.index(g) for g in gold]
        ece_raw = expected_calibration_error(raw.max(axis=1), raw.argmax(axis=1) == targets)
        scope = _scope_metrics(gold, data) if rejection else {}
        data |= {"ece_uncalibrated": ece_raw, "temperature": temperature, **scope}
        if rejection:
            data["rejection"] = rejection.to_dict()
        (out / f"eval_{split}.json").write_text(json.dumps(data, indent=1))
        metrics: list[tuple[str, str | None, float]] = [
            ("accuracy", None, data["accuracy"]),
            ("macro_f1", None, data["macro_f1"]),
            ("ece", None, data["ece"]),
            ("ece_uncalibrated", None, ece_raw),
            ("temperature", None, temperature),
            *((name, None, value) for name, value in scope.items()),
        ]
        for label, m in data["per_class"].items():
            metrics += [(k, label, float(m[k])) for k in ("precision", "recall", "f1")]
        ctx.store.record_metrics(round, split, metrics)
        summary[split] = {"accuracy": data["accuracy"], "macro_f1": data["macro_f1"], "ece": data["ece"], **scope}
    ctx.store.set_round_status(round, RoundStatus.EVALUATED)
    return summary


def _reject_on_heldback(ctx: RunContext, rows: list[Any], logits: Any, temperature: float) -> Rejection | None:
    """The out-of-scope rule chosen on held-back's calibrated probabilities only; None without out_of_scope."""
    from trainers.calibration import softmax
    from trainers.rejection import Rejection, choose_rejection

    if not ctx.spec.task.out_of_scope:
        return None
    if not rows or logits is None:
        return Rejection(OUT_OF_SCOPE, "class", 0.0, "no held-back items: the explicit class only")
    gold = [ctx.labels.index(r.label) for r in rows]
    return choose_rejection(softmax(logits, temperature), gold, ctx.labels, OUT_OF_SCOPE)


def _scope_metrics(gold: list[str], data: dict[str, Any]) -> dict[str, float]:
    """In-scope accuracy, out-of-scope recall and precision of the answers ``evaluate`` scored."""
    from trainers.evaluate import out_of_scope_metrics

    return out_of_scope_metrics(gold, [item["predicted"] for item in data["items"]], OUT_OF_SCOPE)


def _fit_on_heldback(ctx: RunContext, rows: list[Any], logits: Any) -> float:
    """The temperature fitted on held-back logits only; 1.0 (no scaling) for a run without held-back data."""
    from trainers import calibration

    if not rows or logits is None:
        return 1.0
    return calibration.fit_temperature(logits, [ctx.labels.index(r.label) for r in rows])
