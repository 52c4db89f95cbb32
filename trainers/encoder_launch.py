"""Fine-tune the encoder student from files: the entry point ``accelerate launch`` runs on N processes.

    python -m trainers.encoder_launch --data examples.jsonl --out model/
    accelerate launch --num_processes 8 -m trainers.encoder_launch --data examples.jsonl --out model/

``--data`` is JSONL with ``text`` and ``label`` per line — ``distill export RUN --data OUT`` writes such a
file (``OUT/examples.jsonl``); where lines carry a ``split``, only ``--split`` (default ``train``) is read.
``--labels`` fixes the label set and its order (a file, one label per line; default: the data's labels,
sorted); ``--config`` is a JSON object of ``EncoderConfig`` settings. The same code runs on one process or
many: ``trainers.data_parallel`` joins the process group ``accelerate launch`` set up, each process takes
its slice of every global batch and DDP averages the gradients; process 0 writes the model.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from trainers.atomic import write_folder
from trainers.config import EncoderConfig
from trainers.data_parallel import is_main_process, launched_processes
from trainers.encoder import EncoderClassifier


def read_examples(path: Path, split: str) -> tuple[list[str], list[str]]:
    """Texts and labels from JSONL; a bad line is a ``ValueError`` naming the file, the line and the fix."""
    texts, labels = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{number}: not JSON ({error.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("text"), str) or not isinstance(row.get("label"), str):
            raise ValueError(f'{path}:{number}: expected {{"text": "...", "label": "..."}} with string values')
        if row.get("split", split) != split:
            continue
        texts.append(row["text"])
        labels.append(row["label"])
    if not texts:
        raise ValueError(f"{path}: no examples with split {split!r}; pass --split or check the file")
    return texts, labels


def read_labels(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainers.encoder_launch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="JSONL of {text, label} (a data export works).")
    parser.add_argument("--split", default="train", help="Where lines carry a split, read only this one.")
    parser.add_argument("--labels", type=Path, help="Label set, one per line (default: the data's, sorted).")
    parser.add_argument("--config", type=Path, help="JSON object of EncoderConfig settings (default: defaults).")
    parser.add_argument("--out", type=Path, required=True, help="Model folder to write (replaced whole).")
    parser.add_argument("--stats", type=Path, help="Write the training figures here as JSON (process 0).")
    args = parser.parse_args(argv)
    try:
        # from_dict: the one-line error naming each bad field that saved model folders already use
        config = EncoderConfig.from_dict(json.loads(args.config.read_text())) if args.config else EncoderConfig()
        texts, labels = read_examples(args.data, args.split)
        label_set = read_labels(args.labels) if args.labels else sorted(set(labels))
        unknown = sorted(set(labels) - set(label_set))
        if unknown:
            raise ValueError(f"{args.data}: labels not in {args.labels}: {', '.join(unknown[:10])}")
        student = EncoderClassifier.create(label_set, config)
        stats = student.train(texts, labels)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if is_main_process():
        write_folder(args.out, student.save)
        if args.stats is not None:
            figures = asdict(stats) | {"processes": launched_processes()}
            args.stats.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
