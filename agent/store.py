"""The run store: one SQLite file per run, with numbered migrations (never ad-hoc ALTERs).

WAL mode, and every write in a transaction, so a crash leaves the last committed step intact and
``distill resume`` can continue from it. API keys never reach this file: the spec keeps only the
*name* of the environment variable, and the gateway redacts key values from error texts.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from generators.journal import CallRecord

MIGRATIONS: list[str] = [
    # 1: runs and the teacher-call journal (the foundation).
    """
    CREATE TABLE runs (
        id TEXT PRIMARY KEY, name TEXT NOT NULL, spec_json TEXT NOT NULL, versions_json TEXT NOT NULL,
        git_sha TEXT, created_at REAL NOT NULL, status TEXT NOT NULL DEFAULT 'created', stop_reason TEXT
    );
    CREATE TABLE teacher_calls (
        id INTEGER PRIMARY KEY, round INTEGER, prompt_id TEXT NOT NULL, prompt_version INTEGER NOT NULL,
        request_hash TEXT NOT NULL, sample_index INTEGER NOT NULL, model TEXT NOT NULL,
        tokens_in INTEGER NOT NULL, tokens_out INTEGER NOT NULL, cost_usd REAL NOT NULL,
        latency_s REAL NOT NULL, attempts INTEGER NOT NULL, cache_hit INTEGER NOT NULL,
        status TEXT NOT NULL, error TEXT, created_at REAL NOT NULL
    );
    CREATE INDEX teacher_calls_hash ON teacher_calls(request_hash);
    """,
    # 2: the round loop's tables.
    """
    CREATE TABLE rounds (
        idx INTEGER PRIMARY KEY, status TEXT NOT NULL, started_at REAL NOT NULL, finished_at REAL,
        decision TEXT, reasons_json TEXT, quotas_json TEXT, model_dir TEXT
    );
    CREATE TABLE examples (
        id INTEGER PRIMARY KEY, round INTEGER NOT NULL, split TEXT NOT NULL, text TEXT NOT NULL,
        label TEXT NOT NULL, origin TEXT NOT NULL, teacher_call_id INTEGER, prompt_id TEXT,
        strategy_id TEXT, content_hash TEXT NOT NULL, kept INTEGER
    );
    CREATE INDEX examples_split ON examples(split, kept);
    CREATE TABLE filter_decisions (
        id INTEGER PRIMARY KEY, example_id INTEGER NOT NULL REFERENCES examples(id), filter TEXT NOT NULL,
        kept INTEGER NOT NULL, reason TEXT NOT NULL, score REAL
    );
    CREATE TABLE evaluations (
        id INTEGER PRIMARY KEY, round INTEGER NOT NULL, split TEXT NOT NULL, metric TEXT NOT NULL,
        class TEXT, value REAL NOT NULL
    );
    CREATE INDEX evaluations_round ON evaluations(round, split);
    """,
    # 3: strategy teaching — scenarios, answers, and the versioned, audited strategy library.
    """
    CREATE TABLE scenarios (
        id TEXT PRIMARY KEY, split TEXT NOT NULL, flow TEXT NOT NULL, message TEXT NOT NULL,
        source TEXT NOT NULL, round INTEGER NOT NULL, embedding BLOB, teacher_call_id INTEGER
    );
    CREATE TABLE answers (
        id INTEGER PRIMARY KEY, scenario_id TEXT NOT NULL REFERENCES scenarios(id), round INTEGER NOT NULL,
        role TEXT NOT NULL, condition TEXT NOT NULL, strategy_ids_json TEXT NOT NULL, reply TEXT NOT NULL,
        score REAL, judgement_json TEXT, created_at REAL NOT NULL
    );
    CREATE INDEX answers_scenario ON answers(scenario_id, condition);
    CREATE TABLE strategies (
        id TEXT NOT NULL, version INTEGER NOT NULL, scope TEXT NOT NULL, criterion TEXT, text TEXT NOT NULL,
        status TEXT NOT NULL, round INTEGER, teacher_call_id INTEGER, provenance_json TEXT NOT NULL,
        evidence_json TEXT NOT NULL, created_at REAL NOT NULL, PRIMARY KEY (id, version)
    );
    CREATE TABLE strategy_events (
        seq INTEGER PRIMARY KEY, strategy_id TEXT NOT NULL, version INTEGER NOT NULL, action TEXT NOT NULL,
        from_status TEXT, to_status TEXT NOT NULL, text TEXT NOT NULL, note TEXT, at REAL NOT NULL
    );
    """,
    # 4: strategy teaching's finished learning rounds: `distill resume` continues after the last one.
    """
    CREATE TABLE teach_rounds (idx INTEGER PRIMARY KEY, outcome_json TEXT NOT NULL, finished_at REAL NOT NULL);
    """,
    # 5: real providers — how a request was adapted after a 400, and the cost plan made before the run.
    """
    ALTER TABLE teacher_calls ADD COLUMN adaptation TEXT;
    CREATE TABLE plans (id INTEGER PRIMARY KEY CHECK (id = 1), plan_json TEXT NOT NULL, created_at REAL NOT NULL);
    """,
]


def content_hash(text: str) -> str:
    """Hash of the normalised text (case and whitespace folded): the exact-duplicate key."""
    normalised = " ".join(text.lower().split())
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class ExampleRow:
    id: int
    round: int
    split: str
    text: str
    label: str
    origin: str
    kept: bool | None


class RunStore:
    """Typed access to ``run.sqlite``. Also the teacher gateway's ``CallJournal``."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._migrate()

    def close(self) -> None:
        self._db.close()

    # -- plumbing -------------------------------------------------------------------------------

    def _migrate(self) -> None:
        current = self._db.execute("PRAGMA user_version").fetchone()[0]
        for number, script in enumerate(MIGRATIONS[current:], start=current + 1):
            with self.transaction():
                for statement in filter(str.strip, script.split(";")):
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version={number}")

    @property
    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT, rolled back on any exception."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        return list(self._db.execute(sql, tuple(params)))

    # -- runs -----------------------------------------------------------------------------------

    def create_run(
        self, run_id: str, name: str, spec: dict[str, Any], versions: dict[str, str], git_sha: str | None
    ) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO runs(id, name, spec_json, versions_json, git_sha, created_at) VALUES (?,?,?,?,?,?)",
                (run_id, name, json.dumps(spec, default=str), json.dumps(versions), git_sha, time.time()),
            )

    def run_info(self) -> sqlite3.Row | None:
        rows = self.query("SELECT * FROM runs LIMIT 1")
        return rows[0] if rows else None

    def set_run_status(self, status: str, stop_reason: str | None = None) -> None:
        with self.transaction() as db:
            db.execute("UPDATE runs SET status=?, stop_reason=COALESCE(?, stop_reason)", (status, stop_reason))

    # -- teacher journal (generators.journal.CallJournal) -----------------------------------------

    def record_call(self, call: CallRecord) -> int:
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT INTO teacher_calls(round, prompt_id, prompt_version, request_hash, sample_index, model,"
                " tokens_in, tokens_out, cost_usd, latency_s, attempts, cache_hit, status, error, adaptation,"
                " created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    call.round,
                    call.prompt_id,
                    call.prompt_version,
                    call.request_hash,
                    call.sample_index,
                    call.model,
                    call.tokens_in,
                    call.tokens_out,
                    call.cost_usd,
                    call.latency_s,
                    call.attempts,
                    int(call.cache_hit),
                    call.status,
                    call.error,
                    call.adaptation,
                    time.time(),
                ),
            )
            return int(cursor.lastrowid or 0)

    def spent(self) -> tuple[float, int]:
        """Total (USD, tokens) of paid calls journaled so far; cache hits cost nothing."""
        row = self.query(
            "SELECT COALESCE(SUM(cost_usd),0), COALESCE(SUM(tokens_in+tokens_out),0) FROM teacher_calls"
            " WHERE cache_hit=0"
        )[0]
        return float(row[0]), int(row[1])

    def call_summary(self) -> dict[str, Any]:
        row = self.query(
            "SELECT COUNT(*) n, COALESCE(SUM(cache_hit),0) hits, COALESCE(SUM(tokens_in),0) tin,"
            " COALESCE(SUM(tokens_out),0) tout, COALESCE(SUM(cost_usd),0) usd,"
            " COALESCE(SUM(attempts - 1),0) retries, COALESCE(SUM(status != 'ok'),0) failed FROM teacher_calls"
        )[0]
        return {
            "calls": row["n"],
            "cache_hits": row["hits"],
            "tokens_in": row["tin"],
            "tokens_out": row["tout"],
            "cost_usd": round(row["usd"], 6),
            "retries": row["retries"],
            "failed": row["failed"],
        }

    def adaptations(self) -> list[str]:
        """Each distinct way a request was changed to be accepted by the provider, in order of first use."""
        rows = self.query("SELECT adaptation FROM teacher_calls WHERE adaptation IS NOT NULL ORDER BY id")
        return list(dict.fromkeys(part for row in rows for part in str(row[0]).split("; ")))

    def calls_by_prompt(self) -> dict[str, dict[str, float]]:
        """Paid calls, tokens and USD per prompt template (cache hits excluded): the actuals beside the plan."""
        rows = self.query(
            "SELECT prompt_id, COUNT(*) n, SUM(tokens_in) tin, SUM(tokens_out) tout, SUM(cost_usd) usd"
            " FROM teacher_calls WHERE cache_hit=0 GROUP BY prompt_id ORDER BY prompt_id"
        )
        return {
            r["prompt_id"]: {"calls": r["n"], "tokens_in": r["tin"], "tokens_out": r["tout"], "usd": r["usd"]}
            for r in rows
        }

    # -- the cost plan --------------------------------------------------------------------------

    def save_plan(self, plan: dict[str, Any]) -> None:
        """Keep the first plan of a run (a resume does not replace what was planned at the start)."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO plans(id, plan_json, created_at) VALUES (1, ?, ?)",
                (json.dumps(plan), time.time()),
            )

    def plan(self) -> dict[str, Any] | None:
        rows = self.query("SELECT plan_json FROM plans WHERE id=1")
        return json.loads(rows[0][0]) if rows else None

    # -- rounds ---------------------------------------------------------------------------------

    def round_status(self, idx: int) -> str | None:
        rows = self.query("SELECT status FROM rounds WHERE idx=?", (idx,))
        return str(rows[0]["status"]) if rows else None

    def set_round_status(self, idx: int, status: str) -> None:
        with self.transaction() as db:
            self._upsert_round(db, idx, status)

    @staticmethod
    def _upsert_round(db: sqlite3.Connection, idx: int, status: str) -> None:
        db.execute(
            "INSERT INTO rounds(idx, status, started_at) VALUES (?,?,?)"
            " ON CONFLICT(idx) DO UPDATE SET status=excluded.status",
            (idx, status, time.time()),
        )

    def finish_round(self, idx: int, decision: str, reasons: list[str], quotas: dict[str, int], model_dir: str) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE rounds SET status='decided', finished_at=?, decision=?, reasons_json=?, quotas_json=?,"
                " model_dir=? WHERE idx=?",
                (time.time(), decision, json.dumps(reasons), json.dumps(quotas), model_dir, idx),
            )

    def rounds(self) -> list[sqlite3.Row]:
        return self.query("SELECT * FROM rounds ORDER BY idx")

    # -- examples and filter decisions ------------------------------------------------------------

    def add_examples(self, rows: list[dict[str, Any]], *, mark_round: tuple[int, str] | None = None) -> list[int]:
        """Insert examples (keys: round, split, text, label, origin, optional teacher_call_id, prompt_id).

        ``mark_round=(idx, status)`` sets the round's status in the same transaction, so a crash can
        never leave the examples stored but the step unmarked (which would duplicate them on resume).
        """
        ids: list[int] = []
        with self.transaction() as db:
            if mark_round is not None:
                self._upsert_round(db, *mark_round)
            for row in rows:
                cursor = db.execute(
                    "INSERT INTO examples(round, split, text, label, origin, teacher_call_id, prompt_id,"
                    " strategy_id, content_hash, kept) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (
                        row["round"],
                        row["split"],
                        row["text"],
                        row["label"],
                        row["origin"],
                        row.get("teacher_call_id"),
                        row.get("prompt_id"),
                        row.get("strategy_id"),
                        content_hash(row["text"]),
                        row.get("kept"),
                    ),
                )
                ids.append(int(cursor.lastrowid or 0))
        return ids

    def examples(self, split: str, *, round: int | None = None, kept: bool | None = None) -> list[ExampleRow]:
        sql = "SELECT id, round, split, text, label, origin, kept FROM examples WHERE split=?"
        params: list[Any] = [split]
        if round is not None:
            sql += " AND round=?"
            params.append(round)
        if kept is not None:
            sql += " AND kept=?"
            params.append(int(kept))
        return [
            ExampleRow(
                r["id"],
                r["round"],
                r["split"],
                r["text"],
                r["label"],
                r["origin"],
                None if r["kept"] is None else bool(r["kept"]),
            )
            for r in self.query(sql + " ORDER BY id", params)
        ]

    def record_filter_decisions(
        self, decisions: list[tuple[int, str, bool, str, float | None]], *, mark_round: tuple[int, str] | None = None
    ) -> None:
        """Store (example_id, filter, kept, reason, score) rows and set each example's ``kept`` flag."""
        with self.transaction() as db:
            if mark_round is not None:
                self._upsert_round(db, *mark_round)
            db.executemany(
                "INSERT INTO filter_decisions(example_id, filter, kept, reason, score) VALUES (?,?,?,?,?)",
                [(eid, name, int(kept), reason, score) for eid, name, kept, reason, score in decisions],
            )
            verdicts: dict[int, bool] = {}
            for eid, _, kept, _, _ in decisions:
                verdicts[eid] = verdicts.get(eid, True) and kept
            db.executemany("UPDATE examples SET kept=? WHERE id=?", [(int(k), e) for e, k in verdicts.items()])

    def drop_counts(self, round: int | None = None) -> dict[str, int]:
        sql = "SELECT f.filter, COUNT(*) n FROM filter_decisions f JOIN examples e ON e.id=f.example_id WHERE f.kept=0"
        params: list[Any] = []
        if round is not None:
            sql += " AND e.round=?"
            params.append(round)
        return {r["filter"]: r["n"] for r in self.query(sql + " GROUP BY f.filter", params)}

    # -- evaluations ----------------------------------------------------------------------------

    def record_metrics(self, round: int, split: str, metrics: list[tuple[str, str | None, float]]) -> None:
        """Replace the (metric, class, value) rows of one round and split."""
        with self.transaction() as db:
            db.execute("DELETE FROM evaluations WHERE round=? AND split=?", (round, split))
            db.executemany(
                "INSERT INTO evaluations(round, split, metric, class, value) VALUES (?,?,?,?,?)",
                [(round, split, m, c, v) for m, c, v in metrics],
            )

    def metric(self, round: int, split: str, metric: str) -> float | None:
        rows = self.query(
            "SELECT value FROM evaluations WHERE round=? AND split=? AND metric=? AND class IS NULL",
            (round, split, metric),
        )
        return float(rows[0]["value"]) if rows else None
