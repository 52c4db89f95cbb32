"""Calibration, deferral and the cascade on the demo task: how much can the student answer at the teacher's accuracy?

    python bench/deferral.py [--quick] --json bench/results/deferral.json

Per seed (paired: the same seeds, data draws and simulator seed for every quantity):

- the student: the default recipe (``trainers.config.EncoderConfig``) trained on the shipped Banking77-20 seed
  texts plus ``--per-label`` real pool texts per intent, exactly as ``bench/calibration.py`` trains it; its
  temperature fitted on 5 validation texts per intent standing in for the held-back split (as a run fits it).
  ``ece_before`` / ``ece_after``: expected calibration error (15 bins) on the test split with T = 1 and with
  the fitted T (goal: ``ece_after`` ≤ 0.05).
- the teacher: the simulator over loopback HTTP, asked through the project's gateway (``generators.teacher``:
  cache, ledger, journal) with the demo spec's label prompt, ``batch_per_call``, concurrency and prices. Its
  pool holds the held-back and test texts with their human labels, and ``--label-noise`` (default 0.10) of its
  answers are the most confusable other intent, so the teacher is right about 90% of the time, as a good
  LLM is on this task. Its accuracy is *measured*: its labels against the human labels, on held-back (which
  sets the target) and on test (reported).
- the target: the teacher's held-back accuracy minus 1 point. The deferral threshold is chosen on held-back
  (``trainers.deferral.choose_threshold``, as ``distill run`` exports it) to reach that accuracy on the
  messages the student answers. ``student_share_at_target``: the share of the *test* messages the student
  answers at that threshold.
- the cascade on test: the student answers above the threshold, the teacher labels the rest through the
  gateway (``agent.cascade``'s requests, a fresh cache so every call is paid). ``cost_ratio_vs_teacher_only``:
  the ledger's USD for the cascade's calls over the USD of the teacher labeling all test messages. The
  student's CPU time is not counted (see bench/student_vs_teacher.py for it). ``cascade_accuracy``: measured on
  test with the teacher's actual answers for the deferred messages.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DISTILL_QUIET", "1")

from agent.cascade import cascade_requests, chunks, read_answers  # noqa: E402
from agent.runtime import run_requests  # noqa: E402
from agent.spec import RunSpec, load_spec  # noqa: E402
from generators.cache import ResponseCache  # noqa: E402
from generators.journal import MemoryJournal  # noqa: E402
from generators.ledger import Ledger, Prices  # noqa: E402
from generators.schemas import AssignedLabels  # noqa: E402
from generators.teacher import Teacher, TeacherConfig  # noqa: E402
from trainers.deferral import TeacherCost, choose_threshold, cost_curve, coverage_curve, measure  # noqa: E402

DEMO = ROOT / "examples" / "banking77"
HELD_BACK_PER_LABEL = 5  # a run's held-back part: half of the demo's 10 validation texts per intent


def _rows(name: str) -> list[dict[str, str]]:
    return [json.loads(line) for line in (DEMO / name).read_text(encoding="utf-8").splitlines() if line.strip()]


def _per_label(rows: list[dict[str, str]], labels: list[str], n: int) -> list[dict[str, str]]:
    return [row for label in labels for row in [r for r in rows if r["label"] == label][:n]]


# -- the teacher --------------------------------------------------------------------------------------


class TeacherBench:
    """The simulator over HTTP and the gateway, with one ledger per question so each cost is measured alone."""

    def __init__(self, spec: RunSpec, base_url: str, workdir: Path) -> None:
        self.spec, self.base_url, self.workdir = spec, base_url, workdir
        self.labels = set(spec.task.label_names)

    def label(self, texts: list[str], name: str) -> tuple[dict[str, str], float]:
        """The teacher's label per text and the USD the ledger charged (fresh cache: every call is paid)."""
        t = self.spec.teacher
        ledger = Ledger(Prices(t.price_input_per_mtok, t.price_output_per_mtok))
        cache = ResponseCache(self.workdir / f"{name}.sqlite")
        config = TeacherConfig(
            base_url=self.base_url, model=t.model, api_key="bench", send_brief=True, max_concurrency=t.max_concurrency
        )
        teacher = Teacher(config, cache=cache, ledger=ledger, journal=MemoryJournal())
        try:
            results = run_requests(teacher, cascade_requests(self.spec, texts), AssignedLabels)
        finally:
            cache.close()
        answers = read_answers(results, chunks(texts, self.spec.loop.batch_per_call), self.labels)
        if answers.unanswered:
            raise RuntimeError(f"{name}: the teacher left {answers.unanswered} texts unlabeled: {answers.problems}")
        return answers.labels, ledger.spent_usd


def accuracy(predicted: dict[str, str], rows: list[dict[str, str]]) -> float:
    return sum(predicted[r["text"]] == r["label"] for r in rows) / len(rows)


# -- one seed -----------------------------------------------------------------------------------------


def one_seed(seed: int, args: argparse.Namespace, spec: RunSpec, labels: list[str]) -> dict[str, Any]:
    from simulator import SimulatorConfig, SimulatorServer
    from trainers.calibration import fit_temperature, softmax
    from trainers.config import EncoderConfig
    from trainers.encoder import EncoderClassifier
    from trainers.evaluate import evaluate

    rng = random.Random(seed)
    pool, validation, test = _rows("pool.jsonl"), _rows("validation.jsonl"), _rows("test.jsonl")
    rng.shuffle(pool)
    rng.shuffle(validation)
    test = test[: args.test] if args.test else test
    train = _rows("seed.jsonl") + _per_label(pool, labels, args.per_label)
    heldback = _per_label(validation, labels, HELD_BACK_PER_LABEL)

    student = EncoderClassifier.create(labels, EncoderConfig(seed=seed))
    student.train([r["text"] for r in train], [r["label"] for r in train])
    index = {label: i for i, label in enumerate(labels)}
    held_logits = student.predict_logits([r["text"] for r in heldback])
    temperature = fit_temperature(held_logits, [index[r["label"]] for r in heldback])
    test_logits = student.predict_logits([r["text"] for r in test])
    gold = [r["label"] for r in test]
    before, after = (
        evaluate(gold, softmax(test_logits), labels),
        evaluate(gold, softmax(test_logits, temperature), labels),
    )

    held_probs, test_probs = softmax(held_logits, temperature), softmax(test_logits, temperature)
    held_correct = held_probs.argmax(axis=1) == [index[r["label"]] for r in heldback]
    test_pred = [labels[i] for i in test_probs.argmax(axis=1)]
    test_conf = test_probs.max(axis=1)
    test_correct = [p == g for p, g in zip(test_pred, gold, strict=True)]

    # The simulator's pool: the texts it will be asked about, with their human labels (plus label noise).
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        sim_pool = workdir / "pool.jsonl"
        sim_pool.write_text("".join(json.dumps(r) + "\n" for r in heldback + test), encoding="utf-8")
        config = SimulatorConfig(label_noise=args.label_noise, seed=seed)
        with SimulatorServer(config, sim_pool) as server:
            bench = TeacherBench(spec, server.base_url, workdir)
            held_teacher, _ = bench.label([r["text"] for r in heldback], "heldback")
            test_teacher, teacher_only_usd = bench.label([r["text"] for r in test], "teacher_only")
            teacher_accuracy = accuracy(held_teacher, heldback)
            target = teacher_accuracy - 0.01
            chosen = choose_threshold(held_probs.max(axis=1), held_correct, target_accuracy=target)
            deferred = [r["text"] for r, c in zip(test, test_conf, strict=True) if c < chosen.threshold]
            cascade_teacher, cascade_usd = bench.label(deferred, "cascade") if deferred else ({}, 0.0)

    cascade_pred = {
        r["text"]: (p if c >= chosen.threshold else cascade_teacher[r["text"]])
        for r, p, c in zip(test, test_pred, test_conf, strict=True)
    }
    on_test = measure(test_conf, test_correct, chosen.threshold)
    per_text = TeacherCost(teacher_only_usd / len(test), "measured", f"{len(test)} test texts through the gateway")
    return {
        "seed": seed,
        "train": len(train),
        "heldback": len(heldback),
        "test": len(test),
        "temperature": round(temperature, 3),
        "ece_before": round(before.ece, 4),
        "ece_after": round(after.ece, 4),
        "student_accuracy": round(after.accuracy, 4),
        "teacher_accuracy_heldback": round(teacher_accuracy, 4),
        "teacher_accuracy_test": round(accuracy(test_teacher, test), 4),
        "target_accuracy": round(target, 4),
        "threshold": round(chosen.threshold, 4),
        "threshold_reason": chosen.reason,
        "heldback_coverage": round(chosen.coverage, 4),
        "student_share_at_target": round(on_test["coverage"], 4),
        "student_accuracy_answered_test": round(on_test["accuracy_answered"], 4),
        "cascade_accuracy_test": round(accuracy(cascade_pred, test), 4),
        "teacher_only_usd": round(teacher_only_usd, 6),
        "cascade_usd": round(cascade_usd, 6),
        "cost_ratio_vs_teacher_only": round(cascade_usd / teacher_only_usd, 4),
        "teacher_usd_per_1k": round(1000 * teacher_only_usd / len(test), 4),
        "cascade_usd_per_1k": round(1000 * cascade_usd / len(test), 4),
        "curve_test": [
            {k: round(v, 4) for k, v in point.items()}
            for point in cost_curve(coverage_curve(test_conf, test_correct, 12), per_text, teacher_accuracy)
        ],
    }


SUMMARY_KEYS = (
    "ece_before",
    "ece_after",
    "teacher_accuracy_heldback",
    "target_accuracy",
    "student_share_at_target",
    "student_accuracy_answered_test",
    "cascade_accuracy_test",
    "teacher_accuracy_test",
    "cost_ratio_vs_teacher_only",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5 pool texts per intent, 200 test texts")
    parser.add_argument("--per-label", type=int, default=15, help="real pool texts per intent added to the seed")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (at least 3)")
    parser.add_argument("--label-noise", type=float, default=0.10, help="share of the teacher's labels it gets wrong")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    args.test = 200 if args.quick else 0
    if args.quick:
        args.per_label = 5
    spec = load_spec(DEMO / "spec.yaml")
    labels = spec.task.label_names
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    print(
        f"{'seed':>4} {'ECE before':>10} {'after':>6} {'teacher acc':>11} {'student share':>13} "
        f"{'acc answered':>12} {'cascade acc':>11} {'cost ratio':>10}"
    )
    for seed in seeds:
        row = one_seed(seed, args, spec, labels)
        rows.append(row)
        print(
            f"{seed:>4} {row['ece_before']:>10.3f} {row['ece_after']:>6.3f} {row['teacher_accuracy_heldback']:>11.3f} "
            f"{row['student_share_at_target']:>13.3f} {row['student_accuracy_answered_test']:>12.3f} "
            f"{row['cascade_accuracy_test']:>11.3f} {row['cost_ratio_vs_teacher_only']:>10.3f}",
            flush=True,
        )
    summary = {key: round(statistics.mean(r[key] for r in rows), 4) for key in SUMMARY_KEYS}
    spread = {key: [min(r[key] for r in rows), max(r[key] for r in rows)] for key in SUMMARY_KEYS}
    print("mean: " + ", ".join(f"{k} {v:.3f}" for k, v in summary.items()))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        result = {
            "quick": args.quick,
            "per_label": args.per_label,
            "label_noise": args.label_noise,
            "seeds": seeds,
            "teacher_accuracy_source": "simulator labels vs human labels (pool = the asked texts, label_noise "
            f"{args.label_noise}), measured on held-back (sets the target) and on test",
            **summary,
            "range": spread,
            "rows": rows,
        }
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
