"""Running a dialogue (strategy-teaching) spec, and the production path used by `distill chat`."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from agent.data_files import read_policy
from agent.dialogue.fine_tune import CONDITION, SFT_DIR, evaluate_fine_tuned, fine_tune
from agent.dialogue.student import StudentClient, open_student
from agent.dialogue.teach import TeachContext, evaluate_heldout, teach_loop
from agent.errors import InputError
from agent.run import memoised_embedder
from agent.run_kind import RunOptions, RunOutcome, load_run_spec
from agent.runtime import open_teacher
from agent.spec import DialogueRunSpec, response_cache_path
from agent.store import RunStatus, RunStore
from agent.strategies import DEPLOY_STATUSES, Retriever, StrategyLibrary

SUMMARY_FILE = "teach_summary.json"


def mean_ci(scores: list[float]) -> dict[str, float]:
    """Mean with a normal-approximation 95% interval (n is reported beside it)."""
    n = len(scores)
    if n == 0:
        return {"n": 0, "mean": float("nan"), "lo": float("nan"), "hi": float("nan")}
    mean = float(np.mean(scores))
    half = 1.96 * float(np.std(scores, ddof=1)) / math.sqrt(n) if n > 1 else 0.0
    return {"n": n, "mean": round(mean, 4), "lo": round(mean - half, 4), "hi": round(mean + half, 4)}


def win_rate(a: list[float], b: list[float]) -> dict[str, Any]:
    """Pairwise a vs b per scenario: wins, ties, losses, and the Wilson 95% interval of the win share
    among decided pairs."""
    wins = sum(x > y for x, y in zip(a, b, strict=True))
    losses = sum(x < y for x, y in zip(a, b, strict=True))
    ties = len(a) - wins - losses
    decided = wins + losses
    if decided == 0:
        return {"wins": wins, "ties": ties, "losses": losses, "win_rate": None, "lo": None, "hi": None}
    p, z = wins / decided, 1.96
    centre = (p + z * z / (2 * decided)) / (1 + z * z / decided)
    half = z * math.sqrt(p * (1 - p) / decided + z * z / (4 * decided * decided)) / (1 + z * z / decided)
    return {
        "wins": wins,
        "ties": ties,
        "losses": losses,
        "win_rate": round(p, 4),
        "lo": round(centre - half, 4),
        "hi": round(centre + half, 4),
    }


def summarise(heldout: dict[str, Any]) -> dict[str, Any]:
    alone, learning, approved, teacher = (heldout[k] for k in ("alone", "learning", "approved", "teacher"))
    summary = {
        "n_scenarios": heldout["n"],
        "score_student": mean_ci(alone),
        "score_student_with_strategies": mean_ci(learning),
        "score_student_with_approved": mean_ci(approved),
        "score_teacher": mean_ci(teacher),
        "with_vs_alone": win_rate(learning, alone),
        "student_vs_teacher": win_rate(learning, teacher),
    }
    if "fine_tune" in heldout:
        summary["fine_tune"] = heldout["fine_tune"]
    if heldout.get("sft") is not None:
        summary |= {
            "score_student_fine_tuned": mean_ci(heldout["sft"]),
            "fine_tuned_vs_alone": win_rate(heldout["sft"], alone),
        }
    return summary


def load_dialogue_spec(run_dir: Path) -> DialogueRunSpec:
    spec = load_run_spec(run_dir)
    if not isinstance(spec, DialogueRunSpec):
        raise InputError(f"RUN_DIR: {run_dir} is a classification run; strategies belong to dialogue runs")
    return spec


class DialogueRun:
    """Strategy teaching: learn rounds, then the held-out comparison; writes teach_summary.json."""

    def execute(self, spec: DialogueRunSpec, run_dir: Path, store: RunStore, options: RunOptions) -> RunOutcome:
        embed = options.embed or memoised_embedder(None)
        with (
            open_teacher(spec, store, response_cache_path(spec, run_dir)) as teacher,
            _student(spec, options.student) as client,
        ):
            options.stop.on_request(teacher.stop_dispatch)
            ctx = TeachContext(spec, store, teacher, client, embed, read_policy(spec.task.policy, "task.policy"))
            result = teach_loop(ctx)
            if spec.loop.fine_tune != "none":
                result["heldout"] |= _fine_tuned_scores(ctx, spec, store, run_dir)
        library = StrategyLibrary(store)
        summary = {
            **summarise(result["heldout"]),
            "rounds": result["rounds"],
            **{
                f"n_strategies_{status}": len(library.current([status]))
                for status in ("approved", "proposed", "rejected")
            },
            "teacher": store.call_summary(),
        }
        (run_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
        store.set_run_status(RunStatus.FINISHED, "strategy teaching finished")
        lines = [*summary_lines(summary), f"run directory: {run_dir}", f"audit: distill strategies list {run_dir}"]
        return RunOutcome(run_dir, lines, summary)


def _fine_tuned_scores(ctx: TeachContext, spec: DialogueRunSpec, store: RunStore, run_dir: Path) -> dict[str, Any]:
    """Fine-tune the student on the learning rounds' answers; judge it on the same held-out scenarios."""
    folder = fine_tune(spec, store, run_dir / SFT_DIR, spec.loop.fine_tune)
    if folder is None:
        return {"fine_tune": spec.loop.fine_tune, "sft": None}
    scores = evaluate_fine_tuned(spec, folder, lambda client: evaluate_heldout(ctx, set(), CONDITION, student=client))
    return {"fine_tune": spec.loop.fine_tune, "sft": scores, "sft_model": str(folder)}


class _Given:
    """A context manager around an already-open student client (tests, benchmarks)."""

    def __init__(self, client: StudentClient) -> None:
        self.client = client

    def __enter__(self) -> StudentClient:
        return self.client

    def __exit__(self, *exc: object) -> None:
        return None


def _student(spec: DialogueRunSpec, given: StudentClient | None) -> Any:
    return _Given(given) if given is not None else open_student(spec.student)


def chat_answer(
    run_dir: Path, message: str, student: StudentClient, embed: Callable[[list[str]], np.ndarray]
) -> tuple[str, list[tuple[str, str, float]]]:
    """The production path: retrieve *approved* strategies only, prompt the student, answer."""
    spec = load_dialogue_spec(run_dir)
    store = RunStore(run_dir / "run.sqlite")
    try:
        hits = Retriever(store, StrategyLibrary(store), embed).retrieve(message, DEPLOY_STATUSES, spec.loop.top_k)
    finally:
        store.close()
    reply = student.answer(message, [s.text for s, _ in hits])
    return reply, [(s.id, s.text, score) for s, score in hits]


def summary_lines(summary: dict[str, Any]) -> list[str]:
    def fmt(m: dict[str, float]) -> str:
        return f"{m['mean']:.3f} [{m['lo']:.3f}, {m['hi']:.3f}] (n={m['n']})"

    w = summary["with_vs_alone"]
    return [
        f"held-out rubric score, student alone:           {fmt(summary['score_student'])}",
        f"held-out rubric score, student + strategies:    {fmt(summary['score_student_with_strategies'])}",
        f"held-out rubric score, student + approved only: {fmt(summary['score_student_with_approved'])}",
        f"held-out rubric score, teacher:                 {fmt(summary['score_teacher'])}",
        f"with strategies vs alone: {w['wins']} wins, {w['ties']} ties, {w['losses']} losses",
    ] + (
        [
            f"held-out rubric score, fine-tuned ({summary['fine_tune']}): {fmt(summary['score_student_fine_tuned'])}",
        ]
        if "score_student_fine_tuned" in summary
        else []
    )
