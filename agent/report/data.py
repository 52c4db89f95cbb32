"""What the run report shows, gathered once from the run store and the best round's test evaluation.

Read-only: the store is asked named questions (no lock is taken), so a report can be written while the
run is still going; rounds not yet evaluated show as such. Nothing secret is read: of the teacher only
the provider and model name are kept (never ``base_url`` or the key's variable).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.coverage import Coverage, read_coverage
from agent.errors import InputError
from agent.round_policy import best_round
from agent.store import CallSummary, ExampleProvenance, LabelAuditRow, PromptCalls, RunStore, Strategy
from trainers.deferral import STUDENT_FILE
from trainers.evaluate import ECE_BINS

SPLITS = ("feedback", "heldback", "test")
# Out-of-scope metrics (``task.out_of_scope``), stored per split with no class; shown when a run has any.
SCOPE_METRICS = ("in_scope_accuracy", "oos_recall", "oos_precision")


@dataclass(frozen=True)
class RoundReport:
    idx: int
    status: str
    decision: str | None
    reasons: list[str]
    quotas: dict[str, int] | None
    macro_f1: dict[str, float | None]  # per split
    cost_usd: float  # teacher USD journaled in this round
    cumulative_usd: float  # … in this round and every round before
    examples_new: int
    examples_kept: int


@dataclass(frozen=True)
class Confusion:
    """The best round's confusion matrix on test: rows gold, columns predicted, in ``labels`` order."""

    labels: list[str]
    matrix: list[list[int]]
    top: list[tuple[str, str, int]]  # off-diagonal (gold, predicted, count), most frequent first
    n: int


@dataclass(frozen=True)
class CalibrationBin:
    low: float
    high: float
    count: int
    accuracy: float | None
    confidence: float | None


@dataclass(frozen=True)
class Calibration:
    bins: list[CalibrationBin]
    ece: float  # after temperature scaling: what `distill predict` answers with
    n: int
    ece_uncalibrated: float | None = None  # the plain softmax's, for comparison (older runs: unknown)
    temperature: float | None = None


@dataclass(frozen=True)
class Deferral:
    """The exported model's deferral threshold and its coverage–accuracy–cost curve (``agent.coverage``)."""

    coverage: Coverage
    reason: str
    heldback: dict[str, float]  # coverage and answered accuracy at the threshold, on held-back
    curve_test: list[dict[str, float]]  # the same curve on test, reported only
    cascade_usd: float  # teacher calls journaled outside any round: `distill predict --cascade`


@dataclass(frozen=True)
class ScopeScores:
    """Out-of-scope metrics of one round and split (any of them may be missing)."""

    round: int
    split: str
    values: dict[str, float | None]


@dataclass(frozen=True)
class AuditedExample:
    audit: LabelAuditRow
    text: str


@dataclass(frozen=True)
class ReportData:
    run_id: str
    name: str
    status: str
    stop_reason: str | None
    task_description: str
    labels: list[str]
    teacher: dict[str, str]  # provider, model: nothing else
    student: dict[str, Any]
    budget: dict[str, Any]
    spend: CallSummary
    rounds: list[RoundReport]
    best_round: int | None
    per_class_split: str | None  # the split the per-class F1 heatmap shows
    per_class_f1: dict[int, dict[str, float]]
    confusion: Confusion | None
    calibration: Calibration | None
    examples: list[ExampleProvenance]
    guidelines: list[Strategy]
    calls: list[PromptCalls]
    deferral: Deferral | None = None
    scope: list[ScopeScores] = field(default_factory=list)
    audits: list[AuditedExample] = field(default_factory=list)


def gather(run_dir: Path) -> ReportData:
    """Everything the report shows; an input error for a folder that is not a classifier run."""
    if not (run_dir / "run.sqlite").is_file():
        raise InputError(f"RUN_DIR: {run_dir} holds no run.sqlite — pass a folder made by `distill run`")
    store = RunStore(run_dir / "run.sqlite")
    try:
        return _gather(run_dir, store)
    finally:
        store.close()


def _gather(run_dir: Path, store: RunStore) -> ReportData:
    info = store.run_info()
    if info is None:
        raise InputError(f"RUN_DIR: {run_dir} has no run stored yet — wait until `distill run` has started it")
    spec = info.spec
    if spec.get("task", {}).get("kind") == "dialogue":
        raise InputError(
            "distill report: not supported for dialogue runs yet — use `distill status RUN_DIR` and "
            "`distill strategies export RUN_DIR --format html`"
        )
    rounds = _rounds(store)
    best = _best(rounds)
    split = _per_class_split(rounds)
    best_dir = _model_dir(run_dir, best)
    test = _load_eval(best_dir / "eval_test.json") if best_dir is not None else None
    return ReportData(
        run_id=info.id,
        name=info.name,
        status=str(info.status),
        stop_reason=info.stop_reason,
        task_description=str(spec.get("task", {}).get("description", "")),
        labels=[str(label["name"]) for label in spec.get("task", {}).get("labels", [])],
        teacher={k: str(spec.get("teacher", {}).get(k, "")) for k in ("provider", "model")},
        student=dict(spec.get("student", {})),
        budget={k: v for k, v in dict(spec.get("budget", {})).items() if v is not None},
        spend=store.call_summary(),
        rounds=rounds,
        best_round=best,
        per_class_split=split,
        per_class_f1=store.class_metric_by_round(split, "f1") if split else {},
        confusion=_confusion(test) if test else None,
        calibration=_calibration(test) if test else None,
        examples=store.example_provenance("train"),
        guidelines=store.current_strategies(),
        calls=store.call_breakdown(),
        deferral=_deferral(run_dir / "model", store.cost_by_round().get(None, 0.0)),
        scope=_scope(store, rounds),
        audits=_audits(store),
    )


def _deferral(model_dir: Path, cascade_usd: float) -> Deferral | None:
    coverage = read_coverage(model_dir)
    if coverage is None:
        return None
    entry = json.loads((model_dir / STUDENT_FILE).read_text(encoding="utf-8"))["deferral"]
    return Deferral(
        coverage,
        str(entry.get("reason", "")),
        dict(entry.get("heldback", {})),
        list(entry.get("curve_test", [])),
        cascade_usd,
    )


def _scope(store: RunStore, rounds: list[RoundReport]) -> list[ScopeScores]:
    out = []
    for r in rounds:
        for split in SPLITS:
            values = {m: store.metric(r.idx, split, m) for m in SCOPE_METRICS}
            if any(v is not None for v in values.values()):
                out.append(ScopeScores(r.idx, split, values))
    return out


def _audits(store: RunStore) -> list[AuditedExample]:
    audits = store.label_audits()
    if not audits:
        return []
    texts = {e.id: e.text for e in store.example_provenance("train")}
    return [AuditedExample(a, texts.get(a.example_id, "")) for a in audits]


def _rounds(store: RunStore) -> list[RoundReport]:
    cost = store.cost_by_round()
    cumulative = 0.0  # calls outside any round are the cascade's (`predict --cascade`), after the run: not here
    out = []
    for row in store.round_rows():
        cumulative += cost.get(row.idx, 0.0)
        counts = store.example_count("train", row.idx)
        out.append(
            RoundReport(
                idx=row.idx,
                status=str(row.status),
                decision=row.decision,
                reasons=row.reasons,
                quotas=row.quotas,
                macro_f1={split: store.metric(row.idx, split, "macro_f1") for split in SPLITS},
                cost_usd=cost.get(row.idx, 0.0),
                cumulative_usd=cumulative,
                examples_new=counts.total,
                examples_kept=counts.kept,
            )
        )
    return out


def _best(rounds: list[RoundReport]) -> int | None:
    """The round the run exports: best held-back macro-F1 over the evaluated rounds (the loop's own rule)."""
    evaluated = [r for r in rounds if r.macro_f1["heldback"] is not None]
    if not evaluated:
        return None
    return evaluated[best_round([r.macro_f1["heldback"] or 0.0 for r in evaluated])].idx


def _per_class_split(rounds: list[RoundReport]) -> str | None:
    """Test when the run has one (reported, never decided on), else the held-back part."""
    for split in ("test", "heldback"):
        if any(r.macro_f1[split] is not None for r in rounds):
            return split
    return None


def _model_dir(run_dir: Path, best: int | None) -> Path | None:
    return None if best is None else run_dir / "models" / f"round-{best:02d}"


def _load_eval(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    return dict(json.loads(path.read_text(encoding="utf-8")))


def _confusion(evaluation: dict[str, Any]) -> Confusion:
    labels = list(evaluation["per_class"])
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for item in evaluation["items"]:
        matrix[index[item["gold"]]][index[item["predicted"]]] += 1
    top = [(str(g), str(p), int(c)) for g, p, c in evaluation["confusions"]]
    return Confusion(labels, matrix, top, int(evaluation["n"]))


def _calibration(evaluation: dict[str, Any], bins: int = ECE_BINS) -> Calibration:
    """Equal-width confidence bins, as the ECE in trainers.evaluate counts them: (b/bins, (b+1)/bins]."""
    members: list[list[dict[str, Any]]] = [[] for _ in range(bins)]
    for item in evaluation["items"]:
        b = min(max(math.ceil(float(item["confidence"]) * bins) - 1, 0), bins - 1)
        members[b].append(item)
    out = []
    for b, items in enumerate(members):
        n = len(items)
        out.append(
            CalibrationBin(
                low=b / bins,
                high=(b + 1) / bins,
                count=n,
                accuracy=sum(bool(i["correct"]) for i in items) / n if n else None,
                confidence=sum(float(i["confidence"]) for i in items) / n if n else None,
            )
        )
    raw, temperature = evaluation.get("ece_uncalibrated"), evaluation.get("temperature")
    return Calibration(
        out,
        float(evaluation["ece"]),
        int(evaluation["n"]),
        None if raw is None else float(raw),
        None if temperature is None else float(temperature),
    )
