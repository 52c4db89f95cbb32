"""Does uncertainty sampling pick better texts for the teacher to label than a random draw?

    python bench/active_learning.py [--quick] --json bench/results/active_learning.json

Per dataset and seed, both methods start from the same 5 real examples per label and the same validation
set (made exactly as in bench/loop_efficiency.py), have no teacher-written examples at all
(``examples_per_round: 0``), and each round the simulated teacher labels ``--per-round`` texts of the
same unlabeled pool (real training texts, their labels hidden; the simulator answers with the gold label,
flipped toward a confusable class with probability ``--label-noise``):

- margin   the texts with the smallest top-1 − top-2 probability under the previous round's student;
- random   a seeded uniform draw from the same candidates.

Equal label budget; early stopping off; the reported model is the round with the best held-back
validation macro-F1, scored on the test split. Needs ../shared/data.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loop_efficiency import DATA, make_task, paired, run_method, write

METHODS = ("random", "margin")


def spec_for(
    dataset: str,
    labels: list[str],
    method: str,
    seed: int,
    rounds: int,
    per_round: int,
    label_noise: float,
    candidates: int,
) -> dict[str, Any]:
    return {
        "name": f"active-{dataset}-{method}-{seed}",
        "task": {
            "description": f"Classify {dataset} texts.",
            "labels": [{"name": n} for n in labels],
            "seed_examples": "seed.jsonl",
            "validation": "validation.jsonl",
            "test": "test.jsonl",
            "unlabeled": "unlabeled.jsonl",
        },
        "teacher": {
            "provider": "simulator",
            "pool": "pool.jsonl",
            "max_concurrency": 16,
            "knobs": {"seed": seed, "label_noise": label_noise},
        },
        "student": {"seed": seed},
        "loop": {
            "max_rounds": rounds,
            "seed_per_label": 0,
            "examples_per_round": 0,
            "patience": rounds + 1,
            "active_per_round": per_round,
            "active_selection": method,
            "active_candidates": candidates,
            "batch_per_call": 10,
        },
    }


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    f1 = [r["macro_f1"] for r in runs]
    return {
        "macro_f1_mean": statistics.mean(f1),
        "macro_f1_sd": statistics.stdev(f1) if len(f1) > 1 else 0.0,
        "accuracy_mean": statistics.mean(r["accuracy"] for r in runs),
        "examples": statistics.mean(r["examples"] for r in runs),
        "teacher_tokens": statistics.mean(r["teacher_tokens"] for r in runs),
        "wall_s": statistics.mean(r["wall_s"] for r in runs),
        "per_seed_macro_f1": f1,
        "best_round": [r["best_round"] for r in runs],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="TREC only, 1 seed, 2 rounds")
    parser.add_argument("--datasets", default="trec,banking77")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-round", type=int, default=60, help="texts the teacher labels per round")
    parser.add_argument("--label-noise", type=float, default=0.05)
    parser.add_argument(
        "--candidates",
        type=int,
        default=5000,
        help="loop.active_candidates: unlabeled texts drawn (at random) and scored per round",
    )
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of random,margin")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"needs the shared datasets at {DATA}")
    datasets = ["trec"] if args.quick else args.datasets.split(",")
    seeds = range(1 if args.quick else args.seeds)
    rounds = 2 if args.quick else args.rounds
    results: dict[str, Any] = {}
    for dataset in datasets:
        methods = [m for m in METHODS if m in args.methods.split(",")]
        runs: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
        for seed in seeds:
            with tempfile.TemporaryDirectory() as tmp:
                folder = Path(tmp)
                task = make_task(dataset, seed, folder, (5, 10), 0)
                pool = [json.loads(line) for line in (folder / "pool.jsonl").read_text().splitlines()]
                write(folder / "unlabeled.jsonl", [{"text": r["text"]} for r in pool])
                for method in methods:
                    spec = spec_for(
                        dataset, task["labels"], method, seed, rounds, args.per_round, args.label_noise, args.candidates
                    )
                    row = run_method(folder, spec)
                    row.pop("kept_texts"), row.pop("kept_labels")
                    runs[method].append(row)
                    print(
                        f"{dataset} seed {seed} {method}: test macro-F1 {row['macro_f1']:.3f} "
                        f"(best round {row['best_round']}, {row['examples']} examples)",
                        flush=True,
                    )
        summary: dict[str, Any] = {m: summarise(rows) for m, rows in runs.items()}
        if len(methods) == 2:
            summary["margin_minus_random"] = paired(
                summary["margin"]["per_seed_macro_f1"], summary["random"]["per_seed_macro_f1"]
            )
        results[dataset] = summary
        print_table(dataset, summary)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "seeds": list(seeds),
                    "rounds": rounds,
                    "per_round": args.per_round,
                    "label_noise": args.label_noise,
                    "candidates": args.candidates,
                    "datasets": results,
                },
                indent=2,
            )
        )


def print_table(dataset: str, summary: dict[str, Any]) -> None:
    print(f"\n{dataset}: test macro-F1 (mean ± sd over seeds), training examples, teacher tokens, wall s")
    for method in (m for m in METHODS if m in summary):
        s = summary[method]
        print(
            f"  {method:<7} {s['macro_f1_mean']:.3f} ± {s['macro_f1_sd']:.3f}   n={s['examples']:.0f}"
            f"   tokens={s['teacher_tokens']:.0f}   {s['wall_s']:.0f}s   best rounds {s['best_round']}"
        )
    if "margin_minus_random" in summary:
        p = summary["margin_minus_random"]
        print(f"  margin − random: {p['mean']:+.3f} ± {p['sd']:.3f} (wins {p['wins']}/{p['n']})")


if __name__ == "__main__":
    main()
