"""Dialogue SFT after strategy teaching: which answers are trained on, and a real run that fine-tunes a tiny
Llama (TRL) on the teacher's references and judges it on the same held-out scenarios."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from agent.dialogue.fine_tune import CONDITION, DATA_FILE, SFT_DIR, training_pairs
from agent.dialogue.student import deploy_prompt
from agent.lifecycle import resume, start
from agent.run_kind import RunOptions
from agent.spec import SpecError, load_any_spec
from agent.store import NewScenario, RunStore
from tests.agent.test_teach import SUPPORT, bag_of_words, write_spec


def _store_with_answers(tmp_path: Path) -> RunStore:
    store = RunStore(tmp_path / "run.sqlite")
    ids = store.add_scenarios(
        "learn", 1, [NewScenario("refund", f"message {i}", "teacher", b"\x00" * 4) for i in range(3)]
    )
    answers = [
        # scenario 0: the guided reply beats the unguided one → trained on
        (ids[0], "teacher", "reference", [], "teacher reply 0", 1.0),
        (ids[0], "student", "learning", [], "plain 0", 0.2),
        (ids[0], "student", "with:s1", ["s1"], "guided 0 (worse)", 0.4),
        (ids[0], "student", "with:s2", ["s2"], "guided 0 (best)", 0.8),
        # scenario 1: strategies did not help → nothing from the student
        (ids[1], "teacher", "reference", [], "teacher reply 1", 1.0),
        (ids[1], "student", "learning", [], "plain 1", 0.6),
        (ids[1], "student", "with:s3", ["s3"], "guided 1", 0.6),
        # scenario 2: no teacher reference stored (e.g. refused) and no guided reply
        (ids[2], "student", "learning", [], "plain 2", 0.0),
    ]
    for sid, role, condition, strategies, reply, score in answers:
        store.add_answer(sid, 1, role, condition, strategies, reply, score, None)
    return store


def test_training_pairs_take_teacher_references_or_guided_replies_that_beat_unguided_ones(tmp_path: Path) -> None:
    store = _store_with_answers(tmp_path)
    assert training_pairs(store, "teacher_answers") == [
        ("message 0", "teacher reply 0"),
        ("message 1", "teacher reply 1"),
    ]
    assert training_pairs(store, "strategy_answers") == [("message 0", "guided 0 (best)")]


def test_fine_tuning_a_remote_student_is_refused_in_the_spec(tmp_path: Path) -> None:
    path = write_spec(tmp_path, "http://127.0.0.1:9/v1", fine_tune="teacher_answers")
    with pytest.raises(SpecError, match=r"loop\.fine_tune needs a student whose weights distill can train"):
        load_any_spec(path)
    spec = yaml.safe_load(path.read_text())
    spec["student"] |= {"endpoint": "local:smollm2", "sft": {"base_model": "other"}}
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(SpecError, match=r"student\.sft\.base_model: remove it"):
        load_any_spec(path)


def test_a_run_fine_tunes_on_teacher_answers_and_judges_on_the_same_heldout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainers.tiny_causal import build_tiny_causal_lm

    monkeypatch.setenv("DISTILL_QUIET", "1")
    texts = [json.loads(line)["text"] for line in (SUPPORT / "customer_messages.jsonl").read_text().splitlines()]
    lm = Path(build_tiny_causal_lm(tmp_path / "lm", texts))
    path = write_spec(tmp_path, f"local:{lm}", max_rounds=1, fine_tune="teacher_answers")
    spec = yaml.safe_load(path.read_text())
    spec["student"]["sft"] = {"max_steps": 6, "batch_size": 2, "learning_rate": 1e-3}
    path.write_text(yaml.safe_dump(spec))

    outcome = start(path, tmp_path / "run", options=RunOptions(embed=bag_of_words))
    run_dir, summary = outcome.run_dir, outcome.result
    store = RunStore(run_dir / "run.sqlite")
    references = {
        s.message: a.reply
        for s in store.scenarios("learn")
        for a in store.answers(scenario_id=s.id)
        if a.role == "teacher" and a.condition == "reference"
    }
    trained_on = [json.loads(line) for line in (run_dir / SFT_DIR / DATA_FILE).read_text().splitlines()]
    assert len(trained_on) == len(references) == 6
    for row in trained_on:
        message = row["prompt"][-1]["content"]
        assert row["prompt"] == deploy_prompt(message, []) and row["completion"] == references[message]
    heldout = [s.id for s in store.scenarios("heldout")]
    sft_answers = store.answers(condition=CONDITION)
    assert [a.scenario_id for a in sft_answers] == heldout
    assert all(a.strategy_ids == [] and a.score is not None for a in sft_answers)
    assert summary["fine_tune"] == "teacher_answers"
    assert summary["score_student_fine_tuned"]["n"] == len(heldout) == summary["score_student"]["n"]
    assert (run_dir / SFT_DIR / "config.json").is_file()

    model_file = run_dir / SFT_DIR / "model.safetensors"
    trained_at = model_file.stat().st_mtime_ns
    again = resume(run_dir, options=RunOptions(embed=bag_of_words))
    assert model_file.stat().st_mtime_ns == trained_at, "the same answers: the fine-tuned model is reused"
    assert [a.scenario_id for a in RunStore(run_dir / "run.sqlite").answers(condition=CONDITION)] == heldout
    assert again.result["score_student_fine_tuned"] == summary["score_student_fine_tuned"]
