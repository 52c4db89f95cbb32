"""Strategy teaching's tables: the versioned strategy library and its audit events, scenarios,
answers, and the finished learning rounds. The audit *rules* live in ``agent.strategies``."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from agent.store.connection import StoreConnection
from agent.store.rows import Answer, NewScenario, Scenario, Strategy, StrategyEvent, TeachRound


def _strategy(row: sqlite3.Row) -> Strategy:
    return Strategy(
        row["id"],
        row["version"],
        row["scope"],
        row["criterion"],
        row["text"],
        row["status"],
        row["round"],
        json.loads(row["provenance_json"]),
        json.loads(row["evidence_json"]),
    )


def _event(row: sqlite3.Row) -> StrategyEvent:
    return StrategyEvent(
        row["seq"],
        row["strategy_id"],
        row["version"],
        row["action"],
        row["from_status"],
        row["to_status"],
        row["text"],
        row["note"],
        row["at"],
    )


def _scenario(row: sqlite3.Row) -> Scenario:
    return Scenario(row["id"], row["split"], row["flow"], row["message"], row["source"], row["round"])


def _answer(row: sqlite3.Row) -> Answer:
    return Answer(
        row["id"],
        row["scenario_id"],
        row["round"],
        row["role"],
        row["condition"],
        list(json.loads(row["strategy_ids_json"])),
        row["reply"],
        row["score"],
        None if row["judgement_json"] is None else dict(json.loads(row["judgement_json"])),
    )


class TeachingTables(StoreConnection):
    # -- strategies: reading ----------------------------------------------------------------------

    def latest_strategy(self, strategy_id: str) -> Strategy | None:
        rows = self._rows("SELECT * FROM strategies WHERE id=? ORDER BY version DESC LIMIT 1", (strategy_id,))
        return _strategy(rows[0]) if rows else None

    def strategy_history(self, strategy_id: str) -> list[Strategy]:
        """Every version of one strategy, oldest first."""
        return [
            _strategy(r) for r in self._rows("SELECT * FROM strategies WHERE id=? ORDER BY version", (strategy_id,))
        ]

    def current_strategies(self) -> list[Strategy]:
        """The latest version of every strategy, in order of creation."""
        rows = self._rows(
            "SELECT s.* FROM strategies s JOIN (SELECT id, MAX(version) v FROM strategies GROUP BY id) m"
            " ON s.id=m.id AND s.version=m.v ORDER BY s.created_at, s.id"
        )
        return [_strategy(r) for r in rows]

    def strategy_ids_of_round(self, round: int) -> set[str]:
        """Strategies first proposed in learning round ``round``."""
        return {r[0] for r in self._rows("SELECT DISTINCT id FROM strategies WHERE round=?", (round,))}

    def reviewed_strategy_ids(self) -> set[str]:
        """Strategies with any audit event besides their proposal (a reviewer or the loop acted on them)."""
        return {r[0] for r in self._rows("SELECT DISTINCT strategy_id FROM strategy_events WHERE action != 'propose'")}

    def library_version(self) -> int:
        """The number of audit events so far: the library's version."""
        return int(self._scalar("SELECT COUNT(*) FROM strategy_events"))

    def strategy_events(self, *, strategy_id: str | None = None, up_to: int | None = None) -> list[StrategyEvent]:
        """Audit events in order: of one strategy, and/or the first ``up_to`` of the library."""
        rows = self._rows_where("strategy_events", "seq", strategy_id=strategy_id, seq__le=up_to)
        return [_event(r) for r in rows]

    # -- strategies: writing ----------------------------------------------------------------------

    def add_strategy_version(
        self, s: Strategy, *, action: str, from_status: str | None, note: str | None, teacher_call_id: int | None
    ) -> None:
        """Insert a strategy version and its audit event in one transaction."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO strategies(id, version, scope, criterion, text, status, round, teacher_call_id,"
                " provenance_json, evidence_json, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    s.id,
                    s.version,
                    s.scope,
                    s.criterion,
                    s.text,
                    s.status,
                    s.round,
                    teacher_call_id,
                    json.dumps(s.provenance),
                    json.dumps(s.evidence),
                    time.time(),
                ),
            )
            self._add_event(db, s, action, from_status, note)

    def set_strategy_status(self, s: Strategy, status: str, *, action: str, note: str | None) -> None:
        """Move version ``s`` from ``s.status`` to ``status`` and record the audit event, atomically."""
        with self._transaction() as db:
            db.execute("UPDATE strategies SET status=? WHERE id=? AND version=?", (status, s.id, s.version))
            self._add_event(db, replace(s, status=status), action, s.status, note)

    def set_strategy_evidence(self, strategy_id: str, version: int, evidence: dict[str, Any]) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE strategies SET evidence_json=? WHERE id=? AND version=?",
                (json.dumps(evidence), strategy_id, version),
            )

    def set_strategy_provenance(self, strategy_id: str, version: int, provenance: dict[str, Any]) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE strategies SET provenance_json=? WHERE id=? AND version=?",
                (json.dumps(provenance), strategy_id, version),
            )

    @staticmethod
    def _add_event(db: sqlite3.Connection, s: Strategy, action: str, from_status: str | None, note: str | None) -> None:
        db.execute(
            "INSERT INTO strategy_events(strategy_id, version, action, from_status, to_status, text, note, at)"
            " VALUES (?,?,?,?,?,?,?,?)",
            (s.id, s.version, action, from_status, s.status, s.text, note, time.time()),
        )

    # -- scenarios ------------------------------------------------------------------------------

    def add_scenarios(self, split: str, round: int, scenarios: list[NewScenario]) -> list[str]:
        """Store scenarios with their embeddings; ids are ``<split[:2]>-NNNN`` in order of storage."""
        ids = []
        with self._transaction() as db:
            existing = int(db.execute("SELECT COUNT(*) FROM scenarios").fetchone()[0])
            for offset, s in enumerate(scenarios):
                sid = f"{split[:2]}-{existing + offset:04d}"
                db.execute(
                    "INSERT INTO scenarios(id, split, flow, message, source, round, embedding) VALUES (?,?,?,?,?,?,?)",
                    (sid, split, s.flow, s.message, s.source, round, s.embedding),
                )
                ids.append(sid)
        return ids

    def scenarios(self, split: str, *, round: int | None = None) -> list[Scenario]:
        sql = "SELECT * FROM scenarios WHERE split=?"
        params: list[Any] = [split]
        if round is not None:
            sql += " AND round=?"
            params.append(round)
        return [_scenario(r) for r in self._rows(sql + " ORDER BY id", params)]

    def scenario(self, scenario_id: str) -> Scenario | None:
        rows = self._rows("SELECT * FROM scenarios WHERE id=?", (scenario_id,))
        return _scenario(rows[0]) if rows else None

    def scenario_embeddings(self) -> dict[str, bytes]:
        """Scenario id → its stored embedding (float32 bytes)."""
        return {
            r["id"]: r["embedding"]
            for r in self._rows("SELECT id, embedding FROM scenarios WHERE embedding IS NOT NULL")
        }

    # -- answers --------------------------------------------------------------------------------

    def add_answer(
        self,
        scenario_id: str,
        round: int,
        role: str,
        condition: str,
        strategy_ids: list[str],
        reply: str,
        score: float | None,
        judgement: dict[str, Any] | None,
    ) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO answers(scenario_id, round, role, condition, strategy_ids_json, reply, score,"
                " judgement_json, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    scenario_id,
                    round,
                    role,
                    condition,
                    json.dumps(strategy_ids),
                    reply,
                    score,
                    None if judgement is None else json.dumps(judgement),
                    time.time(),
                ),
            )

    def answers(self, *, scenario_id: str | None = None, condition: str | None = None) -> list[Answer]:
        """Answers in the order they were stored, of one scenario and/or one condition."""
        return [_answer(r) for r in self._rows_where("answers", "id", scenario_id=scenario_id, condition=condition)]

    def delete_answers(self, conditions: Iterable[str]) -> None:
        """Drop every answer given under one of ``conditions`` (an evaluation about to be redone)."""
        wanted = tuple(conditions)
        with self._transaction() as db:
            db.execute(f"DELETE FROM answers WHERE condition IN ({','.join('?' * len(wanted))})", wanted)

    # -- learning rounds ------------------------------------------------------------------------

    def teach_rounds(self) -> list[TeachRound]:
        rows = self._rows("SELECT * FROM teach_rounds ORDER BY idx")
        return [TeachRound(r["idx"], dict(json.loads(r["outcome_json"])), r["finished_at"]) for r in rows]

    def record_teach_round(self, idx: int, outcome: dict[str, Any]) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO teach_rounds(idx, outcome_json, finished_at) VALUES (?,?,?)",
                (idx, json.dumps(outcome), time.time()),
            )

    def discard_learning_round(self, round: int, *, drop: Iterable[str], rewrite: Iterable[Strategy]) -> None:
        """Undo an interrupted learning round in one transaction: its answers and learning scenarios go,
        the strategies in ``drop`` go with their events, and each ``rewrite`` strategy version gets back
        the provenance and evidence given (what older strategies had before the round touched them)."""
        with self._transaction() as db:
            db.execute("DELETE FROM answers WHERE round=?", (round,))
            for strategy_id in drop:
                db.execute("DELETE FROM strategy_events WHERE strategy_id=?", (strategy_id,))
                db.execute("DELETE FROM strategies WHERE id=?", (strategy_id,))
            for s in rewrite:
                db.execute(
                    "UPDATE strategies SET provenance_json=?, evidence_json=? WHERE id=? AND version=?",
                    (json.dumps(s.provenance), json.dumps(s.evidence), s.id, s.version),
                )
            db.execute("DELETE FROM scenarios WHERE split='learn' AND round=?", (round,))
