"""`distill status`: what a run did, per round, from the run store alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.coverage import COVERAGE_HEADERS, CoverageRow, cost_note, coverage_table_data, format_coverage_rows, thin
from agent.store import AuditOutcome, RunStore
from generators.ledger import format_usd
from trainers.deferral import TeacherCost

SHOWN_AUDITS = 20  # relabelled/dropped examples listed in the terminal view (the JSON has them all)


def run_status(run_dir: Path) -> dict[str, Any]:
    store = RunStore(run_dir / "run.sqlite")
    try:
        info = store.run_info()
        rounds = []
        for row in store.round_rows():
            idx = row.idx
            scores = {split: store.metric(idx, split, "macro_f1") for split in ("feedback", "heldback", "test")}
            gap = (
                None
                if scores["heldback"] is None or scores["test"] is None
                else round(scores["heldback"] - scores["test"], 4)
            )
            generated = store.example_count("train", idx)
            rounds.append(
                {
                    "round": idx,
                    "status": str(row.status),
                    "decision": row.decision,
                    "reasons": row.reasons,
                    "macro_f1": scores,
                    "heldback_minus_test": gap,
                    "examples_new": generated.total,
                    "examples_kept": generated.kept,
                    "dropped": store.drop_counts(idx),
                    "label_audit": _counts(store.audit_counts(idx)),
                }
            )
        return {
            "run_id": info.id if info else run_dir.name,
            "name": info.name if info else None,
            "status": info.status if info else None,
            "stop_reason": info.stop_reason if info else None,
            "rounds": rounds,
            "label_audit": _label_audit(store),
            "teacher": store.call_summary(),
            "adaptations": store.adaptations(),
            "plan_vs_actual": _plan_vs_actual(store),
            "coverage": coverage_table_data(run_dir),
        }
    finally:
        store.close()


def _counts(counts: dict[AuditOutcome, int]) -> dict[str, int]:
    return {str(outcome): n for outcome, n in counts.items()}


def _label_audit(store: RunStore) -> dict[str, Any]:
    """The audit's totals and every audited example: its text, the label it had, what was done and why."""
    texts = {e.id: e.text for e in store.examples("train")}
    return {
        "totals": _counts(store.audit_counts()),
        "examples": [
            {
                "round": a.round,
                "example_id": a.example_id,
                "text": texts.get(a.example_id),
                "given_label": a.given_label,
                "suggested_label": a.suggested_label,
                "second_opinion": a.second_opinion,
                "outcome": str(a.outcome),
                "reason": a.reason,
                "score": a.score,
            }
            for a in store.label_audits()
        ],
    }


def _plan_vs_actual(store: RunStore) -> list[dict[str, Any]]:
    """Per prompt template: the calls, tokens and USD planned before the run beside those paid for."""
    plan = store.plan()
    planned: dict[str, dict[str, float]] = {}
    for line in plan["lines"] if plan else []:
        row = planned.setdefault(line["prompt_id"], {"calls": 0, "tokens": 0, "usd": 0.0})
        row["calls"] += line["calls"]
        row["tokens"] += line["tokens_in"] + line["tokens_out"]
        row["usd"] += line["usd"]
    actual = store.calls_by_prompt()
    return [
        {
            "prompt_id": prompt_id,
            "planned": planned.get(prompt_id),
            "actual": (
                {
                    "calls": actual[prompt_id]["calls"],
                    "usd": actual[prompt_id]["usd"],
                    "tokens": actual[prompt_id]["tokens_in"] + actual[prompt_id]["tokens_out"],
                }
                if prompt_id in actual
                else None
            ),
        }
        for prompt_id in sorted(set(planned) | set(actual))
    ]


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def render_status(data: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    table = Table(title=f"run {data['run_id']} ({data['status']})")
    for column in (
        "round",
        "new",
        "kept",
        "dropped (by filter)",
        "audit: kept/relabelled/dropped",
        "feedback F1",
        "held-back F1",
        "test F1",
        "val−test",
        "decision",
    ):
        table.add_column(column)
    for r in data["rounds"]:
        dropped = ", ".join(f"{name} {n}" for name, n in sorted(r["dropped"].items())) or "–"
        table.add_row(
            str(r["round"]),
            str(r["examples_new"]),
            str(r["examples_kept"]),
            dropped,
            _audit_cell(r["label_audit"]),
            _fmt(r["macro_f1"]["feedback"]),
            _fmt(r["macro_f1"]["heldback"]),
            _fmt(r["macro_f1"]["test"]),
            _fmt(r["heldback_minus_test"]),
            r["decision"] or r["status"],
        )
    console.print(table)
    _print_audit(console, data["label_audit"])
    t = data["teacher"]
    console.print(
        f"teacher: {t['calls']} calls ({t['cache_hits']} cached, {t['retries']} retries, {t['failed']} "
        f"failed, {t.get('cancelled', 0)} cancelled by Ctrl-C), {t['tokens_in']}+{t['tokens_out']} tokens, "
        f"{format_usd(t['cost_usd'])}"
    )
    for adaptation in data["adaptations"]:
        console.print(f"  provider adaptation: {escape(adaptation)}")
    if data["plan_vs_actual"]:
        console.print(_plan_table(data["plan_vs_actual"]))
    for r in data["rounds"]:
        for reason in r["reasons"]:
            console.print(f"  round {r['round']}: {escape(reason)}")
    if data["stop_reason"]:
        console.print(f"stop reason: {escape(data['stop_reason'])}")
    if data.get("coverage"):
        _print_coverage(console, data["coverage"])


def _print_coverage(console: Any, coverage: dict[str, Any]) -> None:
    """The exported model's coverage–accuracy curve on held-back, with the teacher's cost of what it defers."""
    from rich.table import Table

    table = Table(title="deferral: the student answers above the threshold, the teacher below (held-back)")
    for column in COVERAGE_HEADERS:
        table.add_column(column)
    rows = [CoverageRow(**row) for row in coverage["rows"]]
    for cells in format_coverage_rows(thin(rows)):
        table.add_row(*cells)
    console.print(table)
    console.print(cost_note(TeacherCost(**coverage["teacher_cost"])), markup=False)


def _audit_cell(counts: dict[str, int]) -> str:
    return "–" if not any(counts.values()) else "/".join(str(counts[str(o)]) for o in AuditOutcome)


def _print_audit(console: Any, audit: dict[str, Any]) -> None:
    """The audit's totals and the examples it changed (relabelled or dropped), each with its reason."""
    from rich.markup import escape

    totals = audit["totals"]
    if not any(totals.values()):
        return
    console.print(
        f"label audit: {sum(totals.values())} flagged labels got a second opinion — "
        + ", ".join(f"{n} {outcome}" for outcome, n in totals.items())
    )
    changed = [a for a in audit["examples"] if a["outcome"] != AuditOutcome.KEPT]
    for a in changed[:SHOWN_AUDITS]:
        console.print(f"  round {a['round']} {a['outcome']}: {escape(repr(a['text']))} — {escape(a['reason'])}")
    if len(changed) > SHOWN_AUDITS:
        console.print(f"  … and {len(changed) - SHOWN_AUDITS} more (`distill status --json` lists them all)")


def _plan_table(rows: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    table = Table(title="teacher: planned (distill plan) vs paid")
    for column in ("prompt", "calls planned", "calls paid", "tokens planned", "tokens paid", "USD planned", "USD paid"):
        table.add_column(column, justify="left" if column == "prompt" else "right")
    for row in rows:
        planned, actual = row["planned"] or {}, row["actual"] or {}
        table.add_row(
            row["prompt_id"],
            *(str(x.get("calls", "–")) for x in (planned, actual)),
            *(f"{x['tokens']:,}" if x else "–" for x in (planned, actual)),
            *(format_usd(x["usd"]) if x else "–" for x in (planned, actual)),
        )
    return table
