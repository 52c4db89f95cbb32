"""TRL SFT of a causal student: a tiny Llama built from a config (no download), and a few steps of the real SmolLM2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from trainers.causal_config import CausalLMConfig
from trainers.local_llm import LocalChatModel, LocalModelError
from trainers.sft import (
    SETTINGS_FILE,
    SFTExample,
    cpu_has_bf16,
    load_settings,
    resolve_device,
    train_sft,
    trainable_folder,
)
from trainers.tiny_causal import build_tiny_causal_lm

PAIRS = [
    ("I lost my card yesterday", "lost_card"),
    ("my card never arrived", "card_arrival"),
    ("where is my new card", "card_arrival"),
    ("someone stole my card", "lost_card"),
]


def _examples() -> list[SFTExample]:
    return [SFTExample([{"role": "user", "content": text}], label) for text, label in PAIRS]


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    texts = [t for pair in PAIRS for t in pair] * 4
    return Path(build_tiny_causal_lm(tmp_path_factory.mktemp("tiny") / "lm", texts, hidden_size=64))


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32, local_files_only=True)
    return {k: v.clone() for k, v in model.state_dict().items()}


def _greedy(model: Any, tokenizer: Any, prompts: list[str]) -> list[list[int]]:
    """Greedy continuations (token ids) of each prompt as a one-turn chat."""
    outputs = []
    for prompt in prompts:
        ids = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, return_tensors="pt"
        )
        ids = ids["input_ids"] if not isinstance(ids, torch.Tensor) else ids
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=12, do_sample=False)
        outputs.append(out[0, ids.shape[1] :].tolist())
    return outputs


def test_full_fine_tune_lowers_the_loss_changes_weights_and_saves_a_plain_folder(tiny_lm: Path, tmp_path: Path) -> None:
    config = CausalLMConfig(base_model=str(tiny_lm), max_steps=30, batch_size=4, learning_rate=3e-3, seed=1)
    steps_seen: list[tuple[int, int]] = []
    result = train_sft(
        _examples(), config, tmp_path / "out", cache_dir=tmp_path, progress=lambda d, t: steps_seen.append((d, t))
    )
    stats = result.stats
    assert stats.steps == 30 and steps_seen[-1] == (30, 30)
    assert stats.first_loss is not None and stats.final_loss is not None
    assert stats.final_loss < 0.5 * stats.first_loss, stats.losses
    assert stats.train_tokens > 0 and stats.tokens_per_s > 0
    device = resolve_device(config)  # bf16 where this CPU has it: the run and the saved settings agree
    assert (stats.device, stats.precision, stats.processes) == ("cpu", "bf16" if device.bf16 else "fp32", 1)
    before, after = _weights(tiny_lm), _weights(tmp_path / "out")
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert len(changed) >= 0.9 * len(before)
    settings = json.loads((tmp_path / "out" / SETTINGS_FILE).read_text())
    assert settings["config"]["max_steps"] == 30
    assert settings["resolved"] == {
        "device": "cpu",
        "bf16": device.bf16,
        "packing": False,
        "gradient_checkpointing": True,
        "learning_rate": 3e-3,
    }
    assert load_settings(tmp_path / "out")["stats"]["steps"] == 30


def test_the_loss_falls_on_the_answer_only_so_the_student_learns_to_answer(tiny_lm: Path, tmp_path: Path) -> None:
    config = CausalLMConfig(base_model=str(tiny_lm), max_steps=60, batch_size=4, learning_rate=5e-3, seed=0)
    train_sft(_examples(), config, tmp_path / "out", cache_dir=tmp_path)
    student = LocalChatModel(tmp_path / "out", max_new_tokens=8)
    answers = [student.chat([{"role": "user", "content": text}])[0].strip() for text, _ in PAIRS]
    assert answers == [label for _, label in PAIRS]


def test_a_reloaded_checkpoint_gives_identical_greedy_output(tiny_lm: Path, tmp_path: Path) -> None:
    config = CausalLMConfig(base_model=str(tiny_lm), max_steps=8, batch_size=2, learning_rate=1e-3)
    result = train_sft(_examples(), config, tmp_path / "out", cache_dir=tmp_path)
    prompts = [f"{text} please" for text, _ in PAIRS]
    from transformers import AutoModelForCausalLM, AutoTokenizer

    reloaded = AutoModelForCausalLM.from_pretrained(str(tmp_path / "out"), dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(tmp_path / "out"))
    assert _greedy(result.model, result.tokenizer, prompts) == _greedy(reloaded, tokenizer, prompts)


def test_converted_smollm2_fine_tunes_for_a_few_steps_and_reloads_identically(smollm2: Path, tmp_path: Path) -> None:
    """The real student, not a tiny stand-in: SmolLM2-135M converted from its GGUF, 4 SFT steps with the device's
    default settings (bf16 and activation checkpointing on a CPU that has bf16), saved, reloaded.

    In the default suite: about a minute here (the session's conversion ~30 s, 4 steps, a 0.5 GB save).
    """
    pairs = [("I still have not received my new card", "card_arrival"), ("My card was stolen", "lost_or_stolen_card")]
    examples = [SFTExample([{"role": "user", "content": f"Intent of: {t}"}], label) for t, label in pairs * 4]
    config = CausalLMConfig(base_model=str(smollm2), max_steps=4, batch_size=2, max_length=64, learning_rate=1e-4)
    result = train_sft(examples, config, tmp_path / "out", cache_dir=tmp_path)
    stats = result.stats
    assert stats.steps == 4 and len(stats.losses) == 4 and stats.train_tokens > 0
    assert all(0.0 < loss < 20.0 for loss in stats.losses), stats.losses  # finite, a real LM's loss scale
    before, after = _weights(smollm2), _weights(tmp_path / "out")
    assert sum(not torch.equal(before[k], after[k]) for k in before) >= 0.9 * len(before)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    reloaded = AutoModelForCausalLM.from_pretrained(str(tmp_path / "out"), dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(tmp_path / "out"))
    prompts = ["Intent of: where is my card?", "Intent of: someone took my card"]
    assert _greedy(result.model, result.tokenizer, prompts) == _greedy(reloaded, tokenizer, prompts)


def test_lora_trains_adapters_and_saves_them_merged(tiny_lm: Path, tmp_path: Path) -> None:
    config = CausalLMConfig(base_model=str(tiny_lm), lora=True, lora_r=4, max_steps=20, batch_size=4, seed=0)
    result = train_sft(_examples(), config, tmp_path / "out", cache_dir=tmp_path)
    assert result.stats.final_loss is not None and result.stats.first_loss is not None
    assert result.stats.final_loss < result.stats.first_loss
    saved = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert "adapter_config.json" not in saved and "config.json" in saved  # merged: loads without peft
    before, after = _weights(tiny_lm), _weights(tmp_path / "out")
    assert before.keys() == after.keys()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    # all-linear LoRA touches the attention and MLP projections, never the embeddings or the norms
    assert changed and all(k.endswith("proj.weight") for k in changed)
    assert load_settings(tmp_path / "out")["resolved"]["learning_rate"] == 2e-4


def test_a_gguf_file_is_refused_with_the_way_out(tmp_path: Path) -> None:
    with pytest.raises(LocalModelError, match="GGUF file: a model loaded from GGUF cannot be trained"):
        trainable_folder(str(tmp_path / "model.Q4_1.gguf"), tmp_path)
    with pytest.raises(LocalModelError, match="not a Hugging Face model folder"):
        trainable_folder(str(tmp_path), tmp_path)


def test_the_device_decides_the_auto_settings() -> None:
    auto = CausalLMConfig()
    gpu = resolve_device(auto, cuda=True, bf16_supported=True)
    assert (gpu.device, gpu.bf16, gpu.packing, gpu.gradient_checkpointing) == ("cuda", True, True, True)
    old_gpu = resolve_device(auto, cuda=True, bf16_supported=False)
    assert (old_gpu.bf16, old_gpu.packing) == (False, True)
    cpu = resolve_device(auto, cuda=False, bf16_supported=False)
    assert (cpu.device, cpu.bf16, cpu.packing, cpu.gradient_checkpointing) == ("cpu", False, False, True)
    bf16_cpu = resolve_device(auto, cuda=False, bf16_supported=True)  # AVX512-BF16 / AMX
    assert (bf16_cpu.device, bf16_cpu.bf16, bf16_cpu.packing) == ("cpu", True, False)
    assert resolve_device(auto, cuda=False).bf16 == cpu_has_bf16()  # the probe decides when not told
    forced = resolve_device(
        CausalLMConfig(device="cpu", packing=True, gradient_checkpointing=False), cuda=True, bf16_supported=False
    )
    assert (forced.device, forced.bf16, forced.packing, forced.gradient_checkpointing) == ("cpu", False, True, False)
    with pytest.raises(LocalModelError, match="no CUDA GPU is visible"):
        resolve_device(CausalLMConfig(device="cuda"), cuda=False)
    with pytest.raises(LocalModelError, match=r"this CPU .* does not compute in bfloat16"):
        resolve_device(CausalLMConfig(bf16=True), cuda=False, bf16_supported=False)


def test_no_examples_is_an_error(tiny_lm: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no training examples"):
        train_sft([], CausalLMConfig(base_model=str(tiny_lm)), tmp_path / "out", cache_dir=tmp_path)
    assert not (tmp_path / "out").exists()


def test_the_launch_entry_point_names_a_bad_data_line_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from trainers.sft_launch import main

    data = tmp_path / "train.jsonl"
    data.write_text('{"prompt": "hi", "completion": "greeting"}\n{"prompt": "no answer"}\n')
    assert main(["--data", str(data), "--out", str(tmp_path / "out")]) == 2
    assert f"{data}:2: expected" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
