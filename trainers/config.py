"""The encoder student's settings, defined once: defaults, help text and valid ranges (no torch here).

``EncoderConfig`` is at the same time a spec's ``student`` section (``agent.spec``: a typo is an
error naming the field), what ``trainers.encoder`` trains with, and what every model folder records
in full (``distill_student.json``), so a saved model loads back with exactly its settings. The
defaults are the recipe measured by ``bench/student_recipe.py``.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class EncoderConfig(BaseModel):
    """How the encoder student is built and trained; saved in full with every model folder."""

    model_config = ConfigDict(extra="forbid", frozen=True)  # shared by the spec and the trainer: read-only

    kind: Literal["encoder"] = Field("encoder", description="encoder (this) or causal_lm (a small LM writing labels).")
    base_model: str | None = Field(
        None,
        min_length=1,
        description="Local Hugging Face folder of the encoder; unset: the packaged all-MiniLM-L6-v2.",
    )
    max_length: int = Field(64, ge=8, le=512, description="Tokens per text; longer texts are truncated.")
    epochs: int = Field(
        4,
        ge=1,
        le=200,
        description="Passes over the training set, unless min_steps asks for more (small data) or max_steps for fewer.",
    )
    min_steps: int = Field(
        150,
        ge=0,
        description="At least this many optimisation steps, however small the data: tiny sets need updates, "
        "not epochs.",
    )
    max_steps: int | None = Field(None, ge=1, description="Cap on optimisation steps (unset: no cap).")
    lr: float = Field(5e-5, gt=0, lt=1, description="Peak learning rate of the encoder body (AdamW).")
    head_lr: float = Field(3e-3, gt=0, lt=1, description="Peak learning rate of the linear head; ≫ lr.")
    batch_size: int = Field(16, ge=1, le=1024, description="Texts per optimisation step.")
    seed: int = Field(0, description="Seeds head init, dropout and data order.")
    warm_start: bool = Field(
        False,
        description="Continue each round from the previous round's student instead of the base model.",
    )
    head_init: Literal["logistic", "random"] = Field(
        "logistic",
        description="logistic: the head starts as a logistic regression fitted on frozen embeddings of the "
        "training set (LP-FT); random: plain initialisation.",
    )
    head_init_c: float = Field(10.0, gt=0, description="Inverse regularisation C of that logistic regression.")
    label_smoothing: float = Field(0.1, ge=0, lt=1, description="Cross-entropy label smoothing, in [0, 1).")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay (not on biases and LayerNorm).")
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="Share of steps with linear learning-rate warm-up.")
    freeze_embeddings: bool = Field(
        True,
        description="Keep the token-embedding matrix fixed: half the parameters, faster steps, less overfitting.",
    )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EncoderConfig:
        """Rebuild a saved config (``distill_student.json``); a bad or unknown key is a ``ValueError`` naming it."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ValueError(f"EncoderConfig: {problems}") from None

    def total_steps(self, n_examples: int) -> int:
        """Optimisation steps for a training set of ``n_examples``: epochs, floored and capped."""
        steps = max(self.min_steps, self.epochs * math.ceil(n_examples / self.batch_size))
        return min(steps, self.max_steps) if self.max_steps is not None else steps
