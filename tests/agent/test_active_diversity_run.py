"""``active_selection: margin_diversity`` in a real run: the tiny student scores the pool, the run's embedder
places the uncertain texts, and the teacher (the simulator over HTTP) labels the chosen ones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.store import RunStore
from tests.run_helpers import FIXTURES, run_spec, served_simulator, write_spec


def test_margin_diversity_labels_a_spread_of_the_uncertain_texts(
    tmp_path: Path, tiny_model: str, make_simulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent.active import DIVERSITY_POOL, select_by_margin, select_margin_diversity
    from agent.store import content_hash
    from trainers.embeddings import SentenceEmbedder
    from trainers.encoder import EncoderClassifier

    monkeypatch.setenv("DISTILL_TEST_KEY", "k")
    monkeypatch.setenv("DISTILL_QUIET", "1")
    pool = [json.loads(line) for line in (FIXTURES / "pool.jsonl").read_text().splitlines()]
    gold = {r["text"]: r["label"] for r in pool}
    server = make_simulator(pool=FIXTURES / "pool.jsonl")
    spec_path = write_spec(
        tmp_path,
        tiny_model,
        served_simulator(server),
        max_rounds=1,
        examples_per_round=0,
        active_per_round=6,
        active_selection="margin_diversity",
        label_audit=False,
    )
    spec = yaml.safe_load(spec_path.read_text())
    (tmp_path / "unlabeled.jsonl").write_text("".join(json.dumps({"text": r["text"]}) + "\n" for r in pool))
    spec["task"]["unlabeled"] = "unlabeled.jsonl"
    spec_path.write_text(yaml.safe_dump(spec))
    run_dir, _ = run_spec(spec_path, tmp_path / "run")

    store = RunStore(run_dir / "run.sqlite")
    active = store.query("SELECT text, label FROM examples WHERE origin='active' AND round=1")
    assert len(active) == 6 and all(gold[r["text"]] == r["label"] for r in active)
    # Recompute the choice from the round-0 student and the run's embedder (the tiny encoder's vectors).
    before = {r[0] for r in store.query("SELECT content_hash FROM examples WHERE round < 1")}
    store.close()
    candidates = list(dict.fromkeys(t["text"] for t in pool if content_hash(t["text"]) not in before))
    probabilities = EncoderClassifier.load(run_dir / "models" / "round-00").predict_proba(candidates)
    embedder = SentenceEmbedder(tiny_model)
    expected = select_margin_diversity(probabilities, lambda rows: embedder([candidates[i] for i in rows]), 6)
    chosen = {r["text"] for r in active}
    assert chosen == {candidates[i] for i in expected}
    assert chosen <= {candidates[i] for i in select_by_margin(probabilities, DIVERSITY_POOL * 6)}
    assert chosen != {candidates[i] for i in select_by_margin(probabilities, 6)}, "not the plain margin batch"
