"""Active learning's pure parts: margins, the uncertainty order, candidate pools, reading the pool file."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from agent.active import candidates, margins, read_unlabeled, select_by_margin
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
