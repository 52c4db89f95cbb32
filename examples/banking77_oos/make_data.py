"""Build the out-of-scope example from Banking77 (deterministic, seed 0).

    python examples/banking77_oos/make_data.py            # from the repository root

The protocol of held-out intents (Larson et al. 2019; Zhang et al. 2021, who hold out Banking77
intents as out of scope): the 20 intents of ``examples/banking77`` are in scope, and messages of the
other 57 Banking77 intents are the out-of-scope ones, labeled ``out_of_scope``. The in-scope part of
every file is ``examples/banking77``'s own (same seeds, validation, test and pool); this script adds:

- validation: 2 messages per other intent (upstream train split), labeled ``out_of_scope``;
- test: 4 per other intent (upstream test split), labeled ``out_of_scope``;
- pool: 15 per other intent (upstream train split) with their *real* intent, so the simulator knows
  them as banking messages of other intents: it answers ``out_of_scope`` for them when labeling,
  and serves them when asked to write out-of-scope examples. The pool is also the task's unlabeled
  traffic (labels ignored).

Seeds stay in-scope only: out-of-scope examples for training come from the teacher. No text
appears in two files (case-insensitively), and upstream train texts that occur in its test split
are left out.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
IN_SCOPE = HERE.parent / "banking77"
SOURCE = HERE.parents[2] / "shared" / "data" / "banking77"
OUT_OF_SCOPE = "out_of_scope"
PER_INTENT = {"validation": 2, "test": 4, "pool": 15}


def read(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write(path: Path, rows: list[dict[str, str]]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def by_intent(rows: list[dict[str, str]], intents: list[str], exclude: set[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        if row["label"] in intents and row["text"].casefold().strip() not in exclude:
            out[row["label"]].append(row["text"])
    return out


def main() -> None:
    rng = random.Random(0)
    in_scope = (IN_SCOPE / "labels.txt").read_text(encoding="utf-8").split()
    others = [label for label in (SOURCE / "labels.txt").read_text(encoding="utf-8").split() if label not in in_scope]
    train, test = read(SOURCE / "train.jsonl"), read(SOURCE / "test.jsonl")
    files = {name: read(IN_SCOPE / f"{name}.jsonl") for name in ("seed", "validation", "test", "pool")}
    taken = {r["text"].casefold().strip() for rows in files.values() for r in rows}
    taken |= {r["text"].casefold().strip() for r in test}  # train texts that are also test texts: never used
    train_texts = by_intent(train, others, taken)
    test_texts = by_intent(test, others, {r["text"].casefold().strip() for rows in files.values() for r in rows})
    for intent in others:
        texts = train_texts[intent][:]
        rng.shuffle(texts)
        validation, pool = texts[: PER_INTENT["validation"]], texts[PER_INTENT["validation"] :][: PER_INTENT["pool"]]
        files["validation"] += [{"text": t, "label": OUT_OF_SCOPE} for t in validation]
        files["pool"] += [{"text": t, "label": intent} for t in pool]
        held = test_texts[intent][:]
        rng.shuffle(held)
        files["test"] += [{"text": t, "label": OUT_OF_SCOPE} for t in held[: PER_INTENT["test"]]]
    for name, rows in files.items():
        write(HERE / f"{name}.jsonl", rows)
    (HERE / "labels.txt").write_text("\n".join(in_scope) + "\n", encoding="utf-8")
    counts = {
        name: (len(rows), sum(r["label"] == OUT_OF_SCOPE or r["label"] in others for r in rows))
        for name, rows in files.items()
    }
    print(", ".join(f"{name} {n} ({k} out of scope)" for name, (n, k) in counts.items()))


if __name__ == "__main__":
    main()
