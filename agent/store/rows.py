"""What the run store hands out: status enums and frozen rows (never ``sqlite3.Row``).

JSON columns arrive decoded (``reasons``, ``quotas``, ``provenance`` …). Aggregates that callers put
straight into JSON summaries (the call summary, usage per prompt) are ``TypedDict``s, so they stay
plain, serialisable dicts and are still checked by mypy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypedDict


class RoundStatus(StrEnum):
    """How far a classifier round got, in step order: each step's output is durable once it is set.

    A ``StrEnum``, so stored values and comparisons with the bare strings keep working.
    """

    GENERATING = "generating"  # the step started (round 0: the evaluation sets are stored)
    GENERATED = "generated"  # its training examples are stored (seed, PGKD, active labels)
    FILTERED = "filtered"  # every new example has its filter verdicts
    # The label audit's outcomes are stored (or it was skipped). Runs from before the audit existed go
    # from FILTERED straight to TRAINED; by rank they count as audited, so resume never audits them late.
    AUDITED = "audited"
    TRAINED = "trained"  # models/round-NN/ holds the student
    EVALUATED = "evaluated"  # metrics of every evaluation split are stored
    DECIDED = "decided"  # the decision, reasons and next quotas are stored: the round is over

    @property
    def rank(self) -> int:
        """Position in the step order (GENERATING 0 … DECIDED 6)."""
        return _ROUND_ORDER.index(self)


_ROUND_ORDER: tuple[RoundStatus, ...] = tuple(RoundStatus)


class RunStatus(StrEnum):
    """The run as a whole; ``set_run_status`` refuses any other value."""

    CREATED = "created"
    RUNNING = "running"
    INTERRUPTED = "interrupted"  # stopped by the user (Ctrl-C, SIGTERM): `distill resume` continues
    FAILED = "failed"  # stopped by an error: the stop reason says which
    FINISHED = "finished"


@dataclass(frozen=True)
class RunInfo:
    id: str
    name: str
    spec: dict[str, Any]
    versions: dict[str, str]
    git_sha: str | None
    created_at: float
    status: RunStatus
    stop_reason: str | None


@dataclass(frozen=True)
class RoundRow:
    idx: int
    status: RoundStatus
    started_at: float
    finished_at: float | None
    decision: str | None
    reasons: list[str]
    quotas: dict[str, int] | None
    model_dir: str | None


@dataclass(frozen=True)
class ExampleRow:
    id: int
    round: int
    split: str
    text: str
    label: str
    origin: str
    kept: bool | None


@dataclass(frozen=True)
class SplitCount:
    """Examples of one split (and round): how many were stored, how many the filters kept."""

    total: int
    kept: int


@dataclass(frozen=True)
class FilterVerdict:
    filter: str
    kept: bool
    reason: str


@dataclass(frozen=True)
class ExampleProvenance:
    """A training example with where it came from and every filter verdict on it (the run report's rows)."""

    id: int
    round: int
    text: str
    label: str
    origin: str
    kept: bool | None
    teacher_call_id: int | None
    prompt_id: str | None
    strategy_id: str | None
    verdicts: tuple[FilterVerdict, ...]


class AuditOutcome(StrEnum):
    """What the label audit did with a flagged example (the rule: ``agent.classify.audit``)."""

    KEPT = "kept"  # the second opinion agreed with the given label, or gave no usable answer
    RELABELLED = "relabelled"  # the example's label is now the second opinion
    DROPPED = "dropped"  # left out of training (kept=0, filter ``label_audit``)


@dataclass(frozen=True)
class LabelAuditRow:
    """One flagged example's audit: the label it had, what the audit suggested, what the teacher said."""

    id: int
    round: int
    example_id: int
    given_label: str
    suggested_label: str | None
    second_opinion: str | None
    outcome: AuditOutcome
    reason: str
    score: float | None  # the audit's rank score: how sure the out-of-fold model was the label is wrong
    teacher_call_id: int | None
    created_at: float


@dataclass(frozen=True)
class NewLabelAudit:
    """A label audit about to be stored (``record_label_audits``)."""

    example_id: int
    given_label: str
    suggested_label: str | None
    second_opinion: str | None
    outcome: AuditOutcome
    reason: str
    score: float | None
    teacher_call_id: int | None


@dataclass(frozen=True)
class PromptCalls:
    """Every journaled call of one prompt template: counts, cache hits, tokens, USD (cache hits cost $0)."""

    prompt_id: str
    calls: int
    cache_hits: int
    tokens_in: int
    tokens_out: int
    usd: float
    failed: int


@dataclass(frozen=True)
class CallOrigin:
    """Which prompt (id and version) and model one journaled teacher call used: an example's provenance."""

    call_id: int
    prompt_id: str
    prompt_version: int
    model: str
    cache_hit: bool


class CallSummary(TypedDict):
    calls: int
    cache_hits: int
    tokens_in: int
    tokens_out: int
    cost_usd: float
    retries: int
    failed: int
    cancelled: int


class PromptUsage(TypedDict):
    calls: int
    tokens_in: int
    tokens_out: int
    usd: float


@dataclass(frozen=True)
class Strategy:
    """One version of a strategy in the library (see ``agent.strategies`` for the audit rules)."""

    id: str
    version: int
    scope: str
    criterion: str | None
    text: str
    status: str
    round: int | None
    provenance: dict[str, Any] = field(default_factory=dict)
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StrategyEvent:
    """One audit event; the library's version is the number of events so far."""

    seq: int
    strategy_id: str
    version: int
    action: str
    from_status: str | None
    to_status: str
    text: str
    note: str | None
    at: float


@dataclass(frozen=True)
class NewScenario:
    flow: str
    message: str
    source: str
    embedding: bytes


@dataclass(frozen=True)
class Scenario:
    id: str
    split: str
    flow: str
    message: str
    source: str
    round: int


@dataclass(frozen=True)
class Answer:
    """A reply to a scenario: by the student (under a condition) or the teacher, with its judgement."""

    id: int
    scenario_id: str
    round: int
    role: str
    condition: str
    strategy_ids: list[str]
    reply: str
    score: float | None
    judgement: dict[str, Any] | None


@dataclass(frozen=True)
class TeachRound:
    """A finished learning round of strategy teaching and its outcome (as the loop recorded it)."""

    idx: int
    outcome: dict[str, Any]
    finished_at: float
