"""The active-learning selection rules with a fast proxy student: frozen MiniLM embeddings + logistic regression.

    python bench/active_learning_proxy.py [--quick] --json bench/results/active_learning_proxy.json

Why a proxy: bench/active_learning.py runs the real loop (the fine-tuned encoder student through the
simulator), 18 runs of 4 trainings each; on the shared 2-core machine at load ~9 one run took ~45 min
and it could not finish. This bench uses the same task files (bench/loop_efficiency.make_task: 5 real
seed examples and 10 validation examples per label, the rest of the real training texts as the
unlabeled pool, the real test split) and the same selection code (agent.active: select_by_margin,
select_margin_diversity), but the student is ``trainers.baselines``' frozen-embedding LR, retrained
from scratch each round, and the "teacher" is the gold label flipped to a random other label with
probability --label-noise. Each of --rounds rounds labels --per-round texts of up to --candidates
candidates (a seeded draw, the same for every rule); the score is test macro-F1 after the last round
(equal labels). Seeds are paired: every rule starts from the same task files.

Besides macro-F1 it records what each rule chose: the gold-label mix against the pool's, how alike one
round's batch is (mean pairwise cosine), how typical the chosen texts are of their class (cosine to the
class centroid of the whole pool), and per-class test F1.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loop_efficiency import DATA, ROOT, make_task, paired

sys.path.insert(0, str(ROOT))

from agent.active import select_by_margin, select_margin_diversity

METHODS = ("random", "margin", "margin_diversity")
PAIRS = (("margin", "random"), ("margin_diversity", "random"), ("margin_diversity", "margin"))


def lr_student(x: np.ndarray, y: list[str]) -> Any:
    from trainers.baselines import EMBEDDING_C, logistic_regression

    return logistic_regression(EMBEDDING_C).fit(x, y)


def macro_f1(gold: list[str], predicted: list[str]) -> tuple[float, dict[str, float]]:
    from sklearn.metrics import f1_score

    labels = sorted(set(gold))
    per_class = f1_score(gold, predicted, labels=labels, average=None, zero_division=0)
    return float(np.mean(per_class)), {c: float(f) for c, f in zip(labels, per_class, strict=True)}


def choose(method: str, model: Any, x_pool: np.ndarray, idx: list[int], k: int, rng: random.Random) -> list[int]:
    """``k`` of the candidate rows ``idx`` (indices into the pool) by the named rule."""
    if method == "random":
        return rng.sample(idx, k)
    proba = model.predict_proba(x_pool[idx])
    if method == "margin":
        picked = select_by_margin(proba, k)
    else:
        picked = select_margin_diversity(proba, lambda rows: x_pool[[idx[i] for i in rows]], k)
    return [idx[i] for i in picked]


def run_rule(method: str, task: dict[str, Any], args: argparse.Namespace, seed: int) -> dict[str, Any]:
    x_pool, pool_gold, labels = task["x_pool"], task["pool_gold"], task["labels"]
    rng = random.Random(f"{seed}:{method}")
    noise = random.Random(f"{seed}:noise")  # the same seeded noise stream for every rule
    x, y = task["x_seed"], list(task["seed_gold"])
    used: set[int] = set()
    alike, chosen_all = [], []
    for round in range(args.rounds):
        model = lr_student(x, y)
        fresh = [i for i in range(len(pool_gold)) if i not in used]
        idx = random.Random(f"{seed}:{round}:candidates").sample(fresh, min(args.candidates, len(fresh)))
        chosen = choose(method, model, x_pool, idx, args.per_round, rng)
        used.update(chosen)
        chosen_all += chosen
        batch = x_pool[chosen]
        sims = batch @ batch.T
        alike.append(float((sims.sum() - np.trace(sims)) / (len(batch) * (len(batch) - 1))))
        taught = [
            noise.choice([c for c in labels if c != pool_gold[i]])
            if noise.random() < args.label_noise
            else pool_gold[i]
            for i in chosen
        ]
        x, y = np.vstack([x, batch]), y + taught
    f1, per_class = macro_f1(task["test_gold"], [str(p) for p in lr_student(x, y).predict(task["x_test"])])
    gold = [pool_gold[i] for i in chosen_all]
    typical = [float(x_pool[i] @ task["centroids"][pool_gold[i]]) for i in chosen_all]
    return {
        "macro_f1": f1,
        "per_class_test_f1": per_class,
        "chosen_gold_share": {c: n / len(gold) for c, n in sorted(Counter(gold).items())},
        "batch_mean_cosine": statistics.mean(alike),
        "typicality": statistics.mean(typical),
    }


def flip(label: str, labels: list[str], rng: random.Random) -> str:
    """The noisy teacher's wrong answer: another label, uniformly."""
    return rng.choice([c for c in labels if c != label])


def embedded_task(dataset: str, seed: int, embedder: Any, memo: dict[str, np.ndarray]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        spec = make_task(dataset, seed, folder, (5, 10), 0)
        rows = {
            name: [json.loads(line) for line in (folder / f"{name}.jsonl").read_text().splitlines()]
            for name in ("seed", "pool", "test")
        }
    missing = list(dict.fromkeys(r["text"] for part in rows.values() for r in part if r["text"] not in memo))
    if missing:
        memo.update(zip(missing, embedder(missing), strict=True))

    def vectors(part: str) -> np.ndarray:
        return np.stack([memo[r["text"]] for r in rows[part]])

    pool_gold = [r["label"] for r in rows["pool"]]
    x_pool = vectors("pool")
    centroids = {}
    for label in sorted(set(pool_gold)):
        mean = x_pool[[i for i, g in enumerate(pool_gold) if g == label]].mean(axis=0)
        centroids[label] = mean / np.linalg.norm(mean)
    return {
        "labels": spec["labels"],
        "x_seed": vectors("seed"),
        "seed_gold": [r["label"] for r in rows["seed"]],
        "x_pool": x_pool,
        "pool_gold": pool_gold,
        "x_test": vectors("test"),
        "test_gold": [r["label"] for r in rows["test"]],
        "centroids": centroids,
    }


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    f1 = [r["macro_f1"] for r in runs]
    classes = sorted({c for r in runs for c in r["per_class_test_f1"]})
    shares = sorted({c for r in runs for c in r["chosen_gold_share"]})
    return {
        "macro_f1_mean": statistics.mean(f1),
        "macro_f1_sd": statistics.stdev(f1) if len(f1) > 1 else 0.0,
        "per_seed_macro_f1": f1,
        "batch_mean_cosine": statistics.mean(r["batch_mean_cosine"] for r in runs),
        "typicality": statistics.mean(r["typicality"] for r in runs),
        "chosen_gold_share": {c: statistics.mean(r["chosen_gold_share"].get(c, 0.0) for r in runs) for c in shares},
        "per_class_test_f1": {c: statistics.mean(r["per_class_test_f1"][c] for r in runs) for c in classes},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="TREC only, 3 seeds, 2 rounds of 30")
    parser.add_argument("--datasets", default="trec,banking77")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-round", type=int, default=60)
    parser.add_argument("--label-noise", type=float, default=0.05)
    parser.add_argument("--candidates", type=int, default=5000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"needs the shared datasets at {DATA}")
    datasets = ["trec"] if args.quick else args.datasets.split(",")
    if args.quick:
        args.seeds, args.rounds, args.per_round = 3, 2, 30
    from trainers.embeddings import SentenceEmbedder

    embedder, memo = SentenceEmbedder(), dict[str, np.ndarray]()
    results: dict[str, Any] = {}
    for dataset in datasets:
        runs: dict[str, list[dict[str, Any]]] = {m: [] for m in METHODS}
        pool_share: dict[str, float] = {}
        for seed in range(args.seeds):
            task = embedded_task(dataset, seed, embedder, memo)
            pool_share = {c: n / len(task["pool_gold"]) for c, n in sorted(Counter(task["pool_gold"]).items())}
            for method in METHODS:
                runs[method].append(run_rule(method, task, args, seed))
                print(f"{dataset} seed {seed} {method}: test macro-F1 {runs[method][-1]['macro_f1']:.3f}", flush=True)
        summary: dict[str, Any] = {m: summarise(rows) for m, rows in runs.items()}
        summary["pool_gold_share"] = pool_share
        for a, b in PAIRS:
            summary[f"{a}_minus_{b}"] = paired(summary[a]["per_seed_macro_f1"], summary[b]["per_seed_macro_f1"])
        results[dataset] = summary
        print_table(dataset, summary)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            config = {k: getattr(args, k) for k in ("seeds", "rounds", "per_round", "label_noise", "candidates")}
            args.json.write_text(json.dumps({**config, "student": "frozen MiniLM + LR", "datasets": results}, indent=2))


def print_table(dataset: str, summary: dict[str, Any]) -> None:
    print(f"\n{dataset}: test macro-F1 (mean ± sd over seeds); chosen texts: within-batch cosine, typicality")
    for method in METHODS:
        s = summary[method]
        print(
            f"  {method:<16} {s['macro_f1_mean']:.3f} ± {s['macro_f1_sd']:.3f}   alike {s['batch_mean_cosine']:.3f}"
            f"   typical {s['typicality']:.3f}"
        )
        print(f"  {'':<16} chosen mix " + " ".join(f"{c}:{v:.2f}" for c, v in s["chosen_gold_share"].items()))
        print(f"  {'':<16} test F1    " + " ".join(f"{c}:{v:.2f}" for c, v in s["per_class_test_f1"].items()))
    print(f"  {'pool mix':<16} " + " ".join(f"{c}:{v:.2f}" for c, v in summary["pool_gold_share"].items()))
    for a, b in PAIRS:
        p = summary[f"{a}_minus_{b}"]
        print(f"  {a} − {b}: {p['mean']:+.3f} ± {p['sd']:.3f} (wins {p['wins']}/{p['n']})")


if __name__ == "__main__":
    main()
