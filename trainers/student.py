"""The student, whichever kind the spec chose: an encoder classifier or a causal LM writing label names.

Both have one interface (``create`` → ``train`` → ``save``; ``load``; ``predict_logits`` / ``predict_proba`` /
``predict``; ``temperature`` and ``rejection`` in ``distill_student.json``), so the loop, calibration,
deferral, active learning and ``distill predict`` never ask which one they hold. ``load_student`` tells them
apart by the format recorded in the folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from trainers.causal_config import CausalLMConfig
from trainers.config import EncoderConfig

if TYPE_CHECKING:
    from trainers.rejection import Rejection

STUDENT_FILE = "distill_student.json"
CAUSAL_FORMAT = "distill-causal-lm-classifier"


class Student(Protocol):
    labels: list[str]
    temperature: float
    rejection: Rejection | None

    def train(self, texts: list[str], labels: list[str], *, progress: Any = None) -> Any: ...
    def save(self, directory: str | Path, card: dict[str, Any] | None = None) -> Path: ...
    def predict_logits(self, texts: list[str]) -> np.ndarray: ...
    def predict_proba(self, texts: list[str]) -> np.ndarray: ...
    def predict(self, texts: list[str]) -> list[tuple[str, float]]: ...


def create_student(labels: list[str], config: EncoderConfig | CausalLMConfig) -> Student:
    if isinstance(config, CausalLMConfig):
        from trainers.causal_classifier import CausalClassifier

        return CausalClassifier.create(labels, config)
    from trainers.encoder import EncoderClassifier

    return EncoderClassifier.create(labels, config)


def is_causal(directory: Path) -> bool:
    meta = Path(directory) / STUDENT_FILE
    return meta.is_file() and json.loads(meta.read_text(encoding="utf-8")).get("format") == CAUSAL_FORMAT


def load_student(directory: str | Path) -> Student:
    """The saved student in ``directory``, of the kind it was saved as."""
    if is_causal(Path(directory)):
        from trainers.causal_classifier import CausalClassifier

        return CausalClassifier.load(directory)
    from trainers.encoder import EncoderClassifier

    return EncoderClassifier.load(directory)
