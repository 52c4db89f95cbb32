"""The report's tables as plain, unescaped strings: the HTML and the Markdown render the same cells, so
both show the same numbers. Escaping happens at rendering (``trainers.markup``), never here."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from agent.coverage import cost_note
from agent.report.data import SCOPE_METRICS, Calibration, Deferral, ReportData
from agent.store import ExampleProvenance
from generators.ledger import format_usd

TOP_CONFUSIONS = 20
DASH = "–"


@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[list[str]]


def f1(value: float | None) -> str:
    return DASH if value is None else f"{value:.4f}"


def summary(data: ReportData) -> list[tuple[str, str]]:
    spend = data.spend
    best = next((r for r in data.rounds if r.idx == data.best_round), None)
    rows = [
        ("run", f"{data.name} ({data.run_id})"),
        ("task", data.task_description),
        ("labels", f"{len(data.labels)}: {', '.join(data.labels)}"),
        ("teacher", f"{data.teacher['provider']} / {data.teacher['model']}"),
        ("student", str(data.student.get("base_model") or "all-MiniLM-L6-v2 (packaged default)")),
        ("student config", _config(data.student)),
        ("budget", _config(data.budget) or "none"),
        (
            "spend",
            f"{format_usd(spend['cost_usd'])}; {spend['calls']} teacher calls ({spend['cache_hits']} cache hits, "
            f"{spend['retries']} retries, {spend['failed']} failed); "
            f"{spend['tokens_in']:,} tokens in, {spend['tokens_out']:,} out",
        ),
        ("status", data.status),
        ("stop reason", data.stop_reason or DASH),
    ]
    if best is not None:
        scores = ", ".join(f"{split} {f1(best.macro_f1[split])}" for split in ("heldback", "test"))
        rows.append(("best round", f"{best.idx} (macro-F1 {scores})"))
    return rows


def _config(config: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in config.items())


def rounds(data: ReportData) -> Table:
    return Table(
        ["round", "status", "held-back F1", "test F1", "feedback F1", "teacher USD", "cumulative USD", "new", "kept"],
        [
            [
                str(r.idx),
                r.status,
                f1(r.macro_f1["heldback"]),
                f1(r.macro_f1["test"]),
                f1(r.macro_f1["feedback"]),
                format_usd(r.cost_usd),
                format_usd(r.cumulative_usd),
                str(r.examples_new),
                str(r.examples_kept),
            ]
            for r in data.rounds
        ],
    )


def per_class(data: ReportData) -> Table:
    rounds = sorted(data.per_class_f1)
    return Table(
        ["label", *(f"round {r}" for r in rounds)],
        [[label, *(f1(data.per_class_f1[r].get(label)) for r in rounds)] for label in data.labels],
    )


def confusions(data: ReportData, limit: int = TOP_CONFUSIONS) -> Table:
    top = data.confusion.top[:limit] if data.confusion else []
    return Table(["gold", "predicted as", "items"], [[g, p, str(c)] for g, p, c in top])


def calibration(data: ReportData) -> Table:
    bins = data.calibration.bins if data.calibration else []
    return Table(
        ["confidence", "items", "accuracy", "mean confidence"],
        [[f"{b.low:.2f}–{b.high:.2f}", str(b.count), f1(b.accuracy), f1(b.confidence)] for b in bins if b.count],
    )


def quotas(value: dict[str, int] | None) -> str:
    return ", ".join(f"{label} {n}" for label, n in sorted(value.items(), key=lambda kv: -kv[1])) if value else DASH


def guidelines(data: ReportData) -> Table:
    return Table(
        ["id", "version", "scope", "status", "round", "text"],
        [
            [s.id, str(s.version), s.scope, s.status, DASH if s.round is None else str(s.round), s.text]
            for s in data.guidelines
        ],
    )


def cost(data: ReportData) -> Table:
    rows = [
        [
            c.prompt_id,
            str(c.calls),
            str(c.cache_hits),
            str(c.failed),
            f"{c.tokens_in:,}",
            f"{c.tokens_out:,}",
            format_usd(c.usd),
        ]
        for c in data.calls
    ]
    s = data.spend
    total = ["total", str(s["calls"]), str(s["cache_hits"]), str(s["failed"])]
    rows.append([*total, f"{s['tokens_in']:,}", f"{s['tokens_out']:,}", format_usd(s["cost_usd"])])
    return Table(["prompt", "calls", "cache hits", "failed", "tokens in", "tokens out", "USD"], rows)


def status_of(example: ExampleProvenance) -> str:
    return "unfiltered" if example.kept is None else ("kept" if example.kept else "dropped")


def why(example: ExampleProvenance) -> str:
    """The filters' verdicts: the drops with their reasons, or that every filter passed it."""
    drops = [f"{v.filter}: {v.reason}" for v in example.verdicts if not v.kept]
    if drops:
        return "; ".join(drops)
    return "; ".join(f"{v.filter}: {v.reason}" for v in example.verdicts) or DASH


def example_counts(data: ReportData) -> Table:
    counts = Counter((e.round, e.origin, status_of(e)) for e in data.examples)
    keys = sorted({(r, o) for r, o, _ in counts})
    return Table(
        ["round", "origin", "stored", "kept", "dropped"],
        [
            [str(r), o, str(sum(counts[(r, o, s)] for s in ("kept", "dropped", "unfiltered")))]
            + [str(counts[(r, o, s)]) for s in ("kept", "dropped")]
            for r, o in keys
        ],
    )


def drops_by_filter(data: ReportData) -> Table:
    counts = Counter(v.filter for e in data.examples for v in e.verdicts if not v.kept)
    return Table(["filter", "dropped"], [[name, str(n)] for name, n in sorted(counts.items())])


def example_row(example: ExampleProvenance) -> list[str]:
    call = DASH if example.teacher_call_id is None else str(example.teacher_call_id)
    return [
        str(example.id),
        str(example.round),
        example.label,
        example.origin,
        status_of(example),
        why(example),
        call,
        example.prompt_id or DASH,
        example.text,
    ]


EXAMPLE_HEADERS = [
    "id",
    "round",
    "label",
    "origin",
    "kept/dropped",
    "filter verdicts",
    "teacher call",
    "prompt",
    "text",
]


DEFERRAL_TABLE_ROWS = 12  # the curve has up to 50 points; a table of a dozen reads better, the plot has all


def deferral(data: ReportData) -> Table:
    from agent.coverage import COVERAGE_HEADERS, format_coverage_rows, thin

    rows = thin(data.deferral.coverage.rows, DEFERRAL_TABLE_ROWS) if data.deferral else []
    return Table(list(COVERAGE_HEADERS), format_coverage_rows(rows))


def scope(data: ReportData) -> Table:
    return Table(
        ["round", "split", "in-scope accuracy", "out-of-scope recall", "out-of-scope precision"],
        [[str(s.round), s.split, *(f1(s.values[m]) for m in SCOPE_METRICS)] for s in data.scope],
    )


AUDIT_OUTCOMES = ("kept", "relabelled", "dropped")


def audit_counts(data: ReportData) -> Table:
    counts = Counter((a.audit.round, str(a.audit.outcome)) for a in data.audits)
    rounds = sorted({r for r, _ in counts})
    return Table(
        ["round", "flagged", *AUDIT_OUTCOMES],
        [
            [str(r), str(sum(counts[(r, o)] for o in AUDIT_OUTCOMES)), *(str(counts[(r, o)]) for o in AUDIT_OUTCOMES)]
            for r in rounds
        ],
    )


AUDIT_HEADERS = ["round", "example", "given label", "suggested", "second opinion", "outcome", "score", "reason", "text"]


def audits(data: ReportData, limit: int | None = None) -> Table:
    shown = data.audits[:limit] if limit is not None else data.audits
    return Table(
        list(AUDIT_HEADERS),
        [
            [
                str(a.audit.round),
                str(a.audit.example_id),
                a.audit.given_label,
                a.audit.suggested_label or DASH,
                a.audit.second_opinion or DASH,
                str(a.audit.outcome),
                DASH if a.audit.score is None else f"{a.audit.score:.3f}",
                a.audit.reason,
                a.text,
            ]
            for a in shown
        ],
    )


def ece_sentence(calibration: Calibration) -> str:
    """The calibrated ECE (what `distill predict` answers with); the plain softmax's beside it, labelled as such."""
    line = f"Expected calibration error {calibration.ece:.4f} over {calibration.n} test items"
    if calibration.temperature is not None:
        line += f", after temperature scaling (T = {calibration.temperature:.3f}, fitted on held-back)"
    if calibration.ece_uncalibrated is not None:
        line += f"; uncalibrated (T = 1) it was {calibration.ece_uncalibrated:.4f}"
    return line + "."


NO_DEFERRAL = "No exported model with a coverage curve yet (the run has not finished, or predates deferral)."
NO_SCOPE = "No out-of-scope metrics: this run has no out-of-scope outcome (task.out_of_scope is off)."
SCOPE_NOTE = (
    "in-scope accuracy: accuracy on the messages that belong to a label; out-of-scope recall and precision: "
    "how many of the messages that fit no label the student rejects, and how many of its rejections are right."
)
NO_AUDIT = "No label audit in this run (loop.label_audit is off, or no round has been audited yet)."
AUDIT_NOTE = (
    "Training examples the audit flagged as likely mislabelled (out-of-fold probabilities), the teacher's second "
    "opinion, and what was done: kept, relabelled or dropped (a drop is also a 'label_audit' filter verdict)."
)


def deferral_notes(deferral: Deferral) -> list[str]:
    c = deferral.coverage
    notes = [
        f"The exported model answers 'defer' below confidence {c.threshold:.3f}: {deferral.reason}. "
        f"On held-back it answers {_share(deferral.heldback.get('coverage'))} of messages with accuracy "
        f"{f1(deferral.heldback.get('accuracy_answered'))}."
    ]
    if c.test:
        notes.append(
            f"On test (reported only) it answers {_share(c.test.get('coverage'))} with accuracy "
            f"{f1(c.test.get('accuracy_answered'))}."
        )
    notes.append(
        "Each row: a threshold on held-back, the share of messages the student answers at it, its accuracy on "
        "them, and what the teacher is paid per 1,000 messages for the rest — (1 − share) × the teacher's cost "
        f"per labeled text × 1,000 (the student's own compute is not counted). The {cost_note(c.cost)}. "
        "`distill predict MODEL --cascade RUN` sends the deferred messages to the teacher."
    )
    if deferral.cascade_usd:
        notes.append(f"Cascade calls journaled in this run so far: {format_usd(deferral.cascade_usd)}.")
    return notes


def _share(value: float | None) -> str:
    return DASH if value is None else f"{value:.1%}"
