"""`distill plan SPEC`: expected teacher calls, tokens and cost, per round and in total, before any paid call.

Classification runs render the very requests the run will send (seed generation, PGKD with a stand-in
report of the right size, active-learning labeling) and measure them: prompt tokens are estimated as
characters / 4 (the usual ratio of BPE tokenizers on English text), output tokens from the size of the
task's own examples. Each call's worst case is its template's output bound, which the ledger reserves.
Dialogue runs (strategy teaching) are planned at their upper bound: every learning scenario falls short,
so each one gets a strategy request and a re-judged re-run.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass
from typing import Any

from agent.classify.context import task_info
from agent.data_files import read_jsonl, read_policy
from agent.spec import DialogueRunSpec, RunSpec
from generators.audit import AuditItem, audit_requests
from generators.generation import Feedback, LabelFeedback, TaskInfo, label_requests, pgkd_requests, seed_requests
from generators.ledger import Prices, format_usd
from generators.prompts import get_template
from generators.teacher import TeacherRequest

CHARS_PER_TOKEN = 4
# What a run sends through the Batch API when teacher.batch is set (see agent.classify.teacher_calls.collect).
BATCHED_PROMPTS = frozenset({"seed_generate", "label"})
_JSON_OVERHEAD_CHARS = 30  # {"text": "", "label": ""} around each generated example
_STAND_IN = "an example message of typical length for this task"


@dataclass(frozen=True)
class PlanLine:
    """One kind of call in one round."""

    round: str
    prompt_id: str
    calls: int
    tokens_in: int
    tokens_out: int
    worst_tokens_out: int

    def cost(self, prices: Prices, batch_factor: float = 1.0) -> float:
        factor = batch_factor if self.prompt_id in BATCHED_PROMPTS else 1.0
        return prices.cost(self.tokens_in, self.tokens_out) * factor


def _tokens(chars: float) -> int:
    return math.ceil(chars / CHARS_PER_TOKEN)


def _prompt_tokens(request: TeacherRequest) -> int:
    return _tokens(sum(len(m["content"]) for m in request.messages))


def _line(round: str, requests: list[TeacherRequest], out_per_item: float, items: int) -> PlanLine | None:
    if not requests:
        return None
    template = get_template(requests[0].prompt_id)
    return PlanLine(
        round,
        template.id,
        len(requests),
        sum(_prompt_tokens(r) for r in requests),
        _tokens(out_per_item * items + 2 * len(requests)),
        sum(r.output_tokens for r in requests),
    )


# -- classification ------------------------------------------------------------------------------------


def _seed_texts(spec: RunSpec) -> list[str]:
    """The user's example texts (seed and validation), read as the run reads them: a bad line fails here."""
    labels = set(task_info(spec).labels)  # out_of_scope is a valid label only when the task has it
    files = [("task.seed_examples", spec.task.seed_examples), ("task.validation", spec.task.validation)]
    texts = [
        row["text"]
        for field, path in files
        if path is not None
        for row in read_jsonl(path, labels, field, None, spec.task.columns)
    ]
    return texts or [_STAND_IN]


def _stand_in_feedback(task: TaskInfo, texts: list[str], shown: int) -> Feedback:
    """A report as large as a real one: every label, ``shown`` correct, missed and hard-negative texts each."""
    rng = random.Random(0)
    sample = [rng.choice(texts) for _ in range(shown)]
    labels = list(task.labels)
    per_label = {
        label: LabelFeedback(
            0.5,
            correct=sample,
            misclassified=[(t, labels[0]) for t in sample],
            hard_negatives=[(t, labels[-1], 0.9) for t in sample],
        )
        for label in labels
    }
    report = {label: {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 5} for label in labels}
    confusions = [(labels[i], labels[(i + 1) % len(labels)], 2) for i in range(min(8, len(labels)))]
    return Feedback(1, report, confusions, per_label)


def _classification_lines(spec: RunSpec) -> list[PlanLine | None]:
    task = task_info(spec)  # the run's outcome set: out_of_scope is generated and answered like a label
    loop, texts = spec.loop, _seed_texts(spec)
    example_out = sum(len(t) for t in texts) / len(texts) + _JSON_OVERHEAD_CHARS
    label_out = max(len(label) for label in task.labels) + 20  # {"index": 12, "label": "..."}
    rng = random.Random(0)
    seeds = [
        r
        for label in task.labels
        for r in seed_requests(
            task, label, loop.seed_per_label, per_call=loop.batch_per_call, rng=rng, examples=texts[:3]
        )
    ]
    lines = [_line("0", seeds, example_out, loop.seed_per_label * len(task.labels))]
    feedback = _stand_in_feedback(task, texts, loop.examples_shown)
    per_label = loop.examples_per_round / len(task.labels)  # uniform split: the real quotas follow the errors
    for round in range(1, spec.effective_max_rounds + 1):
        pgkd = (
            [
                r
                for label in task.labels
                for r in pgkd_requests(
                    task,
                    feedback,
                    label,
                    round_half_up(per_label),
                    per_call=loop.batch_per_call,
                    rng=rng,
                    shown=loop.examples_shown,
                )
            ]
            if loop.examples_per_round
            else []
        )
        active = label_requests(task, texts[:1] * loop.active_per_round, per_call=loop.batch_per_call, round=round)
        lines += _audit_lines(spec, task, texts, round - 1)
        lines += [
            _guidelines_line(str(round - 1), task, texts),
            _line(str(round), pgkd, example_out, loop.examples_per_round),
            _line(str(round), active, label_out, loop.active_per_round),
        ]
    return lines


AUDIT_FLAG_SHARE = 0.15  # measured: 7–16 second opinions per ~100 teacher-labelled examples (bench/label_audit.py)


def _audit_lines(spec: RunSpec, task: TaskInfo, texts: list[str], round: int) -> list[PlanLine | None]:
    """Second opinions on the audit's flags after ``round``: about AUDIT_FLAG_SHARE of that round's new
    teacher-labelled examples (an estimate: how many labels look wrong is not known before the run)."""
    loop = spec.loop
    if not loop.label_audit:
        return []
    new = loop.seed_per_label * len(task.labels) if round == 0 else loop.examples_per_round + loop.active_per_round
    flagged = round_half_up(new * AUDIT_FLAG_SHARE)
    label = next(iter(task.labels))
    items = [AuditItem(texts[0], label, label)] * flagged
    requests = audit_requests(task, items, per_call=loop.batch_per_call, round=round, labels=list(task.labels))
    return [_line(str(round), requests, max(len(x) for x in task.labels) + 20, flagged)]


def _guidelines_line(round: str, task: TaskInfo, texts: list[str]) -> PlanLine:
    """One call per evaluated round: a rule for each of the (up to 3) most confused pairs, 4 examples each side."""
    template = get_template("guidelines")
    example = sum(len(t) for t in texts) / len(texts)
    chars = len(template.system) + len(template.user) + len(task.taxonomy()) + 3 * 2 * 4 * example
    return PlanLine(round, template.id, 1, _tokens(chars), template.output_tokens(3) // 2, template.output_tokens(3))


def round_half_up(value: float) -> int:
    return math.floor(value + 0.5)


# -- dialogue (strategy teaching) --------------------------------------------------------------------


def _dialogue_lines(spec: DialogueRunSpec) -> list[PlanLine | None]:
    policy = read_policy(spec.task.policy, "task.policy")
    flow = policy.flows[0].id
    rubric = policy.rubric_text(flow)
    scenarios = spec.task.scenarios

    def line(round: str, prompt_id: str, calls: int, prompt_chars: int) -> PlanLine | None:
        if calls <= 0:
            return None
        template = get_template(prompt_id)
        fixed = len(template.system) + len(template.user)
        worst = template.output_tokens(8 if prompt_id == "scenario" else 1)
        return PlanLine(
            round, prompt_id, calls, calls * _tokens(fixed + prompt_chars), calls * worst // 2, calls * worst
        )

    reply_chars = 4 * spec.student.max_tokens
    written = scenarios.source == "teacher"
    lines: list[PlanLine | None] = []
    for round in range(1, spec.loop.max_rounds + 1):
        n = scenarios.learn
        lines += [
            line(str(round), "scenario", math.ceil(n / 8) if written else 0, len(policy.flows_text())),
            line(str(round), "respond", n, len(rubric) + 200),
            line(str(round), "judge", 3 * n, len(rubric) + 200 + reply_chars),
            line(str(round), "strategize", n, len(rubric) + 200 + reply_chars),
        ]
    n = scenarios.heldout
    lines += [
        line("held-out", "scenario", math.ceil(n / 8), len(policy.flows_text())),
        line("held-out", "respond", n, len(rubric) + 200),
        line("held-out", "judge", 4 * n, len(rubric) + 200 + reply_chars),
    ]
    return lines


# -- the plan --------------------------------------------------------------------------------------------


def plan_run(spec: RunSpec | DialogueRunSpec) -> dict[str, Any]:
    """The plan as plain data (stored with the run, printed by ``distill plan``)."""
    prices = Prices(spec.teacher.price_input_per_mtok, spec.teacher.price_output_per_mtok)
    found = _dialogue_lines(spec) if isinstance(spec, DialogueRunSpec) else _classification_lines(spec)
    lines = [line for line in found if line is not None]
    factor = spec.teacher.batch_price_factor if spec.teacher.batch else 1.0
    total_in, total_out = sum(x.tokens_in for x in lines), sum(x.tokens_out for x in lines)
    worst_in = sum(x.tokens_in for x in lines) * CHARS_PER_TOKEN  # the ledger's byte bound on prompts
    warnings = []
    if spec.budget.max_usd is not None and prices.input_per_mtok == prices.output_per_mtok == 0:
        warnings.append(
            f"budget.max_usd={format_usd(spec.budget.max_usd)} is set but teacher prices are 0, so "
            "the money budget can never stop the run — set teacher.price_input_per_mtok and "
            "price_output_per_mtok (USD per 1M tokens, from your provider's price list)"
        )
    return {
        "lines": [{**asdict(x), "usd": x.cost(prices, factor)} for x in lines],
        "calls": sum(x.calls for x in lines),
        "tokens_in": total_in,
        "tokens_out": total_out,
        "usd": sum(x.cost(prices, factor) for x in lines),
        "worst_usd": prices.cost(worst_in, sum(x.worst_tokens_out for x in lines)),
        "max_usd": spec.budget.max_usd,
        "warnings": warnings,
    }


def render_plan(plan: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    table = Table(title="teacher plan (estimates: prompt tokens ≈ characters / 4)")
    for column in ("round", "prompt", "calls", "tokens in", "tokens out", "USD", "worst-case tokens out"):
        table.add_column(
            column,
            justify="left" if column in ("round", "prompt") else "right",
            min_width=13 if column == "prompt" else None,
        )
    for line in plan["lines"]:
        table.add_row(
            line["round"],
            line["prompt_id"],
            str(line["calls"]),
            f"{line['tokens_in']:,}",
            f"{line['tokens_out']:,}",
            format_usd(line["usd"]),
            f"{line['worst_tokens_out']:,}",
        )
    table.add_row(
        "total",
        "",
        str(plan["calls"]),
        f"{plan['tokens_in']:,}",
        f"{plan['tokens_out']:,}",
        format_usd(plan["usd"]),
        "",
    )
    console.print(table)
    budget = f"; budget.max_usd {format_usd(plan['max_usd'])}" if plan["max_usd"] is not None else ""
    console.print(
        f"expected {format_usd(plan['usd'])}, at most {format_usd(plan['worst_usd'])} if every reply "
        f"used its whole output bound{budget}"
    )
    for warning in plan["warnings"]:
        console.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
