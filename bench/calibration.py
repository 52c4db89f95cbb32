"""Does temperature scaling on the held-back split calibrate the student on test?

    python bench/calibration.py [--quick] --json bench/results/calibration.json

Per seed: the default student (the packaged MiniLM, ``trainers.config.EncoderConfig``) is trained on the shipped
Banking77-20 example's seed texts plus ``--per-label`` real pool texts per intent; its temperature is fitted
exactly as a run fits it (``trainers.calibration.fit_temperature``) on 5 validation texts per intent standing in
for the held-back split; expected calibration error (15 bins) is measured on the 800 test texts before and
after. Labels, accuracy and F1 do not change with the temperature; only the confidence does.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
from pathlib import Path
from typing import Any

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "banking77"


def _rows(name: str) -> list[dict[str, str]]:
    return [json.loads(line) for line in (EXAMPLE / name).read_text(encoding="utf-8").splitlines() if line.strip()]


def _per_label(rows: list[dict[str, str]], labels: list[str], n: int) -> list[dict[str, str]]:
    return [row for label in labels for row in [r for r in rows if r["label"] == label][:n]]


def one_seed(seed: int, per_label: int, labels: list[str]) -> dict[str, Any]:
    from trainers.calibration import fit_temperature, softmax
    from trainers.config import EncoderConfig
    from trainers.encoder import EncoderClassifier
    from trainers.evaluate import evaluate

    rng = random.Random(seed)
    pool, validation = _rows("pool.jsonl"), _rows("validation.jsonl")
    rng.shuffle(pool)
    rng.shuffle(validation)
    train = _rows("seed.jsonl") + _per_label(pool, labels, per_label)
    heldback, test = _per_label(validation, labels, 5), _rows("test.jsonl")
    student = EncoderClassifier.create(labels, EncoderConfig(seed=seed))
    student.train([r["text"] for r in train], [r["label"] for r in train])
    index = {label: i for i, label in enumerate(labels)}
    held_logits = student.predict_logits([r["text"] for r in heldback])
    temperature = fit_temperature(held_logits, [index[r["label"]] for r in heldback])
    test_logits = student.predict_logits([r["text"] for r in test])
    gold = [r["label"] for r in test]
    before = evaluate(gold, softmax(test_logits), labels)
    after = evaluate(gold, softmax(test_logits, temperature), labels)
    return {
        "seed": seed,
        "train": len(train),
        "heldback": len(heldback),
        "test": len(test),
        "temperature": round(temperature, 3),
        "test_accuracy": round(before.accuracy, 4),
        "ece_before": round(before.ece, 4),
        "ece_after": round(after.ece, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one seed, 5 pool texts per intent")
    parser.add_argument("--per-label", type=int, default=15, help="real pool texts per intent added to the seed")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    labels = [line.strip() for line in (EXAMPLE / "labels.txt").read_text().splitlines() if line.strip()]
    seeds = [0] if args.quick else [int(s) for s in args.seeds.split(",")]
    per_label = 5 if args.quick else args.per_label
    rows = []
    print(f"{'seed':>4} {'train':>5} {'T':>6} {'test acc':>8} {'ECE before':>10} {'ECE after':>9}")
    for seed in seeds:
        row = one_seed(seed, per_label, labels)
        rows.append(row)
        print(
            f"{row['seed']:>4} {row['train']:>5} {row['temperature']:>6.3f} {row['test_accuracy']:>8.3f} "
            f"{row['ece_before']:>10.3f} {row['ece_after']:>9.3f}",
            flush=True,
        )
    summary = {
        "ece_before": round(statistics.mean(r["ece_before"] for r in rows), 4),
        "ece_after": round(statistics.mean(r["ece_after"] for r in rows), 4),
        "seeds": len(rows),
    }
    print(f"mean ECE on test: {summary['ece_before']:.3f} before, {summary['ece_after']:.3f} after")
    if args.json:
        args.json.write_text(json.dumps({"per_label": per_label, "rows": rows, **summary}, indent=2) + "\n")


if __name__ == "__main__":
    main()
