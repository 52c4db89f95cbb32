"""`distill report` on a real finished tiny run (the simulator over loopback, a tiny student, a real store):
the files, no external reference, the Markdown's sections, and numbers equal to the store's. Also written
mid-run while the run holds its lock, refused for a dialogue run, and opened with --open."""

from __future__ import annotations

import html.parser
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from agent.cli import app
from agent.lifecycle import start
from agent.report import write_report
from agent.report.html import SECTIONS
from agent.run_kind import RunOptions
from agent.store import AuditOutcome, NewLabelAudit, RunStore
from agent.strategies import StrategyLibrary
from generators.ledger import format_usd
from simulator import SimulatorConfig, SimulatorServer
from tests.conftest import TINY_POOL
from tests.run_helpers import LABELS, SECRET, served_simulator, write_spec

# Teacher- and user-written text with markup in it: a script, an image whose error handler would run, a
# javascript: link. Each would alert and plant an element with id "injected" if it ever became markup.
PLANT = "document.body.appendChild(document.createElement('mark')).id='injected'"
HOSTILE_TEXT = (
    f"<script>alert('script');{PLANT}</script>my card <b>never</b> arrived "
    f"<img src=x onerror=\"alert('img');{PLANT}\"> | see <a href=\"javascript:alert('link')\">here</a>"
)
HOSTILE_GUIDELINE = (
    f"<img src=x onerror=\"alert('guideline');{PLANT}\">Choose card_arrival when the card is late; "
    "<a href=\"javascript:alert('g-link')\">details</a> <script>alert('g')</script>"
)
HOSTILE_TASK = "Messages to a bank. <script>alert('task')</script><a href=\"javascript:alert(1)\">x</a>"


@dataclass(frozen=True)
class ReportedRun:
    run_dir: Path
    html: Path
    markdown: Path
    mid_run: subprocess.CompletedProcess[str]  # `distill report` run while round 1 was still going
    mid_run_html: str


_RUNS: dict[str, ReportedRun] = {}


def reported_run(tmp_path_factory: pytest.TempPathFactory, tiny_model: str) -> ReportedRun:
    """A finished tiny run with hostile texts planted in it, and its report (made once per session)."""
    if "run" not in _RUNS:
        _RUNS["run"] = _make_reported_run(tmp_path_factory.mktemp("report"), tiny_model)
    return _RUNS["run"]


def _make_reported_run(tmp_path: Path, tiny_model: str) -> ReportedRun:
    server = SimulatorServer(SimulatorConfig(), TINY_POOL).start()
    try:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("DISTILL_TEST_KEY", SECRET)
            env.setenv("DISTILL_QUIET", "1")
            spec_path = write_spec(tmp_path, tiny_model, served_simulator(server))
            spec = yaml.safe_load(spec_path.read_text())
            spec["task"]["description"] = HOSTILE_TASK
            spec_path.write_text(yaml.safe_dump(spec))
            run_dir = tmp_path / "run"
            mid: list[subprocess.CompletedProcess[str]] = []

            def report_mid_run(round: int, step: str) -> None:
                if (round, step) == (1, "train"):  # round 1 trained, not evaluated; the run holds its lock
                    mid.append(_cli("report", str(run_dir), "--out", str(tmp_path / "mid")))

            start(spec_path, run_dir, options=RunOptions(observer=report_mid_run))
    finally:
        server.stop()
    _plant_hostile_texts(run_dir)
    files = write_report(run_dir)
    mid_html = tmp_path / "mid" / "report.html"
    return ReportedRun(run_dir, files.html, files.markdown, mid[0], mid_html.read_text() if mid_html.is_file() else "")


def _plant_hostile_texts(run_dir: Path) -> None:
    """Examples (one kept, one dropped) and a guideline as a teacher could have written them."""
    store = RunStore(run_dir / "run.sqlite")
    call = store.query("SELECT id FROM teacher_calls WHERE prompt_id='pgkd_generate' ORDER BY id LIMIT 1")[0][0]
    rows = [
        {"round": 1, "split": "train", "text": text, "label": "card_arrival", "origin": "generated"}
        | {"teacher_call_id": call, "prompt_id": "pgkd_generate"}
        for text in (HOSTILE_TEXT, HOSTILE_TEXT + " again")
    ]
    kept, dropped = store.add_examples(rows)
    store.record_filter_decisions(
        [(kept, "all", True, "passed every filter", None), (dropped, "refusal", False, HOSTILE_TEXT, None)]
    )
    StrategyLibrary(store).propose("pair:card_arrival|exchange_rate", HOSTILE_GUIDELINE, round=1)
    # A label audit as the audit step records it (its reason quotes teacher text), and out-of-scope metrics.
    status = store.round_status(1)
    other = next(e for e in store.examples("train", round=1) if e.id not in (kept, dropped))
    relabel = next(label for label in LABELS if label != other.label)
    store.record_label_audits(
        1,
        [
            NewLabelAudit(
                kept, "card_arrival", "exchange_rate", "card_arrival", AuditOutcome.KEPT, HOSTILE_TEXT, 0.8, call
            ),
            NewLabelAudit(
                other.id, other.label, relabel, relabel, AuditOutcome.RELABELLED, "teacher agreed", 0.6, call
            ),
        ],
    )
    assert status is not None
    store.set_round_status(1, status)  # planting an audit must not move the finished round back
    stored = [
        tuple(r) for r in store.query("SELECT metric, class, value FROM evaluations WHERE round=2 AND split='test'")
    ]
    store.record_metrics(2, "test", stored + [(m, None, v) for m, v in SCOPE_VALUES.items()])  # it replaces the split
    store.close()


SCOPE_VALUES = {"in_scope_accuracy": 0.9123, "oos_recall": 0.5, "oos_precision": 0.75}


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, tiny_model: str) -> ReportedRun:
    return reported_run(tmp_path_factory, tiny_model)


class _Tables(html.parser.HTMLParser):
    """Text cells of every table by its id, and every src/href attribute, from the HTML file."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.links: list[str] = []
        self._table: str | None = None
        self._cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.links += [value or "" for name, value in attrs if name in ("src", "href", "action", "srcset")]
        if tag == "table":
            self._table = dict(attrs).get("id") or ""
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table is not None:
            self.tables[self._table][-1].append("")
            self._cell = True

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th"):
            self._cell = False
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell and self._table is not None:
            self.tables[self._table][-1][-1] += data


def parse(page: Path) -> _Tables:
    tables = _Tables()
    tables.feed(page.read_text(encoding="utf-8"))
    return tables


def md_table(markdown: str, header_start: str) -> list[list[str]]:
    """The rows of the Markdown table whose header row starts with ``header_start`` (header excluded)."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]])
    return rows


def test_the_report_files_exist_and_the_html_is_self_contained(run: ReportedRun) -> None:
    assert run.html == run.run_dir / "report" / "report.html" and run.markdown.is_file()
    page = run.html.read_text(encoding="utf-8")
    assert "http://" not in page and "https://" not in page
    links = parse(run.html).links
    images = [link for link in links if link.startswith("data:image/png;base64,")]
    assert len(images) == 6  # F1 by round, F1 by cost, per-class heatmap, confusion matrix, reliability, coverage
    assert all(link.startswith(("data:image/png;base64,", "#")) for link in links), links
    assert "default-src 'none'" in page  # the page's own policy forbids any request besides data: images
    for png in re.findall(r"\]\(([^)]+\.png)\)", run.markdown.read_text()):
        assert (run.markdown.parent / png).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    for path in run.run_dir.joinpath("report").iterdir():
        assert SECRET.encode() not in path.read_bytes()
        assert b"127.0.0.1" not in path.read_bytes(), "the teacher's base_url reached the report"


def test_the_markdown_has_every_section_and_escapes_teacher_text(run: ReportedRun) -> None:
    markdown = run.markdown.read_text(encoding="utf-8")
    for _, title in SECTIONS:
        assert f"\n## {title}\n" in markdown
    assert (
        "<script" not in markdown
        and "<img" not in markdown
        and "<a " not in markdown
        and "](javascript" not in (markdown)
    )
    assert "&lt;script&gt;alert('script')" in markdown  # the hostile example, as text, among the drops
    assert "&lt;img src=x onerror=\"alert('guideline')" in markdown  # the hostile guideline, as text


def test_the_numbers_are_the_stores(run: ReportedRun) -> None:
    store = RunStore(run.run_dir / "run.sqlite")
    markdown = run.markdown.read_text(encoding="utf-8")
    tables = parse(run.html).tables
    rounds_md = md_table(markdown, "| round | status |")
    rounds_html = tables["rounds-table"][1:]
    assert len(rounds_md) == len(rounds_html) == 3
    for md_row, html_row in zip(rounds_md, rounds_html, strict=True):
        idx = int(md_row[0])
        expected = [f"{store.metric(idx, split, 'macro_f1'):.4f}" for split in ("heldback", "test", "feedback")]
        assert md_row[2:5] == html_row[2:5] == expected
        paid = store.query("SELECT COALESCE(SUM(cost_usd),0) FROM teacher_calls WHERE round=?", (idx,))[0][0]
        assert html_row[5] == format_usd(paid)
        counts = store.query("SELECT COUNT(*), SUM(kept) FROM examples WHERE split='train' AND round=?", (idx,))[0]
        assert html_row[7:9] == md_row[7:9] == [str(counts[0]), str(counts[1])]
    per_prompt = {
        r["prompt_id"]: r
        for r in store.query(
            "SELECT prompt_id, COUNT(*) n, SUM(cache_hit) hits, SUM(cost_usd) usd FROM teacher_calls GROUP BY prompt_id"
        )
    }
    cost = {row[0]: row for row in tables["cost-table"][1:]}
    assert set(cost) == {*per_prompt, "total"}
    for prompt, r in per_prompt.items():
        assert cost[prompt][1:3] == [str(r["n"]), str(r["hits"])] and cost[prompt][6] == format_usd(r["usd"])
    total = store.query("SELECT COUNT(*), SUM(cost_usd) FROM teacher_calls")[0]
    assert cost["total"][1] == str(total[0]) and cost["total"][6] == format_usd(total[1])
    # Per-class F1 of the last round on test, and the best round's confusions on test from its evaluation file.
    best = max(range(3), key=lambda i: (store.metric(i, "heldback", "macro_f1") or 0.0, -i))
    per_class = {row[0]: row for row in tables["per-class-table"][1:]}
    for label in LABELS:
        stored = store.query(
            "SELECT value FROM evaluations WHERE round=2 AND split='test' AND metric='f1' AND class=?", (label,)
        )[0][0]
        assert per_class[label][3] == f"{stored:.4f}"
    evaluation = json.loads((run.run_dir / "models" / f"round-{best:02d}" / "eval_test.json").read_text())
    assert [row[:3] for row in tables["confusions-table"][1:]] == [
        [g, p, str(c)] for g, p, c in evaluation["confusions"][:20]
    ]
    summary = dict((row[0], row[1]) for row in tables["summary-table"])
    assert summary["best round"].startswith(f"{best} (")
    assert summary["teacher"] == "simulator / sim-teacher"
    examples = store.query("SELECT COUNT(*) FROM examples WHERE split='train'")[0][0]
    assert f"{examples} training examples." in markdown
    store.close()


def test_deferral_scope_and_audit_sections_show_the_stored_numbers(run: ReportedRun) -> None:
    from agent.coverage import format_coverage_rows, read_coverage, thin
    from agent.report.tables import DEFERRAL_TABLE_ROWS

    tables = parse(run.html).tables
    markdown = run.markdown.read_text(encoding="utf-8")
    coverage = read_coverage(run.run_dir / "model")
    assert coverage is not None and coverage.rows
    expected = format_coverage_rows(thin(coverage.rows, DEFERRAL_TABLE_ROWS))
    md_rows = [
        [cell.replace("\\$", "$") for cell in row] for row in md_table(markdown, "| threshold | student answers |")
    ]
    assert tables["deferral-table"][1:] == expected == md_rows  # Markdown escapes the dollar sign
    note = f"teacher cost per labeled text {format_usd(coverage.cost.usd_per_text)}, estimated:"
    assert note in markdown.replace("\\$", "$")
    # ECE: the calibrated one, with the uncalibrated labelled as such.
    best = max(range(3), key=lambda i: (heldback_f1(run.run_dir, i), -i))
    evaluation = json.loads((run.run_dir / "models" / f"round-{best:02d}" / "eval_test.json").read_text())
    assert (
        f"Expected calibration error {evaluation['ece']:.4f} over {evaluation['n']} test items, after temperature "
        f"scaling (T = {evaluation['temperature']:.3f}, fitted on held-back); uncalibrated (T = 1) it was "
        f"{evaluation['ece_uncalibrated']:.4f}." in markdown
    )
    assert tables["scope-table"][1:] == [["2", "test", "0.9123", "0.5000", "0.7500"]]
    store = RunStore(run.run_dir / "run.sqlite")
    stored = store.label_audits()
    counts = {r: store.audit_counts(r) for r in sorted({a.round for a in stored})}
    store.close()
    assert tables["audit-counts-table"][1:] == [
        [str(r), str(sum(c.values())), *(str(c[o]) for o in AuditOutcome)] for r, c in counts.items()
    ]
    audits = tables["audits-table"][1:]
    assert [(row[0], row[1], row[5]) for row in audits] == [
        (str(a.round), str(a.example_id), a.outcome) for a in stored
    ]
    planted = next(row for row in audits if row[8] == HOSTILE_TEXT)  # the flagged example's text, as text
    assert planted[5] == "kept" and planted[7] == " ".join(HOSTILE_TEXT.split())
    assert "&lt;script&gt;alert('script')" in markdown.split("## Label audit")[1]


def heldback_f1(run_dir: Path, round: int) -> float:
    store = RunStore(run_dir / "run.sqlite")
    try:
        return store.metric(round, "heldback", "macro_f1") or 0.0
    finally:
        store.close()


def test_a_report_can_be_written_while_the_run_holds_its_lock(run: ReportedRun) -> None:
    assert run.mid_run.returncode == 0, run.mid_run.stderr
    assert "not decided yet (trained)" in run.mid_run_html  # round 1 was trained, not yet evaluated
    assert "Round 0: continue" in run.mid_run_html


def test_open_hands_the_page_to_the_web_browser(run: ReportedRun, tmp_path: Path) -> None:
    opened = tmp_path / "opened.txt"
    browser = f"{sys.executable} -c \"import sys; open({str(opened)!r}, 'w').write(sys.argv[1])\" %s"
    done = _cli("report", str(run.run_dir), "--out", str(tmp_path / "r"), "--open", env={"BROWSER": browser})
    assert done.returncode == 0, done.stderr
    assert opened.read_text() == (tmp_path / "r" / "report.html").as_uri()
    assert f"report: {tmp_path / 'r' / 'report.html'}" in done.stdout


def test_a_dialogue_run_or_a_folder_without_a_run_exits_2(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "dialogue" / "run.sqlite")
    store.create_run("d-1", "support", {"task": {"kind": "dialogue"}}, {}, None)
    store.close()
    refused = CliRunner().invoke(app, ["report", str(tmp_path / "dialogue")])
    assert refused.exit_code == 2 and "not supported for dialogue runs yet" in refused.output
    assert not (tmp_path / "dialogue" / "report").exists()
    empty = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert empty.exit_code == 2 and "holds no run.sqlite" in empty.output
