"""Does distill's SFT path train as fast as plain TRL, and how does the LM student classify against the encoder?

    python bench/sft_speed.py [--quick] [--parts speed,quality] --json bench/results/sft_speed.json

1. Speed. The same data (Banking77-20 classification-as-generation chats: message → intent name), the same
   model (the packaged SmolLM2-135M-Instruct, converted once into the model cache), the same settings
   (batch, length, learning rate, steps) trained by ``trainers.sft.train_sft`` with its device defaults and
   by a plain TRL ``SFTTrainer`` script with TRL's defaults (both bf16 mixed precision with activation
   checkpointing on a CPU with AVX512-BF16/AMX; the JSON records each side's precision), in alternating
   order per seed (ours first on even seeds) so that the machine's load and the first training's one-off
   costs hit both alike.
   Training tokens per second = non-padding tokens read ÷ wall time of ``trainer.train()`` (the Trainer's
   own ``num_input_tokens_seen``), model loading excluded for both. ``ratio_vs_plain_trl`` = ours ÷ plain.
2. Quality at equal data. The shipped example's 100 seed texts + ``--per-label`` real pool texts per intent
   train both the LM student (full fine-tune, constrained label scoring at inference) and the default
   encoder student; macro-F1 on the test split (800 texts; ``--quick`` 200).

CPU unless a GPU is present: absolute figures depend on the machine; the ratio is the point.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from resumable import kept_seed_results

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "banking77"


def _rows(name: str) -> list[dict[str, str]]:
    return [json.loads(line) for line in (EXAMPLE / name).read_text(encoding="utf-8").splitlines() if line.strip()]


def training_rows(seed: int, per_label: int, labels: list[str]) -> list[dict[str, str]]:
    pool = _rows("pool.jsonl")
    random.Random(seed).shuffle(pool)
    picked = [row for label in labels for row in [r for r in pool if r["label"] == label][:per_label]]
    rows = _rows("seed.jsonl") + picked
    random.Random(seed).shuffle(rows)
    return rows


def sft_settings(seed: int, steps: int) -> dict[str, Any]:
    return {"max_steps": steps, "batch_size": 8, "max_length": 128, "learning_rate": 1e-4, "seed": seed}


def ours(folder: Path, rows: list[dict[str, str]], settings: dict[str, Any], out: Path) -> dict[str, Any]:
    from trainers.causal_classifier import classification_prompt
    from trainers.causal_config import CausalLMConfig
    from trainers.sft import SFTExample, train_sft

    examples = [SFTExample(classification_prompt(r["text"]), r["label"]) for r in rows]
    config = CausalLMConfig(base_model=str(folder), **settings)
    stats = train_sft(examples, config, out, cache_dir=folder.parent).stats
    return {
        "tokens": stats.train_tokens,
        "seconds": stats.seconds,
        "tokens_per_s": stats.tokens_per_s,
        "precision": stats.precision,
    }


def plain_trl(folder: Path, rows: list[dict[str, str]], settings: dict[str, Any], scratch: Path) -> dict[str, Any]:
    """What a TRL user would write: the documented SFTTrainer recipe on prompt–completion chats."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from trainers.causal_classifier import classification_prompt

    dataset = Dataset.from_list(
        [
            {"prompt": classification_prompt(r["text"]), "completion": [{"role": "assistant", "content": r["label"]}]}
            for r in rows
        ]
    )
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    args = SFTConfig(
        output_dir=str(scratch),
        max_steps=settings["max_steps"],
        per_device_train_batch_size=settings["batch_size"],
        max_length=settings["max_length"],
        learning_rate=settings["learning_rate"],
        seed=settings["seed"],
        include_num_input_tokens_seen="non_padding",
        save_strategy="no",
        report_to=[],
        logging_steps=10,
        disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(),
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    tokens = int(trainer.state.num_input_tokens_seen)
    return {
        "tokens": tokens,
        "seconds": round(seconds, 3),
        "tokens_per_s": round(tokens / seconds, 1),
        "precision": "bf16" if args.bf16 else "fp32",
    }


def lm_macro_f1(
    folder: Path, settings: dict[str, Any], rows: list[dict[str, str]], labels: list[str], test: list[dict[str, str]]
) -> tuple[float, float]:
    """The causal student as a run trains it (``CausalClassifier``): macro-F1 on test and training seconds."""
    from trainers.causal_classifier import CausalClassifier
    from trainers.causal_config import CausalLMConfig
    from trainers.evaluate import evaluate

    student = CausalClassifier.create(labels, CausalLMConfig(base_model=str(folder), **settings))
    stats = student.train([r["text"] for r in rows], [r["label"] for r in rows])
    student.batch_size = 64
    proba = student.predict_proba([r["text"] for r in test])
    return float(evaluate([r["label"] for r in test], proba, labels).macro_f1), stats.seconds


def encoder_macro_f1(rows: list[dict[str, str]], labels: list[str], test: list[dict[str, str]], seed: int) -> float:
    from trainers.config import EncoderConfig
    from trainers.encoder import EncoderClassifier
    from trainers.evaluate import evaluate

    student = EncoderClassifier.create(labels, EncoderConfig(seed=seed))
    student.train([r["text"] for r in rows], [r["label"] for r in rows])
    proba = student.predict_proba([r["text"] for r in test])
    return float(evaluate([r["label"] for r in test], proba, labels).macro_f1)


def main() -> None:
    from trainers.local_llm import model_cache_dir, smollm2_folder

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 seed, 10 steps for speed, 5 texts/intent, 200 test")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--speed-steps", type=int, default=30, help="optimizer steps of each speed measurement")
    parser.add_argument("--per-label", type=int, default=15, help="real pool texts per intent for the F1 part")
    parser.add_argument("--epochs", type=float, default=3.0, help="LM student epochs for the F1 part")
    parser.add_argument("--test-texts", type=int, help="score a seeded sample of the test split (default: all 800)")
    parser.add_argument(
        "--parts",
        default="speed,quality",
        help="speed, quality or both: the speed part wants an idle machine, the quality part does not",
    )
    parser.add_argument("--json", type=Path, help="written after every seed ('complete' says whether all ran)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the seeds --json already holds from a run cut short with the same settings; run only the rest",
    )
    args = parser.parse_args()
    parts = {part.strip() for part in args.parts.split(",")}
    if not parts or parts - {"speed", "quality"}:
        parser.error("--parts: speed, quality or speed,quality")
    seeds = [0] if args.quick else [int(s) for s in args.seeds.split(",")]
    steps = 10 if args.quick else args.speed_steps
    per_label = 5 if args.quick else args.per_label
    labels = [line.strip() for line in (EXAMPLE / "labels.txt").read_text().splitlines() if line.strip()]
    test = _rows("test.jsonl")
    if args.quick or args.test_texts:
        test = random.Random(0).sample(test, 200 if args.quick else min(args.test_texts, len(test)))
    folder = smollm2_folder(model_cache_dir())
    kept = args.json if args.resume else None
    speed = kept_seed_results(kept, "speed", {"speed_steps": steps}, seeds)
    f1_part = {"per_label": per_label, "test_texts": len(test), "epochs": args.epochs}
    quality = kept_seed_results(kept, "quality", f1_part, seeds)
    with tempfile.TemporaryDirectory(prefix="sft-speed-") as tmp:
        scratch = Path(tmp)
        for seed in seeds:
            rows = training_rows(seed, per_label, labels)
            settings = sft_settings(seed, steps)
            if "speed" in parts and not any(s["seed"] == seed for s in speed):
                speed.append(measure_speed(folder, rows, settings, seed, scratch))
            if "quality" in parts and not any(q["seed"] == seed for q in quality):
                batches = len(rows) / settings["batch_size"]
                f1_settings = settings | {"max_steps": round(args.epochs * batches)}
                lm, lm_seconds = lm_macro_f1(folder, f1_settings, rows, labels, test)
                encoder = encoder_macro_f1(rows, labels, test, seed)
                quality.append(
                    {
                        "seed": seed,
                        "train": len(rows),
                        "lm_macro_f1": round(lm, 4),
                        "encoder_macro_f1": round(encoder, 4),
                        "lm_train_seconds": lm_seconds,
                    }
                )
                print(f"seed {seed} macro-F1 on {len(test)} test texts: LM student {lm:.4f}, encoder {encoder:.4f}")
            result = {
                "model": "SmolLM2-135M-Instruct (full fine-tune)",
                "device": _device(),
                "seeds": seeds,
                "complete": all(
                    {r["seed"] for r in done} == set(seeds)
                    for part, done in (("speed", speed), ("quality", quality))
                    if part in parts
                ),
                **({"speed_steps": steps, "speed": speed, **speed_summary(speed)} if speed else {}),
                **(
                    {
                        "per_label": per_label,
                        "test_texts": len(test),
                        "epochs": args.epochs,
                        "quality": quality,
                        **quality_summary(quality),
                    }
                    if quality
                    else {}
                ),
            }
            if args.json:
                args.json.parent.mkdir(parents=True, exist_ok=True)
                args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in ("speed", "quality")}))


def measure_speed(
    folder: Path, rows: list[dict[str, str]], settings: dict[str, Any], seed: int, scratch: Path
) -> dict[str, Any]:
    # Alternate who goes first: the first training of a process pays one-off costs (allocator, threads).
    if seed % 2 == 0:
        mine = ours(folder, rows, settings, scratch / "ours")
        plain = plain_trl(folder, rows, settings, scratch / "plain")
    else:
        plain = plain_trl(folder, rows, settings, scratch / "plain")
        mine = ours(folder, rows, settings, scratch / "ours")
    ratio = mine["tokens_per_s"] / plain["tokens_per_s"]
    print(f"seed {seed} speed: ours {mine['tokens_per_s']} tok/s, plain TRL {plain['tokens_per_s']} → {ratio:.3f}")
    return {"seed": seed, "ours": mine, "plain_trl": plain, "ratio": round(ratio, 3)}


def speed_summary(speed: list[dict[str, Any]]) -> dict[str, Any]:
    ratios = [s["ratio"] for s in speed]
    return {
        "ratio_vs_plain_trl": round(statistics.median(ratios), 3),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
    }


def quality_summary(quality: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "lm_macro_f1_mean": round(statistics.mean(q["lm_macro_f1"] for q in quality), 4),
        "encoder_macro_f1_mean": round(statistics.mean(q["encoder_macro_f1"] for q in quality), 4),
    }


def _device() -> str:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu ({torch.get_num_threads()} threads)"


if __name__ == "__main__":
    main()
