"""The label audit, a round step between filter and train: are the kept training labels right?

Confident learning on out-of-fold probabilities (``trainers.label_audit``) over all kept training data
flags the teacher-labelled examples (generated or actively labelled; never the user's own) whose given
label is likely wrong and suggests another; each flagged example not audited before gets a second
opinion from the teacher with a different prompt (``prompts/audit.yaml``; ``teacher.audit_model`` if
set). The outcome rule:

* the second opinion is the **given** label → *kept* (the teacher stands by it);
* it is the label the audit **suggested** → *relabelled* to it (two independent judges agree);
* it is **any other** label (or ``out_of_scope``) → *dropped*: the three disagree, so the text is
  ambiguous and neither relabelling on one vote nor keeping a label the teacher disowns is safe;
* **no usable answer** (the reply skipped the text or named no label of the task) → *kept*, with that
  reason: the audit alone is not evidence enough to change data.

Calls that fail or hit the budget record nothing: a later round may flag the example again. Every
outcome, its application to the example and the round's AUDITED status are written in one transaction,
and the requests are deterministic (seeded folds, temperature 0), so a resumed audit is answered from
the cache and pays nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from agent import console
from agent.classify.context import RunContext
from agent.classify.teacher_calls import collect
from agent.store import AuditOutcome, ExampleRow, NewLabelAudit
from generators.audit import AuditItem, audit_requests
from generators.generation import OUT_OF_SCOPE
from generators.schemas import AssignedLabels
from generators.teacher import Teacher

# The user's own labelled examples (seed file) train the fold models but are never flagged: they are the
# human reference the run is built on, and the teacher overruling them would be the teacher grading
# itself. Measured (bench/label_audit.py, seed 1 at 10% noise): a quarter of the flags were such clean
# seed texts, and second opinions on them were the main source of wrong relabels.
REAL_ORIGIN = "real"
MIN_EXAMPLES_PER_FOLD = 2  # below folds × this, out-of-fold models are too small to judge anything


@dataclass(frozen=True)
class Flagged:
    example: ExampleRow
    suggested: str
    score: float


def audit_round(ctx: RunContext, round: int) -> dict[AuditOutcome, int]:
    """Audit the kept training data, store the outcomes and mark the round AUDITED; the round's counts."""
    skip = _skip_reason(ctx)
    if skip is not None:
        console.info(f"round {round} label audit skipped: {skip}")
        ctx.store.record_label_audits(round, [])
        return ctx.store.audit_counts(round)
    flagged = _flag(ctx, round, ctx.store.examples("train", kept=True))
    audited = ctx.store.audited_example_ids()
    fresh = [f for f in flagged if f.example.id not in audited]
    ctx.store.record_label_audits(round, _second_opinions(ctx, round, fresh))
    counts = ctx.store.audit_counts(round)
    console.info(
        f"round {round} label audit: {len(flagged)} flagged ({len(flagged) - len(fresh)} audited before); "
        + ", ".join(f"{outcome} {n}" for outcome, n in counts.items())
    )
    return counts


def _skip_reason(ctx: RunContext) -> str | None:
    loop = ctx.spec.loop
    if not loop.label_audit:
        return "loop.label_audit is false"
    if ctx.embed is None:
        return "no sentence embedder in this run"
    kept = ctx.store.examples("train", kept=True)
    needed = loop.audit_folds * MIN_EXAMPLES_PER_FOLD
    if len(kept) < needed:
        return f"{len(kept)} kept training examples, fewer than the {needed} that {loop.audit_folds} folds need"
    if len({e.label for e in kept}) < 2:
        return "every kept training example has the same label"
    return None


def _flag(ctx: RunContext, round: int, kept: list[ExampleRow]) -> list[Flagged]:
    """Confident learning on frozen-embedding LR out-of-fold probabilities: likely wrong labels, surest first."""
    from trainers.label_audit import audit_labels

    assert ctx.embed is not None
    # Labels the spec does not list (none after the filters' validity check) still get a column, so
    # indexing never fails; the audit never suggests them because no fold can learn them.
    names = list(dict.fromkeys([*ctx.labels, *(e.label for e in kept)]))
    index = {name: i for i, name in enumerate(names)}
    vectors = np.asarray(ctx.embed([e.text for e in kept]), dtype=np.float64)
    seed = ctx.rng(round, "label-audit").randrange(2**32)
    teacher_labelled = np.array([e.origin != REAL_ORIGIN for e in kept])
    issues, _ = audit_labels(
        vectors,
        [index[e.label] for e in kept],
        len(names),
        folds=ctx.spec.loop.audit_folds,
        seed=seed,
        eligible=teacher_labelled,
    )
    return [Flagged(kept[issue.index], names[issue.suggested], issue.score) for issue in issues]


def answer_labels(ctx: RunContext) -> list[str]:
    """What a second opinion may answer: the task's labels, and ``out_of_scope`` when the task has it."""
    extra = [OUT_OF_SCOPE] if ctx.spec.task.out_of_scope and OUT_OF_SCOPE not in ctx.labels else []
    return [*ctx.labels, *extra]


def _second_opinions(ctx: RunContext, round: int, flagged: list[Flagged]) -> list[NewLabelAudit]:
    """Ask the teacher about ``flagged`` and turn each answer into an outcome (the module's rule)."""
    if not flagged:
        return []
    allowed = answer_labels(ctx)
    items = [AuditItem(f.example.text, f.example.label, f.suggested) for f in flagged]
    per_call = ctx.spec.loop.batch_per_call
    requests = audit_requests(ctx.task, items, per_call=per_call, round=round, labels=allowed)
    chunks = {id(r): flagged[i * per_call : (i + 1) * per_call] for i, r in enumerate(requests)}
    audit_ctx = replace(ctx, teacher=_audit_teacher(ctx))
    results = collect(audit_ctx, requests, f"round {round} label audit", AssignedLabels)
    ctx.budget_hit = audit_ctx.budget_hit or ctx.budget_hit
    audits: list[NewLabelAudit] = []
    for request, completion in results:
        chunk = chunks[id(request)]
        answered = {a.index: a.label for a in completion.parsed.labels if 0 <= a.index < len(chunk)}
        for i, f in enumerate(chunk):
            outcome, reason = decide_outcome(f.example.label, f.suggested, answered.get(i), allowed)
            opinion = answered.get(i)
            audits.append(
                NewLabelAudit(
                    f.example.id, f.example.label, f.suggested, opinion, outcome, reason, f.score, completion.call_id
                )
            )
    return audits


def decide_outcome(given: str, suggested: str, opinion: str | None, allowed: list[str]) -> tuple[AuditOutcome, str]:
    """The outcome rule (module docstring) for one flagged example, with its reason."""
    if opinion is None:
        return AuditOutcome.KEPT, "no usable second opinion: the reply gave no label for this text"
    if opinion not in allowed:
        return AuditOutcome.KEPT, f"no usable second opinion: {opinion!r} is not a label of the task"
    if opinion == given:
        return AuditOutcome.KEPT, f"the second opinion confirms {given}"
    if opinion == suggested:
        return AuditOutcome.RELABELLED, f"the second opinion agrees with the audit: {suggested}, not {given}"
    if opinion == OUT_OF_SCOPE:
        return AuditOutcome.DROPPED, f"the second opinion says it fits no label ({OUT_OF_SCOPE}), not {given}"
    return (
        AuditOutcome.DROPPED,
        f"ambiguous: given {given}, the audit suggested {suggested}, the second opinion {opinion}",
    )


def _audit_teacher(ctx: RunContext) -> Teacher:
    """The run's teacher, or the same endpoint with ``teacher.audit_model``: one cache, ledger and journal,
    so the audit model's calls are cached, budgeted and journaled (under their own model) like any other."""
    model = ctx.spec.teacher.audit_model
    teacher = ctx.teacher
    if model is None or model == teacher.config.model:
        return teacher
    return Teacher(
        replace(teacher.config, model=model), cache=teacher.cache, ledger=teacher.ledger, journal=teacher.journal
    )
