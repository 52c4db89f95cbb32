"""The classifier run kind: the lifecycle (``agent.lifecycle``) hands it a locked run dir and an open store."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from agent.classify.context import RunContext
from agent.classify.loop import LoopResult, run_loop
from agent.run_kind import RunOptions, RunOutcome
from agent.runtime import open_teacher
from agent.spec import RUN_CACHE_FILE, RunSpec, response_cache_path
from agent.store import RunStore
from trainers.config import EncoderConfig

CACHE_FILE = RUN_CACHE_FILE  # the default; `teacher.cache` in the spec may name a shared one


def memoised_embedder(base_model: str | None) -> Callable[[list[str]], np.ndarray]:
    """The student's sentence embedder, with a per-process memo: filters re-embed the same texts."""
    from trainers.embeddings import SentenceEmbedder

    embedder = SentenceEmbedder(base_model)
    memo: dict[str, np.ndarray] = {}

    def embed(texts: list[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in memo))
        if missing:
            memo.update(zip(missing, embedder.encode(missing), strict=True))
        if not texts:
            return np.zeros((0, 1), dtype=np.float32)
        return np.stack([memo[t] for t in texts])

    return embed


class ClassifierRun:
    """seed → [generate → filter → train → evaluate → decide] × N → export the best round's model."""

    def execute(self, spec: RunSpec, run_dir: Path, store: RunStore, options: RunOptions) -> RunOutcome:
        # Filters and the audit embed with the encoder student's own body, or the packaged MiniLM.
        encoder_body = spec.student.base_model if isinstance(spec.student, EncoderConfig) else None
        embed = options.embed or memoised_embedder(encoder_body)
        with open_teacher(spec, store, response_cache_path(spec, run_dir)) as teacher:
            options.stop.on_request(teacher.stop_dispatch)
            ctx = RunContext(
                spec=spec,
                run_dir=run_dir,
                store=store,
                teacher=teacher,
                embed=embed,
                method=spec.loop.method,
                stop=options.stop,
                observer=options.observer,
            )
            result = run_loop(ctx)
        return RunOutcome(run_dir, _summary(run_dir, result), result)


def _summary(run_dir: Path, result: LoopResult) -> list[str]:
    card = json.loads((result.model_dir / "distill_student.json").read_text())["card"]
    test_f1 = card["metrics"]["test"]["macro_f1"]
    return [
        f"stopped: {'; '.join(result.stop_reasons)}",
        f"run directory: {run_dir}",
        f"model directory: {result.model_dir}",
        f"best round: {card['best_round']}; test macro-F1: "
        + (f"{test_f1:.3f}" if test_f1 is not None else "n/a (no task.test)"),
    ]
