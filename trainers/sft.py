"""Supervised fine-tuning of a causal-LM student with TRL's ``SFTTrainer`` (LoRA through peft, optional).

The data are chat prompt–completion pairs: the loss falls on the answer tokens only (TRL's
``completion_only_loss``), so the student learns to answer, not to repeat the prompt. TRL is the engine:
this module only resolves the settings for the device, loads a trainable model, and saves the result as a
plain Hugging Face folder (LoRA adapters merged) that ``transformers``, vLLM and llama.cpp's converter load
without distill. The resolved settings and the training figures travel in ``distill_sft.json`` beside it.

Device: CUDA when present, else the CPU; bf16 mixed precision where the device computes in bfloat16,
activation checkpointing, and packing on CUDA (``resolve_device``). Under ``accelerate launch`` the same
code trains data-parallel: the Trainer reads the processes from the environment.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trainers.atomic import write_folder
from trainers.causal_config import CausalLMConfig
from trainers.local_llm import LocalModelError, resolve_local_model

SETTINGS_FILE = "distill_sft.json"
Progress = Callable[[int, int], None]  # (optimizer steps done, total)


@dataclass(frozen=True)
class SFTExample:
    """One training pair: the chat messages before the answer, and the answer the student should write."""

    prompt: list[dict[str, str]]
    completion: str


@dataclass(frozen=True)
class ResolvedDevice:
    device: str  # "cuda" | "cpu"
    bf16: bool
    packing: bool
    gradient_checkpointing: bool


@dataclass(frozen=True)
class SFTStats:
    """What one fine-tuning measured (saved in ``distill_sft.json``)."""

    steps: int
    epochs: float
    seconds: float
    train_tokens: int  # non-padding tokens the model read, prompts included
    tokens_per_s: float
    losses: list[float] = field(default_factory=list)  # the training loss at each logged step
    device: str = "cpu"
    precision: str = "fp32"
    processes: int = 1
    examples: int = 0

    @property
    def examples_per_s(self) -> float:
        return round(self.examples * self.epochs / self.seconds, 2) if self.seconds > 0 else 0.0

    @property
    def first_loss(self) -> float | None:
        return self.losses[0] if self.losses else None

    @property
    def final_loss(self) -> float | None:
        return self.losses[-1] if self.losses else None


@dataclass(frozen=True)
class SFTResult:
    stats: SFTStats
    model: Any  # the trained model as saved (LoRA merged), in eval mode, still in memory
    tokenizer: Any


def resolve_device(
    config: CausalLMConfig, *, cuda: bool | None = None, bf16_supported: bool | None = None
) -> ResolvedDevice:
    """``auto`` settings decided for the machine (``bf16_supported``: whether the chosen device has bfloat16).

    bf16 mixed precision wherever the hardware computes in bfloat16: a CUDA GPU from Ampere on, or a CPU
    with AVX512-BF16 or AMX (TRL's own default is bf16 on any device). Activation checkpointing everywhere:
    it saves memory on a GPU, and on the CPU it measured faster, not slower (an 8-step probe, SmolLM2-135M
    in bf16 on a 2-core AVX512-BF16 CPU: 110–114 vs 79–89 tokens/s). Packing on CUDA only.
    """
    import torch

    has_cuda = torch.cuda.is_available() if cuda is None else cuda
    if config.device == "cuda" and not has_cuda:
        raise LocalModelError("student.device is cuda but no CUDA GPU is visible; use device: auto or cpu")
    on_cuda = has_cuda and config.device != "cpu"
    if bf16_supported is None:
        bf16_supported = bool(torch.cuda.is_bf16_supported()) if on_cuda else cpu_has_bf16()
    if config.bf16 and not bf16_supported:
        where = "this GPU" if on_cuda else "this CPU (it needs AVX512-BF16 or AMX)"
        raise LocalModelError(f"student.bf16: {where} does not compute in bfloat16; leave bf16 unset (auto)")

    def decide(setting: bool | None, default: bool) -> bool:
        return default if setting is None else setting

    return ResolvedDevice(
        device="cuda" if on_cuda else "cpu",
        bf16=decide(config.bf16, bf16_supported),
        packing=decide(config.packing, on_cuda),
        gradient_checkpointing=decide(config.gradient_checkpointing, True),
    )


def cpu_has_bf16() -> bool:
    """Whether this CPU has bfloat16 instructions (AVX512-BF16 or AMX), where bf16 autocast pays off."""
    import torch

    try:  # private probes, present in every torch we pin; a torch without them: assume not
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:
        return False


def trainable_folder(base_model: str, cache_dir: Path) -> Path:
    """A Hugging Face folder that can be trained: ``smollm2`` (converted once into ``cache_dir``) or a path.

    A GGUF file is refused with the way out: transformers can read one but not train or save the
    quantized model it loads.
    """
    if base_model.strip().lower().endswith(".gguf"):
        raise LocalModelError(
            f"student.base_model {base_model!r} is a GGUF file: a model loaded from GGUF cannot be trained or "
            "saved as is. Convert it to a Hugging Face folder first (dequantized weights + tokenizer; distill "
            "does this itself for base_model: smollm2) and give that folder"
        )
    return resolve_local_model(base_model, cache_dir)


def train_sft(
    examples: list[SFTExample],
    config: CausalLMConfig,
    out_dir: Path,
    *,
    cache_dir: Path,
    progress: Progress | None = None,
) -> SFTResult:
    """Fine-tune ``config.base_model`` on ``examples``; the merged model lands in ``out_dir`` (replaced whole)."""
    if not examples:
        raise ValueError("no training examples for the causal student")
    folder = trainable_folder(config.base_model, cache_dir)
    device = resolve_device(config)
    tokenizer, model = _load_trainable(folder)
    with tempfile.TemporaryDirectory(prefix="distill-sft-") as scratch:
        trainer = _trainer(model, tokenizer, examples, config, device, Path(scratch), progress)
        started = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - started
    state = trainer.state
    trained = trainer.model
    if config.lora:
        trained = trained.merge_and_unload()  # one plain folder: no peft needed to load or serve it
    tokens = int(state.num_input_tokens_seen or 0)
    stats = SFTStats(
        steps=int(state.global_step),
        epochs=float(state.epoch or 0.0),
        seconds=round(seconds, 3),
        train_tokens=tokens,
        tokens_per_s=round(tokens / seconds, 1) if seconds > 0 else 0.0,
        losses=[float(entry["loss"]) for entry in state.log_history if "loss" in entry],
        device=device.device,
        precision="bf16" if device.bf16 else "fp32",
        processes=int(trainer.args.world_size),
        examples=len(examples),
    )
    if trainer.args.process_index == 0:
        _save(trained, tokenizer, out_dir, folder, config, device, stats)
    return SFTResult(stats, trained.eval(), tokenizer)


def load_settings(model_dir: Path) -> dict[str, Any]:
    """What ``train_sft`` saved beside the model: the config, the resolved device and the figures."""
    path = Path(model_dir) / SETTINGS_FILE
    if not path.is_file():
        raise LocalModelError(f"{model_dir} has no {SETTINGS_FILE}: it was not written by distill's SFT trainer")
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def _load_trainable(folder: Path) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    if not tokenizer.chat_template:
        raise LocalModelError(
            f"{folder}: the tokenizer has no chat template, so prompts cannot be formatted; "
            "use an instruction-tuned model's folder"
        )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # fp32 master weights everywhere; on a GPU bf16 is autocast by the Trainer (args.bf16).
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32, local_files_only=True)
    return tokenizer, model


def _trainer(
    model: Any,
    tokenizer: Any,
    examples: list[SFTExample],
    config: CausalLMConfig,
    device: ResolvedDevice,
    scratch: Path,
    progress: Progress | None,
) -> Any:
    from datasets import Dataset
    from transformers import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    rows = [{"prompt": e.prompt, "completion": [{"role": "assistant", "content": e.completion}]} for e in examples]
    args = SFTConfig(
        output_dir=str(scratch),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.resolved_learning_rate,
        warmup_steps=config.warmup_ratio,  # a float in [0, 1) is a ratio of the total steps
        weight_decay=config.weight_decay,
        max_length=config.max_length,
        packing=device.packing,
        bf16=device.bf16,
        activation_checkpointing=device.gradient_checkpointing,
        use_cpu=device.device == "cpu",
        completion_only_loss=True,
        include_num_input_tokens_seen="non_padding",
        seed=config.seed,
        data_seed=config.seed,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,  # every trainable weight gets a gradient; skip DDP's extra graph walk
    )
    callbacks = [_progress_callback(progress)] if progress is not None else []
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=_lora(config) if config.lora else None,
        callbacks=callbacks,
    )
    # With tqdm off the Trainer prints every log dict to stdout; distill shows its own progress bar.
    trainer.remove_callback(PrinterCallback)
    return trainer


def _lora(config: CausalLMConfig) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.lora_target_modules,
        task_type="CAUSAL_LM",
    )


def _progress_callback(progress: Progress) -> Any:
    """A TrainerCallback reporting optimizer steps (built here: transformers is imported lazily)."""
    from transformers import TrainerCallback

    class ProgressCallback(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            progress(int(state.global_step), int(state.max_steps))

    return ProgressCallback()


def _save(
    model: Any,
    tokenizer: Any,
    out_dir: Path,
    base: Path,
    config: CausalLMConfig,
    device: ResolvedDevice,
    stats: SFTStats,
) -> None:
    """Write the model folder whole or not at all (``trainers.atomic``): a crash never leaves half a model."""

    def write(folder: Path) -> None:
        model.save_pretrained(str(folder))
        tokenizer.save_pretrained(str(folder))
        settings = {
            "config": config.model_dump(mode="json"),
            "resolved": asdict(device) | {"learning_rate": config.resolved_learning_rate},
            "base_model_folder": base.name,
            "stats": asdict(stats),
        }
        (folder / SETTINGS_FILE).write_text(json.dumps(settings, indent=2) + "\n")

    write_folder(out_dir, write)
