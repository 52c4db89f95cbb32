"""The HTML strategy export, rendered by a real headless Chromium: every strategy is a table row, and a
strategy text with markup in it (teacher output is untrusted) shows as text and never runs."""

from __future__ import annotations

import html.parser
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli_strategies import strategies_app
from agent.store import RunStore
from agent.strategies import StrategyLibrary

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# CI sets DISTILL_REQUIRE_BROWSER so a missing browser fails there instead of passing silently.
pytestmark = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("DISTILL_REQUIRE_BROWSER"),
    reason="needs Debian's chromium (apt-get install chromium; .ci/run installs it)",
)
HOSTILE = "<script>document.title='pwned'</script><b>Ask</b> for the order ID & confirm it."
# Markup in the other teacher-written fields: an image whose error handler would retitle the page, and a
# javascript: link that clicking would run.
HOSTILE_CRITERION = "<img src=x onerror=\"document.title='img-pwned'\">asks_order_id"
HOSTILE_EFFECT = "<a href=\"javascript:document.title='link-pwned'\">0.2</a>"


class _Cells(html.parser.HTMLParser):
    """Rows of text cells and the title, from the DOM Chromium serialised after running the page."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.title = ""
        self.scripts = 0
        self.elements: set[str] = set()
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.add(tag)
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "title"):
            self._in = tag
            if tag == "td":
                self.rows[-1].append("")
        elif tag == "script":
            self.scripts += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == self._in:
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "td":
            self.rows[-1][-1] += data
        elif self._in == "title":
            self.title += data


def render(page: Path, tmp_path: Path) -> str:
    assert CHROMIUM is not None, "chromium is not on PATH: apt-get install chromium"
    done = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_exported_library_renders_every_strategy_as_inert_text(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    library = StrategyLibrary(RunStore(run_dir / "run.sqlite"))
    hostile = library.propose(
        "refund", HOSTILE, criterion=HOSTILE_CRITERION, evidence={"score_before": 0.25, "score_after": 0.75}
    )
    library.transition(hostile.id, "approve")
    library.add_evidence(hostile.id, {"heldout_effect": HOSTILE_EFFECT})
    rejected = library.propose("account", "Promise a refund at once.")
    library.transition(rejected.id, "reject")
    edited = library.propose("shipping", "Give the tracking link.")
    library.edit(edited.id, "Give the tracking link and the carrier's name.")

    page = tmp_path / "library.html"
    exported = CliRunner().invoke(strategies_app, ["export", str(run_dir), "--format", "html", "--out", str(page)])
    assert exported.exit_code == 0, exported.output

    dom = _Cells()
    dom.feed(render(page, tmp_path))
    assert dom.title == f"Strategy library v{library.version}", "a script in a strategy text ran"
    assert dom.scripts == 0
    # Only the page's own structure: no element came out of a strategy (no <b>, <img>, <a>).
    assert dom.elements == {"html", "head", "meta", "title", "style", "body", "h1", "table", "tbody", "tr", "th", "td"}
    body = [row for row in dom.rows if row]  # the header row has <th> cells only
    by_id = {row[0]: row for row in body}
    assert set(by_id) == {hostile.id, rejected.id, edited.id}
    assert by_id[hostile.id][2] == "approved" and by_id[hostile.id][7] == " ".join(HOSTILE.split())
    assert by_id[hostile.id][4] == HOSTILE_CRITERION and by_id[hostile.id][6] == HOSTILE_EFFECT
    assert by_id[hostile.id][5] == "0.25→0.75"
    assert by_id[rejected.id][2] == "rejected"
    assert by_id[edited.id][1] == "2" and by_id[edited.id][7] == "Give the tracking link and the carrier's name."
