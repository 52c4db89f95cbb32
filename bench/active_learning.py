"""Does uncertainty sampling pick better texts for the teacher to label than a random draw, and does a
diversity step on top of it help?

    python bench/active_learning.py [--quick] --json bench/results/active_learning.json

Per dataset and seed, both methods start from the same 5 real examples per label and the same validation
set (made exactly as in bench/loop_efficiency.py), have no teacher-written examples at all
(``examples_per_round: 0``), and each round the simulated teacher labels ``--per-round`` texts of the
same unlabeled pool (real training texts, their labels hidden; the simulator answers with the gold label,
flipped toward a confusable class with probability ``--label-noise``):

- margin            the texts with the smallest top-1 − top-2 probability under the previous round's
                    student, taken in turn from each predicted class;
- margin_diversity  the 4·k most uncertain of those, clustered into k groups on frozen MiniLM
                    embeddings (k-means from a k-center start), one text per group (the nearest its centre);
- random            a seeded uniform draw from the same candidates.

Equal label budget; early stopping off; the reported model is the round with the best held-back
validation macro-F1, scored on the test split. Needs ../shared/data.

Besides test macro-F1 it records what each rule chose, to explain a loss: the gold-label mix of the
chosen texts against the pool's, how often the (noisy) teacher's label differed from gold, how alike
the texts of one round's batch are (mean pairwise cosine, MiniLM), how typical they are of their class
(mean cosine to the class centroid of up to 100 pool texts), and per-class test F1 at the reported round.
The JSON is rewritten after each dataset, so a cut-short run keeps what finished.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loop_efficiency import DATA, make_task, paired, run_method, write

METHODS = ("random", "margin", "margin_diversity")
PAIRS = (("margin", "random"), ("margin_diversity", "random"), ("margin_diversity", "margin"))
CENTROID_TEXTS = 100  # pool texts per class for the class centroids of the typicality measure


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
            # The label audit would drop and relabel some of the chosen texts: off, so every rule's
            # labels reach the student as the teacher gave them and the budgets stay equal.
            "label_audit": False,
        },
    }


def selection_evidence(run_dir: Path, gold: dict[str, str], centroids: dict[str, Any], embedder: Any) -> dict[str, Any]:
    """What the rule chose over the run: gold-label mix, teacher-vs-gold disagreement, redundancy, typicality."""
    import numpy as np

    from agent.store import RunStore

    store = RunStore(run_dir / "run.sqlite")
    chosen = [e for e in store.examples("train") if e.origin == "active"]
    store.close()
    labels = [gold.get(e.text, "?") for e in chosen]
    vectors = embedder([e.text for e in chosen])
    alike = []
    for round in sorted({e.round for e in chosen}):
        batch = vectors[[i for i, e in enumerate(chosen) if e.round == round]]
        if len(batch) > 1:
            sims = batch @ batch.T
            alike.append(float((sims.sum() - np.trace(sims)) / (len(batch) * (len(batch) - 1))))
    typical = [float(v @ centroids[g]) for v, g in zip(vectors, labels, strict=True) if g in centroids]
    return {
        "chosen": len(chosen),
        "chosen_gold_share": {g: labels.count(g) / len(labels) for g in sorted(set(labels))} if labels else {},
        "teacher_disagrees_with_gold": sum(e.label != g for e, g in zip(chosen, labels, strict=True))
        / max(1, len(chosen)),
        "batch_mean_cosine": statistics.mean(alike) if alike else None,
        "typicality": statistics.mean(typical) if typical else None,
    }


def class_centroids(pool: list[dict[str, str]], embedder: Any, seed: int) -> dict[str, Any]:
    """Unit-length mean MiniLM vector of up to ``CENTROID_TEXTS`` pool texts per class (seeded sample)."""
    import random

    import numpy as np

    rng = random.Random(seed)
    out = {}
    for label in sorted({r["label"] for r in pool}):
        texts = [r["text"] for r in pool if r["label"] == label]
        mean = embedder(rng.sample(texts, min(CENTROID_TEXTS, len(texts)))).mean(axis=0)
        out[label] = mean / np.linalg.norm(mean)
    return out


def per_class_test_f1(run_dir: Path, best_round: int) -> dict[str, float]:
    report = json.loads((run_dir / "models" / f"round-{best_round:02d}" / "eval_test.json").read_text())
    return {label: float(m["f1"]) for label, m in report["per_class"].items()}


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    f1 = [r["macro_f1"] for r in runs]
    labels = sorted({label for r in runs for label in r["per_class_test_f1"]})
    shares = sorted({label for r in runs for label in r["chosen_gold_share"]})
    return {
        "macro_f1_mean": statistics.mean(f1),
        "macro_f1_sd": statistics.stdev(f1) if len(f1) > 1 else 0.0,
        "accuracy_mean": statistics.mean(r["accuracy"] for r in runs),
        "examples": statistics.mean(r["examples"] for r in runs),
        "teacher_tokens": statistics.mean(r["teacher_tokens"] for r in runs),
        "seeds": [r["seed"] for r in runs],
        "per_seed_macro_f1": f1,
        "best_round": [r["best_round"] for r in runs],
        "teacher_disagrees_with_gold": statistics.mean(r["teacher_disagrees_with_gold"] for r in runs),
        "batch_mean_cosine": _mean(r["batch_mean_cosine"] for r in runs),
        "typicality": _mean(r["typicality"] for r in runs),
        "chosen_gold_share": {g: statistics.mean(r["chosen_gold_share"].get(g, 0.0) for r in runs) for g in shares},
        "per_class_test_f1": {g: statistics.mean(r["per_class_test_f1"].get(g, 0.0) for r in runs) for g in labels},
    }


def _mean(values: Any) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.mean(present) if present else None


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
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of " + ",".join(METHODS))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"needs the shared datasets at {DATA}")
    datasets = ["trec"] if args.quick else args.datasets.split(",")
    seeds = range(1 if args.quick else args.seeds)
    rounds = 2 if args.quick else args.rounds
    from trainers.embeddings import SentenceEmbedder

    embedder = SentenceEmbedder()
    methods = [m for m in METHODS if m in args.methods.split(",")]
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {d: {m: [] for m in methods} for d in datasets}
    pool_share: dict[str, dict[str, float]] = {}
    # Seed by seed, every dataset and method: a run cut short still has paired seeds on both datasets.
    for seed in seeds:
        for dataset in datasets:
            pool_share[dataset] = run_seed(dataset, seed, methods, rounds, args, embedder, runs[dataset])
            if args.json:
                write_json(args, list(seeds), rounds, methods, summaries(runs, pool_share, verbose=False))
    results = summaries(runs, pool_share, verbose=True)
    if args.json:
        write_json(args, list(seeds), rounds, methods, results)


def run_seed(
    dataset: str,
    seed: int,
    methods: list[str],
    rounds: int,
    args: argparse.Namespace,
    embedder: Any,
    runs: dict[str, list[dict[str, Any]]],
) -> dict[str, float]:
    """Every method on one seed's task files; appends a row per method to ``runs``; the pool's label mix."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        task = make_task(dataset, seed, folder, (5, 10), 0)
        pool = [json.loads(line) for line in (folder / "pool.jsonl").read_text().splitlines()]
        write(folder / "unlabeled.jsonl", [{"text": r["text"]} for r in pool])
        gold = {r["text"]: r["label"] for r in pool}
        centroids = class_centroids(pool, embedder, seed)
        for method in methods:
            spec = spec_for(
                dataset, task["labels"], method, seed, rounds, args.per_round, args.label_noise, args.candidates
            )
            row = run_method(folder, spec)
            row.pop("kept_texts"), row.pop("kept_labels")
            run_dir = folder / spec["name"]
            row |= selection_evidence(run_dir, gold, centroids, embedder)
            row["per_class_test_f1"] = per_class_test_f1(run_dir, row["best_round"])
            row["seed"] = seed
            runs[method].append(row)
            print(
                f"{dataset} seed {seed} {method}: test macro-F1 {row['macro_f1']:.3f} "
                f"(best round {row['best_round']}, {row['examples']} examples)",
                flush=True,
            )
    return {g: n / len(pool) for g, n in sorted(Counter(r["label"] for r in pool).items())}


def summaries(
    runs: dict[str, dict[str, list[dict[str, Any]]]], pool_share: dict[str, dict[str, float]], *, verbose: bool
) -> dict[str, Any]:
    """Per dataset: each method's summary over the seeds run so far and the paired differences."""
    results: dict[str, Any] = {}
    for dataset, by_method in runs.items():
        done = [m for m, rows in by_method.items() if rows]
        if not done:
            continue
        summary: dict[str, Any] = {m: summarise(by_method[m]) for m in done}
        summary["pool_gold_share"] = pool_share[dataset]
        for a, b in PAIRS:
            if a in summary and b in summary and len(by_method[a]) == len(by_method[b]):
                summary[f"{a}_minus_{b}"] = paired(summary[a]["per_seed_macro_f1"], summary[b]["per_seed_macro_f1"])
        results[dataset] = summary
        if verbose:
            print_table(dataset, summary)
    return results


def write_json(args: argparse.Namespace, seeds: list[int], rounds: int, methods: list[str], results: Any) -> None:
    """Rewritten after every seed, so a run cut short keeps what finished."""
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "seeds": seeds,
                "rounds": rounds,
                "per_round": args.per_round,
                "label_noise": args.label_noise,
                "candidates": args.candidates,
                "label_audit": False,
                "methods": methods,
                "datasets": results,
            },
            indent=2,
        )
    )


def print_table(dataset: str, summary: dict[str, Any]) -> None:
    print(
        f"\n{dataset}: test macro-F1 (mean ± sd over seeds), training examples, teacher tokens; what was chosen:"
        " teacher≠gold share, mean cosine within a batch, typicality (cosine to own class centroid)"
    )
    for method in (m for m in METHODS if m in summary):
        s = summary[method]
        print(
            f"  {method:<16} {s['macro_f1_mean']:.3f} ± {s['macro_f1_sd']:.3f}   n={s['examples']:.0f}"
            f"   tokens={s['teacher_tokens']:.0f}   best rounds {s['best_round']}"
            f"   noisy {s['teacher_disagrees_with_gold']:.3f}   alike {_fmt(s['batch_mean_cosine'])}"
            f"   typical {_fmt(s['typicality'])}"
        )
        print(f"  {'':<16} chosen mix {_shares(s['chosen_gold_share'])}")
        print(f"  {'':<16} test F1    {_shares(s['per_class_test_f1'])}")
    print(f"  {'pool mix':<16} {_shares(summary['pool_gold_share'])}")
    for a, b in PAIRS:
        if f"{a}_minus_{b}" in summary:
            p = summary[f"{a}_minus_{b}"]
            print(f"  {a} − {b}: {p['mean']:+.3f} ± {p['sd']:.3f} (wins {p['wins']}/{p['n']})")


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _shares(values: dict[str, float]) -> str:
    return " ".join(f"{label}:{v:.2f}" for label, v in values.items())


if __name__ == "__main__":
    main()
