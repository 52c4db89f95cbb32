"""Fine-tuning the dialogue student after strategy teaching: the paper's SFT baseline, and strategies into weights.

Two sources of training answers, both already paid for and stored by the learning rounds:

* ``teacher_answers`` — the teacher's reference reply to each learning scenario (Wang, Sudhir, Hong 2024's
  fine-tuning baseline: imitate the teacher directly).
* ``strategy_answers`` — per learning scenario, the student's own best reply given *with* strategies, kept
  only where it scored above the student's best reply without any: the behaviour the strategies taught,
  moved into the weights so the deployed prompt needs no strategies.

Either way the prompt is the student's deployment prompt without strategies, and the fine-tuned student is
judged on the same held-out scenarios as every other condition. The model lands in ``<run>/student-sft``;
a resumed run reuses it when it was trained on the same answers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from agent import console
from agent.dialogue.student import StudentClient, deploy_prompt, open_student
from agent.spec import DialogueRunSpec
from agent.store import Answer, RunStore

SFT_DIR = "student-sft"
CONDITION = "heldout:sft"
DATA_FILE = "sft_data.jsonl"  # the exact pairs trained on, beside the model: auditable


def training_pairs(store: RunStore, source: str) -> list[tuple[str, str]]:
    """(customer message, answer) pairs from the learning scenarios, for ``source`` (see the module doc)."""
    pairs = []
    for scenario in store.scenarios("learn"):
        answers = store.answers(scenario_id=scenario.id)
        reply = _teacher_reply(answers) if source == "teacher_answers" else _best_guided_reply(answers)
        if reply:
            pairs.append((scenario.message, reply))
    return pairs


def _teacher_reply(answers: list[Answer]) -> str | None:
    references = [a for a in answers if a.role == "teacher" and a.condition == "reference"]
    return references[-1].reply if references else None


def _best_guided_reply(answers: list[Answer]) -> str | None:
    student = [a for a in answers if a.role == "student" and a.score is not None]
    guided = [a for a in student if a.strategy_ids]
    unguided = [a.score for a in student if not a.strategy_ids and a.score is not None]
    if not guided:
        return None
    best = max(guided, key=lambda a: (a.score or 0.0, -a.id))  # the earliest of equally good replies
    return best.reply if (best.score or 0.0) > max(unguided, default=0.0) else None


def fine_tune(spec: DialogueRunSpec, store: RunStore, out: Path, source: str) -> Path | None:
    """Train ``out`` on the answers of ``source`` (or reuse it); ``None`` when there is nothing to learn."""
    from trainers.local_llm import model_cache_dir
    from trainers.sft import SETTINGS_FILE, SFTExample, train_sft

    pairs = training_pairs(store, source)
    if not pairs:
        console.warn(f"loop.fine_tune={source}: no training answers (no guided reply beat an unguided one); skipped")
        return None
    lines = [json.dumps({"prompt": deploy_prompt(m, []), "completion": a}, ensure_ascii=False) for m, a in pairs]
    fingerprint = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    if (out / SETTINGS_FILE).is_file() and _fingerprint(out) == fingerprint:
        console.info(f"fine-tuned student already trained on these {len(pairs)} answers: {out}")
        return out
    config = spec.student.sft.model_copy(update={"base_model": spec.student.endpoint.removeprefix("local:")})
    examples = [SFTExample(deploy_prompt(m, []), a) for m, a in pairs]
    with console.progress(f"fine-tuning the student on {len(pairs)} {source.replace('_', ' ')}", None) as advance:
        train_sft(examples, config, out, cache_dir=model_cache_dir(), progress=advance)
    (out / DATA_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out / "sft_source.json").write_text(json.dumps({"source": source, "pairs": len(pairs), "sha256": fingerprint}))
    return out


def _fingerprint(folder: Path) -> str | None:
    path = folder / "sft_source.json"
    return str(json.loads(path.read_text())["sha256"]) if path.is_file() else None


def evaluate_fine_tuned(
    spec: DialogueRunSpec, folder: Path, evaluate: Callable[[StudentClient], list[float]]
) -> list[float]:
    """Held-out scores of the fine-tuned student, prompted without strategies like the base student alone."""
    student_spec = spec.student.model_copy(update={"endpoint": f"local:{folder}"})
    with open_student(student_spec) as client:
        return evaluate(client)
