"""The label audit's table: one row per flagged example, with the outcome and its reason.

Recording an audit also applies it to the example (a relabel rewrites ``examples.label``, a drop sets
``kept=0`` with a ``label_audit`` filter decision) and marks the round AUDITED, all in one transaction:
a crash leaves either the whole audit or none of it, so ``distill resume`` never pays for a second
opinion twice nor applies one twice. The original label stays in ``label_audits.given_label``.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from agent.store.connection import StoreConnection
from agent.store.rounds import RoundTables
from agent.store.rows import AuditOutcome, LabelAuditRow, NewLabelAudit, RoundStatus

AUDIT_FILTER = "label_audit"  # the filter name of a drop in filter_decisions (and in drop counts)


def _audit_row(r: sqlite3.Row) -> LabelAuditRow:
    return LabelAuditRow(
        id=r["id"],
        round=r["round"],
        example_id=r["example_id"],
        given_label=r["given_label"],
        suggested_label=r["suggested_label"],
        second_opinion=r["second_opinion"],
        outcome=AuditOutcome(r["outcome"]),
        reason=r["reason"],
        score=r["score"],
        teacher_call_id=r["teacher_call_id"],
        created_at=r["created_at"],
    )


class AuditTables(StoreConnection):
    def record_label_audits(self, round: int, audits: list[NewLabelAudit]) -> None:
        """Store ``audits`` of ``round``, apply relabels and drops, and mark the round AUDITED, atomically."""
        now = time.time()
        with self._transaction() as db:
            RoundTables._upsert_round(db, round, RoundStatus.AUDITED)
            for a in audits:
                db.execute(
                    "INSERT INTO label_audits(round, example_id, given_label, suggested_label, second_opinion,"
                    " outcome, reason, score, teacher_call_id, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (
                        round,
                        a.example_id,
                        a.given_label,
                        a.suggested_label,
                        a.second_opinion,
                        AuditOutcome(a.outcome),
                        a.reason,
                        a.score,
                        a.teacher_call_id,
                        now,
                    ),
                )
                self._apply(db, a)

    @staticmethod
    def _apply(db: sqlite3.Connection, audit: NewLabelAudit) -> None:
        if audit.outcome == AuditOutcome.RELABELLED:
            assert audit.second_opinion is not None, "a relabel names the new label"
            db.execute("UPDATE examples SET label=? WHERE id=?", (audit.second_opinion, audit.example_id))
        elif audit.outcome == AuditOutcome.DROPPED:
            db.execute(
                "INSERT INTO filter_decisions(example_id, filter, kept, reason, score) VALUES (?,?,0,?,?)",
                (audit.example_id, AUDIT_FILTER, audit.reason, audit.score),
            )
            db.execute("UPDATE examples SET kept=0 WHERE id=?", (audit.example_id,))

    def label_audits(self, round: int | None = None) -> list[LabelAuditRow]:
        """Every stored audit in the order it was made, or those of one round."""
        sql = "SELECT * FROM label_audits"
        params: list[Any] = []
        if round is not None:
            sql += " WHERE round=?"
            params.append(round)
        return [_audit_row(r) for r in self._rows(sql + " ORDER BY id", params)]

    def audited_example_ids(self) -> set[int]:
        """Examples that already had a second opinion: the audit never asks about them again."""
        return {int(r[0]) for r in self._rows("SELECT DISTINCT example_id FROM label_audits")}

    def audit_counts(self, round: int | None = None) -> dict[AuditOutcome, int]:
        """Audited examples per outcome (every outcome present, zeros included), of one round or the run."""
        counts = dict.fromkeys(AuditOutcome, 0)
        sql = "SELECT outcome, COUNT(*) n FROM label_audits"
        params: list[Any] = []
        if round is not None:
            sql += " WHERE round=?"
            params.append(round)
        for r in self._rows(sql + " GROUP BY outcome", params):
            counts[AuditOutcome(r["outcome"])] = int(r["n"])
        return counts
