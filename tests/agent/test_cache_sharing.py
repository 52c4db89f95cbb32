"""Paid answers are reused: runs that share `teacher.cache`, and `--fresh`, send no request twice.

Real runs of the tiny task: the simulator over loopback HTTP (its request counter is the proof that
nothing was sent), the real response cache and the real run store.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.lifecycle import start
from agent.spec import load_spec
from agent.store import RunStore
from tests.run_helpers import run_spec, served_simulator, write_spec


@pytest.fixture
def quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISTILL_TEST_KEY", "k")
    monkeypatch.setenv("DISTILL_QUIET", "1")


def journal(run_dir: Path) -> list[tuple[str, int]]:
    """(request hash, cache hit) of every journaled call, in order."""
    store = RunStore(run_dir / "run.sqlite")
    try:
        return [(r["request_hash"], r["cache_hit"]) for r in store.query("SELECT * FROM teacher_calls ORDER BY id")]
    finally:
        store.close()


def spec_in(folder: Path, tiny_model: str, server: Any, **teacher: Any) -> Path:
    folder.mkdir()
    return write_spec(folder, tiny_model, {**served_simulator(server), **teacher}, max_rounds=1)


def test_two_runs_sharing_a_cache_the_second_sends_nothing(
    tmp_path: Path, tiny_model: str, make_simulator: Any, quiet: None
) -> None:
    server = make_simulator()
    # Two specs in different folders; each names the shared cache relative to its own folder.
    first = spec_in(tmp_path / "a", tiny_model, server, cache="../shared/cache.sqlite")
    second = spec_in(tmp_path / "b", tiny_model, server, cache="../shared/cache.sqlite")
    assert load_spec(second).teacher.cache == tmp_path / "shared" / "cache.sqlite"

    run_spec(first, tmp_path / "run-a")
    sent = server.stats()["requests"]
    paid = journal(tmp_path / "run-a")
    assert sent > 0 and sent == sum(1 for _, hit in paid if not hit)
    assert (tmp_path / "shared" / "cache.sqlite").is_file() and not (tmp_path / "run-a" / "cache.sqlite").exists()

    run_dir, result = run_spec(second, tmp_path / "run-b")
    assert server.stats()["requests"] == sent  # not one HTTP request
    replayed = journal(run_dir)
    assert replayed and all(hit == 1 for _, hit in replayed)
    # The same requests, answered from the cache (concurrent calls are journaled in completion order).
    assert sorted(h for h, _ in replayed) == sorted(h for h, _ in paid)
    store = RunStore(run_dir / "run.sqlite")
    assert store.spent() == (0.0, 0)
    store.close()
    assert result.model_dir.is_dir()


def test_fresh_keeps_the_paid_answers_and_the_rerun_pays_nothing(
    tmp_path: Path, tiny_model: str, make_simulator: Any, quiet: None
) -> None:
    server = make_simulator()
    spec = spec_in(tmp_path / "spec", tiny_model, server)
    run_dir = tmp_path / "run"
    run_spec(spec, run_dir)
    sent = server.stats()["requests"]
    first = journal(run_dir)
    assert sent > 0 and (run_dir / "cache.sqlite").is_file()

    outcome = start(spec, run_dir, fresh=True)
    assert server.stats()["requests"] == sent
    again = journal(run_dir)
    assert len(again) == len(first) and all(hit == 1 for _, hit in again)  # a new journal: only cache hits
    assert outcome.result.model_dir.is_dir() and (run_dir / "cache.sqlite").is_file()
