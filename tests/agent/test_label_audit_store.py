"""The label audit's store API: outcomes are recorded, applied to the examples, and the round marked, at once."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from agent.store import AUDIT_FILTER, AuditOutcome, NewLabelAudit, RoundStatus, RunStore


def _store_with_examples(tmp_path: Path) -> tuple[RunStore, list[int]]:
    store = RunStore(tmp_path / "run.sqlite")
    rows = [{"round": 0, "split": "train", "text": f"text {i}", "label": "a", "origin": "generated"} for i in range(3)]
    ids = store.add_examples(rows, mark_round=(0, RoundStatus.GENERATED))
    store.record_filter_decisions([(i, "dedup", True, "unique", None) for i in ids], mark_round=(0, "filtered"))
    return store, ids


def _audit(example_id: int, outcome: AuditOutcome, opinion: str | None, reason: str) -> NewLabelAudit:
    return NewLabelAudit(example_id, "a", "b", opinion, outcome, reason, 0.9, None)


def test_audits_are_stored_applied_and_mark_the_round(tmp_path: Path) -> None:
    store, (kept, relabelled, dropped) = _store_with_examples(tmp_path)
    store.record_label_audits(
        0,
        [
            _audit(kept, AuditOutcome.KEPT, "a", "second opinion agrees with the given label"),
            _audit(relabelled, AuditOutcome.RELABELLED, "b", "second opinion: b"),
            _audit(dropped, AuditOutcome.DROPPED, "c", "ambiguous: c"),
        ],
    )
    assert store.round_status(0) == RoundStatus.AUDITED
    by_id = {e.id: e for e in store.examples("train")}
    assert [(by_id[i].label, by_id[i].kept) for i in (kept, relabelled, dropped)] == [
        ("a", True),
        ("b", True),
        ("a", False),
    ]
    audits = store.label_audits(0)
    assert [(a.example_id, a.given_label, a.second_opinion, a.outcome) for a in audits] == [
        (kept, "a", "a", "kept"),
        (relabelled, "a", "b", "relabelled"),
        (dropped, "a", "c", "dropped"),
    ]
    assert store.label_audits(1) == [] and store.label_audits() == audits
    assert store.audited_example_ids() == {kept, relabelled, dropped}
    assert store.audit_counts(0) == {AuditOutcome.KEPT: 1, AuditOutcome.RELABELLED: 1, AuditOutcome.DROPPED: 1}
    assert store.audit_counts(1) == dict.fromkeys(AuditOutcome, 0)
    assert store.drop_counts(0) == {AUDIT_FILTER: 1}


def test_a_failed_audit_write_leaves_nothing(tmp_path: Path) -> None:
    store, (first, *_) = _store_with_examples(tmp_path)
    with pytest.raises(sqlite3.IntegrityError):  # the second audit names a missing example
        store.record_label_audits(
            0,
            [
                _audit(first, AuditOutcome.RELABELLED, "b", "second opinion: b"),
                _audit(999, AuditOutcome.KEPT, "a", "agrees"),
            ],
        )
    assert store.round_status(0) == RoundStatus.FILTERED
    assert store.label_audits() == [] and store.examples("train")[0].label == "a"


def test_a_trained_round_of_an_old_run_counts_as_audited(tmp_path: Path) -> None:
    store, _ = _store_with_examples(tmp_path)
    store.set_round_status(0, RoundStatus.TRAINED)  # a run from before the audit: filtered → trained
    assert store.round_reached(0, RoundStatus.AUDITED)
    assert RoundStatus.FILTERED.rank < RoundStatus.AUDITED.rank < RoundStatus.TRAINED.rank
