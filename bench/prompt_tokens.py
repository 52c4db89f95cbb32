"""Tokens per teacher prompt, before and after the simulator's brief left the prompt (DESIGN §5).

Until the brief moved out of band, every prompt ended with a fenced ```brief JSON block that repeated
the prompt's texts, and a real teacher read and billed it. This script renders one representative
request per template from the shipped examples (Banking77-20 for the classifier templates, with a
PGKD report as large as a real one; the support policy for the dialogue templates) and counts its
tokens with a real BPE tokenizer (SmolLM2's, from the packaged GGUF) without the brief ("after") and
with the old block appended as the old renderer did ("before").

    .venv/bin/python bench/prompt_tokens.py --json bench/results/prompt_tokens.json
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any, TypedDict

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.plan import _seed_texts, _stand_in_feedback  # noqa: E402
from agent.spec import load_spec  # noqa: E402
from generators.generation import TaskInfo, label_requests, pgkd_requests, seed_requests  # noqa: E402
from generators.prompts import get_template  # noqa: E402
from generators.service_policy import Policy  # noqa: E402
from generators.teacher import TeacherRequest  # noqa: E402


def old_brief_block(brief: dict[str, Any]) -> str:
    """Exactly what the old renderer appended to the last user message."""
    return "\n\n```brief\n" + json.dumps(brief, ensure_ascii=False, sort_keys=True) + "\n```"


def classifier_requests() -> list[TeacherRequest]:
    spec = load_spec(ROOT / "examples" / "banking77" / "spec.yaml")
    task = TaskInfo(spec.task.description, {label.name: label.description for label in spec.task.labels})
    texts, loop, rng = _seed_texts(spec), spec.loop, random.Random(0)
    label = next(iter(task.labels))
    feedback = _stand_in_feedback(task, texts, loop.examples_shown)
    guidelines = get_template("guidelines").request(
        {
            "task_description": task.description,
            "taxonomy": task.taxonomy(),
            "pairs": "a vs b\nExamples:\n" + "\n".join(f"- a: {t}" for t in texts[:8]),
        },
        {"action": "guidelines", "pairs": [list(task.labels)[:2]], "descriptions": task.labels},
        items=1,
    )
    return [
        seed_requests(task, label, loop.batch_per_call, per_call=loop.batch_per_call, rng=rng, examples=texts[:3])[0],
        pgkd_requests(
            task, feedback, label, loop.batch_per_call, per_call=loop.batch_per_call, rng=rng, shown=loop.examples_shown
        )[0],
        label_requests(task, texts[: loop.batch_per_call], per_call=loop.batch_per_call, round=1)[0],
        guidelines,
    ]


def dialogue_requests() -> list[TeacherRequest]:
    support = ROOT / "examples" / "support"
    policy = Policy.load(support / "policy.yaml")
    flow = policy.flows[0].id
    message = json.loads((support / "customer_messages.jsonl").read_text().splitlines()[0])["text"]
    reply = "I'm sorry to hear that. Could you share your order ID so I can look into it?"
    rubric, description = policy.rubric_text(flow), "An online store's customer support."
    failed = [c.id for c in policy.flows[0].criteria][:2]

    def request(template_id: str, variables: dict[str, Any], brief: dict[str, Any]) -> TeacherRequest:
        return get_template(template_id).request(variables, {"action": get_template(template_id).action, **brief})

    return [
        request(
            "scenario",
            {"task_description": description, "flows": policy.flows_text(), "n": 8, "target": ", ".join(failed)},
            {"flows": [f.id for f in policy.flows], "n": 8, "target_criteria": failed},
        ),
        request(
            "respond",
            {"task_description": description, "rubric": rubric, "message": message},
            {"flow": flow, "message": message},
        ),
        request(
            "judge",
            {"rubric": rubric, "flow": flow, "message": message, "reply": reply},
            {"flow": flow, "message": message, "reply": reply},
        ),
        request(
            "strategize",
            {"rubric": rubric, "message": message, "reply": reply, "failed": ", ".join(failed)},
            {"flow": flow, "message": message, "reply": reply, "failed": failed},
        ),
    ]


class Row(TypedDict):
    """One template's line of the table (and of the --json output)."""

    template: str
    tokens_before: int
    tokens_after: int
    saved_fraction: float


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="Write the table as JSON here.")
    args = parser.parse_args()
    from transformers import AutoTokenizer

    from trainers.local_llm import smollm2_gguf

    gguf = smollm2_gguf()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name, local_files_only=True)

    def tokens(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    rows: list[Row] = []
    print(f"{'template':<16} {'before':>8} {'after':>8} {'saved':>7}")
    for request in classifier_requests() + dialogue_requests():
        after = "\n".join(m["content"] for m in request.messages)
        before = after + old_brief_block(request.brief or {})
        tokens_before, tokens_after = tokens(before), tokens(after)
        saved = 1 - tokens_after / tokens_before
        rows.append(
            Row(
                template=request.prompt_id,
                tokens_before=tokens_before,
                tokens_after=tokens_after,
                saved_fraction=round(saved, 3),
            )
        )
        print(f"{request.prompt_id:<16} {tokens_before:>8} {tokens_after:>8} {saved:>7.1%}")
    if args.json:
        args.json.write_text(json.dumps({"tokenizer": "SmolLM2-135M-Instruct (GGUF)", "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
