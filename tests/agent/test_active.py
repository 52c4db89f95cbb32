"""Active learning's pure parts: margins, the uncertainty order, candidate pools, reading the pool file."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from agent.active import (
    DIVERSITY_POOL,
    candidates,
    diverse_subset,
    k_center,
    margins,
    read_unlabeled,
    select_by_margin,
    select_margin_diversity,
    uncertain_pool,
)
from agent.store import content_hash


def test_margin_is_top1_minus_top2() -> None:
    p = np.array([[0.9, 0.05, 0.05], [0.4, 0.35, 0.25], [0.5, 0.5, 0.0], [0.2, 0.7, 0.1]])
    assert np.allclose(margins(p), [0.85, 0.05, 0.0, 0.5])


def test_selection_takes_the_most_uncertain_text_of_each_predicted_class_in_turn() -> None:
    p = np.array(
        [
            [0.50, 0.45, 0.05],  # 0: class 0, margin 0.05
            [0.48, 0.47, 0.05],  # 1: class 0, margin 0.01  (most uncertain overall)
            [0.49, 0.46, 0.05],  # 2: class 0, margin 0.03
            [0.10, 0.60, 0.30],  # 3: class 1, margin 0.30
            [0.05, 0.15, 0.80],  # 4: class 2, margin 0.65
            [0.90, 0.05, 0.05],  # 5: class 0, margin 0.85
        ]
    )
    assert select_by_margin(p, 1) == [1]
    # pass 1: class 0 (margin 0.01) → 1, class 1 → 3, class 2 → 4; pass 2: class 0 → 2, then 0, then 5
    assert select_by_margin(p, 4) == [1, 3, 4, 2]
    assert select_by_margin(p, 99) == [1, 3, 4, 2, 0, 5]


def test_candidates_skip_texts_already_in_the_run_and_respect_the_cap() -> None:
    pool = [f"text {i}" for i in range(50)]
    used = {content_hash("TEXT 3"), content_hash("text 7 ")}  # the run's hash folds case and spaces
    fresh = candidates(pool, used, cap=100, rng=random.Random(0))
    assert "text 3" not in fresh and "text 7" not in fresh and len(fresh) == 48
    capped = candidates(pool, used, cap=10, rng=random.Random(0))
    assert len(capped) == 10 and set(capped) <= set(fresh)
    assert capped == candidates(pool, used, cap=10, rng=random.Random(0)), "seeded"


def test_read_unlabeled_dedupes_and_names_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "pool.jsonl"
    path.write_text(
        '{"text": "Where is my card?"}\n\n{"text": "where is my  card?", "label": "x"}\n{"text": " "}\n'
        '{"text": "Exchange rate?"}\n'
    )
    assert read_unlabeled(path) == ["Where is my card?", "Exchange rate?"]
    path.write_text('{"text": "ok"}\n{"body": "no text key"}\n')
    with pytest.raises(ValueError, match=r"task.unlabeled: .* line 2 has no \"text\""):
        read_unlabeled(path)
    path.write_text('{"text": "ok"}\nnot json\n')
    with pytest.raises(ValueError, match="line 2 is not JSON"):
        read_unlabeled(path)


def test_k_center_takes_the_farthest_point_each_time() -> None:
    points = np.array([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0], [5.0, 0.0], [0.0, 4.0]])
    # From 0: the farthest is 2 (10 away); then 3 (5 from both chosen) before 4 (4 from 0); then 1.
    assert k_center(points, 5) == [0, 2, 3, 4, 1]
    assert k_center(points, 2, first=2) == [2, 4]  # from 2: 4 is √116 away, 0 only 10
    assert k_center(points, 0) == [] and k_center(points[:0], 3) == []


def test_k_center_never_repeats_a_point_among_duplicates() -> None:
    same = np.zeros((4, 3))
    assert k_center(same, 3) == [0, 1, 2]
    assert k_center(same, 9) == [0, 1, 2, 3]


def _blobs() -> np.ndarray:
    """Three tight groups of 5 with one point at each group's rim: centres (0,0), (10,0), (0,10)."""
    rows = []
    for cx, cy in ((0, 0), (10, 0), (0, 10)):
        rows += [[cx, cy], [cx + 0.1, cy], [cx - 0.1, cy], [cx, cy + 0.1], [cx + 1.5, cy - 1.5]]
    return np.array(rows, dtype=float)


def test_diverse_subset_takes_one_central_text_per_group() -> None:
    points = _blobs()
    # k-center alone spreads out but lands on edges: after 0, the rim point 9 (11.5, -1.5), then the
    # group-3 point farthest from both, 13 (0, 10.1).
    assert k_center(points, 3) == [0, 9, 13]
    # k-means from that start: one pick per group, the member nearest its group's mean (each mean is
    # pulled to (+0.3, −0.28) from the core by its rim point, so the nearest is the core's (+0.1, 0)).
    assert diverse_subset(points, 3) == [1, 6, 11]
    assert diverse_subset(points, 3) == diverse_subset(points.copy(), 3), "deterministic"
    assert diverse_subset(points, 99) == list(range(len(points)))


def test_margin_diversity_chooses_within_the_uncertain_pool_and_spreads() -> None:
    rng = np.random.default_rng(0)
    n = 200
    probabilities = rng.dirichlet([1.0, 1.0, 1.0], size=n)
    vectors = rng.normal(size=(n, 8))
    vectors[:, 0] += 50 * (np.arange(n) % 2)  # two far-apart halves of the pool (even / odd index)
    asked: list[list[int]] = []

    def vectors_of(rows: list[int]) -> np.ndarray:
        asked.append(rows)
        return vectors[rows]

    k = 10
    chosen = select_margin_diversity(probabilities, vectors_of, k)
    pool = uncertain_pool(probabilities, k)
    assert pool == select_by_margin(probabilities, DIVERSITY_POOL * k) and len(pool) == DIVERSITY_POOL * k
    assert asked == [pool], "only the uncertain pool is embedded"
    assert len(chosen) == k == len(set(chosen)) and set(chosen) <= set(pool)
    assert {i % 2 for i in chosen} == {0, 1}, "both far-apart halves are represented"
    assert chosen == select_margin_diversity(probabilities, lambda rows: vectors[rows], k), "deterministic"
    assert chosen != sorted(pool[:k]), "not simply the k smallest margins"
