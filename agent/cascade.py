"""`distill predict MODEL_DIR … --cascade SPEC_OR_RUN`: the student answers above its threshold, the teacher below.

The teacher is reached exactly as a run reaches it (``agent.runtime.open_teacher``): the run's response
cache (a text asked before is answered again for free), its journal (every call is recorded in
``run.sqlite`` before it is used) and its ledger, which starts from what the run has already spent, so
``budget.max_usd`` / ``max_teacher_tokens`` bound the run *and* its cascade together. The run's lock is
held while the journal is written (a cascade on a run that is still running is refused, exit 2).

SPEC_OR_RUN is
* a run directory (``spec.json`` + ``run.sqlite``): its stored spec, journal, budget and cache;
* a spec file: its ``teacher`` and ``budget`` (e.g. a production endpoint, a raised budget), with the
  journal and cache of the run MODEL_DIR was exported from (``<run>/model``). The spec names no run
  directory, so a model folder outside a run of that spec (same ``name``) is refused with one line:
  pass the run directory instead. A cascade without a journal could not keep a budget across calls.

Deferred texts are labeled with ``generators.generation.label_requests`` in ``loop.batch_per_call``
chunks, in input order and without duplicates. When the budget refuses a call, or the teacher fails or
answers a label the model does not know, those texts keep the answer ``defer`` and the summary says why.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from agent.cli_model import DEFER  # also the answer when neither the student nor the teacher answered
from agent.errors import InputError
from agent.run_kind import SPEC_FILE, STORE_FILE, load_run_spec
from agent.spec import RunSpec, check_credentials, load_any_spec, response_cache_path
from generators.ledger import BudgetExceeded, format_usd
from generators.schemas import AssignedLabels
from generators.teacher import Completion, TeacherRequest

STUDENT, TEACHER = "student", "teacher"


@dataclass(frozen=True)
class CascadeTarget:
    """Where the cascade's teacher calls go and are recorded."""

    spec: RunSpec
    run_dir: Path


@dataclass(frozen=True)
class Answer:
    text: str
    label: str  # the student's label, the teacher's, or DEFER
    confidence: float  # the student's calibrated confidence (the teacher gives none)
    source: str  # student | teacher
    student_label: str


@dataclass(frozen=True)
class TeacherAnswers:
    labels: dict[str, str]  # text → the teacher's label
    calls: int  # calls answered (paid or from the cache)
    cache_hits: int
    cost_usd: float
    unanswered: int  # deferred texts the teacher did not label
    problems: list[str]  # why (budget refusal, failures, unknown labels): one line each


@dataclass(frozen=True)
class CascadeResult:
    answers: list[Answer]
    teacher: TeacherAnswers | None  # None: nothing was deferred, the teacher was not asked

    def summary(self) -> str:
        n = len(self.answers)
        by_student = sum(a.source == STUDENT and a.label != DEFER for a in self.answers)
        line = f"cascade: the student answered {by_student} of {n} ({by_student / n:.0%})" if n else "cascade: no text"
        t = self.teacher
        if t is None:
            return line + "; the teacher was not asked"
        answered = sum(a.source == TEACHER for a in self.answers)
        line += f", the teacher {answered} in {t.calls} calls ({t.cache_hits} from the cache, {format_usd(t.cost_usd)})"
        if t.unanswered:
            line += f"; {t.unanswered} left as '{DEFER}': " + "; ".join(t.problems)
        return line


def resolve_target(spec_or_run: Path, model_dir: Path, model_labels: list[str]) -> CascadeTarget:
    """The spec and run directory the cascade uses (see the module docstring); ``InputError`` if unusable."""
    if spec_or_run.is_dir():
        run_dir = spec_or_run
        if not (run_dir / STORE_FILE).is_file():
            raise InputError(f"--cascade: {run_dir} holds no {STORE_FILE} — pass a folder made by `distill run`")
        spec = _classifier(load_run_spec(run_dir), spec_or_run)
    elif spec_or_run.is_file():
        spec = _classifier(load_any_spec(spec_or_run), spec_or_run)
        run_dir = model_dir.resolve().parent
        if not ((run_dir / SPEC_FILE).is_file() and (run_dir / STORE_FILE).is_file()):
            raise InputError(
                f"--cascade: {spec_or_run} is a spec, and {model_dir} is not the model folder of a run — pass the "
                "run directory (e.g. runs/demo): its journal keeps the budget and its cache answers repeats for free"
            )
        if load_run_spec(run_dir).name != spec.name:
            raise InputError(
                f"--cascade: {model_dir} comes from a run of another spec than {spec_or_run} (name "
                f"{load_run_spec(run_dir).name!r}, not {spec.name!r}) — pass that run's directory instead"
            )
    else:
        raise InputError(f"--cascade: {spec_or_run} does not exist — pass a run directory (e.g. runs/demo) or its spec")
    unknown = sorted(set(spec.task.label_names) - set(model_labels))
    if unknown:
        raise InputError(
            f"--cascade: the spec's labels {unknown} are not labels of the model in {model_dir} — use the run "
            "this model was trained in"
        )
    check_credentials(spec)
    return CascadeTarget(spec, run_dir)


def _classifier(spec: object, source: Path) -> RunSpec:
    if not isinstance(spec, RunSpec):
        raise InputError(f"--cascade: {source} is a dialogue run; the cascade is for classifiers")
    return spec


def cascade(
    target: CascadeTarget, texts: list[str], predictions: list[tuple[str, float]], threshold: float, labels: list[str]
) -> CascadeResult:
    """Answer each text with the student at or above ``threshold``, else with the teacher (or ``defer``)."""
    deferred = list(dict.fromkeys(t for t, (_, c) in zip(texts, predictions, strict=True) if c < threshold))
    teacher = ask_teacher_for(target, deferred, set(labels)) if deferred else None
    answers = []
    for text, (label, confidence) in zip(texts, predictions, strict=True):
        if confidence >= threshold:
            answers.append(Answer(text, label, confidence, STUDENT, label))
        elif teacher is not None and text in teacher.labels:
            answers.append(Answer(text, teacher.labels[text], confidence, TEACHER, label))
        else:
            answers.append(Answer(text, DEFER, confidence, STUDENT, label))
    return CascadeResult(answers, teacher)


def ask_teacher_for(target: CascadeTarget, texts: list[str], allowed: set[str]) -> TeacherAnswers:
    """Label ``texts`` through the run's gateway (cache, journal, budget) while holding the run's lock."""
    from agent.run_lock import run_lock
    from agent.runtime import open_teacher, run_requests
    from agent.store import RunStore

    spec = target.spec
    requests = cascade_requests(spec, texts)
    with run_lock(target.run_dir):
        store = RunStore(target.run_dir / STORE_FILE)
        try:
            with open_teacher(spec, store, response_cache_path(spec, target.run_dir)) as teacher:
                results = run_requests(teacher, requests, AssignedLabels)
        finally:
            store.close()
    return read_answers(results, chunks(texts, spec.loop.batch_per_call), allowed)


def cascade_requests(spec: RunSpec, texts: list[str]) -> list[TeacherRequest]:
    """The label calls for ``texts``; journaled outside any round (``round`` None), as they belong to none."""
    from agent.classify.context import task_info
    from generators.generation import label_requests

    requests = label_requests(task_info(spec), texts, per_call=spec.loop.batch_per_call, round=0)
    return [dataclasses.replace(r, round=None) for r in requests]


def chunks(texts: list[str], size: int) -> list[list[str]]:
    return [texts[i : i + size] for i in range(0, len(texts), size)]


def read_answers(
    results: list[Completion[AssignedLabels] | BaseException],
    texts_per_call: list[list[str]],
    allowed: set[str],
) -> TeacherAnswers:
    """The teacher's label per text; what it left unanswered, and why, one line per kind of problem."""
    labels: dict[str, str] = {}
    problems: dict[str, None] = {}  # ordered set
    calls = hits = 0
    cost = 0.0
    for chunk, result in zip(texts_per_call, results, strict=True):
        if isinstance(result, BudgetExceeded):
            problems[f"the budget refused a call ({result})"] = None
            continue
        if isinstance(result, BaseException):
            problems[f"a teacher call failed ({result})"] = None
            continue
        calls, hits, cost = calls + 1, hits + result.cache_hit, cost + result.cost_usd
        for item in result.parsed.labels:
            if not 0 <= item.index < len(chunk):
                continue
            if item.label in allowed:
                labels[chunk[item.index]] = item.label
            else:
                problems["the teacher answered a label the model does not know"] = None
    unanswered = sum(len(chunk) for chunk in texts_per_call) - len(labels)
    if unanswered and not problems:
        problems["the teacher's reply left some texts out"] = None
    return TeacherAnswers(labels, calls, hits, cost, unanswered, list(problems))
