"""Does the label audit catch the teacher's wrong labels, and does the student gain from it?

    python bench/label_audit.py [--quick] --json bench/results/label_audit.json

On the shipped Banking77-20 example (examples/banking77: 5 real seed texts, 10 validation and 40 test
texts per intent), the real loop runs against the simulator with ``label_noise`` 0.10 and 0.20 and no
other fault: a noisy generated example is a text of the most confusable intent under the requested
label, and the simulator answers label requests (the audit's second opinion) with the confusable intent
at the same rate. Per noise level and seed, two runs with the same seeds (simulator, student): the audit
on (``loop.label_audit: true``) and off. A short loop, so 12 runs fit a busy 2-core machine (the
absolute F1 is below the demo's): by default round 0 only (the 100 real seed texts + ``--seed-per-label``
teacher-written texts per intent, filtered, audited, trained on), ``--rounds`` PGKD rounds of
``--per-round`` examples after it, a student capped at ``--max-steps`` steps.

The simulator writes its texts from examples/banking77/pool.jsonl, so a training text's true intent is
its pool label. Measured on the audit-on run:

* ``audit_precision`` — of the examples the audit relabelled or dropped, the share whose given label
  was wrong; ``audit_recall`` — of the wrong labels among the training examples the filters kept, the
  share the audit relabelled or dropped; ``flag_precision`` / ``flag_recall``: the same for the
  confident-learning flags alone (before the second opinion); ``relabel_accuracy``: of the relabels,
  the share whose new label is the true one;
* ``f1_audit_minus_none`` — test macro-F1 (at the round with the best held-back F1, as the loop picks
  it) of the audit-on run minus the audit-off run, paired by seed.

Goals (issue 10): precision and recall ≥ 0.7 at 10% noise; F1 gain > 0 on a majority of seeds. The
JSON is rewritten after each run, so a cut-short run keeps what finished.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
EXAMPLE = ROOT / "examples" / "banking77"
FILES = ("seed.jsonl", "validation.jsonl", "test.jsonl", "pool.jsonl")


def _key(text: str) -> str:
    return " ".join(text.lower().split())


def pool_truth() -> dict[str, str]:
    rows = [json.loads(line) for line in (EXAMPLE / "pool.jsonl").read_text(encoding="utf-8").splitlines() if line]
    real = [json.loads(line) for line in (EXAMPLE / "seed.jsonl").read_text(encoding="utf-8").splitlines() if line]
    return {_key(r["text"]): r["label"] for r in rows + real}


def spec_for(args: argparse.Namespace, noise: float, seed: int, audit: bool) -> dict[str, Any]:
    demo = yaml.safe_load((EXAMPLE / "spec.yaml").read_text(encoding="utf-8"))
    return {
        "name": f"audit-{'on' if audit else 'off'}-{noise:.2f}-{seed}",
        "task": demo["task"],
        "teacher": {
            "provider": "simulator",
            "pool": "pool.jsonl",
            "model": "sim-teacher",
            "price_input_per_mtok": 0.15,
            "price_output_per_mtok": 0.60,
            "max_concurrency": 16,
            "knobs": {"seed": seed, "label_noise": noise},
        },
        "student": {"seed": seed, "max_steps": args.max_steps},
        "loop": {
            "method": "pgkd",
            "max_rounds": args.rounds,
            "seed_per_label": args.seed_per_label,
            "examples_per_round": args.per_round,
            "patience": args.rounds + 1,
            "batch_per_call": 5,
            "label_audit": audit,
            "audit_folds": 5,
        },
        "filters": demo["filters"],
        "budget": {"max_usd": 5.0},
    }


def run_one(folder: Path, spec: dict[str, Any], truth: dict[str, str], embed: Any) -> dict[str, Any]:
    from agent.lifecycle import start
    from agent.run_kind import RunOptions
    from agent.store import AUDIT_FILTER, AuditOutcome, RunStore

    path = folder / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec))
    started = time.perf_counter()
    outcome = start(path, folder / spec["name"], options=RunOptions(embed=embed))
    wall = time.perf_counter() - started
    store = RunStore(outcome.run_dir / "run.sqlite")
    best = outcome.result.best_round
    audits = {a.example_id: a for a in store.label_audits()}
    rows = store.example_provenance("train")
    # In scope: training examples the other filters kept (the audit looks at nothing else).
    scope = [e for e in rows if e.kept or (e.verdicts and all(v.kept or v.filter == AUDIT_FILTER for v in e.verdicts))]
    given = {e.id: audits[e.id].given_label if e.id in audits else e.label for e in scope}
    known = [e for e in scope if _key(e.text) in truth]
    wrong = {e.id for e in known if truth[_key(e.text)] != given[e.id]}
    acted = {i for i, a in audits.items() if a.outcome != AuditOutcome.KEPT}
    flagged = set(audits)
    relabelled = [e for e in known if e.id in audits and audits[e.id].outcome == AuditOutcome.RELABELLED]
    counts = store.audit_counts()
    usage = store.calls_by_prompt()
    out = {
        "test_macro_f1": store.metric(best, "test", "macro_f1"),
        "heldback_macro_f1": store.metric(best, "heldback", "macro_f1"),
        "best_round": best,
        "training_examples": len(scope),
        "wrong_labels": len(wrong),
        "flagged": len(flagged),
        "outcomes": {str(k): v for k, v in counts.items()},
        "audit_precision": _ratio(len(acted & wrong), len(acted)),
        "audit_recall": _ratio(len(acted & wrong), len(wrong)),
        "flag_precision": _ratio(len(flagged & wrong), len(flagged)),
        "flag_recall": _ratio(len(flagged & wrong), len(wrong)),
        "relabel_accuracy": _ratio(sum(truth[_key(e.text)] == e.label for e in relabelled), len(relabelled)),
        "audit_calls": usage["audit"]["calls"] if "audit" in usage else 0,
        "audit_usd": usage["audit"]["usd"] if "audit" in usage else 0.0,
        "teacher_usd": store.call_summary()["cost_usd"],
        "wall_s": round(wall, 1),
    }
    store.close()
    return out


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.mean(present), 4) if present else None


def summarise(runs: dict[int, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    on = [runs[s]["on"] for s in sorted(runs) if "on" in runs[s]]
    gains = [
        round(runs[s]["on"]["test_macro_f1"] - runs[s]["off"]["test_macro_f1"], 4)
        for s in sorted(runs)
        if {"on", "off"} <= set(runs[s])
    ]
    out: dict[str, Any] = {
        key: _mean([r[key] for r in on])
        for key in ("audit_precision", "audit_recall", "flag_precision", "flag_recall", "relabel_accuracy")
    }
    out |= {
        "f1_audit_minus_none": _mean(list(gains)),
        "f1_audit_minus_none_per_seed": gains,
        "f1_gain_sd": round(statistics.stdev(gains), 4) if len(gains) > 1 else None,
        "seeds_with_gain": sum(g > 0 for g in gains),
        "test_macro_f1_on": _mean([runs[s]["on"]["test_macro_f1"] for s in sorted(runs) if "on" in runs[s]]),
        "test_macro_f1_off": _mean([runs[s]["off"]["test_macro_f1"] for s in sorted(runs) if "off" in runs[s]]),
        "wrong_labels_mean": _mean([r["wrong_labels"] for r in on]),
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="label_noise 0.10 only")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (paired: the same in both arms)")
    parser.add_argument("--noise", default="0.10,0.20", help="comma-separated simulator label_noise levels")
    parser.add_argument("--rounds", type=int, default=0, help="PGKD rounds after round 0")
    parser.add_argument("--seed-per-label", type=int, default=15, help="teacher-written examples per intent in round 0")
    parser.add_argument("--per-round", type=int, default=100, help="teacher-written examples per PGKD round")
    parser.add_argument("--max-steps", type=int, default=50, help="student optimisation steps per round (cap)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    if args.quick:
        args.noise = "0.10"
    seeds = [int(s) for s in args.seeds.split(",")]
    levels = [float(n) for n in args.noise.split(",")]
    truth = pool_truth()
    from agent.run import memoised_embedder

    # One MiniLM embedder for every run of the process: the runs share their validation, test and many
    # training texts, and each run would otherwise embed them again (the vectors are the same).
    embed = memoised_embedder(None)
    result: dict[str, Any] = {
        "dataset": "banking77-20 (examples/banking77)",
        "settings": {k: v for k, v in vars(args).items() if k != "json"} | {"json": None},
        "noise": {},
    }
    print(f"{'noise':>5} {'seed':>4} {'audit':>5} {'test F1':>7} {'wrong':>5} {'flagged':>7} {'P':>5} {'R':>5}")
    for noise in levels:
        runs: dict[int, dict[str, dict[str, Any]]] = {}
        for seed in seeds:
            runs[seed] = {}
            for arm in ("on", "off"):
                with tempfile.TemporaryDirectory() as tmp:
                    folder = Path(tmp)
                    for name in FILES:
                        shutil.copy(EXAMPLE / name, folder / name)
                    row = run_one(folder, spec_for(args, noise, seed, arm == "on"), truth, embed)
                runs[seed][arm] = row
                print(
                    f"{noise:>5.2f} {seed:>4} {arm:>5} {row['test_macro_f1']:>7.3f} {row['wrong_labels']:>5} "
                    f"{row['flagged']:>7} {_fmt(row['audit_precision'])} {_fmt(row['audit_recall'])}",
                    flush=True,
                )
                result["noise"][f"{noise:.2f}"] = {
                    "per_seed": {str(s): r for s, r in runs.items()},
                    "summary": summarise(runs),
                }
                if args.json:
                    args.json.write_text(json.dumps(result, indent=2) + "\n")
        s = result["noise"][f"{noise:.2f}"]["summary"]
        print(
            f"noise {noise:.2f}: audit precision {_fmt(s['audit_precision'])}, recall {_fmt(s['audit_recall'])} "
            f"(flags alone {_fmt(s['flag_precision'])}/{_fmt(s['flag_recall'])}); test macro-F1 on − off "
            f"{s['f1_audit_minus_none']:+.4f} (per seed {s['f1_audit_minus_none_per_seed']}, "
            f"gain on {s['seeds_with_gain']}/{len(seeds)} seeds)",
            flush=True,
        )


def _fmt(value: float | None) -> str:
    return "  –  " if value is None else f"{value:5.2f}"


if __name__ == "__main__":
    main()
