"""The report's tables as plain, unescaped strings: the HTML and the Markdown render the same cells, so
both show the same numbers. Escaping happens at rendering (``trainers.markup``), never here."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from agent.report.data import ReportData
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
