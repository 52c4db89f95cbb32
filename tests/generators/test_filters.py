"""Filters: every candidate gets a verdict; each drop names its filter and reason."""

from __future__ import annotations

import zlib

import numpy as np

from generators.filters import Candidate, FilterConfig, filter_batch

CONFIG = FilterConfig(
    labels=frozenset({"a", "b"}), min_chars=3, max_chars=40, near_duplicate_threshold=0.9, leakage_threshold=0.9
)


def bag_of_words(texts: list[str]) -> np.ndarray:
    """A deterministic stand-in embedding for pure-logic tests: normalised hashed word counts."""
    out = np.zeros((len(texts), 256))
    for i, text in enumerate(texts):
        for word in text.lower().split():
            out[i, zlib.crc32(word.encode()) % 256] += 1
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms == 0, 1, norms)


def test_each_filter_and_its_reason() -> None:
    cands = [
        Candidate(1, "where is my new card", "a"),
        Candidate(2, "where is my new card", "a"),
        Candidate(3, "a label nobody knows", "zzz"),
        Candidate(4, "hi", "a"),
        Candidate(5, "x" * 41, "b"),
        Candidate(6, "I'm sorry, but I can't help with that.", "b"),
        Candidate(7, "What is the VALIDATION text?", "b"),
        Candidate(8, "fresh text about b", "b"),
        Candidate(9, "already in train", "a"),
    ]
    verdicts = filter_batch(
        cands,
        train_texts=["Already in TRAIN"],
        protected_texts=["what is the validation text?"],
        config=CONFIG,
        embed=None,
    )
    by_id = {v.example_id: v for v in verdicts}
    assert [by_id[i].filter for i in range(1, 10)] == [
        "all",
        "exact_duplicate",
        "unknown_label",
        "length",
        "length",
        "refusal",
        "leakage",
        "all",
        "exact_duplicate",
    ]
    assert by_id[1].kept and by_id[8].kept and not any(by_id[i].kept for i in (2, 3, 4, 5, 6, 7, 9))
    assert "not in the taxonomy" in by_id[3].reason


def test_near_duplicates_and_near_leaks_use_the_embedding() -> None:
    cands = [
        Candidate(1, "my card has not arrived yet", "a"),
        Candidate(2, "my card has not arrived yet !", "a"),
        Candidate(3, "how long does a transfer take please", "b"),
        Candidate(4, "something else entirely", "b"),
    ]
    verdicts = filter_batch(
        cands,
        train_texts=[],
        protected_texts=["how long does a transfer take please ?"],
        config=CONFIG,
        embed=bag_of_words,
    )
    by_id = {v.example_id: v for v in verdicts}
    assert by_id[1].kept and by_id[4].kept
    assert by_id[2].filter == "near_duplicate" and by_id[2].score and by_id[2].score >= 0.9
    assert by_id[3].filter == "leakage" and "near-equal" in by_id[3].reason
