"""Generation strategies: seed examples per label, and PGKD targeted examples for weak labels.

Each function turns *what we want* (label, count, feedback) into ``TeacherRequest`` objects; the
caller sends them through the gateway. Prompts are deterministic given their inputs and the RNG seed,
so a resumed run re-renders the same requests and the cache answers them for free.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from generators.prompts import get_template
from generators.teacher import TeacherRequest

# The "none of these" outcome of a task with out_of_scope: a label the teacher may answer and the student learns.
OUT_OF_SCOPE = "out_of_scope"
# Its built-in description, which every prompt's taxonomy shows: *near-domain* negatives teach the
# boundary; far-off texts (recipes in a banking task) are easy and teach the student little.
OUT_OF_SCOPE_DESCRIPTION = (
    "near-domain messages that fit none of the other labels: the same users and topic as the task, "
    "but asking for something no label covers"
)

# Attribute diversity (DESIGN §3): each batch asks for a different mix, so the data is not one voice.
LENGTHS = ("short", "medium", "long")
REGISTERS = ("casual", "formal", "terse", "frustrated", "polite")
PERSONAS = (
    "a first-time user",
    "a long-time customer",
    "a non-native speaker",
    "someone in a hurry",
    "a detail-oriented person",
)
DIFFICULTIES = ("clear-cut", "subtle, close to other labels", "indirect, no key words")


@dataclass(frozen=True)
class TaskInfo:
    description: str
    labels: dict[str, str]  # name → description

    @classmethod
    def of(cls, description: str, labels: dict[str, str], out_of_scope: bool) -> TaskInfo:
        """The task's outcome set: its labels, plus ``out_of_scope`` (last) when the task has it."""
        outcomes = {**labels, OUT_OF_SCOPE: OUT_OF_SCOPE_DESCRIPTION} if out_of_scope else dict(labels)
        return cls(description, outcomes)

    @property
    def in_scope(self) -> list[str]:
        """The labels a message may fit (every outcome but ``out_of_scope``)."""
        return [name for name in self.labels if name != OUT_OF_SCOPE]

    def taxonomy(self) -> str:
        return "\n".join(f"- {name}: {desc or '(no description)'}" for name, desc in self.labels.items())

    def guidance(self, label: str) -> str:
        """The extra instruction a generation prompt gives for ``label`` (only ``out_of_scope`` has one)."""
        if label != OUT_OF_SCOPE:
            return ""
        return (
            f'"{OUT_OF_SCOPE}" examples are negatives: messages the same users would send in this domain that '
            "fit NONE of the other labels — close to the task (same topic, same kind of request), never an "
            "obvious off-topic text, and never a message that one of the other labels covers."
        )

    def generation_brief(self, label: str) -> dict[str, list[str]]:
        """What the simulator needs beyond the label: for ``out_of_scope``, which labels are in scope."""
        return {"labels": self.in_scope} if label == OUT_OF_SCOPE else {}


@dataclass(frozen=True)
class LabelFeedback:
    """What the teacher may see about one label (feedback split only; never the held-back part)."""

    f1: float
    correct: list[str] = field(default_factory=list)
    misclassified: list[tuple[str, str]] = field(default_factory=list)  # (text, wrong prediction)
    hard_negatives: list[tuple[str, str, float]] = field(default_factory=list)  # (text, gold, confidence)


@dataclass(frozen=True)
class Feedback:
    round: int
    report: dict[str, dict[str, float]]  # label → precision/recall/f1/support
    confusions: list[tuple[str, str, int]]
    per_label: dict[str, LabelFeedback]
    guidelines: dict[str, str] = field(default_factory=dict)  # label → guideline text, if any


def attributes(rng: random.Random) -> dict[str, str]:
    return {
        "length": rng.choice(LENGTHS),
        "register": rng.choice(REGISTERS),
        "persona": rng.choice(PERSONAS),
        "difficulty": rng.choice(DIFFICULTIES),
    }


def _describe(attrs: dict[str, str]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in attrs.items())


def split_counts(total: int, per_call: int) -> list[int]:
    """Split ``total`` examples into calls of at most ``per_call`` (e.g. 25, 10 → [9, 8, 8])."""
    if total <= 0:
        return []
    calls = math.ceil(total / per_call)
    base, extra = divmod(total, calls)
    return [base + (1 if i < extra else 0) for i in range(calls)]


def seed_requests(
    task: TaskInfo,
    label: str,
    n: int,
    *,
    per_call: int,
    rng: random.Random,
    examples: list[str],
    round: int = 0,
    purpose: str = "seed",
) -> list[TeacherRequest]:
    """Round-0 (or uniform-baseline) requests for ``n`` examples of ``label``, diverse by attributes."""
    template = get_template("seed_generate")
    requests = []
    for index, count in enumerate(split_counts(n, per_call)):
        attrs = attributes(rng)
        shown = rng.sample(examples, min(3, len(examples)))
        existing = ("Existing examples (do not copy):\n" + "\n".join(f"- {t}" for t in shown)) if shown else ""
        variables = {
            "task_description": task.description,
            "taxonomy": task.taxonomy(),
            "n": count,
            "label": label,
            "label_description": task.labels[label],
            "attributes": _describe(attrs),
            "existing": existing,
            "guidance": task.guidance(label),
        }
        brief = {
            "action": "generate",
            "label": label,
            "n": count,
            "like": shown,
            "avoid": [],
            "attributes": attrs,
            "purpose": purpose,
            **task.generation_brief(label),
        }
        requests.append(
            template.request(variables, brief, items=count, sample_index=index, round=round, labels=list(task.labels))
        )
    return requests


def _bullets(lines: list[str]) -> str:
    return "\n".join(f"- {line}" for line in lines) if lines else "- (none)"


def _report_table(report: dict[str, dict[str, float]]) -> str:
    rows = [
        f"{label}: P={m['precision']:.2f} R={m['recall']:.2f} F1={m['f1']:.2f} n={int(m['support'])}"
        for label, m in sorted(report.items(), key=lambda kv: kv[1]["f1"])
    ]
    return "\n".join(rows)


def pgkd_requests(
    task: TaskInfo, feedback: Feedback, label: str, n: int, *, per_call: int, rng: random.Random, shown: int
) -> list[TeacherRequest]:
    """PGKD requests for ``n`` new examples of ``label``, grounded in the student's feedback-split errors.

    The brief's ``like`` holds texts *truly of this label* (missed ones first, then correct ones): the
    calibration in DESIGN §5 found that writing near items the student *wrongly* called this label
    hurts (−0.115 F1), while writing near its missed items helps. Hard negatives go in the prose as
    contrast only.
    """
    template = get_template("pgkd_generate")
    info = feedback.per_label[label]
    confusions = [f"{g} → {p}: {c}" for g, p, c in feedback.confusions[:8]]
    requests = []
    for index, count in enumerate(split_counts(n, per_call)):
        attrs = attributes(rng)
        missed = rng.sample(info.misclassified, min(shown, len(info.misclassified)))
        correct = rng.sample(info.correct, min(shown, len(info.correct)))
        hard = info.hard_negatives[:shown]
        guideline = feedback.guidelines.get(label, "")
        variables = {
            "task_description": task.description,
            "taxonomy": task.taxonomy(),
            "round": feedback.round,
            "report": _report_table(feedback.report),
            "confusions": _bullets(confusions),
            "label": label,
            "label_description": task.labels[label],
            "label_f1": f"{info.f1:.2f}",
            "correct": _bullets(correct),
            "misclassified": _bullets([f"{t} (student said: {p})" for t, p in missed]),
            "hard_negatives": _bullets([f"{t} (really {g}; student {c:.0%} sure)" for t, g, c in hard]),
            "guidelines": f"Labeling guideline for this label: {guideline}" if guideline else "",
            "n": count,
            "attributes": _describe(attrs),
            "guidance": task.guidance(label),
        }
        brief = {
            "action": "generate",
            "label": label,
            "n": count,
            "like": [t for t, _ in missed] + correct,
            "avoid": [t for t, _, _ in hard],
            "attributes": attrs,
            "purpose": "pgkd",
            **task.generation_brief(label),
        }
        requests.append(
            template.request(
                variables, brief, items=count, sample_index=index, round=feedback.round, labels=list(task.labels)
            )
        )
    return requests


def label_requests(task: TaskInfo, texts: list[str], *, per_call: int, round: int) -> list[TeacherRequest]:
    """Requests asking the teacher to label ``texts`` (in order), ``per_call`` texts per call."""
    template = get_template("label")
    requests = []
    for start in range(0, len(texts), per_call):
        chunk = texts[start : start + per_call]
        variables = {
            "task_description": task.description,
            "taxonomy": task.taxonomy(),
            "numbered_texts": "\n".join(f"{i}. {t}" for i, t in enumerate(chunk)),
        }
        brief = {"action": "label", "labels": list(task.labels), "texts": chunk}
        # Temperature 0: a label is a judgement, not a creative draw (the profile drops it where not allowed).
        requests.append(
            template.request(variables, brief, items=len(chunk), round=round, temperature=0.0, labels=list(task.labels))
        )
    return requests
