"""The strategy library: plain-text rules a person can read, approve, edit, reject or retire.

Strategies live in the run store. Every change is an event (``strategy_events``); the library's
*version* is the number of events so far, and the library at version V is the replay of the first V
events, so any two versions can be diffed. An edit creates a new version of the strategy's text.

Audit state machine::

    proposed ──approve──▶ approved ──retire──▶ retired (final)
        │                    │
        └──reject──▶ rejected ◀──reject──┘      rejected ──approve──▶ approved

Deploy prompts take **approved** strategies only; learning may also use proposed ones (configurable).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from agent.store import RunStore, Strategy, StrategyEvent

__all__ = [
    "DEPLOY_STATUSES",
    "STATUSES",
    "TRANSITIONS",
    "AuditError",
    "Retriever",
    "Strategy",
    "StrategyLibrary",
    "scenario_blob",
]

STATUSES = ("proposed", "approved", "rejected", "retired")
TRANSITIONS: dict[str, dict[str, str]] = {
    # action → {from_status: to_status}
    "approve": {"proposed": "approved", "rejected": "approved"},
    "reject": {"proposed": "rejected", "approved": "rejected"},
    "retire": {"approved": "retired"},
}
DEPLOY_STATUSES = frozenset({"approved"})


class AuditError(ValueError):
    """An audit action that the state machine does not allow, or an unknown strategy."""


class StrategyLibrary:
    """Typed access to the strategies of one run, with the audit rules enforced."""

    def __init__(self, store: RunStore) -> None:
        self.store = store

    # -- reading --------------------------------------------------------------------------------

    def get(self, strategy_id: str) -> Strategy:
        strategy = self.store.latest_strategy(strategy_id)
        if strategy is None:
            raise AuditError(f"no strategy {strategy_id!r} — see `distill strategies list RUN_DIR`")
        return strategy

    def history(self, strategy_id: str) -> list[Strategy]:
        return self.store.strategy_history(strategy_id)

    def current(self, statuses: Iterable[str] | None = None) -> list[Strategy]:
        """The latest version of every strategy, optionally filtered by status."""
        wanted = set(statuses) if statuses is not None else None
        return [s for s in self.store.current_strategies() if wanted is None or s.status in wanted]

    @property
    def version(self) -> int:
        return self.store.library_version()

    def snapshot(self, version: int) -> dict[str, dict[str, Any]]:
        """The library after the first ``version`` events: id → {version, status, text}."""
        if not 0 <= version <= self.version:
            raise AuditError(f"library version {version} does not exist (0…{self.version})")
        state: dict[str, dict[str, Any]] = {}
        for event in self.store.strategy_events(up_to=version):
            state[event.strategy_id] = {"version": event.version, "status": event.to_status, "text": event.text}
        return state

    def diff(self, old: int, new: int) -> list[dict[str, Any]]:
        """Changes from library version ``old`` to ``new``: added, removed, status and text changes."""
        before, after = self.snapshot(old), self.snapshot(new)
        changes: list[dict[str, Any]] = []
        for sid in sorted(before.keys() | after.keys()):
            a, b = before.get(sid), after.get(sid)
            if a is None and b is not None:
                changes.append({"id": sid, "change": "added", "to": b})
            elif b is None and a is not None:
                changes.append({"id": sid, "change": "removed", "from": a})
            elif a != b:
                changes.append({"id": sid, "change": "changed", "from": a, "to": b})
        return changes

    def events(self, strategy_id: str) -> list[StrategyEvent]:
        return self.store.strategy_events(strategy_id=strategy_id)

    # -- writing --------------------------------------------------------------------------------

    def propose(
        self,
        scope: str,
        text: str,
        *,
        criterion: str | None = None,
        round: int | None = None,
        teacher_call_id: int | None = None,
        provenance: dict[str, Any] | None = None,
        evidence: dict[str, Any] | None = None,
        status: str = "proposed",
    ) -> Strategy:
        """Add a new strategy (version 1)."""
        text = " ".join(text.split())
        if not text:
            raise AuditError("a strategy needs non-empty text")
        if status not in STATUSES:
            raise AuditError(f"unknown status {status!r}; one of {STATUSES}")
        strategy = Strategy(
            f"s-{uuid.uuid4().hex[:8]}", 1, scope, criterion, text, status, round, provenance or {}, evidence or {}
        )
        self.store.add_strategy_version(
            strategy, action="propose", from_status=None, note=None, teacher_call_id=teacher_call_id
        )
        return strategy

    def transition(self, strategy_id: str, action: str, note: str | None = None) -> Strategy:
        """approve / reject / retire, as the state machine allows."""
        if action not in TRANSITIONS:
            raise AuditError(f"unknown action {action!r}; one of {sorted(TRANSITIONS)}")
        current = self.get(strategy_id)
        target = TRANSITIONS[action].get(current.status)
        if target is None:
            allowed = ", ".join(sorted(TRANSITIONS[action]))
            raise AuditError(
                f"cannot {action} {strategy_id}: it is {current.status}; {action} applies to {allowed} strategies"
            )
        self.store.set_strategy_status(current, target, action=action, note=note)
        return self.get(strategy_id)

    def edit(self, strategy_id: str, text: str, note: str | None = None) -> Strategy:
        """A new version with new text; it keeps the status (a reviewer's edit is a reviewer's act)."""
        current = self.get(strategy_id)
        if current.status == "retired":
            raise AuditError(f"cannot edit {strategy_id}: it is retired")
        text = " ".join(text.split())
        if not text:
            raise AuditError("--text must not be empty")
        new = Strategy(
            current.id,
            current.version + 1,
            current.scope,
            current.criterion,
            text,
            current.status,
            current.round,
            current.provenance,
            {**current.evidence, "edited_from_version": current.version},
        )
        self.store.add_strategy_version(new, action="edit", from_status=current.status, note=note, teacher_call_id=None)
        return new

    def add_evidence(self, strategy_id: str, evidence: dict[str, Any]) -> None:
        current = self.get(strategy_id)
        self.store.set_strategy_evidence(strategy_id, current.version, {**current.evidence, **evidence})

    def add_scenario(self, strategy_id: str, scenario_id: str) -> None:
        """Another scenario where this strategy was called for: more evidence, better retrieval coverage."""
        current = self.get(strategy_id)
        scenarios = [*current.provenance.get("scenarios", []), scenario_id]
        self.store.set_strategy_provenance(strategy_id, current.version, {**current.provenance, "scenarios": scenarios})


# -- retrieval -------------------------------------------------------------------------------------


def _to_blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()


def _from_blob(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=np.float32)


class Retriever:
    """Nearest learning scenarios → their strategies. Scenario embeddings come from the run store."""

    def __init__(self, store: RunStore, library: StrategyLibrary, embed: Callable[[list[str]], np.ndarray]) -> None:
        self.store = store
        self.library = library
        self.embed = embed

    def retrieve(self, message: str, statuses: Iterable[str], top_k: int) -> list[tuple[Strategy, float]]:
        """Up to ``top_k`` strategies with an allowed status, ranked by the similarity of the message to the
        scenarios they were learned on (their scope's nearest scenario)."""
        candidates = self.library.current(statuses)
        if not candidates or top_k <= 0:
            return []
        query = self.embed([message])[0]
        scenario_vectors = self._scenario_vectors()
        scored = []
        for strategy in candidates:
            ids = strategy.provenance.get("scenarios", [])
            sims = [float(query @ scenario_vectors[i]) for i in ids if i in scenario_vectors]
            scored.append((strategy, max(sims) if sims else -1.0))
        scored.sort(key=lambda pair: (-pair[1], pair[0].id))
        return scored[:top_k]

    def _scenario_vectors(self) -> dict[str, np.ndarray]:
        return {sid: _from_blob(blob) for sid, blob in self.store.scenario_embeddings().items()}


def scenario_blob(vector: np.ndarray) -> bytes:
    return _to_blob(vector)
