"""The strategy library: audit state machine, versions and diffs, retrieval of the nearest scope."""

from __future__ import annotations

import html
import re
import zlib
from pathlib import Path

import numpy as np
import pytest
from markdown_it import MarkdownIt
from typer.testing import CliRunner

from agent.cli_strategies import strategies_app
from agent.store import NewScenario, RunStore, Scenario
from agent.strategies import AuditError, Retriever, StrategyLibrary, scenario_blob


def bag_of_words(texts: list[str]) -> np.ndarray:
    out = np.zeros((len(texts), 256), dtype=np.float32)
    for i, text in enumerate(texts):
        for word in text.lower().split():
            out[i, zlib.crc32(word.encode()) % 256] += 1
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


@pytest.fixture()
def library(tmp_path: Path) -> StrategyLibrary:
    return StrategyLibrary(RunStore(tmp_path / "run.sqlite"))


def test_state_machine(library: StrategyLibrary) -> None:
    s = library.propose("refund", "Ask for the order ID before promising a refund.")
    assert s.status == "proposed"
    assert library.transition(s.id, "approve").status == "approved"
    assert library.transition(s.id, "retire", note="policy changed").status == "retired"
    for action in ("approve", "reject", "retire"):
        with pytest.raises(AuditError, match="it is retired"):
            library.transition(s.id, action)
    with pytest.raises(AuditError, match="cannot edit"):
        library.edit(s.id, "new text")
    r = library.propose("refund", "Offer store credit.")
    with pytest.raises(AuditError, match="retire applies to approved"):
        library.transition(r.id, "retire")
    library.transition(r.id, "reject")
    assert library.transition(r.id, "approve").status == "approved"  # a reviewer may reverse a rejection
    with pytest.raises(AuditError, match="no strategy"):
        library.transition("s-missing", "approve")
    assert [(e.action, e.from_status, e.to_status) for e in library.events(s.id)] == [
        ("propose", None, "proposed"),
        ("approve", "proposed", "approved"),
        ("retire", "approved", "retired"),
    ]
    assert library.events(s.id)[-1].note == "policy changed"


def test_edit_creates_a_version_and_diff_shows_it(library: StrategyLibrary) -> None:
    s = library.propose("account", "Verify the customer's identity.")
    v1 = library.version
    library.transition(s.id, "approve")
    edited = library.edit(s.id, "Verify identity: full name and account ID.", note="more precise")
    assert edited.version == 2 and edited.status == "approved"
    assert [h.text for h in library.history(s.id)] == [
        "Verify the customer's identity.",
        "Verify identity: full name and account ID.",
    ]
    other = library.propose("shipping", "Give the tracking link.")
    changes = library.diff(v1, library.version)
    assert {c["id"]: c["change"] for c in changes} == {s.id: "changed", other.id: "added"}
    changed = next(c for c in changes if c["id"] == s.id)
    assert changed["from"]["status"] == "proposed" and changed["to"]["text"].startswith("Verify identity:")
    assert library.diff(0, v1) == [
        {
            "id": s.id,
            "change": "added",
            "to": {"version": 1, "status": "proposed", "text": "Verify the customer's identity."},
        }
    ]
    with pytest.raises(AuditError, match="does not exist"):
        library.snapshot(library.version + 1)


def test_retrieval_returns_the_nearest_scope_and_respects_status(library: StrategyLibrary) -> None:
    store = library.store
    scenarios = {
        "refund": "i want my money back for the broken blender order",
        "password": "i forgot my password and cannot log in to my account",
    }
    vectors = bag_of_words(list(scenarios.values()))
    sc_refund, sc_password = store.add_scenarios(
        "learn",
        1,
        [
            NewScenario(flow, text, "test", scenario_blob(vec))
            for (flow, text), vec in zip(scenarios.items(), vectors, strict=True)
        ],
    )
    assert (sc_refund, sc_password) == ("le-0000", "le-0001")
    assert store.scenario(sc_password) == Scenario(sc_password, "learn", "password", scenarios["password"], "test", 1)
    refund = library.propose("refund", "Ask for the order ID.", provenance={"scenarios": [sc_refund]})
    login = library.propose("password", "Offer a reset link.", provenance={"scenarios": [sc_password]})
    retriever = Retriever(store, library, bag_of_words)
    hits = retriever.retrieve("please refund my money for this order", ["proposed", "approved"], top_k=1)
    assert [h[0].id for h in hits] == [refund.id]
    assert retriever.retrieve("please refund my money for this order", ["approved"], top_k=3) == []
    library.transition(login.id, "approve")
    hits = retriever.retrieve("please refund my money for this order", ["approved"], top_k=3)
    assert [h[0].id for h in hits] == [login.id]  # only approved ones, even if a worse match


# A renderer like GitHub's: raw HTML passes through, GFM tables on.
RENDER_MD = MarkdownIt("commonmark", {"html": True}).enable(["table"]).render
HOSTILE_TEXT = "Ask | confirm <script>alert(1)</script> [docs](javascript:alert(1)) *now*"
HOSTILE_CRITERION = "<img src=x onerror=alert(1)>|asks"


def test_markdown_export_keeps_the_table_shape_and_the_text_literal(library: StrategyLibrary) -> None:
    hostile = library.propose("refund|billing", HOSTILE_TEXT, criterion=HOSTILE_CRITERION)
    library.add_evidence(hostile.id, {"heldout_effect": "<a href='javascript:alert(1)'>0.1</a>"})
    plain = library.propose("shipping", "Give the tracking link.")
    done = CliRunner().invoke(strategies_app, ["export", str(library.store.path.parent), "--format", "md"])
    assert done.exit_code == 0, done.output

    rendered = RENDER_MD(done.output)
    assert set(re.findall(r"<(\w+)", rendered)) == {"h1", "table", "thead", "tr", "th", "tbody", "td"}, rendered
    header, *rows = re.findall(r"<tr>(.*?)</tr>", rendered, re.S)
    assert header.count("<th>") == 8
    cells = [[html.unescape(c) for c in re.findall(r"<td>(.*?)</td>", row, re.S)] for row in rows]
    assert [len(c) for c in cells] == [8, 8]
    by_id = {c[0]: c for c in cells}
    assert by_id[hostile.id][3:5] == ["refund|billing", HOSTILE_CRITERION]
    assert by_id[hostile.id][6] == "<a href='javascript:alert(1)'>0.1</a>"
    assert by_id[hostile.id][7] == HOSTILE_TEXT
    assert by_id[plain.id][7] == "Give the tracking link."
