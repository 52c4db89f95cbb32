"""Out of scope: in-scope accuracy and out-of-scope recall/precision, with and without OOS negatives.

    python bench/out_of_scope.py [--quick] --json bench/results/out_of_scope.json

Each run is ``distill run`` end to end on the shipped ``examples/banking77_oos`` task (20 Banking77
intents in scope; real messages of the other 57 intents as out of scope in validation and test), with
the simulator as the teacher over loopback HTTP. Two arms, paired by seed (the same student seed,
simulator seed, seed files, validation, test and spec):

- ``with_negatives``: the simulator's pool holds every intent, so when the run asks for
  ``out_of_scope`` examples (round-0 seeds and PGKD quotas, like any label) the teacher writes
  near-domain negatives (messages of other banking intents).
- ``without_negatives``: the pool holds the 20 in-scope intents only, so the same requests come back
  empty: the student never sees an out-of-scope example and can reject by calibrated confidence only.

Both arms choose their rejection rule (confidence / class / both) and threshold on held-back; the
numbers are the exported (best) round's, on the test split (800 in-scope, 228 out-of-scope messages).
Active learning and the label audit are off so the arms differ only in the negatives; faults are off
(they change what is served, not what is measured). Round 0 asks the teacher for 10 examples per outcome
(``out_of_scope`` included) instead of the example's 5, so the negatives are not a token few.
The student trains at least 80 steps (the recipe's floor is 150) to fit this machine's shared CPUs.
``--quick``: 3 seeds, round 0 only; the full run: 3 seeds, rounds 0–2 (PGKD quotas for later rounds).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DISTILL_QUIET", "1")

from agent.lifecycle import start  # noqa: E402
from agent.run_kind import RunOptions  # noqa: E402
from agent.store import RunStore  # noqa: E402
from generators.generation import OUT_OF_SCOPE  # noqa: E402

EXAMPLE = ROOT / "examples" / "banking77_oos"
ARMS = ("with_negatives", "without_negatives")
METRICS = ("in_scope_accuracy", "oos_recall", "oos_precision", "macro_f1", "accuracy")


def spec_for(workdir: Path, arm: str, seed: int, rounds: int) -> Path:
    """The shipped spec with absolute paths, this seed, and the arm's simulator pool."""
    spec = yaml.safe_load((EXAMPLE / "spec.yaml").read_text(encoding="utf-8"))
    task = spec["task"]
    for key in ("seed_examples", "validation", "test"):
        task[key] = str(EXAMPLE / task[key])
    task.pop("unlabeled")
    pool = EXAMPLE / "pool.jsonl"
    if arm == "without_negatives":
        in_scope = {label["name"] for label in task["labels"]}
        rows = [json.loads(line) for line in pool.read_text(encoding="utf-8").splitlines()]
        pool = workdir / "pool_in_scope.jsonl"
        pool.write_text("".join(json.dumps(r) + "\n" for r in rows if r["label"] in in_scope), encoding="utf-8")
    spec["teacher"]["pool"] = str(pool)
    spec["teacher"]["knobs"] = {"seed": seed, "label_noise": 0.05}
    # Fewer optimisation steps than the recipe's floor of 150 (both arms alike): this machine's CPUs are shared.
    spec["student"] = {"seed": seed, "min_steps": 80}
    spec["loop"] |= {"max_rounds": rounds, "seed_per_label": 10, "active_per_round": 0, "label_audit": False}
    spec["budget"] = {"max_usd": 5.0}
    spec["name"] = f"oos-{arm}-{seed}"
    path = workdir / "spec.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path


def run_once(arm: str, seed: int, rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"oos-{arm}-{seed}-") as scratch:
        workdir = Path(scratch)
        outcome = start(spec_for(workdir, arm, seed, rounds), workdir / "run", options=RunOptions())
        run_dir = outcome.run_dir
        meta = json.loads((run_dir / "model" / "distill_student.json").read_text(encoding="utf-8"))
        best = int(meta["card"]["best_round"])
        store = RunStore(run_dir / "run.sqlite")
        try:
            measured = {name: store.metric(best, "test", name) for name in METRICS}
            train = store.examples("train", kept=True)
        finally:
            store.close()
    rejection = meta["rejection"]
    return {
        "arm": arm,
        "seed": seed,
        "best_round": best,
        "train_examples": len(train),
        "train_out_of_scope": sum(e.label == OUT_OF_SCOPE for e in train),
        "rule": rejection["mode"],
        "threshold": rejection["threshold"],
        "rule_reason": rejection["reason"],
        **{f"test_{name}": value for name, value in measured.items()},
    }


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and spread per arm, and the paired difference (with − without) per seed."""
    out: dict[str, Any] = {}
    for arm in ARMS:
        mine = [r for r in runs if r["arm"] == arm]
        out[arm] = {
            name: {"mean": statistics.mean(values), "min": min(values), "max": max(values)}
            for name in (f"test_{m}" for m in METRICS)
            if (values := [r[name] for r in mine if r[name] is not None])
        }
    seeds = sorted({r["seed"] for r in runs})
    by = {(r["arm"], r["seed"]): r for r in runs}
    out["paired_difference"] = {
        f"test_{m}": [by[("with_negatives", s)][f"test_{m}"] - by[("without_negatives", s)][f"test_{m}"] for s in seeds]
        for m in METRICS
    }
    return out


def write(path: Path, args: argparse.Namespace, rounds: int, runs: list[dict[str, Any]]) -> None:
    """The results so far (written after every run, so a timeout keeps what was measured)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    seeds = sorted({r["seed"] for r in runs})
    paired = [r for r in runs if sum(o["seed"] == r["seed"] for o in runs) == len(ARMS)]
    result = {
        "benchmark": "out_of_scope",
        "task": "examples/banking77_oos (20 Banking77 intents in scope; 57 others out of scope)",
        "quick": args.quick,
        "rounds": rounds,
        "seeds": seeds,
        "complete": len(runs) == args.seeds * len(ARMS),
        "runs": runs,
        "summary": summarise(paired) if paired else None,
    }
    path.write_text(json.dumps(result, indent=1), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="round 0 only")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    rounds = 0 if args.quick else 2
    runs: list[dict[str, Any]] = []
    for seed in range(args.seeds):
        for arm in ARMS:
            runs.append(run_once(arm, seed, rounds))
            r = runs[-1]
            print(
                f"seed {seed} {arm:18} rule {r['rule']:10} train OOS {r['train_out_of_scope']:3}  "
                + "  ".join(f"{m} {r[f'test_{m}']:.3f}" for m in METRICS if r[f"test_{m}"] is not None),
                flush=True,
            )
            if args.json:
                write(args.json, args, rounds, runs)
    summary = summarise(runs)
    print(f"\n{'arm':20}" + "".join(f"{m:>20}" for m in METRICS))
    for arm in ARMS:
        cells = [summary[arm].get(f"test_{m}") for m in METRICS]
        print(
            f"{arm:20}"
            + "".join(f"{c['mean']:>12.3f} ±{(c['max'] - c['min']) / 2:.3f}" if c else f"{'-':>20}" for c in cells)
        )
    diffs = summary["paired_difference"]
    print(
        "paired with − without, per seed: "
        + "; ".join(f"{m} {[round(d, 3) for d in diffs[f'test_{m}']]}" for m in METRICS[:3])
    )


if __name__ == "__main__":
    main()
