"""The run store: migrations, WAL, transactions, and the typed accessors the loop relies on."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from agent.store import (
    MIGRATIONS,
    NewScenario,
    RoundStatus,
    RunInfo,
    RunStatus,
    RunStore,
    SplitCount,
    Strategy,
    content_hash,
)
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


def test_round_reached_follows_the_step_order(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run.sqlite")
    assert not store.round_reached(0, RoundStatus.GENERATING)  # never started: nothing is done
    store.set_round_status(0, RoundStatus.FILTERED)
    assert store.round_status(0) == "filtered"  # a StrEnum: bare strings still compare equal
    assert [s for s in RoundStatus if store.round_reached(0, s)] == [
        RoundStatus.GENERATING,
        RoundStatus.GENERATED,
        RoundStatus.FILTERED,
    ]
    store.finish_round(0, "continue", ["below target"], {"a": 3, "b": 1}, "models/round-00")
    assert store.round_reached(0, RoundStatus.EVALUATED) and store.round_reached(0, RoundStatus.DECIDED)
    assert not store.round_reached(1, RoundStatus.GENERATING)
    with pytest.raises(ValueError):
        store.set_round_status(1, "half-done")  # a status outside the enum never reaches the file


def test_rounds_and_run_come_back_as_typed_rows(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run.sqlite")
    assert store.run_info() is None and store.round_row(0) is None
    store.create_run("r1", "demo", {"name": "demo"}, {"torch": "2"}, None)
    store.set_run_status(RunStatus.FAILED, "boom")
    store.set_run_status("running")  # the stop reason of an earlier stop is kept
    info = store.run_info()
    assert info is not None
    assert info == RunInfo(
        "r1", "demo", {"name": "demo"}, {"torch": "2"}, None, info.created_at, RunStatus.RUNNING, "boom"
    )
    store.set_round_status(0, "generated")
    store.finish_round(0, "continue", ["r"], {"a": 2}, "m0")
    store.set_round_status(1, RoundStatus.GENERATING)
    first, second = store.round_rows()
    assert (first.idx, first.status, first.decision, first.reasons, first.quotas) == (
        0,
        RoundStatus.DECIDED,
        "continue",
        ["r"],
        {"a": 2},
    )
    assert first.finished_at is not None and first.finished_at >= first.started_at
    assert (second.status, second.reasons, second.quotas, second.finished_at) == ("generating", [], None, None)
    assert store.round_row(1) == second


def test_example_counts_origins_and_hashes(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run.sqlite")
    ids = store.add_examples(
        [
            {"round": 1, "split": "train", "text": "one", "label": "a", "origin": "generated"},
            {"round": 1, "split": "train", "text": "two", "label": "a", "origin": "active"},
            {"round": 1, "split": "train", "text": "three", "label": "b", "origin": "generated"},
            {"round": 0, "split": "heldback", "text": "four", "label": "b", "origin": "real", "kept": True},
        ]
    )
    store.record_filter_decisions([(ids[0], "all", True, "ok", None), (ids[1], "all", True, "ok", None)])
    store.record_filter_decisions([(ids[2], "length", False, "short", 3.0)])
    assert store.example_count("train", 1) == SplitCount(total=3, kept=2)
    assert store.example_count("train", 2) == SplitCount(total=0, kept=0)
    assert store.origin_counts("train", kept=True) == {"active": 1, "generated": 1}
    assert store.origin_counts("heldback") == {"real": 1}
    assert store.content_hashes() == {content_hash(t) for t in ("one", "two", "three", "Four ")}


def test_query_is_read_only(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run.sqlite")
    store.create_run("r1", "demo", {}, {}, None)
    assert [r["id"] for r in store.query("SELECT id FROM runs")] == ["r1"]
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        store.query("DELETE FROM runs")
    assert store.run_info() is not None
    assert not hasattr(store, "transaction")  # writes go through named methods only


def test_a_run_file_from_before_the_store_package_opens_and_reads(tmp_path: Path) -> None:
    """A run.sqlite written at schema version 5 by the single-module store (same SQL, same rows)."""
    path = tmp_path / "run.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    for number, script in enumerate(MIGRATIONS[:5], start=1):
        db.executescript(script)
        db.execute(f"PRAGMA user_version={number}")
    db.execute(
        "INSERT INTO runs(id, name, spec_json, versions_json, git_sha, created_at, status) "
        "VALUES ('old', 'demo', '{}', '{}', 'abc', 1.0, 'finished')"
    )
    db.execute(
        "INSERT INTO rounds(idx, status, started_at, finished_at, decision, reasons_json, quotas_json, model_dir)"
        " VALUES (0, 'decided', 1.0, 2.0, 'stop', '[\"round cap\"]', '{\"a\": 4}', 'models/round-00')"
    )
    db.execute(
        "INSERT INTO strategies VALUES ('s-1', 1, 'refund', NULL, 'Ask for the order ID.', 'approved', 1, NULL,"
        ' \'{"scenarios": ["le-0000"]}\', \'{"support": 2}\', 1.0)'
    )
    db.close()
    store = RunStore(path)
    assert store.schema_version == len(MIGRATIONS)
    assert store.run_info() == RunInfo("old", "demo", {}, {}, "abc", 1.0, RunStatus.FINISHED, None)
    [row] = store.round_rows()
    assert (row.status, row.decision, row.reasons, row.quotas) == (RoundStatus.DECIDED, "stop", ["round cap"], {"a": 4})
    assert store.round_reached(0, RoundStatus.DECIDED)
    [strategy] = store.current_strategies()
    assert (strategy.id, strategy.status, strategy.provenance, strategy.evidence) == (
        "s-1",
        "approved",
        {"scenarios": ["le-0000"]},
        {"support": 2},
    )


def test_teaching_tables_answers_rounds_and_discarding_a_round(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run.sqlite")
    [held] = store.add_scenarios("heldout", 0, [NewScenario("refund", "money back", "teacher", b"\0" * 8)])
    learn = store.add_scenarios("learn", 1, [NewScenario("refund", "where is it", "teacher", b"\0" * 8)])
    later = store.add_scenarios("learn", 2, [NewScenario("refund", "still nothing", "teacher", b"\1" * 8)])
    assert (held, learn, later) == ("he-0000", ["le-0001"], ["le-0002"])
    assert [s.id for s in store.scenarios("learn", round=2)] == later
    assert set(store.scenario_embeddings()) == {held, *learn, *later}

    store.add_answer(learn[0], 1, "student", "learning", [], "hi", 0.5, {"score": 0.5, "criteria": []})
    store.add_answer(later[0], 2, "student", "learning", ["s-x"], "hello", None, None)
    store.add_answer(held, 0, "student", "heldout:alone", [], "yo", 1.0, None)
    [answer] = store.answers(scenario_id=learn[0])
    assert (answer.condition, answer.score, answer.judgement) == ("learning", 0.5, {"score": 0.5, "criteria": []})
    assert [a.strategy_ids for a in store.answers(condition="learning")] == [[], ["s-x"]]

    old = Strategy("s-old", 1, "refund", None, "Ask.", "approved", 1, {"scenarios": learn + later}, {"support": 2})
    new = Strategy("s-new", 1, "refund", None, "Apologise.", "proposed", 2, {"scenarios": later}, {})
    store.add_strategy_version(old, action="propose", from_status=None, note=None, teacher_call_id=None)
    store.add_strategy_version(new, action="propose", from_status=None, note=None, teacher_call_id=7)
    assert store.strategy_ids_of_round(2) == {"s-new"} and store.reviewed_strategy_ids() == set()
    store.set_strategy_status(new, "rejected", action="reject", note="vague")
    assert store.reviewed_strategy_ids() == {"s-new"} and store.library_version() == 3
    assert [e.to_status for e in store.strategy_events(up_to=2)] == ["approved", "proposed"]

    store.record_teach_round(1, {"student_score": 0.5})
    assert [(r.idx, r.outcome) for r in store.teach_rounds()] == [(1, {"student_score": 0.5})]
    restored = replace(old, provenance={"scenarios": learn}, evidence={"support": 1})
    store.discard_learning_round(2, drop=["s-new"], rewrite=[restored])
    assert [s.id for s in store.scenarios("learn")] == learn
    assert [a.scenario_id for a in store.answers()] == [learn[0], held]
    assert store.current_strategies() == [restored] and store.strategy_events(strategy_id="s-new") == []
    store.delete_answers(["heldout:alone", "heldout:teacher"])
    assert [a.condition for a in store.answers()] == ["learning"]
