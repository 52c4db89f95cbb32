"""The simulator as the teacher of a task with out_of_scope: the pool has more labels than the task.

The tiny pool holds three Banking77 intents; the task here has two of them in scope, so the third
(exchange_rate) is what out of scope means, over real loopback HTTP.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from generators.brief import BRIEF_FIELD
from generators.generation import OUT_OF_SCOPE
from simulator import SimulatorServer
from simulator.pool import PoolIndex, load_pool

POOL_PATH = Path(__file__).resolve().parents[1] / "fixtures" / "tiny_pool.jsonl"
POOL = load_pool(POOL_PATH)
IN_SCOPE = ["card_arrival", "lost_or_stolen_card"]
OUTSIDE = "exchange_rate"
MESSAGES = [{"role": "user", "content": "Write or label the texts described in the request."}]


def answer(server: SimulatorServer, brief: dict[str, Any]) -> dict[str, Any]:
    body = {"model": "sim-teacher", "messages": MESSAGES, BRIEF_FIELD: brief}
    response = httpx.post(server.base_url + "/chat/completions", json=body, timeout=10, trust_env=False)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = json.loads(response.json()["choices"][0]["message"]["content"])
    return result


def texts_of(label: str) -> list[str]:
    return [item.text for item in POOL if item.label == label]


def test_label_answers_out_of_scope_for_texts_of_labels_outside_the_task(simulator: SimulatorServer) -> None:
    texts = [
        texts_of(OUTSIDE)[0],
        texts_of("card_arrival")[0],
        texts_of(OUTSIDE)[1],
        texts_of("lost_or_stolen_card")[0],
    ]
    brief = {"action": "label", "labels": [*IN_SCOPE, OUT_OF_SCOPE], "texts": texts}
    labels = [a["label"] for a in answer(simulator, brief)["labels"]]
    assert labels == [OUT_OF_SCOPE, "card_arrival", OUT_OF_SCOPE, "lost_or_stolen_card"]


def test_label_answers_out_of_scope_for_a_new_text_nearest_an_outside_label(simulator: SimulatorServer) -> None:
    near = texts_of(OUTSIDE)[2] + " Thanks a lot!!"  # not in the pool: answered by its nearest pool item
    brief = {"action": "label", "labels": [*IN_SCOPE, OUT_OF_SCOPE], "texts": [near]}
    assert answer(simulator, brief)["labels"] == [{"index": 0, "label": OUT_OF_SCOPE}]
    # Without the outcome in the brief, the teacher must pick one of the task's labels (as before).
    plain = answer(simulator, {"action": "label", "labels": IN_SCOPE, "texts": [near]})["labels"]
    assert plain[0]["label"] in IN_SCOPE


def test_generate_out_of_scope_serves_pool_items_of_labels_outside_the_brief(simulator: SimulatorServer) -> None:
    brief = {"action": "generate", "label": OUT_OF_SCOPE, "n": 12, "labels": IN_SCOPE}
    examples = answer(simulator, brief)["examples"]
    assert len(examples) == 12 and {e["label"] for e in examples} == {OUT_OF_SCOPE}
    assert {e["text"] for e in examples} <= set(texts_of(OUTSIDE))  # near-domain: other banking intents
    # Served items are used up, as for any label: the next batch brings new texts.
    again = {e["text"] for e in answer(simulator, brief)["examples"]}
    assert again and not again & {e["text"] for e in examples}


def test_generate_out_of_scope_near_like_texts_and_none_when_nothing_is_outside(simulator: SimulatorServer) -> None:
    every = [*IN_SCOPE, OUTSIDE]
    brief = {"action": "generate", "label": OUT_OF_SCOPE, "n": 5, "labels": every}
    assert answer(simulator, brief)["examples"] == []  # the pool has nothing outside: fewer examples, no error
    like = texts_of(OUTSIDE)[:2]
    shown = {"action": "generate", "label": OUT_OF_SCOPE, "n": 3, "labels": IN_SCOPE, "like": like}
    served = [e["text"] for e in answer(simulator, shown)["examples"]]
    assert len(served) == 3 and set(served) <= set(texts_of(OUTSIDE)) - set(like)


def test_label_noise_sends_in_scope_texts_as_out_of_scope_and_outside_ones_as_their_confusable(
    make_simulator: Any,
) -> None:
    server = make_simulator(label_noise=1.0)
    generated = answer(server, {"action": "generate", "label": OUT_OF_SCOPE, "n": 6, "labels": IN_SCOPE})["examples"]
    assert len(generated) == 6 and {e["text"] for e in generated} <= set(texts_of("card_arrival")) | set(
        texts_of("lost_or_stolen_card")
    )
    confusable = PoolIndex(POOL).confusable[OUTSIDE]
    brief = {"action": "label", "labels": [*IN_SCOPE, OUT_OF_SCOPE], "texts": texts_of(OUTSIDE)[:3]}
    expected = confusable if confusable in IN_SCOPE else OUT_OF_SCOPE
    assert [a["label"] for a in answer(server, brief)["labels"]] == [expected] * 3
