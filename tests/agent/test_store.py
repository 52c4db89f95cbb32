"""The run store: migrations, WAL, transactions, and the typed accessors the loop relies on."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from agent.store import MIGRATIONS, RunStore, content_hash
from generators.journal import CallRecord


def test_migrations_apply_once_and_use_wal(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run.sqlite")
    assert store.schema_version == len(MIGRATIONS)
    assert store.query("PRAGMA journal_mode")[0][0] == "wal"
    tables = {r["name"] for r in store.query("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"runs", "teacher_calls", "rounds", "examples", "filter_decisions", "evaluations"} <= tables
    store.close()
    reopened = RunStore(tmp_path / "run.sqlite")  # re-running migrations must be a no-op
    assert reopened.schema_version == len(MIGRATIONS)


def test_failed_transaction_leaves_nothing(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run.sqlite")
    with pytest.raises(sqlite3.IntegrityError):
        # The second row references a missing example: the whole batch must roll back.
        store.record_filter_decisions([(1, "x", True, "r", None)], mark_round=(0, "filtered"))
    assert store.round_status(0) is None
    assert store.query("SELECT COUNT(*) FROM filter_decisions")[0][0] == 0


def test_examples_and_verdicts(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run.sqlite")
    ids = store.add_examples(
        [
            {"round": 1, "split": "train", "text": "Hello  World", "label": "a", "origin": "generated"},
            {"round": 1, "split": "train", "text": "bye", "label": "b", "origin": "generated"},
        ],
        mark_round=(1, "generated"),
    )
    assert store.round_status(1) == "generated"
    store.record_filter_decisions(
        [(ids[0], "all", True, "passed", None), (ids[1], "refusal", False, "r", None)], mark_round=(1, "filtered")
    )
    assert [e.text for e in store.examples("train", kept=True)] == ["Hello  World"]
    assert store.drop_counts(1) == {"refusal": 1}
    assert content_hash("hello world") == content_hash("  Hello\tWORLD ")


def test_journal_and_spend(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run.sqlite")
    for hit in (False, True):
        store.record_call(CallRecord("p", 1, "h", 0, "m", 100, 50, 0.0 if hit else 0.25, 0.1, 1, hit, "ok"))
    assert store.spent() == (0.25, 150)
    summary = store.call_summary()
    assert summary["calls"] == 2 and summary["cache_hits"] == 1
