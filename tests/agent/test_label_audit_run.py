"""The label audit inside a real run: the simulator's label noise is planted, the audit finds it.

Real simulator over loopback HTTP (``label_noise`` writes texts of the most confusable class under the
requested label), real SQLite, a tiny student. The audit's sentence vectors come from a bag-of-words
embedder: the tiny random encoder's vectors carry no meaning, and the audit judges labels by meaning.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent.lifecycle import resume
from agent.run_kind import RunOptions
from agent.store import AUDIT_FILTER, AuditOutcome, LabelAuditRow, RoundStatus, RunStore
from simulator import SimulatorConfig, SimulatorServer
from tests.conftest import TINY_POOL
from tests.run_helpers import SECRET, run_spec, served_simulator, write_spec

POOL_TRUTH = {
    " ".join(row["text"].lower().split()): row["label"] for row in map(json.loads, TINY_POOL.read_text().splitlines())
}
NOISE: dict[str, Any] = {"label_noise": 0.15, "seed": 3}


def bag_of_words(texts: list[str]) -> np.ndarray:
    out = np.zeros((len(texts), 512), dtype=np.float32)
    for i, text in enumerate(texts):
        for word in text.lower().split():
            out[i, zlib.crc32(word.strip("?.!,'").encode()) % 512] += 1
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def truth(text: str) -> str | None:
    """The label of the text in the simulator's pool: what the teacher should have said."""
    return POOL_TRUTH.get(" ".join(text.lower().split()))


def _noisy_run(folder: Path, tiny_model: str, server: Any, teacher: dict[str, Any] | None = None, **loop: Any) -> Path:
    spec = write_spec(
        folder,
        tiny_model,
        served_simulator(server) | (teacher or {}),
        max_rounds=1,
        seed_per_label=24,
        examples_per_round=36,
        **loop,
    )
    run_dir, _ = run_spec(spec, folder / "run", embed=bag_of_words)
    return run_dir


@pytest.fixture(scope="module")
def noisy_run(tmp_path_factory: pytest.TempPathFactory, tiny_model: str) -> Iterator[Path]:
    """A finished two-round run (audit on, the default) against a teacher with 15% label noise."""
    folder = tmp_path_factory.mktemp("audit")
    server = SimulatorServer(SimulatorConfig(api_key=SECRET, **NOISE), TINY_POOL).start()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DISTILL_TEST_KEY", SECRET)
        patch.setenv("DISTILL_QUIET", "1")
        run_dir = _noisy_run(folder, tiny_model, server)
    server.stop()
    yield run_dir


@pytest.fixture
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISTILL_TEST_KEY", SECRET)
    monkeypatch.setenv("DISTILL_QUIET", "1")


def _audits_and_examples(run_dir: Path) -> tuple[list[LabelAuditRow], dict[int, Any]]:
    store = RunStore(run_dir / "run.sqlite")
    try:
        return store.label_audits(), {e.id: e for e in store.examples("train")}
    finally:
        store.close()


def test_planted_label_errors_are_caught_and_fixed(noisy_run: Path) -> None:
    audits, by_id = _audits_and_examples(noisy_run)
    given = {e.id: e.label for e in by_id.values()} | {a.example_id: a.given_label for a in audits}
    corrupted = {i for i, e in by_id.items() if truth(e.text) not in (None, given[i])}
    acted = {a.example_id for a in audits if a.outcome != AuditOutcome.KEPT}
    assert len(corrupted) >= 5, "the simulator's label noise must plant errors for this test to mean anything"
    assert len(acted & corrupted) / len(corrupted) >= 0.5  # recall of the audit, at 15% noise
    assert len(acted & corrupted) / len(acted) >= 0.8  # precision: the second opinion guards clean labels
    for a in audits:
        example = by_id[a.example_id]
        assert a.reason and a.suggested_label != a.given_label and a.teacher_call_id is not None
        if a.outcome == AuditOutcome.RELABELLED:
            assert example.label == a.second_opinion == a.suggested_label and example.kept
        elif a.outcome == AuditOutcome.DROPPED:
            assert example.kept is False and example.label == a.given_label
    assert len({a.example_id for a in audits}) == len(audits), "an example was asked about twice"
    assert all(by_id[a.example_id].origin != "real" for a in audits), "the user's own labels are never audited"
    store = RunStore(noisy_run / "run.sqlite")
    assert all(store.round_reached(r, RoundStatus.AUDITED) for r in (0, 1))
    dropped = sum(a.outcome == AuditOutcome.DROPPED for a in audits)
    assert sum(store.drop_counts(r).get(AUDIT_FILTER, 0) for r in (0, 1)) == dropped
    models = {r["prompt_id"]: r["model"] for r in store.query("SELECT prompt_id, model FROM teacher_calls")}
    assert models["audit"] == "sim-teacher"
    store.close()


def distill(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DISTILL_QUIET": "1", "COLUMNS": "250"}
    return subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True, text=True, timeout=300, env=env)


def test_status_shows_the_outcomes_per_round_and_each_change_with_its_reason(noisy_run: Path) -> None:
    audits, by_id = _audits_and_examples(noisy_run)
    proc = distill("status", str(noisy_run), "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)["label_audit"]
    totals = {o: sum(a.outcome == o for a in audits) for o in ("kept", "relabelled", "dropped")}
    assert data["totals"] == totals and totals["relabelled"] > 0
    rounds = json.loads(proc.stdout)["rounds"]
    assert [r["label_audit"] for r in rounds] == [
        {o: sum(a.outcome == o and a.round == r for a in audits) for o in ("kept", "relabelled", "dropped")}
        for r in (0, 1)
    ]
    first = next(a for a in audits if a.outcome == AuditOutcome.RELABELLED)
    assert {
        "example_id": first.example_id,
        "text": by_id[first.example_id].text,
        "given_label": first.given_label,
        "second_opinion": first.second_opinion,
        "outcome": "relabelled",
        "reason": first.reason,
    }.items() <= next(e for e in data["examples"] if e["example_id"] == first.example_id).items()
    shown = distill("status", str(noisy_run))
    assert proc.returncode == 0, shown.stderr
    assert f"{len(audits)} flagged labels got a second opinion" in shown.stdout
    assert first.reason in shown.stdout


def test_the_data_export_carries_each_outcome_and_the_original_label(noisy_run: Path, tmp_path: Path) -> None:
    from datasets import load_from_disk

    audits, _ = _audits_and_examples(noisy_run)
    proc = distill("export", str(noisy_run), "--data", str(tmp_path / "data"))
    assert proc.returncode == 0, proc.stderr
    records = {r["id"]: r for r in map(json.loads, (tmp_path / "data" / "examples.jsonl").read_text().splitlines())}
    for a in audits:
        r = records[a.example_id]
        assert (r["audit_outcome"], r["original_label"], r["audit_reason"]) == (str(a.outcome), a.given_label, a.reason)
        assert r["split"] == ("dropped" if a.outcome == AuditOutcome.DROPPED else "train")
        assert (AUDIT_FILTER in r["dropped_by"]) == (a.outcome == AuditOutcome.DROPPED)
    unaudited = set(records) - {a.example_id for a in audits}
    assert all(records[i]["audit_outcome"] is None for i in unaudited)
    card = (tmp_path / "data" / "README.md").read_text()
    relabelled = sum(a.outcome == AuditOutcome.RELABELLED for a in audits)
    assert "## Label audit" in card and f"| relabelled | {relabelled} |" in card
    assert distill("export", str(noisy_run), "--data", str(tmp_path / "hf"), "--format", "hf").returncode == 0
    train = load_from_disk(str(tmp_path / "hf"))["train"]
    assert sorted(o for o in train["audit_outcome"] if o) == sorted(
        str(a.outcome) for a in audits if a.outcome != AuditOutcome.DROPPED
    )


@pytest.mark.usefixtures("_env")
def test_audit_off_sends_nothing_and_changes_nothing(tmp_path: Path, tiny_model: str, make_simulator: Any) -> None:
    run_dir = _noisy_run(tmp_path, tiny_model, make_simulator(api_key=SECRET, **NOISE), label_audit=False)
    store = RunStore(run_dir / "run.sqlite")
    assert store.label_audits() == [] and store.round_reached(1, RoundStatus.AUDITED)
    assert "audit" not in {r["prompt_id"] for r in store.query("SELECT prompt_id FROM teacher_calls")}
    store.close()


class Killed(RuntimeError):
    """The process 'dies' after the audit's teacher calls, before its outcomes are written."""


@pytest.mark.usefixtures("_env")
def test_an_audit_killed_before_its_write_pays_nothing_twice_on_resume_and_audit_model_answers(
    tmp_path: Path, tiny_model: str, make_simulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = RunStore.record_label_audits

    def die_in_round_1(self: RunStore, round: int, audits: list[Any]) -> None:
        if round == 1:
            raise Killed("killed before the audit of round 1 was written")
        record(self, round, audits)

    monkeypatch.setattr(RunStore, "record_label_audits", die_in_round_1)
    with pytest.raises(Killed):
        _noisy_run(tmp_path, tiny_model, make_simulator(api_key=SECRET, **NOISE), {"audit_model": "sim-reviewer"})
    monkeypatch.setattr(RunStore, "record_label_audits", record)
    store = RunStore(tmp_path / "run" / "run.sqlite")
    assert store.round_status(1) == RoundStatus.FILTERED and not store.label_audits(1)
    paid_before = len(store.query("SELECT id FROM teacher_calls WHERE prompt_id='audit' AND cache_hit=0"))
    resume(tmp_path / "run", RunOptions(embed=bag_of_words))
    calls = store.query("SELECT request_hash, cache_hit FROM teacher_calls WHERE prompt_id='audit'")
    paid = [c["request_hash"] for c in calls if not c["cache_hit"]]
    assert len(paid) == paid_before and len(set(paid)) == len(paid), "an audit call was paid twice"
    assert any(c["cache_hit"] for c in calls), "the resumed audit is answered from the cache"
    assert store.label_audits(1) and store.round_reached(1, RoundStatus.DECIDED)
    # teacher.audit_model: the second opinions (and only they) went to that model, journaled under its name.
    models = {(r["prompt_id"], r["model"]) for r in store.query("SELECT prompt_id, model FROM teacher_calls")}
    assert {m for p, m in models if p == "audit"} == {"sim-reviewer"}
    assert {m for p, m in models if p != "audit"} == {"sim-teacher"}
    store.close()
