"""The named steps of the round loop. Each reads its inputs from the run store and leaves its outputs
durable there (or in the round's model folder) before the next step starts, so any step can be re-run
after a crash. Teacher calls are re-rendered identically on resume and answered by the cache.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from pydantic import BaseModel

from agent import console
from agent.active import candidates, read_unlabeled, select_by_margin
from agent.jsonl import jsonl_objects
from agent.policy import Decision, PolicyInput, decide
from agent.runtime import batch_settings, run_batch_requests, run_requests
from agent.spec import RunSpec
from agent.store import RunStore
from agent.strategies import StrategyLibrary
from generators.filters import Candidate, FilterConfig, filter_batch
from generators.generation import (
    Feedback,
    LabelFeedback,
    TaskInfo,
    label_requests,
    pgkd_requests,
    seed_requests,
)
from generators.ledger import BudgetExceeded, format_usd
from generators.prompts import get_template
from generators.schemas import AssignedLabels, GeneratedExamples, Guidelines
from generators.teacher import Completion, Teacher, TeacherRequest

VALIDATION_SPLITS = ("feedback", "heldback")
ReplyT = TypeVar("ReplyT", bound=BaseModel)


@dataclass
class RunContext:
    spec: RunSpec
    run_dir: Path
    store: RunStore
    teacher: Teacher
    embed: Callable[[list[str]], np.ndarray] | None
    method: str = "pgkd"  # pgkd | pgkd_nosmooth | uniform
    budget_hit: str | None = None

    @property
    def task(self) -> TaskInfo:
        return TaskInfo(self.spec.task.description, {lab.name: lab.description for lab in self.spec.task.labels})

    @property
    def labels(self) -> list[str]:
        return self.spec.task.label_names

    def rng(self, round: int, purpose: str) -> random.Random:
        return random.Random(f"{self.spec.student.seed}:{round}:{purpose}")

    def model_dir(self, round: int) -> Path:
        return self.run_dir / "models" / f"round-{round:02d}"


# -- data loading ----------------------------------------------------------------------------------


def read_jsonl(path: Path, labels: set[str], field_name: str) -> list[dict[str, str]]:
    """Rows {text, label} from a JSONL file; a bad line is an error naming the file, line and fix."""
    rows = []
    for number, row in jsonl_objects(path, field_name):
        if not isinstance(row, dict) or not isinstance(row.get("text"), str) or "label" not in row:
            raise ValueError(f"{field_name}: {path}:{number} needs string keys 'text' and 'label'")
        if row["label"] not in labels:
            raise ValueError(f"{field_name}: {path}:{number} has label {row['label']!r}, not in task.labels")
        rows.append({"text": row["text"], "label": str(row["label"])})
    return rows


def stratified_split(
    rows: list[dict[str, str]], fraction: float, rng: random.Random
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Split per label: ``fraction`` of each label's rows to the first part, at least one to each."""
    by_label: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        by_label[row["label"]].append(row)
    first, second = [], []
    for label in sorted(by_label):
        items = by_label[label][:]
        rng.shuffle(items)
        cut = min(max(1, round(len(items) * fraction)), max(1, len(items) - 1))
        first += items[:cut]
        second += items[cut:]
    return first, second


# -- teacher plumbing ------------------------------------------------------------------------------


def _collect(
    ctx: RunContext, requests: list[TeacherRequest], what: str, schema: type[ReplyT], *, batchable: bool = False
) -> list[tuple[TeacherRequest, Completion[ReplyT]]]:
    """Send teacher requests with a progress bar; keep successes, report failures, note budget stops.

    ``batchable`` requests (seed generation, labeling: nothing waits on them but the next step) go
    through the Batch API when the spec asks for it.
    """
    if not requests:
        return []
    settings = batch_settings(ctx.spec) if batchable else None
    if settings is not None:
        with console.progress(f"{what}: batch job", len(requests)) as advance:
            results = run_batch_requests(
                ctx.teacher, requests, schema, settings, on_poll=lambda status, done, total: advance(done, total)
            )
    else:
        with console.progress(f"{what}: teacher calls", len(requests)) as advance:
            results = run_requests(ctx.teacher, requests, schema, on_done=advance)
    done = []
    failures = 0
    for request, result in zip(requests, results, strict=True):
        if isinstance(result, BudgetExceeded):
            ctx.budget_hit = f"budget: {result}"
        elif isinstance(result, BaseException):
            failures += 1
            console.warn(f"teacher call failed and was skipped: {result}")
        else:
            done.append((request, result))
    if failures or ctx.budget_hit:
        console.warn(
            f"{what}: {len(done)}/{len(requests)} calls succeeded" + (f"; {ctx.budget_hit}" if ctx.budget_hit else "")
        )
    if requests and not done and not ctx.budget_hit:
        raise RuntimeError(f"{what}: every teacher call failed; see `distill status` and the journal")
    return done


def _rows_from(
    results: list[tuple[TeacherRequest, Completion[GeneratedExamples]]], round: int, split: str, origin: str
) -> list[dict[str, Any]]:
    rows = []
    for request, completion in results:
        for example in completion.parsed.examples:
            rows.append(
                {
                    "round": round,
                    "split": split,
                    "text": example.text,
                    "label": example.label,
                    "origin": origin,
                    "teacher_call_id": completion.call_id,
                    "prompt_id": request.prompt_id,
                }
            )
    return rows


# -- round 0 ---------------------------------------------------------------------------------------


def prepare_evaluation_sets(ctx: RunContext) -> None:
    """Load validation (split feedback / held-back) and test sets once; build validation if absent."""
    if ctx.spec.loop.active_per_round and ctx.spec.task.unlabeled is not None:
        read_unlabeled(ctx.spec.task.unlabeled)  # a malformed pool fails now, before the first paid call
    if ctx.store.examples("feedback") or ctx.store.round_status(0) is not None:
        return
    task, labels = ctx.spec.task, set(ctx.labels)
    rng = ctx.rng(0, "validation")
    if task.validation is not None:
        validation = read_jsonl(task.validation, labels, "task.validation")
        origin = "real"
    else:
        validation = _teacher_validation(ctx)
        origin = "generated"
    feedback, heldback = stratified_split(validation, ctx.spec.loop.feedback_fraction, rng)
    test = read_jsonl(task.test, labels, "task.test") if task.test else []
    rows = (
        [{**r, "round": 0, "split": "feedback", "origin": origin, "kept": True} for r in feedback]
        + [{**r, "round": 0, "split": "heldback", "origin": origin, "kept": True} for r in heldback]
        + [{**r, "round": 0, "split": "test", "origin": "real", "kept": True} for r in test]
    )
    ctx.store.add_examples(rows, mark_round=(0, "generating"))


def _teacher_validation(ctx: RunContext) -> list[dict[str, str]]:
    console.warn(
        "NO VALIDATION SET GIVEN (task.validation): building one from teacher-written, teacher-labeled "
        "examples. Scores on it measure agreement with the teacher, not with your users' data. "
        "Add a few real labeled examples per label as task.validation for an honest measurement."
    )
    per_label = ctx.spec.loop.validation_per_label
    rng = ctx.rng(0, "validation-gen")
    requests = [
        r
        for label in ctx.labels
        for r in seed_requests(
            ctx.task,
            label,
            per_label,
            per_call=ctx.spec.loop.batch_per_call,
            rng=rng,
            examples=[],
            purpose="validation",
        )
    ]
    results = _collect(ctx, requests, "validation set", GeneratedExamples, batchable=True)
    return [
        {"text": r["text"], "label": r["label"]}
        for r in _rows_from(results, 0, "feedback", "generated")
        if r["label"] in set(ctx.labels)
    ]


def generate_seed(ctx: RunContext) -> None:
    """Round 0: the user's seed examples plus teacher-written seeds per label, stored unfiltered."""
    if ctx.store.round_status(0) not in (None, "generating"):
        return
    labels = set(ctx.labels)
    user_seeds = (
        read_jsonl(ctx.spec.task.seed_examples, labels, "task.seed_examples") if ctx.spec.task.seed_examples else []
    )
    rows = [{**r, "round": 0, "split": "train", "origin": "real"} for r in user_seeds]
    per_label = ctx.spec.loop.seed_per_label
    if per_label:
        rng = ctx.rng(0, "seed")
        requests = []
        for label in ctx.labels:
            shown = [r["text"] for r in user_seeds if r["label"] == label]
            requests += seed_requests(
                ctx.task, label, per_label, per_call=ctx.spec.loop.batch_per_call, rng=rng, examples=shown
            )
        results = _collect(ctx, requests, "round 0 seed generation", GeneratedExamples, batchable=True)
        rows += _rows_from(results, 0, "train", "generated")
    if not rows:
        raise ValueError("no training data: give task.seed_examples or set loop.seed_per_label > 0")
    ctx.store.add_examples(rows, mark_round=(0, "generated"))


# -- rounds ≥ 1 ------------------------------------------------------------------------------------


def load_feedback(ctx: RunContext, round: int) -> Feedback:
    """What the teacher may see after ``round - 1``: the feedback split's report and examples only."""
    evaluation = json.loads((ctx.model_dir(round - 1) / "eval_feedback.json").read_text())
    shown = ctx.spec.loop.examples_shown
    per_label: dict[str, LabelFeedback] = {}
    items = evaluation["items"]
    for label in ctx.labels:
        mine = [i for i in items if i["gold"] == label]
        hard = sorted(
            (i for i in items if i["predicted"] == label and i["gold"] != label), key=lambda i: -i["confidence"]
        )
        per_label[label] = LabelFeedback(
            f1=evaluation["per_class"].get(label, {}).get("f1", 0.0),
            correct=[i["text"] for i in mine if i["correct"]],
            misclassified=[(i["text"], i["predicted"]) for i in mine if not i["correct"]],
            hard_negatives=[(i["text"], i["gold"], i["confidence"]) for i in hard[:shown]],
        )
    return Feedback(
        round=round,
        report=evaluation["per_class"],
        confusions=[tuple(c) for c in evaluation["confusions"]],
        per_label=per_label,
    )


def generate_round(ctx: RunContext, round: int, quotas: dict[str, int]) -> None:
    """PGKD (or uniform, for the baseline) generation of ``sum(quotas)`` new examples."""
    if ctx.store.round_status(round) not in (None, "generating"):
        return
    ctx.store.set_round_status(round, "generating")
    rng = ctx.rng(round, ctx.method)
    loop = ctx.spec.loop
    requests: list[TeacherRequest] = []
    if not sum(quotas.values()):
        pass  # examples_per_round 0: this round only adds actively labeled texts
    elif ctx.method == "uniform":
        train = ctx.store.examples("train", kept=True)
        for label in ctx.labels:
            texts = [e.text for e in train if e.label == label]
            requests += seed_requests(
                ctx.task,
                label,
                quotas[label],
                per_call=loop.batch_per_call,
                rng=rng,
                examples=texts,
                round=round,
                purpose="uniform",
            )
    else:
        feedback = load_feedback(ctx, round)
        feedback = replace(feedback, guidelines=pair_guidelines(ctx, round, feedback))
        for label in ctx.labels:
            requests += pgkd_requests(
                ctx.task,
                feedback,
                label,
                quotas[label],
                per_call=loop.batch_per_call,
                rng=rng,
                shown=loop.examples_shown,
            )
    results = _collect(ctx, requests, f"round {round} generation", GeneratedExamples)
    rows = _rows_from(results, round, "train", "generated") + active_learning_rows(ctx, round)
    ctx.store.add_examples(rows, mark_round=(round, "generated"))


def active_learning_rows(ctx: RunContext, round: int) -> list[dict[str, Any]]:
    """The teacher labels the ``active_per_round`` texts of ``task.unlabeled`` that the previous round's
    student is least sure of (or a random draw, for the baseline). Texts already in the run are skipped."""
    loop, path = ctx.spec.loop, ctx.spec.task.unlabeled
    if not loop.active_per_round or path is None:
        return []
    used = {r[0] for r in ctx.store.query("SELECT content_hash FROM examples")}
    rng = ctx.rng(round, f"active-{loop.active_selection}")
    pool = candidates(read_unlabeled(path), used, loop.active_candidates, rng)
    if not pool:
        console.warn("active learning: every text of task.unlabeled is already in the run")
        return []
    k = min(loop.active_per_round, len(pool))
    if loop.active_selection == "random":
        chosen = rng.sample(pool, k)
    else:
        from trainers.encoder import EncoderClassifier

        console.info(
            f"round {round} active learning: scoring {len(pool)} unlabeled texts with the round {round - 1} student"
        )
        chosen = [
            pool[i] for i in select_by_margin(EncoderClassifier.load(ctx.model_dir(round - 1)).predict_proba(pool), k)
        ]
    chunks = [chosen[i : i + loop.batch_per_call] for i in range(0, len(chosen), loop.batch_per_call)]
    requests = label_requests(ctx.task, chosen, per_call=loop.batch_per_call, round=round)
    texts_of = {id(request): chunk for request, chunk in zip(requests, chunks, strict=True)}
    rows: list[dict[str, Any]] = []
    for request, completion in _collect(
        ctx, requests, f"round {round} active learning", AssignedLabels, batchable=True
    ):
        chunk = texts_of[id(request)]
        answered = {a.index: a.label for a in completion.parsed.labels if 0 <= a.index < len(chunk)}
        if len(answered) < len(chunk):
            console.warn(
                f"round {round} active learning: the teacher labeled {len(answered)} of {len(chunk)} texts "
                "in one call; the rest stay unlabeled"
            )
        rows += [
            {
                "round": round,
                "split": "train",
                "text": chunk[i],
                "label": label,
                "origin": "active",
                "teacher_call_id": completion.call_id,
                "prompt_id": request.prompt_id,
            }
            for i, label in sorted(answered.items())
        ]
    return rows


# -- classifier variant of strategy teaching: guidelines for confusable pairs -----------------------

GUIDELINE_PAIRS = 3


def pair_guidelines(ctx: RunContext, round: int, feedback: Feedback) -> dict[str, str]:
    """Distinguishing guidelines for the worst confused label pairs, kept in the strategy library.

    The teacher writes one rule per pair (once per pair: later rounds reuse it); each enters the library
    as *proposed*, so a person can audit it. Rejected or retired guidelines no longer feed prompts.
    """
    library = StrategyLibrary(ctx.store)
    pairs = _worst_pairs(feedback.confusions, GUIDELINE_PAIRS)
    known = {s.scope for s in library.current()}
    missing = [p for p in pairs if _pair_scope(p) not in known]
    if missing:
        _request_guidelines(ctx, library, round, feedback, missing)
    usable = [s for s in library.current(["proposed", "approved"]) if s.scope.startswith("pair:")]
    per_label: dict[str, list[str]] = defaultdict(list)
    for strategy in usable:
        for label in strategy.scope.removeprefix("pair:").split("|"):
            per_label[label].append(strategy.text)
    return {label: " ".join(texts) for label, texts in per_label.items()}


def _pair_scope(pair: tuple[str, str]) -> str:
    return "pair:" + "|".join(sorted(pair))


def _worst_pairs(confusions: list[tuple[str, str, int]], k: int) -> list[tuple[str, str]]:
    """The k unordered label pairs with the most confusions in either direction."""
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for gold, predicted, count in confusions:
        counts[(min(gold, predicted), max(gold, predicted))] += count
    return sorted(counts, key=lambda pair: (-counts[pair], pair))[:k]


def _request_guidelines(
    ctx: RunContext, library: StrategyLibrary, round: int, feedback: Feedback, pairs: list[tuple[str, str]]
) -> None:
    template = get_template("guidelines")
    lines = []
    for a, b in pairs:
        for label in (a, b):
            info = feedback.per_label[label]
            shown = info.correct[:2] + [t for t, _ in info.misclassified[:2]]
            lines.append(f"- {label}: " + " | ".join(shown) if shown else f"- {label}: (no examples)")
    variables = {
        "task_description": ctx.task.description,
        "taxonomy": ctx.task.taxonomy(),
        "pairs": "\n".join(f"{a} vs {b}" for a, b in pairs) + "\nExamples:\n" + "\n".join(lines),
    }
    brief = {"action": "guidelines", "pairs": [list(p) for p in pairs], "descriptions": ctx.task.labels}
    request = template.request(variables, brief, items=len(pairs), round=round, temperature=0.0, labels=ctx.labels)
    [result] = run_requests(ctx.teacher, [request], Guidelines)
    if isinstance(result, BaseException):
        console.warn(f"round {round}: no labeling guidelines this round ({result})")
        return
    for guideline in result.parsed.guidelines:
        pair = (guideline.labels[0], guideline.labels[1])
        if set(pair) <= set(ctx.labels):
            library.propose(
                _pair_scope(pair),
                guideline.text,
                round=round,
                teacher_call_id=result.call_id,
                provenance={"pair": sorted(pair), "round": round, "teacher_call_id": result.call_id},
            )


# -- filter, train, evaluate -----------------------------------------------------------------------


def filter_round(ctx: RunContext, round: int) -> dict[str, int]:
    """Verdicts for the round's unfiltered examples; returns drop counts by filter."""
    if ctx.store.round_status(round) != "generated":
        return ctx.store.drop_counts(round)
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
        [(v.example_id, v.filter, v.kept, v.reason, v.score) for v in verdicts], mark_round=(round, "filtered")
    )
    return ctx.store.drop_counts(round)


def train_round(ctx: RunContext, round: int) -> dict[str, Any]:
    """Fine-tune the student on all kept training data; the model lands in models/round-NN/."""
    from trainers.encoder import EncoderClassifier, EncoderConfig

    out = ctx.model_dir(round)
    if ctx.store.round_status(round) != "filtered" and (out / "labels.json").is_file():
        return json.loads((out / "train_stats.json").read_text())
    s = ctx.spec.student
    config = EncoderConfig(
        base_model=s.base_model,
        max_length=s.max_length,
        epochs=s.epochs,
        min_steps=s.min_steps,
        lr=s.lr,
        head_lr=s.head_lr,
        batch_size=s.batch_size,
        seed=s.seed,
        warm_start=s.warm_start,
    )
    previous = ctx.model_dir(round - 1)
    if s.warm_start and round > 0 and (previous / "labels.json").is_file():
        student = EncoderClassifier.load(previous)
    else:
        student = EncoderClassifier.create(ctx.labels, config)
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
    ctx.store.set_round_status(round, "trained")
    return stats_dict


def evaluate_round(ctx: RunContext, round: int) -> dict[str, dict[str, float]]:
    """Evaluate on feedback, held-back and test; store metrics and the feedback items for the teacher."""
    from trainers.encoder import EncoderClassifier
    from trainers.evaluate import evaluate

    out = ctx.model_dir(round)
    student = EncoderClassifier.load(out)
    summary: dict[str, dict[str, float]] = {}
    for split in (*VALIDATION_SPLITS, "test"):
        rows = ctx.store.examples(split)
        if not rows:
            continue
        texts = [r.text for r in rows]
        evaluation = evaluate([r.label for r in rows], student.predict_proba(texts), ctx.labels, texts=texts)
        data = evaluation.to_dict()
        (out / f"eval_{split}.json").write_text(json.dumps(data, indent=1))
        metrics: list[tuple[str, str | None, float]] = [
            ("accuracy", None, data["accuracy"]),
            ("macro_f1", None, data["macro_f1"]),
            ("ece", None, data["ece"]),
        ]
        for label, m in data["per_class"].items():
            metrics += [(k, label, float(m[k])) for k in ("precision", "recall", "f1")]
        ctx.store.record_metrics(round, split, metrics)
        summary[split] = {"accuracy": data["accuracy"], "macro_f1": data["macro_f1"], "ece": data["ece"]}
    ctx.store.set_round_status(round, "evaluated")
    return summary


# -- decide ----------------------------------------------------------------------------------------


def _budget_stop(ctx: RunContext, round: int) -> str | None:
    """A reason to stop for money, tokens or time: a call was refused, or what is left pays for no call.

    A round that the budget only partly affords still runs: the ledger refuses each call that could
    cross the limit, so the run spends what it was given instead of stopping with most of it unused.
    """
    if ctx.budget_hit:
        return ctx.budget_hit
    budget = ctx.spec.budget
    spent_usd, spent_tokens = ctx.store.spent()
    paid_calls = max(1, sum(int(c["calls"]) for c in ctx.store.calls_by_prompt().values()))
    if budget.max_usd is not None and budget.max_usd - spent_usd < spent_usd / paid_calls:
        return (
            f"budget: {format_usd(budget.max_usd - spent_usd)} left of max_usd={format_usd(budget.max_usd)}, "
            f"less than one teacher call (~{format_usd(spent_usd / paid_calls)})"
        )
    tokens_cap = budget.max_teacher_tokens
    if tokens_cap is not None and tokens_cap - spent_tokens < spent_tokens / paid_calls:
        return f"budget: {tokens_cap - spent_tokens} tokens left of max_teacher_tokens={tokens_cap}, less than one call"
    if budget.max_minutes is not None and elapsed_minutes(ctx.store) >= budget.max_minutes:
        return f"budget: wall time {elapsed_minutes(ctx.store):.1f} min ≥ max_minutes={budget.max_minutes}"
    return None


def elapsed_minutes(store: RunStore) -> float:
    """Active time over all rounds (a resumed run does not count the time it lay crashed)."""
    now = time.time()
    return sum(((r["finished_at"] or now) - r["started_at"]) for r in store.rounds()) / 60


def decide_round(ctx: RunContext, round: int) -> Decision:
    rows = ctx.store.rounds()
    previous = next((r for r in rows if r["idx"] == round - 1), None)
    previous_weights = None
    if previous is not None and previous["quotas_json"]:
        quotas = json.loads(previous["quotas_json"])
        total = sum(quotas.values()) or 1
        previous_weights = {k: v / total for k, v in quotas.items()}
    feedback = json.loads((ctx.model_dir(round) / "eval_feedback.json").read_text())
    errors = {label: 1.0 - feedback["per_class"].get(label, {}).get("f1", 0.0) for label in ctx.labels}
    heldback = [ctx.store.metric(i, "heldback", "macro_f1") or 0.0 for i in range(round + 1)]
    uniform = ctx.method == "uniform"
    state = PolicyInput(
        round=round,
        max_rounds=ctx.spec.effective_max_rounds,
        heldback_macro_f1=heldback,
        patience=ctx.spec.loop.patience,
        per_class_error={label: 0.5 for label in ctx.labels} if uniform else errors,
        round_size=ctx.spec.loop.examples_per_round,
        target_macro_f1=ctx.spec.loop.target_macro_f1,
        alpha=ctx.spec.loop.smoothing_alpha,
        previous_weights=previous_weights,
        budget_stop=_budget_stop(ctx, round),
        smoothing=ctx.method != "pgkd_nosmooth",
    )
    decision = decide(state)
    ctx.store.finish_round(round, decision.label, decision.reasons, decision.quotas, str(ctx.model_dir(round)))
    return decision


def export_best(ctx: RunContext, best: int) -> Path:
    """Copy the best round's model to <run>/model with a full model card."""
    from trainers.encoder import EncoderClassifier

    student = EncoderClassifier.load(ctx.model_dir(best))
    out = ctx.run_dir / "model"
    if out.exists():
        shutil.rmtree(out)
    student.save(out, card=model_card(ctx, best))
    return out


def model_card(ctx: RunContext, best: int) -> dict[str, Any]:
    counts = ctx.store.query("SELECT origin, COUNT(*) n FROM examples WHERE split='train' AND kept=1 GROUP BY origin")
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
        "training_examples_by_origin": {r["origin"]: r["n"] for r in counts},
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
    origins = {r[0] for r in store.query("SELECT DISTINCT origin FROM examples WHERE split='heldback'")}
    if "generated" in origins:
        notes.append(
            "validation set built from teacher-labeled data (no task.validation given): its scores "
            "measure agreement with the teacher, not with real users' data"
        )
    if not store.examples("test"):
        notes.append("no test set given: no unbiased estimate of quality is reported")
    return notes
