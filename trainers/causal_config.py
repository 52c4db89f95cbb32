"""Settings of a causal-LM student's supervised fine-tuning (TRL SFT), torch-free so a spec can hold them.

Every setting is reachable from a spec, and the resolved values (``auto`` decided for the device the run
found) are saved with the checkpoint, so a model folder says exactly how it was trained.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class CausalLMConfig(BaseModel):
    """How the causal student is fine-tuned. ``None`` means "decide for the device" (see ``trainers.sft``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["causal_lm"] = Field(
        "causal_lm", description="As a classification spec's student: the LM writes the label's name."
    )
    base_model: str = Field(
        "smollm2",
        min_length=1,
        description="smollm2 (the packaged SmolLM2-135M-Instruct, converted once into the cache) or the path "
        "of a Hugging Face model folder with a chat template.",
    )
    lora: bool = Field(False, description="Train LoRA adapters (peft) instead of every weight; merged at save.")
    lora_r: int = Field(16, ge=1, le=1024)
    lora_alpha: int = Field(32, ge=1)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    lora_target_modules: str | list[str] = Field(
        "all-linear", description="'all-linear' or a list of module names, e.g. [q_proj, v_proj]."
    )
    learning_rate: float | None = Field(None, gt=0, description="Default: 2e-4 with LoRA, 5e-5 without.")
    epochs: float = Field(2.0, gt=0, le=100)
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps (overrides epochs).")
    batch_size: int = Field(8, ge=1, le=1024, description="Per device.")
    gradient_accumulation_steps: int = Field(1, ge=1, le=1024)
    max_length: int = Field(256, ge=16, le=32768, description="Tokens per example (prompt + answer); longer is cut.")
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    packing: bool | None = Field(None, description="Pack examples into full sequences. Default: on CUDA only.")
    bf16: bool | None = Field(
        None,
        description="bfloat16 mixed precision. Default: where the device computes in bf16 (an Ampere or newer "
        "GPU; a CPU with AVX512-BF16 or AMX).",
    )
    gradient_checkpointing: bool | None = Field(
        None, description="Recompute activations in the backward pass (less memory). Default: on."
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when present, else CPU.")
    seed: int = 0

    @property
    def resolved_learning_rate(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        return 2e-4 if self.lora else 5e-5
