"""Second-opinion requests for the label audit: texts whose given label looks wrong, judged again.

A different prompt from ``label`` (prompts/audit.yaml): it shows the given label and the audit's
suggestion beside the full label list and asks for a fresh judgement, so the teacher reviews rather
than relabels blind. The simulator answers it as any ``label`` brief (the pool's label of the text).
"""

from __future__ import annotations

from dataclasses import dataclass

from generators.generation import TaskInfo
from generators.prompts import get_template
from generators.teacher import TeacherRequest


@dataclass(frozen=True)
class AuditItem:
    text: str
    given: str
    suggested: str


def audit_requests(
    task: TaskInfo, items: list[AuditItem], *, per_call: int, round: int, labels: list[str]
) -> list[TeacherRequest]:
    """Requests asking for a second opinion on ``items`` (in order), ``per_call`` per call.

    ``labels`` is every answer the reply may give (the task's labels, plus ``out_of_scope`` when the task
    has it): the schema's enum and the simulator's brief.
    """
    template = get_template("audit")
    requests = []
    for start in range(0, len(items), per_call):
        chunk = items[start : start + per_call]
        variables = {
            "task_description": task.description,
            "taxonomy": task.taxonomy(),
            "numbered_items": "\n".join(
                f"{i}. {item.text}\n   (given: {item.given}; suggested: {item.suggested})"
                for i, item in enumerate(chunk)
            ),
        }
        brief = {"action": "label", "labels": labels, "texts": [item.text for item in chunk]}
        # Temperature 0: a second opinion is a judgement, not a creative draw.
        requests.append(
            template.request(variables, brief, items=len(chunk), round=round, temperature=0.0, labels=labels)
        )
    return requests
