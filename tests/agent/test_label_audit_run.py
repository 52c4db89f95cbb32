"""The label audit inside a real run: the simulator's label noise is planted, the audit finds it.

Real simulator over loopback HTTP (``label_noise`` writes texts of the most confusable class under the
requested label), real SQLite, a tiny student. The audit's sentence vectors come from a bag-of-words
embedder: the tiny random encoder's vectors carry no meaning, and the audit judges labels by meaning.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent.lifecycle import resume
from agent.run_kind import RunOptions
from agent.store import AUDIT_FILTER, AuditOutcome, RoundStatus, RunStore
from tests.run_helpers import FIXTURES, SECRET, run_spec, served_simulator, write_spec

POOL_TRUTH = {
    " ".join(row["text"].lower().split()): row["label"]
    for row in map(json.loads, (FIXTURES / "pool.jsonl").read_text().splitlines())
}


def bag_of_words(texts: list[str]) -> np.ndarray:
    out = np.zeros((len(texts), 512), dtype=np.float32)
    for i, text in enumerate(texts):
        for word in text.lower().split():
            out[i, zlib.crc32(word.strip("?.!,'").encode()) % 512] += 1
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def truth(text: str) -> str | None:
    return POOL_TRUTH.get(" ".join(text.lower().split()))


def _noisy_run(tmp_path: Path, tiny_model: str, make_simulator: Any, **loop: Any) -> Path:
    server = make_simulator(api_key=SECRET, label_noise=0.15, seed=3)
    teacher = served_simulator(server) | loop.pop("teacher", {})
    spec = write_spec(tmp_path, tiny_model, teacher, max_rounds=1, seed_per_label=24, examples_per_round=36, **loop)
    run_dir, _ = run_spec(spec, tmp_path / "run", embed=bag_of_words)
    return run_dir


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISTILL_TEST_KEY", SECRET)
    monkeypatch.setenv("DISTILL_QUIET", "1")


def test_planted_label_errors_are_caught_and_fixed(tmp_path: Path, tiny_model: str, make_simulator: Any) -> None:
    run_dir = _noisy_run(tmp_path, tiny_model, make_simulator)
    store = RunStore(run_dir / "run.sqlite")
    audits = store.label_audits()
    by_id = {e.id: e for e in store.examples("train")}
    corrupted = {i for i, e in by_id.items() if e.origin == "generated" and truth(e.text) not in (None, e.label)}
    # (relabelled examples now carry their new label: their original one is in the audit row)
    corrupted |= {a.example_id for a in audits if truth(by_id[a.example_id].text) not in (None, a.given_label)}
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
    # Each round's audit is durable with its status; drops show as the label_audit filter.
    assert all(store.round_reached(r, RoundStatus.AUDITED) for r in (0, 1))
    dropped = sum(a.outcome == AuditOutcome.DROPPED for a in audits)
    assert sum(store.drop_counts(r).get(AUDIT_FILTER, 0) for r in (0, 1)) == dropped
    # Never asked twice: each example has at most one audit, across rounds.
    assert len({a.example_id for a in audits}) == len(audits)
    prompts = {r["prompt_id"]: r["model"] for r in store.query("SELECT prompt_id, model FROM teacher_calls")}
    assert prompts["audit"] == "sim-teacher"
    store.close()


def test_audit_off_sends_nothing_and_changes_nothing(tmp_path: Path, tiny_model: str, make_simulator: Any) -> None:
    run_dir = _noisy_run(tmp_path, tiny_model, make_simulator, label_audit=False)
    store = RunStore(run_dir / "run.sqlite")
    assert store.label_audits() == [] and store.round_reached(1, RoundStatus.AUDITED)
    assert "audit" not in {r["prompt_id"] for r in store.query("SELECT prompt_id FROM teacher_calls")}
    store.close()


class Killed(RuntimeError):
    """The process 'dies' after the audit's teacher calls, before its outcomes are written."""


def test_an_audit_killed_before_its_write_pays_nothing_twice_on_resume(
    tmp_path: Path, tiny_model: str, make_simulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = RunStore.record_label_audits

    def die_in_round_1(self: RunStore, round: int, audits: list[Any]) -> None:
        if round == 1:
            raise Killed("killed before the audit of round 1 was written")
        record(self, round, audits)

    monkeypatch.setattr(RunStore, "record_label_audits", die_in_round_1)
    with pytest.raises(Killed):
        _noisy_run(tmp_path, tiny_model, make_simulator)
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
    store.close()
