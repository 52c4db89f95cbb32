"""markup: teacher- and user-written text renders as literal text in Markdown and HTML."""

from __future__ import annotations

import html
import re

import pytest
from markdown_it import MarkdownIt

from trainers.markup import html_text, md_cell, md_text

# A CommonMark renderer that, like GitHub and the Hub, passes raw HTML through and knows GFM tables.
RENDER = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"]).render

HOSTILE = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[click](javascript:alert(1))",
    "![x](javascript:alert(1))",
    "<javascript:alert(1)>",
    "*bold* _it_ `code` ~~gone~~ $x$",
    "# heading",
    "> quote",
    "- item",
    "+ item",
    "1. first",
    "2) second",
    "3.",
    "0.75 of it",
    "---",
    "    indented code",
    "a | b",
    "back\\slash\\",
    "&lt;script&gt; &amp; &#60;",
    "line one\nline two\r\n# not a heading\n- not a list",
]


def visible_text(rendered_html: str) -> str:
    """The text a reader sees: tags removed, entities decoded, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", rendered_html)).split())


@pytest.mark.parametrize("text", HOSTILE)
def test_md_text_renders_as_the_literal_text_in_one_paragraph(text: str) -> None:
    rendered = RENDER(md_text(text))
    assert rendered.startswith("<p>") and rendered.count("<p>") == 1, rendered
    assert re.findall(r"<(\w+)", rendered) == ["p"], rendered  # no tag but the paragraph itself
    assert visible_text(rendered) == " ".join(text.split())


@pytest.mark.parametrize("text", HOSTILE)
def test_md_cell_keeps_a_table_at_two_columns_and_the_text_literal(text: str) -> None:
    table = f"| name | value |\n| --- | --- |\n| {md_cell(text)} | tail |\n"
    rendered = RENDER(table)
    body = rendered.split("<tbody>")[1]
    assert body.count("<td>") == 2, rendered
    first_cell = body.split("<td>")[1].split("</td>")[0]
    assert "<" not in first_cell.replace("&lt;", "")
    assert visible_text(first_cell) == " ".join(text.split())


def test_exact_escapes() -> None:
    assert md_text("<script>alert(1)</script>") == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert md_text("<img src=x onerror=alert(1)>") == "&lt;img src=x onerror=alert(1)&gt;"
    assert md_text("[click](javascript:alert(1))") == "\\[click\\](javascript:alert(1))"
    assert md_cell("a | b") == "a \\| b"
    assert md_text("# title\nsecond line") == "\\# title second line"
    assert md_text("1. first") == "1\\. first" and md_text("7)") == "7\\)" and md_text("f(x)") == "f(x)"
    assert md_text("0.9123") == "0.9123" and md_text("-0.5") == "\\-0.5"
    assert md_text("  - item") == "\\- item"
    assert md_text("plain words, e.g. this-one.") == "plain words, e.g. this-one."
    assert md_text("") == ""


def test_no_newline_survives_in_a_cell() -> None:
    assert "\n" not in md_cell("a\nb\r\nc\u2028d") and md_cell("a\nb") == "a b"


def test_html_text_escapes_tags_and_both_quotes() -> None:
    assert html_text("<img src=x onerror=alert(1)>") == "&lt;img src=x onerror=alert(1)&gt;"
    assert html_text("\"a\" & 'b'") == "&quot;a&quot; &amp; &#x27;b&#x27;"
