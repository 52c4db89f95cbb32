"""The classifier loop's tables: rounds, examples, filter decisions, evaluations."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from agent.store.connection import StoreConnection
from agent.store.rows import ExampleRow, PromptUsage, RoundRow, RoundStatus, SplitCount

MarkRound = tuple[int, RoundStatus | str]


@dataclass(frozen=True)
class RoundSplit:
    """How a round's decision split the next round's teacher budget (``loop.budget_split: adaptive``).

    ``record`` is the whole stored ``rounds.split_json``: what was measured, the split and why; the two
    counts are the ones the next round's steps use.
    """

    generation: int  # teacher-written examples the next round asks for
    labeling: int  # texts of task.unlabeled the teacher labels next round
    record: dict[str, Any]


def content_hash(text: str) -> str:
    """Hash of the normalised text (case and whitespace folded): the exact-duplicate key."""
    normalised = " ".join(text.lower().split())
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()[:32]


def _round_row(r: sqlite3.Row) -> RoundRow:
    return RoundRow(
        idx=r["idx"],
        status=RoundStatus(r["status"]),
        started_at=r["started_at"],
        finished_at=r["finished_at"],
        decision=r["decision"],
        reasons=list(json.loads(r["reasons_json"] or "[]")),
        quotas=None if r["quotas_json"] is None else dict(json.loads(r["quotas_json"])),
        model_dir=r["model_dir"],
    )


class RoundTables(StoreConnection):
    # -- rounds ---------------------------------------------------------------------------------

    def round_status(self, idx: int) -> RoundStatus | None:
        status = self._scalar("SELECT status FROM rounds WHERE idx=?", (idx,))
        return None if status is None else RoundStatus(status)

    def round_reached(self, idx: int, status: RoundStatus) -> bool:
        """Whether round ``idx`` got at least as far as ``status``: the one "is this step done" question.

        Each step asks it before doing anything, e.g. filtering is done iff
        ``round_reached(r, RoundStatus.FILTERED)``; a round that was never started has reached nothing.
        """
        current = self.round_status(idx)
        return current is not None and current.rank >= status.rank

    def set_round_status(self, idx: int, status: RoundStatus | str) -> None:
        with self._transaction() as db:
            self._upsert_round(db, idx, status)

    @staticmethod
    def _upsert_round(db: sqlite3.Connection, idx: int, status: RoundStatus | str) -> None:
        db.execute(
            "INSERT INTO rounds(idx, status, started_at) VALUES (?,?,?)"
            " ON CONFLICT(idx) DO UPDATE SET status=excluded.status",
            (idx, RoundStatus(status), time.time()),
        )

    def finish_round(
        self,
        idx: int,
        decision: str,
        reasons: list[str],
        quotas: dict[str, int],
        model_dir: str,
        split: dict[str, Any] | None = None,
    ) -> None:
        """Store the round's decision, next quotas and budget split, and mark it DECIDED, in one transaction.

        ``split`` (``budget_split: adaptive``) must hold integer ``generation`` and ``labeling`` counts.
        """
        with self._transaction() as db:
            db.execute(
                "UPDATE rounds SET status=?, finished_at=?, decision=?, reasons_json=?, quotas_json=?,"
                " model_dir=?, split_json=? WHERE idx=?",
                (
                    RoundStatus.DECIDED,
                    time.time(),
                    decision,
                    json.dumps(reasons),
                    json.dumps(quotas),
                    model_dir,
                    None if split is None else json.dumps(split),
                    idx,
                ),
            )

    def round_split(self, idx: int) -> RoundSplit | None:
        """The budget split round ``idx`` decided for the next round; None when it made none (a fixed split)."""
        text = self._scalar("SELECT split_json FROM rounds WHERE idx=?", (idx,))
        if text is None:
            return None
        record = dict(json.loads(text))
        return RoundSplit(int(record["generation"]), int(record["labeling"]), record)

    def round_cost_by_prompt(self, idx: int) -> dict[str, PromptUsage]:
        """Each prompt's successful teacher calls in round ``idx``, once per request: calls, tokens, USD.

        What the round's data cost to buy, whoever paid: a resumed run's replay of a paid call is not a
        second call, and a call answered from the shared response cache counts with its tokens (unlike
        ``calls_by_prompt``, this run's bill). Failed calls bought nothing and are left out.
        """
        rows = self._rows(
            "SELECT prompt_id, COUNT(*) n, SUM(tin) tin, SUM(tout) tout, SUM(usd) usd FROM ("
            " SELECT prompt_id, MAX(tokens_in) tin, MAX(tokens_out) tout, MAX(cost_usd) usd FROM teacher_calls"
            " WHERE round=? AND status='ok' GROUP BY prompt_id, request_hash, sample_index"
            ") GROUP BY prompt_id ORDER BY prompt_id",
            (idx,),
        )
        return {
            r["prompt_id"]: PromptUsage(calls=r["n"], tokens_in=r["tin"], tokens_out=r["tout"], usd=r["usd"])
            for r in rows
        }

    def round_rows(self) -> list[RoundRow]:
        """Every round so far, in order."""
        return [_round_row(r) for r in self._rows("SELECT * FROM rounds ORDER BY idx")]

    def round_row(self, idx: int) -> RoundRow | None:
        rows = self._rows("SELECT * FROM rounds WHERE idx=?", (idx,))
        return _round_row(rows[0]) if rows else None

    # -- examples and filter decisions ------------------------------------------------------------

    def add_examples(self, rows: list[dict[str, Any]], *, mark_round: MarkRound | None = None) -> list[int]:
        """Insert examples (keys: round, split, text, label, origin, optional teacher_call_id, prompt_id).

        ``mark_round=(idx, status)`` sets the round's status in the same transaction, so a crash can
        never leave the examples stored but the step unmarked (which would duplicate them on resume).
        """
        ids: list[int] = []
        with self._transaction() as db:
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
            for r in self._rows(sql + " ORDER BY id", params)
        ]

    def example_count(self, split: str, round: int) -> SplitCount:
        """How many examples of ``split`` round ``round`` stored, and how many the filters kept."""
        row = self._rows(
            "SELECT COUNT(*) n, COALESCE(SUM(kept),0) k FROM examples WHERE split=? AND round=?", (split, round)
        )[0]
        return SplitCount(int(row["n"]), int(row["k"]))

    def origin_counts(self, split: str, *, kept: bool | None = None) -> dict[str, int]:
        """Examples of ``split`` per origin (seed ``real``, ``generated``, ``active`` …)."""
        sql = "SELECT origin, COUNT(*) n FROM examples WHERE split=?"
        params: list[Any] = [split]
        if kept is not None:
            sql += " AND kept=?"
            params.append(int(kept))
        return {r["origin"]: int(r["n"]) for r in self._rows(sql + " GROUP BY origin ORDER BY origin", params)}

    def content_hashes(self) -> set[str]:
        """The duplicate key of every example in the run, any split: texts the run already holds."""
        return {r[0] for r in self._rows("SELECT content_hash FROM examples")}

    def record_filter_decisions(
        self, decisions: list[tuple[int, str, bool, str, float | None]], *, mark_round: MarkRound | None = None
    ) -> None:
        """Store (example_id, filter, kept, reason, score) rows and set each example's ``kept`` flag."""
        with self._transaction() as db:
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
        return {r["filter"]: r["n"] for r in self._rows(sql + " GROUP BY f.filter", params)}

    # -- evaluations ----------------------------------------------------------------------------

    def record_metrics(self, round: int, split: str, metrics: list[tuple[str, str | None, float]]) -> None:
        """Replace the (metric, class, value) rows of one round and split."""
        with self._transaction() as db:
            db.execute("DELETE FROM evaluations WHERE round=? AND split=?", (round, split))
            db.executemany(
                "INSERT INTO evaluations(round, split, metric, class, value) VALUES (?,?,?,?,?)",
                [(round, split, m, c, v) for m, c, v in metrics],
            )

    def metric(self, round: int, split: str, metric: str) -> float | None:
        value = self._scalar(
            "SELECT value FROM evaluations WHERE round=? AND split=? AND metric=? AND class IS NULL",
            (round, split, metric),
        )
        return None if value is None else float(value)
