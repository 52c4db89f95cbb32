"""Strategy teaching end to end on a tiny dialogue task: the simulator as teacher (scenario writer, reference,
judge, strategist), a student LLM behind a real OpenAI-compatible HTTP server, the real run store."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from agent.dialogue.run import chat_answer, mean_ci, win_rate
from agent.dialogue.student import STUDENT_SYSTEM, StudentClient
from agent.lifecycle import start
from agent.run_kind import RunOptions
from agent.store import RunStore
from agent.strategies import StrategyLibrary

SUPPORT = Path(__file__).resolve().parents[2] / "examples" / "support"


def bag_of_words(texts: list[str]) -> np.ndarray:
    out = np.zeros((len(texts), 512), dtype=np.float32)
    for i, text in enumerate(texts):
        for word in text.lower().split():
            out[i, zlib.crc32(word.strip("?.!,").encode()) % 512] += 1
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


class StrategyFollower:
    """A stand-in student that does exactly what its strategies say (it replies with them), so the
    keep-only-if-it-helped logic can be checked; the real tiny LM below covers the real model path."""

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def chat(
        self, messages: list[dict[str, str]], *, max_new_tokens: int | None = None, temperature: float | None = None
    ) -> tuple[str, int, int]:
        system = messages[0]["content"]
        rules = system.split("Follow these strategies:\n", 1)[1] if "strategies:" in system else ""
        reply = "Hello. " + " ".join(line.split(". ", 1)[-1] for line in rules.splitlines())
        return reply, 10, 10


def write_spec(tmp_path: Path, student_url: str, **loop: Any) -> Path:
    for name in ("policy.yaml", "customer_messages.jsonl", "heldout_messages.jsonl"):
        shutil.copy(SUPPORT / name, tmp_path / name)
    spec = {
        "name": "tiny-support",
        "task": {
            "kind": "dialogue",
            "description": "Online store support.",
            "policy": "policy.yaml",
            "scenarios": {"source": "teacher", "learn": 6, "heldout": 5},
        },
        "teacher": {"provider": "simulator", "pool": "customer_messages.jsonl", "policy": "policy.yaml"},
        "student": {"endpoint": student_url, "model": "student", "max_tokens": 12},
        "loop": {"max_rounds": 2, "top_k": 3, **loop},
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture()
def follower_server() -> Any:
    from trainers.llm_server import LocalChatServer

    with LocalChatServer(StrategyFollower(), model_name="student") as server:
        yield server


def run_dialogue(tmp_path: Path, server: Any, **loop: Any) -> tuple[Path, dict[str, Any]]:
    outcome = start(
        write_spec(tmp_path, server.base_url, **loop), tmp_path / "run", options=RunOptions(embed=bag_of_words)
    )
    return outcome.run_dir, outcome.result


def test_loop_learns_strategies_that_raise_scores(
    tmp_path: Path, follower_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISTILL_QUIET", "1")
    run_dir, summary = run_dialogue(tmp_path, follower_server, auto_approve=True)
    store = RunStore(run_dir / "run.sqlite")
    library = StrategyLibrary(store)
    kept = library.current(["approved"])
    assert kept, "a student that follows its strategies must be helped by some"
    for s in kept:
        assert s.evidence["score_after"] > s.evidence["score_before"]
        assert s.provenance["scenarios"] and s.criterion
    for s in library.current(["rejected"]):
        assert s.evidence["score_after"] <= s.evidence["score_before"]
    assert summary["n_scenarios"] == 5 and summary["n_strategies_approved"] == len(kept)
    assert summary["score_student_with_strategies"]["mean"] > summary["score_student"]["mean"]
    assert summary["score_teacher"]["mean"] == 1.0  # the reference passes its own rubric
    assert store.scenarios("heldout") and store.scenarios("learn") and not store.scenarios("transfer")
    assert any("heldout_effect" in s.evidence for s in kept)
    assert json.loads((run_dir / "teach_summary.json").read_text())["n_scenarios"] == 5
    store.close()


def test_deploy_prompt_sent_over_http_holds_only_approved_strategies(
    tmp_path: Path, follower_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISTILL_QUIET", "1")
    run_dir, _ = run_dialogue(tmp_path, follower_server, max_rounds=1, auto_approve=False)
    library = StrategyLibrary(RunStore(run_dir / "run.sqlite"))
    # The same policy rule can be learned in several flows (scopes); audit three distinct texts.
    proposed = list({s.text: s for s in library.current(["proposed"])}.values())
    assert len(proposed) >= 3, "need strategies to audit"
    approved, rejected, retired = proposed[0], proposed[1], proposed[2]
    library.transition(approved.id, "approve")
    library.transition(rejected.id, "reject")
    library.transition(retired.id, "approve")
    library.transition(retired.id, "retire")
    stored = library.store.scenario(approved.provenance["scenarios"][0])
    assert stored is not None
    scenario = stored.message
    import openai

    client = StudentClient(openai.OpenAI(base_url=follower_server.base_url, api_key="x"), "student", 0.0, 12)
    follower_server.requests.clear()
    _, used = chat_answer(run_dir, scenario, client, bag_of_words)
    [request] = follower_server.requests
    system = request["messages"][0]["content"]
    assert system.startswith(STUDENT_SYSTEM)
    assert approved.text in system
    for other in library.current(["rejected", "retired", "proposed"]):
        if other.text != approved.text:
            assert other.text not in system, f"{other.status} strategy reached the deploy prompt"
    assert rejected.text not in system and retired.text not in system
    assert [u[0] for u in used] == [approved.id]


def test_audit_cli_on_a_real_run(tmp_path: Path, follower_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISTILL_QUIET", "1")
    run_dir, _ = run_dialogue(tmp_path, follower_server, max_rounds=1)
    library = StrategyLibrary(RunStore(run_dir / "run.sqlite"))
    target = library.current(["proposed"])[0]

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "agent", "strategies", *args], capture_output=True, text=True, timeout=120
        )

    assert target.id in cli("list", str(run_dir), "--status", "proposed").stdout
    before = library.version
    assert "approved" in cli("approve", str(run_dir), target.id, "--note", "checked").stdout
    edited = cli("edit", str(run_dir), target.id, "--text", "Ask for the order ID first.")
    assert f"{target.id} v2: approved" in edited.stdout
    bad = cli("approve", str(run_dir), target.id)
    assert bad.returncode == 2 and "it is approved" in bad.stderr
    shown = cli("show", str(run_dir), target.id).stdout
    assert "Ask for the order ID first." in shown and "event" in shown and "before (score" in shown
    diff = cli("diff", str(run_dir), "--from", str(before), "--to", str(library.version)).stdout
    assert f"~ {target.id}" in diff and "+ Ask for the order ID first." in diff
    exported = json.loads(cli("export", str(run_dir), "--format", "json").stdout)
    assert exported["library_version"] == library.version
    page = tmp_path / "library.html"
    cli("export", str(run_dir), "--format", "html", "--out", str(page))
    assert "Ask for the order ID first." in page.read_text()


def test_loop_with_a_real_tiny_language_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real model path: a tiny causal LM from a config, served over HTTP, answering garbage — the loop
    must still judge it, ask for strategies and record evidence; none may be kept without an effect."""
    from trainers.llm_server import LocalChatServer
    from trainers.local_llm import LocalChatModel
    from trainers.tiny_causal import build_tiny_causal_lm

    monkeypatch.setenv("DISTILL_QUIET", "1")
    texts = [json.loads(line)["text"] for line in (SUPPORT / "customer_messages.jsonl").read_text().splitlines()]
    model = LocalChatModel(Path(build_tiny_causal_lm(tmp_path / "lm", texts)), max_new_tokens=8)
    with LocalChatServer(model, model_name="student") as server:
        run_dir, summary = run_dialogue(tmp_path, server, max_rounds=1)
        assert server.requests, "the student was reached over HTTP"
    library = StrategyLibrary(RunStore(run_dir / "run.sqlite"))
    for s in library.current():
        assert "score_before" in s.evidence and "score_after" in s.evidence
        assert (s.status == "proposed") == (s.evidence["score_after"] > s.evidence["score_before"])
    assert 0 <= summary["score_student"]["mean"] <= 1


def test_confidence_intervals_and_win_rates() -> None:
    ci = mean_ci([0.0, 1.0, 1.0, 1.0])
    assert ci["n"] == 4 and ci["mean"] == 0.75 and ci["lo"] < 0.75 < ci["hi"]
    w = win_rate([1, 1, 0.5, 0], [0, 0.5, 0.5, 1])
    assert (w["wins"], w["ties"], w["losses"]) == (2, 1, 1) and 0 < w["lo"] < w["win_rate"] < w["hi"] <= 1


class Crash(RuntimeError):
    pass


def test_resume_after_a_crash_mid_round_pays_for_nothing_twice(
    tmp_path: Path, follower_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed while round 2 writes strategies: `distill resume` discards the half round, replays its teacher
    calls from the cache, finishes, and leaves no duplicate or dangling rows."""
    import agent.dialogue.teach as teach

    monkeypatch.setenv("DISTILL_QUIET", "1")
    spec_path = write_spec(tmp_path, follower_server.base_url, max_rounds=2, parity_margin=0.0)
    run_dir = tmp_path / "run"
    real_improve, calls = teach._improve, []

    def improve_then_crash(ctx: Any, round: int, *args: Any) -> tuple[int, int]:
        calls.append(round)
        if calls.count(2) == 2:
            raise Crash("killed in round 2")
        return real_improve(ctx, round, *args)

    monkeypatch.setattr(teach, "_improve", improve_then_crash)
    with pytest.raises(Crash):
        start(spec_path, run_dir)  # the packaged MiniLM embeds, as the CLI below will
    monkeypatch.setattr(teach, "_improve", real_improve)
    store = RunStore(run_dir / "run.sqlite")
    assert [r.idx for r in store.teach_rounds()] == [1]
    assert store.strategy_ids_of_round(2), "the crash came after round 2 had proposed strategies"
    paid_before = store.query("SELECT COUNT(*) FROM teacher_calls WHERE cache_hit=0")[0][0]
    store.close()

    env = {k: v for k, v in os.environ.items() if k != "DISTILL_QUIET"}
    resumed = subprocess.run(
        [sys.executable, "-m", "agent", "resume", str(run_dir)], capture_output=True, text=True, timeout=600, env=env
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    store = RunStore(run_dir / "run.sqlite")
    assert [r.idx for r in store.teach_rounds()] == [1, 2]
    paid = [r[0] for r in store.query("SELECT request_hash FROM teacher_calls WHERE cache_hit=0")]
    assert len(paid) == len(set(paid)), "a paid teacher request was sent twice"
    assert len(paid) > paid_before and store.query("SELECT COUNT(*) FROM teacher_calls WHERE cache_hit=1")[0][0]
    known = {s.id for s in store.scenarios("learn")}
    for sid in known:
        conditions = [a.condition for a in store.answers(scenario_id=sid)]
        assert (conditions.count("learning"), conditions.count("reference")) == (1, 1)
    for s in StrategyLibrary(store).current():
        assert set(s.provenance["scenarios"]) <= known, f"{s.id} points at a discarded scenario"
    heldout = len(store.answers(condition="heldout:alone"))
    assert heldout == json.loads((run_dir / "teach_summary.json").read_text())["n_scenarios"] == 5
    store.close()
    assert "round 2 was interrupted" in resumed.stdout + resumed.stderr
