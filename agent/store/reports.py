"""Read-only questions the run report (``agent.report``) asks: provenance, per-class scores, cost by round."""

from __future__ import annotations

from collections import defaultdict

from agent.store.connection import StoreConnection
from agent.store.rows import ExampleProvenance, FilterVerdict, PromptCalls


class ReportQueries(StoreConnection):
    def example_provenance(self, split: str = "train") -> list[ExampleProvenance]:
        """Every example of ``split`` with where it came from and each filter's verdict on it, in id order."""
        verdicts: dict[int, list[FilterVerdict]] = defaultdict(list)
        for v in self._rows(
            "SELECT f.example_id, f.filter, f.kept, f.reason FROM filter_decisions f"
            " JOIN examples e ON e.id=f.example_id WHERE e.split=? ORDER BY f.id",
            (split,),
        ):
            verdicts[v["example_id"]].append(FilterVerdict(v["filter"], bool(v["kept"]), v["reason"]))
        rows = self._rows(
            "SELECT id, round, text, label, origin, kept, teacher_call_id, prompt_id, strategy_id FROM examples"
            " WHERE split=? ORDER BY id",
            (split,),
        )
        return [
            ExampleProvenance(
                id=r["id"],
                round=r["round"],
                text=r["text"],
                label=r["label"],
                origin=r["origin"],
                kept=None if r["kept"] is None else bool(r["kept"]),
                teacher_call_id=r["teacher_call_id"],
                prompt_id=r["prompt_id"],
                strategy_id=r["strategy_id"],
                verdicts=tuple(verdicts.get(r["id"], ())),
            )
            for r in rows
        ]

    def class_metric_by_round(self, split: str, metric: str) -> dict[int, dict[str, float]]:
        """``metric`` per class (e.g. F1) of ``split``, per round: {round: {class: value}}."""
        out: dict[int, dict[str, float]] = defaultdict(dict)
        for r in self._rows(
            "SELECT round, class, value FROM evaluations WHERE split=? AND metric=? AND class IS NOT NULL"
            " ORDER BY round, id",
            (split, metric),
        ):
            out[r["round"]][r["class"]] = float(r["value"])
        return dict(out)

    def cost_by_round(self) -> dict[int | None, float]:
        """USD of teacher calls per round (a cache hit is journaled at $0); None: calls outside any round."""
        rows = self._rows("SELECT round, COALESCE(SUM(cost_usd),0) usd FROM teacher_calls GROUP BY round")
        return {r["round"]: float(r["usd"]) for r in rows}

    def call_breakdown(self) -> list[PromptCalls]:
        """Per prompt template, every journaled call: paid and cached counts, tokens, USD, failures."""
        rows = self._rows(
            "SELECT prompt_id, COUNT(*) n, COALESCE(SUM(cache_hit),0) hits, COALESCE(SUM(tokens_in),0) tin,"
            " COALESCE(SUM(tokens_out),0) tout, COALESCE(SUM(cost_usd),0) usd,"
            " COALESCE(SUM(status != 'ok'),0) failed FROM teacher_calls GROUP BY prompt_id ORDER BY prompt_id"
        )
        return [
            PromptCalls(
                prompt_id=r["prompt_id"],
                calls=int(r["n"]),
                cache_hits=int(r["hits"]),
                tokens_in=int(r["tin"]),
                tokens_out=int(r["tout"]),
                usd=float(r["usd"]),
                failed=int(r["failed"]),
            )
            for r in rows
        ]
