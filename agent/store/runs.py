"""The run row, the teacher-call journal and the cost plan."""

from __future__ import annotations

import json
import time
from typing import Any

from agent.store.connection import StoreConnection
from agent.store.rows import CallOrigin, CallSummary, PromptUsage, RunInfo, RunStatus
from generators.journal import CallRecord


class RunTables(StoreConnection):
    # -- runs -----------------------------------------------------------------------------------

    def create_run(
        self, run_id: str, name: str, spec: dict[str, Any], versions: dict[str, str], git_sha: str | None
    ) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO runs(id, name, spec_json, versions_json, git_sha, created_at) VALUES (?,?,?,?,?,?)",
                (run_id, name, json.dumps(spec, default=str), json.dumps(versions), git_sha, time.time()),
            )

    def run_info(self) -> RunInfo | None:
        rows = self._rows("SELECT * FROM runs LIMIT 1")
        if not rows:
            return None
        r = rows[0]
        return RunInfo(
            r["id"],
            r["name"],
            json.loads(r["spec_json"]),
            json.loads(r["versions_json"]),
            r["git_sha"],
            r["created_at"],
            RunStatus(r["status"]),
            r["stop_reason"],
        )

    def set_run_status(self, status: RunStatus | str, stop_reason: str | None = None) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE runs SET status=?, stop_reason=COALESCE(?, stop_reason)", (RunStatus(status), stop_reason)
            )

    # -- teacher journal (generators.journal.CallJournal) -----------------------------------------

    def record_call(self, call: CallRecord) -> int:
        with self._transaction() as db:
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
        row = self._rows(
            "SELECT COALESCE(SUM(cost_usd),0), COALESCE(SUM(tokens_in+tokens_out),0) FROM teacher_calls"
            " WHERE cache_hit=0"
        )[0]
        return float(row[0]), int(row[1])

    def call_summary(self) -> CallSummary:
        """All journaled calls: count, cache hits, tokens, USD, retries, failures, and calls cut off by a second
        Ctrl-C (``cancelled``: the user's stop, not a failure of the teacher)."""
        row = self._rows(
            "SELECT COUNT(*) n, COALESCE(SUM(cache_hit),0) hits, COALESCE(SUM(tokens_in),0) tin,"
            " COALESCE(SUM(tokens_out),0) tout, COALESCE(SUM(cost_usd),0) usd,"
            " COALESCE(SUM(attempts - 1),0) retries, COALESCE(SUM(status NOT IN ('ok', 'cancelled')),0) failed,"
            " COALESCE(SUM(status = 'cancelled'),0) cancelled FROM teacher_calls"
        )[0]
        return CallSummary(
            calls=row["n"],
            cache_hits=row["hits"],
            tokens_in=row["tin"],
            tokens_out=row["tout"],
            cost_usd=round(row["usd"], 6),
            retries=row["retries"],
            failed=row["failed"],
            cancelled=row["cancelled"],
        )

    def call_origins(self) -> dict[int, CallOrigin]:
        """Every journaled call's prompt id and version, model and cache hit, by call id."""
        rows = self._rows("SELECT id, prompt_id, prompt_version, model, cache_hit FROM teacher_calls ORDER BY id")
        return {
            r["id"]: CallOrigin(r["id"], r["prompt_id"], int(r["prompt_version"]), r["model"], bool(r["cache_hit"]))
            for r in rows
        }

    def adaptations(self) -> list[str]:
        """Each distinct way a request was changed to be accepted by the provider, in order of first use."""
        rows = self._rows("SELECT adaptation FROM teacher_calls WHERE adaptation IS NOT NULL ORDER BY id")
        return list(dict.fromkeys(part for row in rows for part in str(row[0]).split("; ")))

    def calls_by_prompt(self) -> dict[str, PromptUsage]:
        """Paid calls, tokens and USD per prompt template (cache hits excluded): the actuals beside the plan."""
        rows = self._rows(
            "SELECT prompt_id, COUNT(*) n, SUM(tokens_in) tin, SUM(tokens_out) tout, SUM(cost_usd) usd"
            " FROM teacher_calls WHERE cache_hit=0 GROUP BY prompt_id ORDER BY prompt_id"
        )
        return {
            r["prompt_id"]: PromptUsage(calls=r["n"], tokens_in=r["tin"], tokens_out=r["tout"], usd=r["usd"])
            for r in rows
        }

    # -- the cost plan --------------------------------------------------------------------------

    def save_plan(self, plan: dict[str, Any]) -> None:
        """Keep the first plan of a run (a resume does not replace what was planned at the start)."""
        with self._transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO plans(id, plan_json, created_at) VALUES (1, ?, ?)",
                (json.dumps(plan), time.time()),
            )

    def plan(self) -> dict[str, Any] | None:
        text = self._scalar("SELECT plan_json FROM plans WHERE id=1")
        return None if text is None else dict(json.loads(text))
