"""Does the student's feedback make the teacher's data worth more? PGKD vs uniform at equal budget.

    python bench/loop_efficiency.py [--quick] --json bench/results/loop_efficiency.json

For each dataset and seed, every method starts from the same real seed examples and validation set,
trains the same student, and asks the (simulated) teacher for the same number of examples:

- seed_only      round 0 only (no teacher examples beyond the seed round);
- uniform        the budget spread evenly over labels, no feedback in the prompt;
- pgkd_nosmooth  PGKD prompts (report, correct, misclassified, hard negatives), error-proportional quotas;
- pgkd           PGKD prompts with DDK-smoothed quotas (the default);
- all_real       the student trained on every real training text of those labels (the ceiling);
- tfidf_lr, embed_lr   the two simple baselines trained on PGKD's final kept data.

Early stopping is off (patience > rounds) so budgets are equal; the reported model is the round
with the best held-back validation macro-F1, scored on the test split. Needs ../shared/data.

With --equal-usd, budgets are equal in dollars instead of examples, which is what a user pays: the
teacher is priced like gpt-4o-mini ($0.15 / $0.60 per 1M input / output tokens), every method gets
the same budget.max_usd (by default what `distill plan` expects uniform generation to spend in
--rounds rounds) and up to 3 × --rounds rounds, and runs until the budget stops it. Reported: dollars
and tokens per kept example, and paired differences at equal dollars.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DISTILL_QUIET", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import yaml  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
BANKING_LABELS = (ROOT / "examples" / "banking77" / "labels.txt").read_text().split()
METHODS = ("seed_only", "uniform", "pgkd_nosmooth", "pgkd")
PRICES = {"price_input_per_mtok": 0.15, "price_output_per_mtok": 0.60}  # gpt-4o-mini's list price


def read(path: Path) -> list[dict[str, str]]:
    return [{"text": r["text"], "label": r["label"]} for r in map(json.loads, path.read_text().splitlines())]


def write(path: Path, rows: list[dict[str, str]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def make_task(dataset: str, seed: int, folder: Path, per_label: tuple[int, int], test_cap: int) -> dict[str, Any]:
    """Seed/validation/pool/test files for one seed; returns the spec's task section and the real train."""
    labels = BANKING_LABELS if dataset == "banking77" else (DATA / dataset / "labels.txt").read_text().split()
    test = [r for r in read(DATA / dataset / "test.jsonl") if r["label"] in labels]
    test_keys = {r["text"].lower().strip() for r in test}
    train = [
        r
        for r in read(DATA / dataset / "train.jsonl")
        if r["label"] in labels and r["text"].lower().strip() not in test_keys
    ]
    rng = random.Random(seed)
    seeds, validation, pool = [], [], []
    for label in labels:
        items = [r for r in train if r["label"] == label]
        rng.shuffle(items)
        seeds += items[: per_label[0]]
        validation += items[per_label[0] : sum(per_label)]
        pool += items[sum(per_label) :]
    rng.shuffle(test)
    test = test[:test_cap] if test_cap else test
    for name, rows in (("seed", seeds), ("validation", validation), ("pool", pool), ("test", test)):
        write(folder / f"{name}.jsonl", rows)
    return {"labels": labels, "train": train, "test": test}


def spec_for(
    dataset: str,
    labels: list[str],
    method: str,
    seed: int,
    rounds: int,
    per_round: int,
    seed_per_label: int,
    base_model: str | None,
    max_usd: float | None = None,
) -> dict[str, Any]:
    """A run spec; with ``max_usd`` the budget, not the round count, decides how much each method buys."""
    if max_usd is not None and method != "seed_only":
        rounds = 3 * rounds
    return {
        "name": f"bench-{dataset}-{method}-{seed}",
        "task": {
            "description": f"Classify {dataset} texts.",
            "labels": [{"name": n} for n in labels],
            "seed_examples": "seed.jsonl",
            "validation": "validation.jsonl",
            "test": "test.jsonl",
        },
        "teacher": {
            "provider": "simulator",
            "pool": "pool.jsonl",
            "max_concurrency": 16,
            **PRICES,
            "knobs": {"seed": seed, "label_noise": 0.05, "dup_rate": 0.03, "copy_rate": 0.03},
        },
        **({"budget": {"max_usd": max_usd}} if max_usd is not None else {}),
        "student": {"seed": seed, "base_model": base_model},
        # A tiny test encoder puts every text near every other: near-duplicate checks only with the real one.
        **({"filters": {"near_duplicate_threshold": 0.9999, "leakage_threshold": 0.9999}} if base_model else {}),
        "loop": {
            "method": "pgkd" if method == "seed_only" else method,
            "max_rounds": 0 if method == "seed_only" else rounds,
            "seed_per_label": seed_per_label,
            "examples_per_round": per_round,
            "patience": rounds + 1,
            "batch_per_call": 5,
        },
    }


def run_method(folder: Path, spec: dict[str, Any]) -> dict[str, Any]:
    from agent.lifecycle import start
    from agent.store import RunStore

    path = folder / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec))
    started = time.perf_counter()
    outcome = start(path, folder / spec["name"])
    run_dir, result = outcome.run_dir, outcome.result
    seconds = time.perf_counter() - started
    store = RunStore(run_dir / "run.sqlite")
    usage = store.call_summary()
    kept = store.examples("train", kept=True)
    out = {
        "macro_f1": store.metric(result.best_round, "test", "macro_f1"),
        "accuracy": store.metric(result.best_round, "test", "accuracy"),
        "heldback_f1": store.metric(result.best_round, "heldback", "macro_f1"),
        "best_round": result.best_round,
        "examples": len(kept),
        "rounds": len(store.round_rows()),
        "teacher_tokens": usage["tokens_in"] + usage["tokens_out"],
        "usd": usage["cost_usd"],
        "wall_s": seconds,
        "kept_texts": [e.text for e in kept],
        "kept_labels": [e.label for e in kept],
    }
    store.close()
    return out


def score(gold: list[str], predicted: list[str], labels: list[str]) -> tuple[float, float]:
    from sklearn.metrics import accuracy_score, f1_score

    present = sorted(set(gold))
    return (
        float(f1_score(gold, predicted, labels=present, average="macro", zero_division=0)),
        float(accuracy_score(gold, predicted)),
    )


def baselines(
    pgkd: dict[str, Any], test: list[dict[str, str]], labels: list[str], base_model: str | None
) -> dict[str, dict[str, Any]]:
    from trainers.baselines import frozen_embedding_lr, tfidf_lr
    from trainers.embeddings import SentenceEmbedder

    gold = [r["label"] for r in test]
    texts = [r["text"] for r in test]
    out = {}
    for name, fn in (
        ("tfidf_lr", lambda: tfidf_lr(pgkd["kept_texts"], pgkd["kept_labels"], texts)),
        (
            "embed_lr",
            lambda: frozen_embedding_lr(pgkd["kept_texts"], pgkd["kept_labels"], texts, SentenceEmbedder(base_model)),
        ),
    ):
        started = time.perf_counter()
        f1, acc = score(gold, fn(), labels)
        out[name] = {
            "macro_f1": f1,
            "accuracy": acc,
            "examples": pgkd["examples"],
            "teacher_tokens": 0,
            "usd": 0.0,
            "wall_s": time.perf_counter() - started,
        }
    return out


def all_real(task: dict[str, Any], seed: int, cap_per_label: int, base_model: str | None) -> dict[str, Any]:
    from trainers.encoder import EncoderClassifier, EncoderConfig
    from trainers.evaluate import evaluate

    rng = random.Random(seed)
    train = []
    for label in task["labels"]:
        items = [r for r in task["train"] if r["label"] == label]
        rng.shuffle(items)
        train += items[:cap_per_label]
    started = time.perf_counter()
    student = EncoderClassifier.create(task["labels"], EncoderConfig(seed=seed, base_model=base_model))
    student.train([r["text"] for r in train], [r["label"] for r in train])
    texts = [r["text"] for r in task["test"]]
    evaluation = evaluate([r["label"] for r in task["test"]], student.predict_proba(texts), task["labels"])
    return {
        "macro_f1": evaluation.macro_f1,
        "accuracy": evaluation.accuracy,
        "examples": len(train),
        "teacher_tokens": 0,
        "usd": 0.0,
        "wall_s": time.perf_counter() - started,
    }


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    f1 = [r["macro_f1"] for r in runs]
    acc = [r["accuracy"] for r in runs]
    return {
        "macro_f1_mean": statistics.mean(f1),
        "macro_f1_sd": statistics.stdev(f1) if len(f1) > 1 else 0.0,
        "accuracy_mean": statistics.mean(acc),
        "accuracy_sd": statistics.stdev(acc) if len(acc) > 1 else 0.0,
        "examples": statistics.mean(r["examples"] for r in runs),
        "teacher_tokens": statistics.mean(r["teacher_tokens"] for r in runs),
        "usd": statistics.mean(r.get("usd", 0.0) for r in runs),
        "usd_per_kept_example": statistics.mean(r.get("usd", 0.0) / max(1, r["examples"]) for r in runs),
        "tokens_per_kept_example": statistics.mean(r["teacher_tokens"] / max(1, r["examples"]) for r in runs),
        "wall_s": statistics.mean(r["wall_s"] for r in runs),
        "per_seed_macro_f1": f1,
    }


def paired(a: list[float], b: list[float]) -> dict[str, Any]:
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    return {
        "mean": statistics.mean(diffs),
        "sd": statistics.stdev(diffs) if len(diffs) > 1 else 0.0,
        "wins": sum(d > 0 for d in diffs),
        "n": len(diffs),
        "diffs": diffs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="TREC only, 1 seed, 2 rounds")
    parser.add_argument("--seeds", type=int, default=3, help="how many seeds")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds run from here (to add seeds to a result)")
    parser.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        metavar="JSON",
        help="combine result files of disjoint seeds into --json (runs nothing)",
    )
    parser.add_argument("--datasets", default="trec,banking77")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--per-round", type=int, default=0, help="examples per round (default 5 per label, ≥60)")
    parser.add_argument("--base-model", default=None, help="student encoder folder (default: packaged MiniLM)")
    parser.add_argument("--methods", default=",".join(METHODS), help="which loop methods to run")
    parser.add_argument("--no-ceiling", action="store_true", help="skip all_real (the student on all real data)")
    parser.add_argument(
        "--equal-usd",
        nargs="?",
        const=-1.0,
        type=float,
        default=None,
        metavar="USD",
        help="equal dollars per method instead of equal examples (default USD: what uniform is "
        "planned to spend in --rounds rounds)",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.merge:
        merged = merge([json.loads(path.read_text()) for path in args.merge])
        for dataset, summary in merged["datasets"].items():
            print_table(dataset, summary)
        if args.json:
            args.json.write_text(json.dumps(merged, indent=2))
        return
    if not DATA.is_dir():
        sys.exit(f"needs the shared datasets at {DATA}")
    datasets = ["trec"] if args.quick else args.datasets.split(",")
    methods = [m for m in args.methods.split(",") if m]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        sys.exit(f"--methods: unknown {unknown}; known: {', '.join(METHODS)}")
    seeds = range(args.first_seed, args.first_seed + (1 if args.quick else args.seeds))
    rounds = 2 if args.quick else args.rounds
    results: dict[str, Any] = {}
    for dataset in datasets:
        per_method: dict[str, list[dict[str, Any]]] = defaultdict(list)
        n_labels = len(BANKING_LABELS) if dataset == "banking77" else 6
        per_round = args.per_round or max(60, 5 * n_labels)
        test_cap = 0
        for seed in seeds:
            with tempfile.TemporaryDirectory() as tmp:
                folder = Path(tmp)
                task = make_task(dataset, seed, folder, (5, 10), test_cap)
                max_usd = equal_budget(args.equal_usd, folder, dataset, task["labels"], seed, rounds, per_round)
                for method in methods:
                    spec = spec_for(
                        dataset,
                        task["labels"],
                        method,
                        seed,
                        rounds,
                        per_round,
                        seed_per_label=5,
                        base_model=args.base_model,
                        max_usd=max_usd,
                    )
                    per_method[method].append(run_method(folder, spec))
                    print(
                        f"{dataset} seed {seed} {method}: test macro-F1 {per_method[method][-1]['macro_f1']:.3f}",
                        flush=True,
                    )
                if "pgkd" in methods:
                    for name, row in baselines(
                        per_method["pgkd"][-1], task["test"], task["labels"], args.base_model
                    ).items():
                        per_method[name].append(row)
                if not args.no_ceiling:
                    per_method["all_real"].append(all_real(task, seed, 300, args.base_model))
                    print(f"{dataset} seed {seed} all_real: {per_method['all_real'][-1]['macro_f1']:.3f}", flush=True)
        summary = {m: summarise(rows) for m, rows in per_method.items()}
        for method in ("pgkd", "pgkd_nosmooth"):
            if method in summary and "uniform" in summary:
                summary[f"{method}_minus_uniform"] = paired(
                    summary[method]["per_seed_macro_f1"], summary["uniform"]["per_seed_macro_f1"]
                )
        results[dataset] = summary
        print_table(dataset, summary)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {"seeds": list(seeds), "rounds": rounds, "equal_usd": args.equal_usd, "datasets": results}, indent=2
            )
        )


def equal_budget(
    requested: float | None, folder: Path, dataset: str, labels: list[str], seed: int, rounds: int, per_round: int
) -> float | None:
    """The per-method budget: the one asked for, or (-1) what `distill plan` expects uniform to spend."""
    if requested is None or requested > 0:
        return requested
    from agent.plan import plan_run
    from agent.spec import parse_spec

    spec = spec_for(dataset, labels, "uniform", seed, rounds, per_round, seed_per_label=5, base_model=None)
    return round(float(plan_run(parse_spec(spec, folder))["usd"]), 6)


def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One result from files of disjoint seeds: per-seed lists are concatenated; means and sds are pooled
    exactly from each part's (n, mean, sd), since Σx = n·mean and Σx² = (n−1)·sd² + n·mean²."""
    if len({p["rounds"] for p in parts}) != 1:
        sys.exit("--merge: the files were run with different --rounds")
    seeds = [s for p in parts for s in (p["seeds"] if isinstance(p["seeds"], list) else range(p["seeds"]))]
    if len(seeds) != len(set(seeds)):
        sys.exit(f"--merge: seeds overlap ({sorted(seeds)}); pass results of disjoint --first-seed ranges")
    out: dict[str, Any] = {"seeds": seeds, "rounds": parts[0]["rounds"], "datasets": {}}
    for dataset in parts[0]["datasets"]:
        summaries = [p["datasets"][dataset] for p in parts]
        merged: dict[str, Any] = {}
        for method in (*METHODS, "tfidf_lr", "embed_lr", "all_real"):
            if not all(method in s for s in summaries):
                continue
            rows = [s[method] for s in summaries]
            n = [len(r["per_seed_macro_f1"]) for r in rows]
            merged[method] = {"per_seed_macro_f1": [x for r in rows for x in r["per_seed_macro_f1"]]}
            for key in ("macro_f1", "accuracy"):
                merged[method][f"{key}_mean"], merged[method][f"{key}_sd"] = _pool(
                    n, [r[f"{key}_mean"] for r in rows], [r[f"{key}_sd"] for r in rows]
                )
            for key in (
                "examples",
                "teacher_tokens",
                "wall_s",
                "usd",
                "usd_per_kept_example",
                "tokens_per_kept_example",
            ):
                merged[method][key] = sum(k * r.get(key, 0.0) for k, r in zip(n, rows, strict=True)) / sum(n)
        for method in ("pgkd", "pgkd_nosmooth"):
            if method in merged and "uniform" in merged:
                merged[f"{method}_minus_uniform"] = paired(
                    merged[method]["per_seed_macro_f1"], merged["uniform"]["per_seed_macro_f1"]
                )
        out["datasets"][dataset] = merged
    return out


def _pool(n: list[int], means: list[float], sds: list[float]) -> tuple[float, float]:
    total = sum(n)
    mean = sum(k * m for k, m in zip(n, means, strict=True)) / total
    squares = sum((k - 1) * s * s + k * m * m for k, m, s in zip(n, means, sds, strict=True))
    return mean, math.sqrt(max(0.0, (squares - total * mean * mean) / (total - 1))) if total > 1 else 0.0


def print_table(dataset: str, summary: dict[str, Any]) -> None:
    print(f"\n{dataset}: test macro-F1 (mean ± sd over seeds), examples, teacher tokens, wall s")
    for method in (*METHODS, "tfidf_lr", "embed_lr", "all_real"):
        if method not in summary:
            continue
        s = summary[method]
        print(
            f"  {method:<14} {s['macro_f1_mean']:.3f} ± {s['macro_f1_sd']:.3f}   acc {s['accuracy_mean']:.3f}"
            f"   n={s['examples']:.0f}   tokens={s['teacher_tokens']:.0f}   ${s.get('usd', 0.0):.4f}"
            f"   tokens/ex={s.get('tokens_per_kept_example', 0.0):.0f}"
            f"   $/1k ex={1000 * s.get('usd_per_kept_example', 0.0):.3f}   {s['wall_s']:.0f}s"
        )
    for key in ("pgkd_minus_uniform", "pgkd_nosmooth_minus_uniform"):
        if key not in summary:
            continue
        p = summary[key]
        print(f"  {key}: {p['mean']:+.3f} ± {p['sd']:.3f} (wins {p['wins']}/{p['n']})")


if __name__ == "__main__":
    main()
