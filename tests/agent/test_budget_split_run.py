"""``loop.budget_split: adaptive`` end to end: a tiny run with both PGKD generation and an unlabeled pool,
the real simulator over loopback HTTP, a real SQLite store and a tiny student; killed mid-run and resumed.

The policy's arithmetic (which way the split moves, the floor, the reasons) is unit-tested in
test_round_policy.py; here: the split is measured and stored with each decision, the next round asks for
exactly the stored counts, and a resume neither re-pays a call nor changes a stored split.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.lifecycle import resume, start
from agent.run_kind import RunOptions
from agent.store import RunStore
from tests.run_helpers import FIXTURES, served_simulator, write_spec


class Crash(RuntimeError):
    """Raised from a step hook: the process 'dies' between two steps."""


def adaptive_spec(tmp_path: Path, tiny_model: str, server: Any) -> Path:
    spec_path = write_spec(tmp_path, tiny_model, served_simulator(server), active_per_round=6, budget_split="adaptive")
    spec = yaml.safe_load(spec_path.read_text())
    pool = [json.loads(line) for line in (FIXTURES / "pool.jsonl").read_text().splitlines()]
    (tmp_path / "unlabeled.jsonl").write_text("".join(json.dumps({"text": r["text"]}) + "\n" for r in pool))
    spec["task"]["unlabeled"] = "unlabeled.jsonl"
    spec_path.write_text(yaml.safe_dump(spec))
    return spec_path


@pytest.mark.parametrize("crash_at", [(1, "evaluate"), (2, "generate")])
def test_adaptive_split_is_stored_followed_and_survives_a_crash(
    tmp_path: Path, tiny_model: str, make_simulator: Any, monkeypatch: pytest.MonkeyPatch, crash_at: tuple[int, str]
) -> None:
    monkeypatch.setenv("DISTILL_TEST_KEY", "k")
    monkeypatch.setenv("DISTILL_QUIET", "1")
    server = make_simulator(pool=FIXTURES / "pool.jsonl")
    spec_path = adaptive_spec(tmp_path, tiny_model, server)
    run_dir = tmp_path / "run"

    def crash(round: int, step: str) -> None:
        if (round, step) == crash_at:
            raise Crash(f"killed after {step} of round {round}")

    with pytest.raises(Crash):
        start(spec_path, run_dir, options=RunOptions(observer=crash))
    store = RunStore(run_dir / "run.sqlite")
    split_before = store.round_split(1)
    store.close()
    resume(run_dir)

    store = RunStore(run_dir / "run.sqlite")
    paid = store.query("SELECT request_hash, sample_index FROM teacher_calls WHERE cache_hit=0")
    assert len(paid) == len({tuple(r) for r in paid}), "a paid request was sent twice"
    assert server.stats()["requests"] == len(paid), "one HTTP request per paid call, none repeated"

    # Round 0 measures nothing (it only seeds): the configured counts, said so.
    first = store.round_split(0)
    assert first is not None and (first.generation, first.labeling) == (12, 6)
    assert "nothing measured" in first.record["reason"]
    # Round 1 bought both ways; its decision measured both, in USD (the spec prices tokens).
    split = store.round_split(1)
    assert split is not None and split.record["cost_unit"] == "usd"
    measured = split.record["measured"]
    for source, prompts in (("generation", ("pgkd_generate", "guidelines")), ("labeling", ("label",))):
        bought = store.query(
            f"SELECT SUM(cost_usd) FROM teacher_calls WHERE round=1 AND status='ok' AND cache_hit=0"
            f" AND prompt_id IN ({','.join('?' * len(prompts))})",
            prompts,
        )[0][0]
        assert measured[source]["cost"] == pytest.approx(bought), source
        assert -1 <= measured[source]["gain"] <= 1
    assert measured["generation"]["units"] == 12 and measured["labeling"]["units"] == 6
    if crash_at[0] == 2:  # decided before the crash: the resume kept it as stored
        assert split_before == split
    rounds = store.round_rows()
    assert split.record["reason"] in rounds[1].reasons
    # Round 2 asked for exactly the stored counts: quotas summing to the generation count, and labels.
    assert rounds[1].quotas is not None and sum(rounds[1].quotas.values()) == split.generation
    generated = store.query("SELECT COUNT(*) FROM examples WHERE round=2 AND origin='generated'")[0][0]
    active = store.query("SELECT COUNT(*) FROM examples WHERE round=2 AND origin='active'")[0][0]
    assert generated == split.generation and active == split.labeling
    # The last round decides to stop and has no split for a round that will not run.
    assert rounds[-1].decision == "stop" and store.round_split(2) is None
    store.close()

    status = subprocess.run(
        [sys.executable, "-m", "agent", "status", str(run_dir), "--json"], capture_output=True, text=True, timeout=120
    )
    shown = json.loads(status.stdout)["rounds"][1]["reasons"]
    assert any(reason.startswith("budget split:") for reason in shown)
