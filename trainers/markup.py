"""Escaping for text a teacher or a user wrote, before it goes into Markdown or HTML we render.

One definition, so every report, model card and export escapes the same way. The Markdown escapes
target CommonMark/GFM (GitHub, the Hugging Face Hub, markdown-it): ``<``, ``>`` and ``&`` become
entities (understood by every Markdown renderer, unlike ``\\<``), every other character with inline
meaning gets a backslash, and the characters that only mean something at the start of a line are
escaped there. Whitespace runs, newlines included, become one space: a line break would end a table
row or start a block (a list, a heading, a code block) inside a sentence, and a rendered paragraph
collapses whitespace anyway. ``<br>`` is not used because it is raw HTML, which sanitising renderers
drop and plain-text views show as noise.
"""

from __future__ import annotations

import html
import re

# Characters with inline meaning anywhere in a line: escapes, emphasis, code, link and image brackets
# (with "[" and "]" escaped no "(url)" can attach to anything, so parentheses stay as written),
# strikethrough, math (GitHub renders $...$), table cells, and braces for attribute syntaxes.
_INLINE = re.compile(r"([\\`*_\[\]~$|{}])")
# A line that starts with one of these is a heading, list item, rule or setext underline (a leading
# ">" needs nothing more: it is already the entity, which does not open a block quote).
_LINE_START = re.compile(r"^([#+\-=])")
# "1. " or "1)" at the start of a line opens an ordered list ("0.5" does not, and stays as written).
_ORDERED = re.compile(r"^(\d{1,9})([.)])(?=\s|$)")
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def md_text(text: str) -> str:
    """``text`` as literal Markdown inline text: no tag, link, emphasis or block syntax survives."""
    flat = " ".join(str(text).split())
    escaped = _INLINE.sub(r"\\\1", flat)
    escaped = "".join(_ENTITIES.get(char, char) for char in escaped)
    escaped = _ORDERED.sub(r"\1\\\2", escaped)
    return _LINE_START.sub(r"\\\1", escaped)


def md_cell(text: str) -> str:
    """``text`` as one Markdown table cell: literal text on one line, ``|`` cannot split the cell.

    md_text already escapes ``|`` (so it is safe anywhere); this name says at the call site that the
    text goes into a table, and stays the one place to change if cells ever need more.
    """
    return md_text(text)


def html_text(text: str) -> str:
    """``text`` for HTML element content or a quoted attribute value."""
    return html.escape(str(text), quote=True)
