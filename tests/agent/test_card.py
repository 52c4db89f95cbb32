"""The model card of a run, from a real run store and the best round's stored evaluations: data counted
up to the best round, bootstrap intervals from the stored per-item predictions, measured caveats, Hub
metadata, and nothing of this machine (paths, endpoint, key) in the card or the README."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from huggingface_hub import ModelCard
from markdown_it import MarkdownIt

from agent.classify.card import model_card, run_notes
from agent.classify.context import RunContext
from agent.runtime import open_teacher
from agent.spec import RunSpec, parse_spec
from agent.store import RunStore
from agent.strategies import StrategyLibrary
from generators.journal import CallRecord
from trainers.bootstrap import bootstrap_intervals
from trainers.evaluate import evaluate
from trainers.model_card import card_metadata, render_model_card

SECRET = "sk-live-CARD-MUST-NEVER-SHOW-0123456789"
BASE_URL = "https://gateway.internal.example:8443/v1"
SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
LINK = "[click](javascript:alert(1))"
PIPE = "a | b"
HOSTILE = f"{SCRIPT} {IMG} {LINK} {PIPE}"
LABELS = [SCRIPT, "lost_card", PIPE]
RENDER = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"]).render
ALLOWED_TAGS = {"h1", "h2", "p", "ul", "li", "strong", "em", "table", "thead", "tbody", "tr", "th", "td", "pre", "code"}
BEST = 1


def spec_data(base_model: Path) -> dict[str, Any]:
    return {
        "name": "bank-intents",
        "task": {
            "description": f"Messages to a bank. {HOSTILE}\n## not a heading",
            "labels": [
                {"name": SCRIPT, "description": HOSTILE},
                {"name": "lost_card", "description": f"{LINK}\n| x | y |"},
                {"name": PIPE, "description": IMG},
            ],
        },
        "teacher": {
            "provider": "openai",
            "model": "gpt-4o-mini",
            "base_url": BASE_URL,
            "api_key_env": "DISTILL_CARD_KEY",
            "price_input_per_mtok": 0.15,
        },
        "student": {"base_model": str(base_model), "seed": 7},
        "card": {"license": "apache-2.0", "tags": ["banking", HOSTILE]},
    }


def base_folder(path: Path, name_or_path: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps({"model_type": "bert", "_name_or_path": name_or_path}))
    return path


def add(
    store: RunStore, round: int, origin: str, labels: list[str], split: str = "train", kept: bool | None = None
) -> list[int]:
    rows = [
        {
            "round": round,
            "split": split,
            "text": f"{split} {origin} r{round} #{i} {HOSTILE}",
            "label": label,
            "origin": origin,
            "kept": kept,
        }
        for i, label in enumerate(labels)
    ]
    return store.add_examples(rows)


def predictions(n: int, wrong: int) -> tuple[list[str], np.ndarray]:
    """``n`` items cycling through the labels, the first ``wrong`` predicted as the next label."""
    gold = [LABELS[i % 3] for i in range(n)]
    predicted = [LABELS[(i + 1) % 3] if i < wrong else LABELS[i % 3] for i in range(n)]
    proba = np.array([[0.8 if label == p else 0.1 for label in LABELS] for p in predicted])
    return gold, proba


def fill_store(store: RunStore, run_dir: Path, *, heldback_origin: str = "real", with_test: bool = True) -> None:
    add(store, 0, "real", [*LABELS, "lost_card"], kept=True)
    generated = add(store, 0, "generated", LABELS * 2)
    store.record_filter_decisions([(e, "exact_duplicate", e != generated[0], "dup", None) for e in generated])
    later = add(store, 1, "generated", [*LABELS, "lost_card"]) + add(store, 1, "active", ["lost_card", PIPE])
    store.record_filter_decisions([(e, "leakage", e != later[0], "near a test item", 0.99) for e in later])
    after_best = add(store, 2, "generated", LABELS)  # round 2 came after the best round: not in its model
    store.record_filter_decisions([(e, "validity", True, "ok", None) for e in after_best])
    splits = {"heldback": predictions(20, 2), **({"test": predictions(40, 10)} if with_test else {})}
    out = run_dir / "models" / f"round-{BEST:02d}"
    out.mkdir(parents=True)
    for split, (gold, proba) in splits.items():
        add(store, 0, heldback_origin if split == "heldback" else "real", gold, split=split, kept=True)
        data = evaluate(gold, proba, LABELS).to_dict()
        (out / f"eval_{split}.json").write_text(json.dumps(data))
        store.record_metrics(BEST, split, [(m, None, data[m]) for m in ("accuracy", "macro_f1", "ece")])
    for hit in (False, False, True):
        store.record_call(
            CallRecord(
                "pgkd_generate", 1, f"h{hit}", 0, "gpt-4o-mini", 1000, 500, 0.0 if hit else 0.0123, 1.0, 1, hit, "ok"
            )
        )
    StrategyLibrary(store).propose(f"pair:{SCRIPT}|{PIPE}", f"Pick {PIPE} when {LINK}\n- not a list", round=1)


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunContext]:
    monkeypatch.setenv("DISTILL_CARD_KEY", SECRET)
    base = base_folder(tmp_path / "encoders" / "my-encoder", str(tmp_path / "somewhere" / "else"))
    with context(tmp_path, parse_spec(spec_data(base), tmp_path)) as ctx:
        yield ctx


@contextmanager
def context(tmp_path: Path, spec: RunSpec, **fill: Any) -> Iterator[RunContext]:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    store = RunStore(run_dir / "run.sqlite")
    fill_store(store, run_dir, **fill)
    try:
        with open_teacher(spec, store, run_dir / "cache.sqlite") as teacher:
            yield RunContext(spec, run_dir, store, teacher, embed=None)
    finally:
        store.close()


def test_data_is_counted_up_to_the_best_round(run: RunContext) -> None:
    card = model_card(run, BEST)
    assert card["training_examples_by_origin"] == {"active": 2, "generated": 8, "real": 4}
    assert card["train_examples"] == 14 and card["best_round"] == BEST
    assert card["dropped_by_filter"] == {"exact_duplicate": 1, "leakage": 1}
    assert card["data_by_round"] == [
        {
            "round": 0,
            "stored": 10,
            "kept": 9,
            "kept_by_origin": {"generated": 5, "real": 4},
            "dropped": 1,
            "dropped_by_filter": {"exact_duplicate": 1},
        },
        {
            "round": 1,
            "stored": 6,
            "kept": 5,
            "kept_by_origin": {"active": 2, "generated": 3},
            "dropped": 1,
            "dropped_by_filter": {"leakage": 1},
        },
    ]
    assert card["label_descriptions"][SCRIPT] == HOSTILE and card["labels"] == LABELS
    (guideline,) = card["labeling_guidelines"]  # a label with "|" in it stays one label of the pair
    assert guideline["labels"] == [SCRIPT, PIPE] and guideline["status"] == "proposed"
    assert card["teacher"] == {"provider": "openai", "model": "gpt-4o-mini"}
    assert card["teacher_usage"]["calls"] == 3 and card["teacher_usage"]["cache_hits"] == 1
    assert card["teacher_usage"]["cost_usd"] == pytest.approx(0.0246)


def test_intervals_come_from_the_stored_predictions(run: RunContext) -> None:
    card = model_card(run, BEST)
    test = card["confidence_intervals"]["test"]
    assert test["accuracy"]["estimate"] == pytest.approx(0.75) == pytest.approx(card["metrics"]["test"]["accuracy"])
    assert test["macro_f1"]["estimate"] == pytest.approx(card["metrics"]["test"]["macro_f1"])
    gold, proba = predictions(40, 10)
    expected = bootstrap_intervals(gold, [LABELS[i] for i in proba.argmax(axis=1)], seed=7)  # the spec's seed
    assert test == {name: interval.to_dict() for name, interval in expected.items()}
    for interval in (*test.values(), *card["confidence_intervals"]["heldback"].values()):
        assert interval["low"] <= interval["estimate"] <= interval["high"] and interval["resamples"] == 1000
    assert card["confidence_intervals"]["heldback"]["accuracy"]["estimate"] == pytest.approx(0.9)
    readme = render_model_card(card, run.labels, run.spec.student.model_dump(mode="json"))
    low, high = test["accuracy"]["low"], test["accuracy"]["high"]
    assert f"| test (reported only) | 40 | 0.7500 ({low:.4f}–{high:.4f}) |" in readme


def test_limitations_state_the_gap_and_the_synthetic_share(run: RunContext) -> None:
    card = model_card(run, BEST)
    heldback, test = card["metrics"]["heldback"]["macro_f1"], card["metrics"]["test"]["macro_f1"]
    gap, share = card["limitations"]
    assert f"{heldback:.3f}" in gap and f"{test:.3f}" in gap and f"{heldback - test:+.3f}" in gap
    assert "57.1% of the 14 training examples were written by the teacher" in share
    assert "14.3% are real texts labeled by the teacher and 28.6% are your own" in share
    assert card["notes"] == [] and run_notes(run.store) == []
    section = render_model_card(card, run.labels, {}).split("## Limitations")[1].split("\n## ")[0]
    assert "gap of" in section and "57.1%" in section


def test_teacher_labeled_validation_and_missing_test_are_caveats(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISTILL_CARD_KEY", SECRET)
    spec = parse_spec(spec_data(base_folder(tmp_path / "enc", "x")), tmp_path)
    with context(tmp_path, spec, heldback_origin="generated", with_test=False) as ctx:
        card = model_card(ctx, BEST)
    assert any("teacher-labeled" in note for note in card["notes"]) and any("no test set" in n for n in card["notes"])
    assert "test" not in card["confidence_intervals"] and len(card["limitations"]) == 1  # no gap without a test
    readme = render_model_card(card, ctx.labels, {})
    assert "measure agreement with the teacher" in readme
    assert all(r["dataset"]["split"] == "validation" for r in front_matter(readme)["model-index"][0]["results"])


def front_matter(readme: str) -> dict[str, Any]:
    match = re.match(r"---\n(.*?)\n---\n", readme, flags=re.S)
    assert match
    data = yaml.safe_load(match.group(1))
    assert isinstance(data, dict)
    return data


def test_readme_metadata_and_no_secret_or_local_path(run: RunContext, tmp_path: Path) -> None:
    card = model_card(run, BEST)
    readme = render_model_card(card, run.labels, run.spec.student.model_dump(mode="json"))
    data = front_matter(readme)
    assert data == card_metadata(card).to_dict() == ModelCard(readme).data.to_dict()
    assert data["license"] == "apache-2.0" and data["language"] == ["en"]
    assert data["pipeline_tag"] == "text-classification" and data["library_name"] == "sentence-transformers"
    assert data["tags"][:4] == ["distill", "distillation", "text-classification", "gpt-4o-mini"]
    assert "banking" in data["tags"] and " ".join(HOSTILE.split()) in data["tags"]
    assert "base_model" not in data  # a local folder whose config names a path: no Hub id to claim
    assert "my-encoder" in readme
    stored = json.dumps(card)
    for leak in (SECRET, BASE_URL, "gateway.internal", "DISTILL_CARD_KEY", str(tmp_path)):
        assert leak not in readme and leak not in stored, leak


def test_base_model_from_the_folder_config_hub_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISTILL_CARD_KEY", SECRET)
    base = base_folder(tmp_path / "encoders" / "e5", "intfloat/e5-small-v2")
    with context(tmp_path, parse_spec(spec_data(base), tmp_path)) as ctx:
        card = model_card(ctx, BEST)
    readme = render_model_card(card, ctx.labels, ctx.spec.student.model_dump(mode="json"))
    assert card["base_model"] == "intfloat/e5-small-v2" and front_matter(readme)["base_model"] == "intfloat/e5-small-v2"
    assert str(tmp_path) not in readme


def test_run_text_renders_as_text(run: RunContext) -> None:
    card = model_card(run, BEST)
    text = ModelCard(render_model_card(card, run.labels, run.spec.student.model_dump(mode="json"))).text
    rendered = RENDER(text)
    assert set(re.findall(r"<([a-zA-Z][\w-]*)", rendered)) <= ALLOWED_TAGS
    assert "<script" not in text and "<img" not in text and "href" not in rendered
    assert not re.search(r"(?<!\\)\]\(javascript:", text)
    visible = html.unescape(re.sub(r"<[^>]+>", " ", rendered))
    for planted in (
        SCRIPT,
        IMG,
        LINK,
        "Messages to a bank.",
        "## not a heading",
        f"Pick {PIPE} when {LINK} - not a list",
    ):
        assert planted in visible
    assert rendered.count("<h1>") == 1
    for table in re.findall(r"<table>.*?</table>", rendered, flags=re.S):
        widths = {len(re.findall(r"<t[hd]>", row)) for row in re.findall(r"<tr>.*?</tr>", table, flags=re.S)}
        assert len(widths) == 1, table
