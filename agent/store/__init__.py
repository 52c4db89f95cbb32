"""The run store: one SQLite file per run, and the only code that speaks SQL to it.

WAL mode, every write in one transaction, and numbered migrations (``schema.py``; never ad-hoc
ALTERs), so a crash leaves the last committed step intact and ``distill resume`` continues from it.
API keys never reach this file: the spec keeps only the *name* of the environment variable, and the
gateway redacts key values from error texts.

Everything else asks :class:`RunStore` named, typed questions and gets frozen rows back (``rows.py``);
``tests/agent/test_store_owns_sql.py`` fails on any SQL outside this package (and the response cache,
``generators/cache.py``). The store is split by concern:

* ``runs.py`` — the run row (``create_run``, ``run_info``, ``set_run_status``), the teacher-call
  journal (``record_call``, ``spent``, ``call_summary``, ``calls_by_prompt``, ``adaptations``) and the
  cost plan (``save_plan``, ``plan``).
* ``rounds.py`` — the classifier loop: rounds, examples, filter decisions, evaluations.
* ``teaching.py`` — strategy teaching: strategies and audit events, scenarios, answers, learning rounds.
* ``audits.py`` — the label audit: outcomes per flagged example (kept, relabelled, dropped) and their reasons.
* ``reports.py`` — read-only questions of the run report: example provenance, per-class scores, cost by round.

**Is this step done?** A classifier round moves through :class:`RoundStatus` in order (generating →
generated → filtered → audited → trained → evaluated → decided). Each step writes its output and its status in
the same transaction, and asks one question before it starts::

    if store.round_reached(round, RoundStatus.FILTERED):
        return  # filtering of this round is durable: skip it on resume

``round_reached(idx, status)`` is true when the round's stored status is ``status`` or later.
"""

from __future__ import annotations

from agent.store.audits import AUDIT_FILTER, AuditTables
from agent.store.reports import ReportQueries
from agent.store.rounds import RoundTables, content_hash
from agent.store.rows import (
    Answer,
    AuditOutcome,
    CallOrigin,
    CallSummary,
    ExampleProvenance,
    ExampleRow,
    FilterVerdict,
    LabelAuditRow,
    NewLabelAudit,
    NewScenario,
    PromptCalls,
    PromptUsage,
    RoundRow,
    RoundStatus,
    RunInfo,
    RunStatus,
    Scenario,
    SplitCount,
    Strategy,
    StrategyEvent,
    TeachRound,
)
from agent.store.runs import RunTables
from agent.store.schema import MIGRATIONS
from agent.store.teaching import TeachingTables


class RunStore(RunTables, RoundTables, AuditTables, TeachingTables, ReportQueries):
    """Typed access to ``run.sqlite``. Also the teacher gateway's ``CallJournal``."""


__all__ = [
    "AUDIT_FILTER",
    "MIGRATIONS",
    "Answer",
    "AuditOutcome",
    "CallOrigin",
    "CallSummary",
    "ExampleProvenance",
    "ExampleRow",
    "FilterVerdict",
    "LabelAuditRow",
    "NewLabelAudit",
    "NewScenario",
    "PromptCalls",
    "PromptUsage",
    "RoundRow",
    "RoundStatus",
    "RunInfo",
    "RunStatus",
    "RunStore",
    "Scenario",
    "SplitCount",
    "Strategy",
    "StrategyEvent",
    "TeachRound",
    "content_hash",
]
