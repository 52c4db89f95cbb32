"""The run report in a real headless Chromium, driven over the DevTools protocol (``--remote-debugging-pipe``,
no extra package): every section, table and image is in the live DOM, the page is not blank, it sends no
request, planted markup in example texts and guidelines stays text and runs nothing (no dialog, no
injected element), and the example browser's filters really filter."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.report.html import PAGE_ROWS, SECTIONS
from agent.store import RunStore
from tests.agent.test_report import HOSTILE_GUIDELINE, HOSTILE_TEXT, ReportedRun, reported_run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# CI sets DISTILL_REQUIRE_BROWSER so a missing browser fails there instead of passing silently.
pytestmark = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("DISTILL_REQUIRE_BROWSER"),
    reason="needs Debian's chromium (apt-get install chromium; .ci/run installs it)",
)
BROWSER_FLAGS = [
    *("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync", "--disable-quic"),
    *("--disable-background-networking", "--disable-component-update", "--window-size=1280,1000"),
    "--remote-debugging-pipe",
]


class DevTools:
    """One headless Chromium page over the DevTools protocol on a pipe (fds 3 and 4 of the browser)."""

    def __init__(self, profile: Path) -> None:
        assert CHROMIUM is not None, "chromium is not on PATH: apt-get install chromium"
        commands_in, self._to_browser = os.pipe()
        self._from_browser, replies_out = os.pipe()
        # The protocol's pipe is the browser's fds 3 (commands in) and 4 (replies out): bash moves ours
        # there before exec (no preexec_fn, which is unsafe in a process with threads).
        moves = f"3<&{commands_in} 4>&{replies_out} {commands_in}<&- {replies_out}>&-"
        self.process = subprocess.Popen(
            [
                "bash",
                "-c",
                f'exec "$0" "$@" {moves}',
                CHROMIUM,
                *BROWSER_FLAGS,
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            pass_fds=(commands_in, replies_out),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(commands_in)
        os.close(replies_out)
        self.events: list[dict[str, Any]] = []
        self._buffer = b""
        self._next_id = 0
        self.session = ""
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Network"):
            self.call(f"{domain}.enable")

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if self.session:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._next_id:
                assert "error" not in reply, reply
                return dict(reply["result"])
            self.events.append(reply)

    def _read(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            chunk = os.read(self._from_browser, 1 << 16)
            assert chunk, "chromium closed the DevTools pipe"
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message = dict(json.loads(raw))
        # A dialog would block the page (and this reader) until answered: a planted alert fails at once.
        assert message.get("method") != "Page.javascriptDialogOpening", f"the page opened a dialog: {message}"
        return message

    def load(self, page: Path) -> None:
        self.call("Page.navigate", url=page.as_uri())
        deadline = time.monotonic() + 60
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            assert time.monotonic() < deadline, "the page did not load"
            self.events.append(self._read())

    def js(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def event_names(self) -> list[str]:
        return [str(e.get("method")) for e in self.events]

    def close(self) -> None:
        with contextlib.suppress(AssertionError):
            self.call("Browser.close")
        self.process.wait(timeout=30)
        os.close(self._to_browser)
        os.close(self._from_browser)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, tiny_model: str) -> ReportedRun:
    return reported_run(tmp_path_factory, tiny_model)


@pytest.fixture
def browser(run: ReportedRun, tmp_path: Path) -> Iterator[DevTools]:
    tools = DevTools(tmp_path / "profile")
    try:
        tools.load(run.html)
        yield tools
    finally:
        tools.close()


def test_every_section_table_and_image_is_in_the_page_and_it_is_not_blank(browser: DevTools, run: ReportedRun) -> None:
    for key, title in SECTIONS:
        assert browser.js(f"document.querySelector('section#{key} > h2').textContent") == title
    rows = browser.js(
        "Object.fromEntries([...document.querySelectorAll('table[id]')]"
        ".map(t => [t.id, t.querySelectorAll('tbody tr').length]))"
    )
    for table in (
        *("summary-table", "rounds-table", "per-class-table", "confusions-table", "calibration-table"),
        *("deferral-table", "scope-table", "audit-counts-table", "audits-table"),
    ):
        assert rows[table] > 0, table
    assert rows["rounds-table"] == 3 and rows["per-class-table"] == 3 and rows["guidelines-table"] >= 1
    store = RunStore(run.run_dir / "run.sqlite")
    prompts = len(store.query("SELECT DISTINCT prompt_id FROM teacher_calls"))
    store.close()
    assert rows["examples-table"] > 0 and rows["cost-table"] == prompts + 1  # each prompt and the total
    images = browser.js(
        "[...document.images].map(i => [i.id, i.complete && i.naturalWidth > 100 && i.naturalHeight > 100])"
    )
    assert sorted(images) == sorted(
        [f"img-{name}", True]
        for name in (
            *("macro_f1_by_round", "macro_f1_by_cost", "per_class_f1", "confusion_matrix", "reliability"),
            "coverage_accuracy_cost",
        )
    )
    from PIL import Image

    shot = browser.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
    picture = Image.open(io.BytesIO(base64.b64decode(shot["data"]))).convert("RGB")
    colours = picture.getcolors(maxcolors=1 << 20) or []
    assert len(colours) > 50, "the screenshot is (nearly) one colour"
    assert max(n for n, _ in colours) < 0.97 * picture.width * picture.height


def test_planted_markup_is_text_and_runs_nothing(browser: DevTools, run: ReportedRun) -> None:
    browser.js(
        "(() => { const t = document.getElementById('filter-text');"
        " t.value = 'never'; t.dispatchEvent(new Event('input')); })()"
    )
    cells = browser.js(
        "[...document.querySelectorAll('#examples-table tbody tr')].map(tr => tr.lastElementChild.textContent)"
    )
    assert HOSTILE_TEXT in cells and HOSTILE_TEXT + " again" in cells
    dropped = browser.js(
        "[...document.querySelectorAll('#examples-table tbody tr')]"
        ".map(tr => [...tr.children].map(td => td.textContent)).find(row => row[8].endsWith(' again'))"
    )
    assert dropped[4] == "dropped" and dropped[5] == "refusal: " + " ".join(HOSTILE_TEXT.split())
    guideline_texts = browser.js(
        "[...document.querySelectorAll('#guidelines-table tbody tr')].map(tr => tr.lastElementChild.textContent)"
    )
    assert " ".join(HOSTILE_GUIDELINE.split()) in guideline_texts
    audit_cells = browser.js(
        "[...document.querySelectorAll('#audits-table tbody tr')].map(tr => [...tr.children].map(td => td.textContent))"
    )
    assert any(row[7] == " ".join(HOSTILE_TEXT.split()) and row[8] == HOSTILE_TEXT for row in audit_cells)
    assert "<script>alert('task')</script>" in browser.js("document.getElementById('summary-table').textContent")
    # Nothing ran and no element came out of a text: no dialog, no planted element, no link, only our scripts.
    assert "Page.javascriptDialogOpening" not in browser.event_names()
    assert browser.js("document.querySelectorAll('#injected, mark, b, a[href^=\"javascript\"]').length") == 0
    assert browser.js("[...document.querySelectorAll('a')].every(a => a.getAttribute('href').startsWith('#'))")
    assert browser.js("document.scripts.length") == 2  # the examples' JSON and the browser's script
    assert browser.js("document.title") == "distill report: tiny"
    # The page asked for nothing but itself (its images are inline data).
    requested = [
        e["params"]["request"]["url"] for e in browser.events if e.get("method") == "Network.requestWillBeSent"
    ]
    assert all(url == run.html.as_uri() or url.startswith("data:") for url in requested), requested


def test_the_example_filters_filter(browser: DevTools, run: ReportedRun) -> None:
    store = RunStore(run.run_dir / "run.sqlite")
    examples = store.query("SELECT label, round, origin, kept FROM examples WHERE split='train'")
    store.close()
    visible = "document.querySelectorAll('#examples-table tbody tr').length"
    assert browser.js(visible) == min(PAGE_ROWS, len(examples))

    def choose(field: str, value: str) -> Any:
        return browser.js(
            f"(() => {{ const s = document.getElementById('filter-{field}'); s.value = {json.dumps(value)};"
            f" s.dispatchEvent(new Event('change')); return {visible}; }})()"
        )

    label = "exchange_rate"
    expected = sum(1 for e in examples if e["label"] == label)
    assert 0 < choose("label", label) == expected < len(examples)
    assert set(
        browser.js("[...document.querySelectorAll('#examples-table tbody tr')].map(tr => tr.children[2].textContent)")
    ) == {label}
    assert browser.js("document.getElementById('examples-count').textContent").startswith(
        f"{expected} of {len(examples)}"
    )
    in_round = sum(1 for e in examples if e["label"] == label and e["round"] == 1)
    assert choose("round", "1") == in_round
    kept = sum(1 for e in examples if e["label"] == label and e["round"] == 1 and e["kept"] == 1)
    assert choose("status", "kept") == kept
    choose("label", "")
    choose("round", "")
    assert choose("status", "dropped") == sum(1 for e in examples if e["kept"] == 0)
    choose("status", "")
    assert choose("origin", "real") == sum(1 for e in examples if e["origin"] == "real")
