"""Fine-tune a causal student from files: the entry point ``accelerate launch`` runs on N processes.

    python -m trainers.sft_launch --data train.jsonl --config sft.json --out model/
    accelerate launch --num_processes 8 -m trainers.sft_launch --data train.jsonl --config sft.json --out model/

``--data`` is JSONL of ``{"prompt": [chat messages], "completion": "answer"}`` (or ``{"prompt": "user
text", ...}``); ``--config`` is a JSON object of ``CausalLMConfig`` settings. The same code runs on one
process or many: the Trainer inside TRL reads the process group that ``accelerate launch`` set up (NCCL on
GPUs, gloo on CPUs), shards each global batch over the processes and averages the gradients; process 0
writes the model. Multi-node: the same command with ``--num_machines``, ``--machine_rank`` and
``--main_process_ip`` on each node.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pydantic import ValidationError

from trainers.causal_config import CausalLMConfig
from trainers.data_parallel import is_main_process
from trainers.local_llm import LocalModelError, model_cache_dir
from trainers.sft import SFTExample, train_sft


def read_examples(path: Path) -> list[SFTExample]:
    """SFT pairs from JSONL; a bad line is a ``ValueError`` naming the file, the line and what is wrong."""
    examples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            prompt, completion = row["prompt"], row["completion"]
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise ValueError(f"{path}:{number}: expected {{'prompt': ..., 'completion': ...}} ({error})") from None
        if isinstance(prompt, str):
            prompt = [{"role": "user", "content": prompt}]
        if not isinstance(completion, str) or not isinstance(prompt, list):
            raise ValueError(f"{path}:{number}: prompt must be a string or chat messages, completion a string")
        examples.append(SFTExample(prompt, completion))
    return examples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainers.sft_launch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="JSONL of {prompt, completion}.")
    parser.add_argument("--config", type=Path, help="JSON object of CausalLMConfig settings (default: defaults).")
    parser.add_argument("--out", type=Path, required=True, help="Model folder to write (replaced whole).")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="Where SmolLM2 is converted (default: $DISTILL_CACHE, else .cache/distill/models).",
    )
    parser.add_argument("--stats", type=Path, help="Write the training figures here as JSON (process 0).")
    args = parser.parse_args(argv)
    try:
        config = CausalLMConfig.model_validate_json(args.config.read_text()) if args.config else CausalLMConfig()
        examples = read_examples(args.data)
        result = train_sft(examples, config, args.out, cache_dir=args.cache_dir or model_cache_dir())
    except (ValueError, ValidationError, LocalModelError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.stats is not None and is_main_process():
        from dataclasses import asdict

        args.stats.write_text(json.dumps(asdict(result.stats), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
