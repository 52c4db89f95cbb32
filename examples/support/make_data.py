"""Build the support example's customer messages from the Bitext sample (deterministic, seed 0).

    python examples/support/make_data.py            # from the repository root

Keeps only the intents that policy.yaml maps to a flow. Writes customer_messages.jsonl (the teacher
simulator's pool of learning scenarios, from the Bitext *train* split) and heldout_messages.jsonl
(held-out scenarios, from the Bitext *test* split); no text appears in both.
"""

from __future__ import annotations

import argparse
import json
import random
from collections import defaultdict
from pathlib import Path

from generators.service_policy import Policy

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[2] / "shared" / "data" / "bitext_customer_service"


def read(path: Path) -> dict[str, list[str]]:
    """Texts per intent, in file order."""
    by_label: dict[str, list[str]] = defaultdict(list)
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        by_label[record["label"]].append(record["text"])
    return by_label


def sample(
    by_label: dict[str, list[str]], intents: list[str], k: int, exclude: set[str], rng: random.Random
) -> list[dict[str, str]]:
    """``k`` texts per intent, none of them (case-insensitively) in ``exclude``."""
    rows = []
    for intent in intents:
        texts = [t for t in by_label[intent] if t.casefold() not in exclude]
        rows += [{"text": t, "label": intent} for t in rng.sample(texts, k)]
    return rows


def write(path: Path, rows: list[dict[str, str]]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA, help="the Bitext customer-service folder")
    parser.add_argument("--pool-per-intent", type=int, default=20)
    parser.add_argument("--heldout-per-intent", type=int, default=6)
    args = parser.parse_args()
    intents = sorted(Policy.load(HERE / "policy.yaml").intents)
    rng = random.Random(0)
    train, test = read(args.data / "train.jsonl"), read(args.data / "test.jsonl")
    heldout = sample(test, intents, args.heldout_per_intent, set(), rng)
    pool = sample(train, intents, args.pool_per_intent, {r["text"].casefold() for r in heldout}, rng)
    write(HERE / "customer_messages.jsonl", pool)
    write(HERE / "heldout_messages.jsonl", heldout)
    print(f"{len(intents)} intents: {len(pool)} pool messages, {len(heldout)} held-out messages")


if __name__ == "__main__":
    main()
