"""The model card renders user- and teacher-written text as literal text, with intact tables."""

from __future__ import annotations

import html
import re
from typing import Any

from markdown_it import MarkdownIt

from trainers.model_card import render_model_card

# Like GitHub and the Hub: raw HTML passes through, GFM tables.
RENDER = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"]).render

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
LINK = "[click](javascript:alert(1))"
PIPE = "a | b"
HOSTILE = f"{SCRIPT} {IMG} {LINK} {PIPE}"


def hostile_card() -> tuple[dict[str, Any], list[str], dict[str, Any]]:
    card = {
        "task": f"# {SCRIPT}\nname",
        "best_round": IMG,
        "method": LINK,
        "metrics": {f"val {PIPE}": {"macro_f1": 0.5, f"acc {PIPE}": 0.25}, "test": {"macro_f1": 0.75}},
        "training_examples_by_origin": {f"seed {PIPE}": 3, "generated": 4},
        "teacher": {"provider": IMG, "model": f"{LINK}\n| x | y |"},
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
        "notes": [HOSTILE, f"second\n\n<div>{IMG}</div>"],
        f"extra_{SCRIPT}": {"key": HOSTILE},
        "description": HOSTILE,
    }
    labels = [SCRIPT, IMG, PIPE, LINK, "`tick` *star*"]
    config = {"model": f"{LINK} {PIPE}", "lr": 2e-05, "notes": f"{IMG}\nline"}
    return card, labels, config


def tables(rendered: str) -> list[str]:
    return re.findall(r"<table>.*?</table>", rendered, flags=re.S)


def test_hostile_text_renders_as_text_not_markup() -> None:
    readme = render_model_card(*hostile_card())
    rendered = RENDER(readme)
    tags = set(re.findall(r"<([a-zA-Z][\w-]*)", rendered))
    assert tags <= {
        "h1",
        "h2",
        "p",
        "ul",
        "li",
        "strong",
        "em",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "pre",
        "code",
    }
    assert "<script" not in readme and "<img" not in readme and "<div" not in readme
    assert not re.search(r"(?<!\\)\]\(javascript:", readme)  # no link syntax survives unescaped
    assert "href" not in rendered and "onerror=" not in rendered.replace("onerror=alert", "")
    visible = html.unescape(re.sub(r"<[^>]+>", " ", rendered))
    for text in (SCRIPT, IMG, LINK):  # the reader still sees exactly what was written
        assert text in visible


def test_tables_keep_their_column_count() -> None:
    rendered = RENDER(render_model_card(*hostile_card()))
    found = tables(rendered)
    assert len(found) >= 4  # metrics, data by origin, teacher, config, the extra key
    for table in found:
        widths = {len(re.findall(r"<t[hd]>", row)) for row in re.findall(r"<tr>.*?</tr>", table, flags=re.S)}
        assert len(widths) == 1, table
    metrics = found[0]
    assert metrics.count("<th>") == 3 and "val a | b" in html.unescape(metrics)


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
    readme = render_model_card(card, ["spam", "ham"], {"lr": 0.0001, "model": "sentence-transformers/all-MiniLM-L6-v2"})
    assert readme.startswith("# toy-task — distill encoder student\n")
    assert "| seed | 24 |" in readme and "| total | 24 |" in readme and "0.9123" in readme
    assert "| model | sentence-transformers/all-MiniLM-L6-v2 |" in readme and "| lr | 0.0001 |" in readme
    assert "## Labels (2)\n\nspam, ham\n" in readme
    hostile = render_model_card({"task": f"# {SCRIPT}\nname"}, [], {})
    assert RENDER(hostile).count("<h1>") == 1
