"""Strategy teaching (Wang, Sudhir, Hong 2024) for a black-box student LLM, top to bottom:

    held-out scenarios → rounds of [scenarios → student answers (with retrieved strategies)
        → teacher reference → teacher judges both → teacher writes strategies where the student falls
        short → re-run with the new strategy, keep it only if the score rose] → held-out evaluation

The teacher never hands over answers; it teaches short rules that a person can audit. Learning may use
*proposed* strategies (configurable); deploy and evaluation prompts use *approved* ones only.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from agent import console
from agent.data_files import read_jsonl
from agent.dialogue.student import StudentClient
from agent.runtime import run_requests
from agent.spec import DialogueRunSpec
from agent.store import NewScenario, RunStore, Scenario, Strategy
from agent.strategies import DEPLOY_STATUSES, Retriever, StrategyLibrary, scenario_blob
from generators.prompts import get_template
from generators.schemas import JudgeVerdict, Reply, Scenarios, Strategies
from generators.service_policy import Policy
from generators.teacher import Teacher, TeacherRequest


@dataclass
class TeachContext:
    spec: DialogueRunSpec
    store: RunStore
    teacher: Teacher
    student: StudentClient
    embed: Callable[[list[str]], np.ndarray]
    policy: Policy

    @property
    def library(self) -> StrategyLibrary:
        return StrategyLibrary(self.store)

    @property
    def retriever(self) -> Retriever:
        return Retriever(self.store, self.library, self.embed)

    def learning_statuses(self) -> set[str]:
        return {"approved", "proposed"} if self.spec.loop.use_proposed_during_learning else set(DEPLOY_STATUSES)


# -- teacher actions -------------------------------------------------------------------------------


def _request(
    template_id: str, variables: dict[str, Any], brief: dict[str, Any], round: int, sample_index: int = 0
) -> TeacherRequest:
    template = get_template(template_id)
    items = int(brief.get("n", 1))
    # Judging is a measurement: temperature 0 wherever the model allows one.
    return template.request(
        variables,
        brief,
        items=items,
        sample_index=sample_index,
        round=round,
        temperature=0.0 if template_id == "judge" else None,
    )


def _one(ctx: TeachContext, request: TeacherRequest, schema: type[Any]) -> Any:
    [result] = run_requests(ctx.teacher, [request], schema)
    if isinstance(result, BaseException):
        raise result
    return result


def _many(ctx: TeachContext, requests: list[TeacherRequest], schema: type[Any], what: str) -> list[Any]:
    with console.progress(what, len(requests)) as advance:
        results = run_requests(ctx.teacher, requests, schema, on_done=advance)
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        raise RuntimeError(f"{what}: {len(failures)} teacher call(s) failed: {failures[0]}")
    return results


def judge_requests(ctx: TeachContext, items: list[tuple[str, str, str]], round: int) -> list[TeacherRequest]:
    """(flow, message, reply) → judge requests; the rubric is the policy's criteria for the flow."""
    return [
        _request(
            "judge",
            {
                "rubric": ctx.policy.rubric_text(flow),
                "flow": flow,
                "message": message,
                "reply": reply or "(empty reply)",
            },
            {"action": "judge", "flow": flow, "message": message, "reply": reply},
            round,
        )
        for flow, message, reply in items
    ]


def judge_all(ctx: TeachContext, items: list[tuple[str, str, str]], round: int, what: str) -> list[JudgeVerdict]:
    return [c.parsed for c in _many(ctx, judge_requests(ctx, items, round), JudgeVerdict, what)]


# -- scenarios -------------------------------------------------------------------------------------


def _store_scenarios(ctx: TeachContext, rows: list[tuple[str, str, str]], split: str, round: int) -> list[str]:
    """Store (flow, message, source) rows with their embeddings; returns their ids."""
    vectors = ctx.embed([m for _, m, _ in rows])
    scenarios = [
        NewScenario(flow, message, source, scenario_blob(vec))
        for (flow, message, source), vec in zip(rows, vectors, strict=True)
    ]
    return ctx.store.add_scenarios(split, round, scenarios)


def scenarios_from_file(ctx: TeachContext, n: int, seed: int) -> list[tuple[str, str, str]]:
    """Real customer messages from ``task.scenarios.file`` whose intent the policy covers."""
    path = ctx.spec.task.scenarios.file
    assert path is not None
    rows = []
    for item in read_jsonl(path, None, "task.scenarios.file", []):  # checked before the run: no warning twice
        flow = ctx.policy.flow_for_intent(item["label"])
        if flow is not None:
            rows.append((flow, item["text"], f"file:{path.name}"))
    random.Random(seed).shuffle(rows)
    return rows[:n]


def scenarios_from_teacher(ctx: TeachContext, n: int, round: int, target: list[str]) -> list[tuple[str, str, str]]:
    """The teacher writes ``n`` scenarios, aimed at the criteria the student still fails."""
    flows = [f.id for f in ctx.policy.flows]
    per_call = 8
    requests = [
        _request(
            "scenario",
            {
                "task_description": ctx.spec.task.description,
                "flows": ctx.policy.flows_text(),
                "n": min(per_call, n - start),
                "target": ", ".join(target) or "(any)",
            },
            {"action": "scenario", "flows": flows, "n": min(per_call, n - start), "target_criteria": target},
            round,
            sample_index=start,
        )
        for start in range(0, n, per_call)
    ]
    results = _many(ctx, requests, Scenarios, f"round {round}: scenarios")
    return [(s.flow, s.message, "teacher") for r in results for s in r.parsed.scenarios if ctx.policy.has_flow(s.flow)]


def ensure_heldout(ctx: TeachContext) -> list[str]:
    """Held-out scenarios, drawn once before any learning and never learned on."""
    existing = [s.id for s in ctx.store.scenarios("heldout")]
    if existing:
        return existing
    spec = ctx.spec.task.scenarios
    rows = (
        scenarios_from_file(ctx, spec.heldout, seed=1)
        if spec.source == "file"
        else scenarios_from_teacher(ctx, spec.heldout, 0, [])
    )
    return _store_scenarios(ctx, rows, "heldout", 0)


# -- answering -------------------------------------------------------------------------------------


def student_answer(
    ctx: TeachContext, message: str, statuses: set[str], extra: list[str] | None = None
) -> tuple[str, list[str]]:
    """The student's reply with the retrieved strategies (plus ``extra`` texts); returns (reply, strategy ids)."""
    hits = ctx.retriever.retrieve(message, statuses, ctx.spec.loop.top_k)
    texts = [s.text for s, _ in hits] + list(extra or [])
    return ctx.student.answer(message, texts), [s.id for s, _ in hits]


def _record_answer(
    ctx: TeachContext,
    sid: str,
    round: int,
    role: str,
    condition: str,
    strategy_ids: list[str],
    reply: str,
    verdict: JudgeVerdict | None,
) -> None:
    ctx.store.add_answer(
        sid,
        round,
        role,
        condition,
        strategy_ids,
        reply,
        verdict.score if verdict else None,
        verdict.model_dump(mode="json") if verdict else None,
    )


# -- one learning round ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RoundOutcome:
    student_score: float
    teacher_score: float
    proposed: int
    kept: int
    failing: list[str]


def learn_round(ctx: TeachContext, round: int, target: list[str]) -> RoundOutcome:
    spec = ctx.spec.task.scenarios
    rows = (
        scenarios_from_file(ctx, spec.learn, seed=100 + round)
        if spec.source == "file"
        else scenarios_from_teacher(ctx, spec.learn, round, target)
    )
    ids = _store_scenarios(ctx, rows, "learn", round)
    statuses = ctx.learning_statuses()
    with console.progress(f"round {round}: student answers", len(rows)) as advance:
        answers = []
        for _, message, _ in rows:
            answers.append(student_answer(ctx, message, statuses))
            advance()
    references = _many(
        ctx,
        [
            _request(
                "respond",
                {"task_description": ctx.spec.task.description, "rubric": ctx.policy.rubric_text(f), "message": m},
                {"action": "respond", "flow": f, "message": m},
                round,
            )
            for f, m, _ in rows
        ],
        Reply,
        f"round {round}: teacher references",
    )
    items = [(f, m, a[0]) for (f, m, _), a in zip(rows, answers, strict=True)]
    items += [(f, m, r.parsed.reply) for (f, m, _), r in zip(rows, references, strict=True)]
    verdicts = judge_all(ctx, items, round, f"round {round}: judging")
    student_v, teacher_v = verdicts[: len(rows)], verdicts[len(rows) :]
    proposed = kept = 0
    failing: dict[str, int] = {}
    for i, sid in enumerate(ids):
        flow, message, _ = rows[i]
        _record_answer(ctx, sid, round, "student", "learning", answers[i][1], answers[i][0], student_v[i])
        _record_answer(ctx, sid, round, "teacher", "reference", [], references[i].parsed.reply, teacher_v[i])
        failed = [c.id for c in student_v[i].criteria if c.score < 1]
        for criterion in failed:
            failing[criterion] = failing.get(criterion, 0) + 1
        if student_v[i].score < teacher_v[i].score and failed:
            p, k = _improve(ctx, round, sid, flow, message, answers[i][0], student_v[i], failed)
            proposed, kept = proposed + p, kept + k
    student_mean = float(np.mean([v.score for v in student_v])) if student_v else 0.0
    teacher_mean = float(np.mean([v.score for v in teacher_v])) if teacher_v else 0.0
    return RoundOutcome(student_mean, teacher_mean, proposed, kept, sorted(failing, key=lambda c: -failing[c]))


def _improve(
    ctx: TeachContext,
    round: int,
    sid: str,
    flow: str,
    message: str,
    reply: str,
    before: JudgeVerdict,
    failed: list[str],
) -> tuple[int, int]:
    """Ask for strategies for the failed criteria; keep each only if re-running the scenario raised the score."""
    request = _request(
        "strategize",
        {"rubric": ctx.policy.rubric_text(flow), "message": message, "reply": reply, "failed": ", ".join(failed)},
        {"action": "strategize", "flow": flow, "message": message, "reply": reply, "failed": failed},
        round,
    )
    completion = _one(ctx, request, Strategies)
    proposed = kept = 0
    library = ctx.library
    for item in completion.parsed.strategies:
        existing = _same_text(library, flow, item.text)
        if existing is not None:
            library.add_evidence(existing, {"support": _support(library, existing) + 1})
            library.add_scenario(existing, sid)
            continue
        retry, used = student_answer(ctx, message, ctx.learning_statuses(), extra=[item.text])
        [after] = judge_all(ctx, [(flow, message, retry)], round, "judging the re-run")
        evidence = {
            "score_before": before.score,
            "score_after": after.score,
            "scenario": sid,
            "support": 1,
            "criterion_fixed": any(c.id == item.criterion and c.score >= 1 for c in after.criteria),
        }
        improved = after.score > before.score
        status = ("approved" if ctx.spec.loop.auto_approve else "proposed") if improved else "rejected"
        strategy = library.propose(
            flow,
            item.text,
            criterion=item.criterion,
            round=round,
            teacher_call_id=completion.call_id,
            evidence=evidence,
            status=status,
            provenance={"scenarios": [sid], "round": round, "teacher_call_id": completion.call_id},
        )
        _record_answer(ctx, sid, round, "student", f"with:{strategy.id}", used, retry, after)
        proposed += 1
        kept += int(improved)
    return proposed, kept


def _same_text(library: StrategyLibrary, scope: str, text: str) -> str | None:
    key = " ".join(text.lower().split())
    for s in library.current():
        if s.scope == scope and " ".join(s.text.lower().split()) == key and s.status != "rejected":
            return s.id
    return None


def _support(library: StrategyLibrary, strategy_id: str) -> int:
    return int(library.get(strategy_id).evidence.get("support", 1))


# -- evaluation ------------------------------------------------------------------------------------


def evaluate_heldout(
    ctx: TeachContext, statuses: set[str], condition: str, student: StudentClient | None = None, split: str = "heldout"
) -> list[float]:
    """Scores of the student on the held-out scenarios with strategies of ``statuses`` (empty: none)."""
    client = student or ctx.student
    rows = _scenarios(ctx, split)
    with console.progress(f"held-out: {condition}", len(rows)) as advance:
        answers = []
        for r in rows:
            hits = ctx.retriever.retrieve(r.message, statuses, ctx.spec.loop.top_k) if statuses else []
            answers.append((client.answer(r.message, [s.text for s, _ in hits]), [s.id for s, _ in hits]))
            advance()
    verdicts = judge_all(
        ctx,
        [(r.flow, r.message, a) for r, (a, _) in zip(rows, answers, strict=True)],
        0,
        f"held-out: judging {condition}",
    )
    for r, (reply, used), v in zip(rows, answers, verdicts, strict=True):
        _record_answer(ctx, r.id, 0, "student", condition, used, reply, v)
    return [v.score for v in verdicts]


def teacher_heldout(ctx: TeachContext, split: str = "heldout") -> list[float]:
    rows = _scenarios(ctx, split)
    refs = _many(
        ctx,
        [
            _request(
                "respond",
                {
                    "task_description": ctx.spec.task.description,
                    "rubric": ctx.policy.rubric_text(r.flow),
                    "message": r.message,
                },
                {"action": "respond", "flow": r.flow, "message": r.message},
                0,
            )
            for r in rows
        ],
        Reply,
        "held-out: teacher references",
    )
    verdicts = judge_all(
        ctx,
        [(r.flow, r.message, ref.parsed.reply) for r, ref in zip(rows, refs, strict=True)],
        0,
        "held-out: judging the teacher",
    )
    for r, ref, v in zip(rows, refs, verdicts, strict=True):
        _record_answer(ctx, r.id, 0, "teacher", "heldout:teacher", [], ref.parsed.reply, v)
    return [v.score for v in verdicts]


def _scenarios(ctx: TeachContext, split: str) -> list[Scenario]:
    return ctx.store.scenarios(split)


def add_transfer_scenarios(ctx: TeachContext, n: int, seed: int = 7) -> list[str]:
    """Real customer messages from ``task.scenarios.file`` as a second, differently sourced held-out set."""
    if ctx.spec.task.scenarios.file is None:
        raise ValueError("transfer scenarios need task.scenarios.file (real customer messages)")
    existing = [s.id for s in _scenarios(ctx, "transfer")]
    return existing or _store_scenarios(ctx, scenarios_from_file(ctx, n, seed), "transfer", 0)


def record_heldout_effects(ctx: TeachContext, alone: list[float], with_strategies: list[float], condition: str) -> None:
    """Per strategy: the mean held-out score change on the scenarios where it was retrieved."""
    answers = ctx.store.answers(condition=condition)
    deltas: dict[str, list[float]] = {}
    for answer, a, w in zip(answers, alone, with_strategies, strict=False):
        for sid in answer.strategy_ids:
            deltas.setdefault(sid, []).append(w - a)
    for sid, values in deltas.items():
        ctx.library.add_evidence(sid, {"heldout_effect": round(float(np.mean(values)), 4), "heldout_n": len(values)})


# -- resuming --------------------------------------------------------------------------------------

HELDOUT_CONDITIONS = ("heldout:alone", "heldout:approved", "heldout:learning", "heldout:teacher", "heldout:sft")


def finished_rounds(ctx: TeachContext) -> list[RoundOutcome]:
    return [RoundOutcome(**r.outcome) for r in ctx.store.teach_rounds()]


def record_round(ctx: TeachContext, round: int, outcome: RoundOutcome) -> None:
    ctx.store.record_teach_round(round, dict(outcome.__dict__))


def discard_partial_round(ctx: TeachContext, round: int) -> bool:
    """Remove what an interrupted learning round wrote, in one transaction, so that it can run again from
    its start; returns whether there was anything. The rerun sends the same teacher requests, which the
    cache answers, so nothing is paid twice (with a deterministic student: greedy decoding). Strategies a
    reviewer already acted on are kept; support and provenance the round added to older ones are undone."""
    scenario_ids = {s.id for s in ctx.store.scenarios("learn", round=round)}
    if not scenario_ids:
        return False
    untouched = ctx.store.strategy_ids_of_round(round) - ctx.store.reviewed_strategy_ids()
    rewrite: list[Strategy] = []
    for s in ctx.library.current():
        if s.id in untouched or not scenario_ids & set(s.provenance.get("scenarios", [])):
            continue
        kept = [sid for sid in s.provenance["scenarios"] if sid not in scenario_ids]
        evidence = dict(s.evidence)
        if "support" in evidence:  # each later scenario that asked for it added one
            evidence["support"] = max(1, evidence["support"] - (len(s.provenance["scenarios"]) - len(kept)))
        rewrite.append(replace(s, provenance={**s.provenance, "scenarios": kept}, evidence=evidence))
    ctx.store.discard_learning_round(round, drop=sorted(untouched), rewrite=rewrite)
    return True


def clear_heldout_answers(ctx: TeachContext) -> None:
    """The held-out evaluation is redone after every (re)start: drop answers an interrupted one left."""
    ctx.store.delete_answers(HELDOUT_CONDITIONS)


# -- the loop --------------------------------------------------------------------------------------


def teach_loop(ctx: TeachContext) -> dict[str, Any]:
    """Run the learning rounds, then evaluate on held-out scenarios; returns the summary.

    Resumable: finished rounds are read back from the store, an interrupted one is discarded and run again
    (its teacher calls come from the cache), and the held-out evaluation is always redone in full."""
    heldout = ensure_heldout(ctx)
    done = finished_rounds(ctx)
    if done:
        console.info(f"resuming: {len(done)} learning round(s) already finished")
    target: list[str] = []
    rounds = []
    for round in range(1, ctx.spec.loop.max_rounds + 1):
        if round <= len(done):
            outcome = done[round - 1]
        else:
            if discard_partial_round(ctx, round):
                console.info(f"round {round} was interrupted: discarding its partial results and running it again")
            outcome = learn_round(ctx, round, target)
            record_round(ctx, round, outcome)
            console.info(
                f"round {round}: student {outcome.student_score:.3f} vs teacher "
                f"{outcome.teacher_score:.3f}; {outcome.kept}/{outcome.proposed} new strategies raised "
                "their scenario's score"
            )
        rounds.append(outcome.__dict__)
        target = outcome.failing[:3]
        if outcome.student_score >= outcome.teacher_score - ctx.spec.loop.parity_margin:
            console.info(f"parity reached (margin {ctx.spec.loop.parity_margin}): stopping")
            break
    clear_heldout_answers(ctx)
    alone = evaluate_heldout(ctx, set(), "heldout:alone")
    deploy = evaluate_heldout(ctx, set(DEPLOY_STATUSES), "heldout:approved")
    # With nothing left unapproved, "learning" retrieves exactly the deploy set: reuse, don't re-generate.
    extra = ctx.learning_statuses() - set(DEPLOY_STATUSES)
    learning = (
        evaluate_heldout(ctx, ctx.learning_statuses(), "heldout:learning") if ctx.library.current(extra) else deploy
    )
    condition = "heldout:learning" if learning is not deploy else "heldout:approved"
    teacher = teacher_heldout(ctx)
    record_heldout_effects(ctx, alone, learning, condition)
    return {
        "rounds": rounds,
        "heldout": {"n": len(heldout), "alone": alone, "approved": deploy, "learning": learning, "teacher": teacher},
    }
