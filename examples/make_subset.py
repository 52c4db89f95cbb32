"""Build a shipped task subset from one of ../shared/data's datasets (deterministic, seed 0).

    python examples/make_subset.py banking77 examples/banking77 --labels card_arrival,... \
        --seed-per-label 5 --val-per-label 10 --test-per-label 40

Writes seed.jsonl (real labeled seeds), validation.jsonl, test.jsonl (from the upstream test split),
pool.jsonl (the rest of the upstream train split: the simulator's supply of human-written texts)
and labels.txt. No text appears in two files.
"""

from __future__ import annotations

import argparse
import json
import random
from collections import defaultdict
from pathlib import Path


def read(path: Path) -> list[dict[str, str]]:
    return [{"text": r["text"], "label": r["label"]} for r in map(json.loads, path.read_text().splitlines())]


def write(path: Path, rows: list[dict[str, str]]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset")
    parser.add_argument("out", type=Path)
    parser.add_argument("--data-root", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--labels", default="", help="comma-separated subset (default: all)")
    parser.add_argument("--seed-per-label", type=int, default=5)
    parser.add_argument("--val-per-label", type=int, default=10)
    parser.add_argument("--test-per-label", type=int, default=40)
    args = parser.parse_args()
    source = args.data_root / args.dataset
    train, test = read(source / "train.jsonl"), read(source / "test.jsonl")
    labels = args.labels.split(",") if args.labels else (source / "labels.txt").read_text().split()
    rng = random.Random(0)
    test_texts = {r["text"].lower().strip() for r in test}
    by_label: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in train:
        # Upstream train/test share a few texts; keep them out of seeds, validation and pool.
        if row["label"] in labels and row["text"].lower().strip() not in test_texts:
            by_label[row["label"]].append(row)
    seed, validation, pool, test_out = [], [], [], []
    for label in labels:
        items = by_label[label][:]
        rng.shuffle(items)
        seed += items[: args.seed_per_label]
        validation += items[args.seed_per_label : args.seed_per_label + args.val_per_label]
        pool += items[args.seed_per_label + args.val_per_label :]
        label_test = [r for r in test if r["label"] == label]
        rng.shuffle(label_test)
        test_out += label_test[: args.test_per_label]
    args.out.mkdir(parents=True, exist_ok=True)
    for name, rows in (("seed", seed), ("validation", validation), ("test", test_out), ("pool", pool)):
        write(args.out / f"{name}.jsonl", rows)
    (args.out / "labels.txt").write_text("\n".join(labels) + "\n")
    print(f"{args.out}: seed {len(seed)}, validation {len(validation)}, test {len(test_out)}, pool {len(pool)}")


if __name__ == "__main__":
    main()
