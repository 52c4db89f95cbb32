"""One run lifecycle for both task kinds (a classifier, or strategies for a dialogue student):

    check spec, data files, credentials, teacher → create the run dir → lock it → the kind's loop → release

Nothing is written until every input checks out, so a bad input leaves nothing behind. The task kind
is decided once (``_kind``). ``start`` and ``resume`` differ only in where the spec comes from: the
user's file, or the resolved copy stored in the run directory.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from agent import console
from agent.data_files import check_data_files
from agent.errors import InputError, RunFailure
from agent.interrupts import RunInterrupted
from agent.plan import plan_run
from agent.preflight import check_teacher
from agent.run_kind import SPEC_FILE, STORE_FILE, RunKind, RunOptions, RunOutcome, load_run_spec
from agent.run_lock import LOCK_FILE, run_lock
from agent.runtime import package_versions
from agent.spec import RUN_CACHE_FILE, DialogueRunSpec, RunSpec, check_credentials, load_any_spec
from agent.store import RunStatus, RunStore

AnySpec = RunSpec | DialogueRunSpec


def _kind(spec: AnySpec) -> RunKind:
    # Imported here: each kind pulls in its own steps, and a CLI command needs only one of them.
    if isinstance(spec, DialogueRunSpec):
        from agent.dialogue.run import DialogueRun

        return DialogueRun()
    from agent.run import ClassifierRun

    return ClassifierRun()


def check_inputs(spec: AnySpec) -> None:
    """Everything a run needs from the user, checked before anything is written or paid for."""
    check_credentials(spec)
    for warning in check_data_files(spec):
        console.warn(warning)
    check_teacher(spec)


def start(
    spec_path: Path, run_dir: Path | None = None, *, fresh: bool = False, options: RunOptions | None = None
) -> RunOutcome:
    """A new run of the spec at ``spec_path`` in ``run_dir`` (default ``runs/<name>-<time>-<id>``)."""
    spec = load_any_spec(spec_path)
    check_inputs(spec)
    with _new_run_dir(spec, run_dir or _default_run_dir(spec.name), fresh=fresh) as directory:
        return _execute(spec, directory, options or RunOptions())


def resume(run_dir: Path, options: RunOptions | None = None) -> RunOutcome:
    """Continue the run in ``run_dir`` from its last durable step (no paid call is repeated)."""
    spec = load_run_spec(run_dir)
    check_inputs(spec)
    with run_lock(run_dir):
        return _execute(spec, run_dir, options or RunOptions())


def record_new_run(spec: AnySpec, run_dir: Path) -> None:
    """The resolved spec, the store with its run row, and the plan (`distill status` shows it beside the spend)."""
    data = spec.model_dump(mode="json")
    (run_dir / SPEC_FILE).write_text(json.dumps(data, indent=2), encoding="utf-8")
    store = RunStore(run_dir / STORE_FILE)
    try:
        store.create_run(run_dir.name, spec.name, data, package_versions(), _git_sha())
        store.save_plan(plan_run(spec))
    finally:
        store.close()


def _execute(spec: AnySpec, run_dir: Path, options: RunOptions) -> RunOutcome:
    store = RunStore(run_dir / STORE_FILE)
    try:
        store.set_run_status(RunStatus.RUNNING)
        with options.stop.installed():
            outcome = _kind(spec).execute(spec, run_dir, store, options)
    except (RunInterrupted, KeyboardInterrupt):
        store.set_run_status(RunStatus.INTERRUPTED)
        raise RunInterrupted(run_dir) from None
    except RunFailure as exc:  # the cause is outside the run (a key, the disk): fix it, then resume
        store.set_run_status(RunStatus.FAILED, "; ".join(exc.problems)[:500])
        *first, last = exc.problems
        raise RunFailure([*first, f"{last} — once fixed, continue with: distill resume {run_dir}"]) from None
    except BaseException as exc:
        store.set_run_status(RunStatus.FAILED, f"{type(exc).__name__}: {exc}"[:500])
        raise
    finally:
        store.close()
    return outcome


def _default_run_dir(name: str) -> Path:
    return Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


@contextmanager
def _new_run_dir(spec: AnySpec, run_dir: Path, *, fresh: bool) -> Iterator[Path]:
    """``run_dir``, locked, holding the new run's record; refuses a directory with a run in it unless ``fresh``.

    The lock is taken before anything in the directory is looked at or removed, so a second `run` or
    `resume` on the same directory is refused rather than racing this one. A directory this call made
    is removed again if the run cannot even be recorded (a full disk, say).
    """
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    with run_lock(run_dir):
        try:
            _empty_for_new_run(run_dir, fresh=fresh)
            record_new_run(spec, run_dir)
        except BaseException:
            if created:
                shutil.rmtree(run_dir, ignore_errors=True)
            raise
        yield run_dir


# What `--fresh` keeps: the lock, and the teacher's paid answers (the cache and its WAL, which holds
# committed answers until a checkpoint), so starting over replays them instead of paying again.
_KEPT_BY_FRESH = (LOCK_FILE, RUN_CACHE_FILE, f"{RUN_CACHE_FILE}-wal", f"{RUN_CACHE_FILE}-shm")


def _empty_for_new_run(run_dir: Path, *, fresh: bool) -> None:
    """Refuse a directory that holds anything but the lock; with ``fresh``, empty it but keep the cache."""
    if any(p.name != LOCK_FILE for p in run_dir.iterdir()) and not fresh:
        raise InputError(
            f"--run-dir: {run_dir} already holds a run — use `distill resume {run_dir}`, another --run-dir, "
            "or --fresh to start over (it keeps the teacher's paid answers)"
        )
    for path in (p for p in run_dir.iterdir() if p.name not in _KEPT_BY_FRESH):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


def _git_sha() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None
