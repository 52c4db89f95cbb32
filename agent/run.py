"""Starting and resuming runs: the run directory, the stored spec, and the live context."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np

from agent.classify.loop import LoopResult, StepHook, run_loop
from agent.classify.context import RunContext
from agent.plan import plan_run
from agent.runtime import open_teacher, package_versions
from agent.spec import RunSpec, SpecError, check_credentials, load_spec, parse_spec
from agent.store import RunStore

SPEC_FILE = "spec.json"


def _git_sha() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


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


def prepare_run_dir(name: str, run_dir: Path | None, fresh: bool) -> Path:
    """``run_dir`` or ``runs/<name>-<time>-<id>``, empty; refuses to overwrite a run unless ``fresh``."""
    if run_dir is None:
        run_dir = Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    if run_dir.exists() and any(run_dir.iterdir()):
        if not fresh:
            raise SpecError(
                [
                    f"--run-dir: {run_dir} already holds a run — use `distill resume {run_dir}`, "
                    "another --run-dir, or --fresh to start over"
                ]
            )
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def create_run_dir(spec: RunSpec, run_dir: Path | None, *, fresh: bool = False) -> Path:
    """Make ``runs/<run_id>/`` (or ``run_dir``) and record the resolved spec there."""
    run_dir = prepare_run_dir(spec.name, run_dir, fresh)
    spec_data = spec.model_dump(mode="json")
    (run_dir / SPEC_FILE).write_text(json.dumps(spec_data, indent=2))
    store = RunStore(run_dir / "run.sqlite")
    store.create_run(run_dir.name, spec.name, spec_data, package_versions(), _git_sha())
    store.save_plan(plan_run(spec))  # `distill status` shows it beside what was spent
    store.close()
    return run_dir


def load_run_spec(run_dir: Path) -> RunSpec:
    path = run_dir / SPEC_FILE
    if not path.is_file():
        raise SpecError(
            [f"RUN_DIR: {run_dir} is not a distill run (no {SPEC_FILE}) — pass a folder made by `distill run`"]
        )
    return parse_spec(json.loads(path.read_text()), run_dir)


def execute(
    run_dir: Path, *, on_step: StepHook | None = None, embed: Callable[[list[str]], np.ndarray] | None = None
) -> LoopResult:
    """Run or resume the loop in ``run_dir`` (its stored spec decides everything)."""
    spec = load_run_spec(run_dir)
    check_credentials(spec)
    store = RunStore(run_dir / "run.sqlite")
    try:
        store.set_run_status("running")
        embed = embed or memoised_embedder(spec.student.base_model)
        with open_teacher(spec, store, run_dir / "cache.sqlite") as teacher:
            ctx = RunContext(
                spec=spec, run_dir=run_dir, store=store, teacher=teacher, embed=embed, method=spec.loop.method
            )
            return run_loop(ctx, on_step)
    except BaseException:
        store.set_run_status("interrupted")
        raise
    finally:
        store.close()


def start(
    spec_path: Path, run_dir: Path | None = None, *, fresh: bool = False, on_step: StepHook | None = None
) -> tuple[Path, LoopResult]:
    spec = load_spec(spec_path)
    check_credentials(spec)
    directory = create_run_dir(spec, run_dir, fresh=fresh)
    return directory, execute(directory, on_step=on_step)
