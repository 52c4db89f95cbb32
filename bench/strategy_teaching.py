"""Strategy teaching with a real small student LLM: does the learned, audited library help on held-out scenarios?

    python bench/strategy_teaching.py [--quick] [--seeds 0,1,2] --json bench/results/strategy_teaching_arms.json

Setup (examples/support): the simulator plays the teacher (scenario writer, reference, judge, strategist)
from a policy derived from the ABCD agent guidelines; the student is SmolLM2-135M-Instruct on CPU, reached
over its OpenAI-compatible local server, greedy decoding. Strategies that raised their scenario's score
are approved automatically here (a stand-in for the human reviewer; `distill strategies` is the real path).

Four arms on the same held-out teacher-written scenarios (never learned on), the same judge, greedy
decoding, per seed (the simulator's seed and the SFT seed): the base student; the student prompted with
the approved strategies; the student fine-tuned (TRL SFT, ``SFT_SETTINGS``) on the teacher's reference
answers to the learning scenarios (the paper's fine-tuning baseline); and fine-tuned on its own best
strategy-guided answers that beat its unguided ones (strategies into weights). Both fine-tuned students are
prompted without strategies. The teacher's own score is reported beside them.

``--transfer`` adds, for the first seed, the library applied (a) to a different decoding setting (sampling at
temperature 0.7) and (b) to real customer messages from a different source file (Bitext test split).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DISTILL_QUIET", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import yaml  # noqa: E402
from resumable import kept_seed_results  # noqa: E402

SUPPORT = ROOT / "examples" / "support"


def write_spec(folder: Path, learn: int, heldout: int, rounds: int, seed: int = 0) -> Path:
    for name in ("policy.yaml", "customer_messages.jsonl", "heldout_messages.jsonl"):
        shutil.copy(SUPPORT / name, folder / name)
    spec = yaml.safe_load((SUPPORT / "spec.yaml").read_text())
    spec["task"]["scenarios"] = {
        "source": "teacher",
        "file": "heldout_messages.jsonl",
        "learn": learn,
        "heldout": heldout,
    }
    spec["teacher"]["knobs"] = {"seed": seed}
    spec["student"] = {**spec.get("student", {}), "sft": {**SFT_SETTINGS, "seed": seed}}
    spec["loop"].update({"max_rounds": rounds, "auto_approve": True})
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def transfer(run_dir: Path, n_file: int) -> dict[str, Any]:
    """The approved library applied to another decoding setting and to differently sourced scenarios."""
    from agent.dialogue.run import load_dialogue_spec, mean_ci, win_rate
    from agent.dialogue.student import open_student
    from agent.dialogue.teach import TeachContext, add_transfer_scenarios, evaluate_heldout, teacher_heldout
    from agent.run import memoised_embedder
    from agent.runtime import open_teacher
    from agent.store import RunStore
    from agent.strategies import DEPLOY_STATUSES
    from generators.service_policy import Policy

    spec = load_dialogue_spec(run_dir)
    store = RunStore(run_dir / "run.sqlite")
    out: dict[str, Any] = {}
    embed = memoised_embedder(None)
    with open_teacher(spec, store, run_dir / "cache.sqlite") as teacher:
        with open_student(spec.student, temperature=0.7) as sampled:
            ctx = TeachContext(spec, store, teacher, sampled, embed, Policy.load(spec.task.policy))
            alone = evaluate_heldout(ctx, set(), "transfer:sampled:alone")
            helped = evaluate_heldout(ctx, set(DEPLOY_STATUSES), "transfer:sampled:approved")
            out["decoding_t0.7"] = {
                "alone": mean_ci(alone),
                "with_strategies": mean_ci(helped),
                "with_vs_alone": win_rate(helped, alone),
            }
        with open_student(spec.student) as greedy:
            ctx = TeachContext(spec, store, teacher, greedy, embed, Policy.load(spec.task.policy))
            add_transfer_scenarios(ctx, n_file)
            alone = evaluate_heldout(ctx, set(), "transfer:file:alone", split="transfer")
            helped = evaluate_heldout(ctx, set(DEPLOY_STATUSES), "transfer:file:approved", split="transfer")
            teacher_scores = teacher_heldout(ctx, split="transfer")
            out["bitext_test_messages"] = {
                "alone": mean_ci(alone),
                "with_strategies": mean_ci(helped),
                "teacher": mean_ci(teacher_scores),
                "with_vs_alone": win_rate(helped, alone),
            }
    store.close()
    return out


ARMS = ("base", "prompted_with_approved", "sft_teacher_answers", "sft_strategy_answers")
SFT_SETTINGS = {"epochs": 4.0, "batch_size": 4, "learning_rate": 5e-5, "max_length": 320}


def heldout_scores(store: Any, condition: str) -> list[float]:
    return [float(a.score or 0.0) for a in store.answers(condition=condition)]


def four_arms(run_dir: Path) -> dict[str, Any]:
    """Base student, prompted with the approved library, SFT on the teacher's answers, SFT on the student's own
    best strategy-guided answers: the same held-out scenarios, the same judge (the teacher), greedy decoding."""
    from agent.dialogue.fine_tune import evaluate_fine_tuned, fine_tune, training_pairs
    from agent.dialogue.run import load_dialogue_spec, mean_ci, win_rate
    from agent.dialogue.teach import TeachContext, evaluate_heldout
    from agent.run import memoised_embedder
    from agent.runtime import open_teacher
    from agent.store import RunStore
    from generators.service_policy import Policy

    spec = load_dialogue_spec(run_dir)
    store = RunStore(run_dir / "run.sqlite")
    scores = {
        "base": heldout_scores(store, "heldout:alone"),
        "prompted_with_approved": heldout_scores(store, "heldout:approved"),
    }
    pairs = {}
    with open_teacher(spec, store, run_dir / "cache.sqlite") as teacher:
        for source in ("teacher_answers", "strategy_answers"):
            arm = f"sft_{source}"
            pairs[arm] = len(training_pairs(store, source))
            folder = fine_tune(spec, store, run_dir / arm, source)
            if folder is None:
                scores[arm] = []
                continue

            def judged(client: Any, condition: str = f"heldout:{arm}") -> list[float]:
                ctx = TeachContext(spec, store, teacher, client, memoised_embedder(None), Policy.load(spec.task.policy))
                return evaluate_heldout(ctx, set(), condition, student=client)

            scores[arm] = evaluate_fine_tuned(spec, folder, judged)
    store.close()
    base = scores["base"]
    return {
        "training_pairs": pairs,
        "arms": {arm: mean_ci(scores[arm]) for arm in ARMS},
        "vs_base": {arm: win_rate(scores[arm], base) for arm in ARMS[1:] if len(scores[arm]) == len(base)},
        "scores": scores,
    }


def one_seed(seed: int, learn: int, heldout: int, rounds: int, n_file: int, with_transfer: bool) -> dict[str, Any]:
    from agent.lifecycle import start
    from agent.store import RunStore
    from agent.strategies import StrategyLibrary

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        run_dir = folder / "run"
        summary = start(write_spec(folder, learn, heldout, rounds, seed), run_dir).result
        result = {
            "seed": seed,
            "n_scenarios": summary["n_scenarios"],
            "score_student": summary["score_student"]["mean"],
            "score_student_with_strategies": summary["score_student_with_approved"]["mean"],
            "score_teacher": summary["score_teacher"]["mean"],
            "n_strategies_approved": summary["n_strategies_approved"],
            "n_strategies_rejected": summary["n_strategies_rejected"],
            "intervals": {k: summary[k] for k in ("score_student", "score_student_with_approved", "score_teacher")},
            "with_vs_alone": summary["with_vs_alone"],
            "rounds": summary["rounds"],
            "four_arms": four_arms(run_dir),
        }
        if with_transfer:
            result["transfer"] = transfer(run_dir, n_file)
        library = StrategyLibrary(RunStore(run_dir / "run.sqlite"))
        result["approved_strategies"] = [
            {"scope": s.scope, "criterion": s.criterion, "text": s.text, "evidence": s.evidence}
            for s in library.current(["approved"])
        ]
    result["wall_s"] = round(time.perf_counter() - started, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 seed, 1 round, 6 learning and 8 held-out scenarios")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated simulator/SFT seeds")
    parser.add_argument("--learn", type=int, default=12, help="learning scenarios per round")
    parser.add_argument("--heldout", type=int, default=24, help="held-out scenarios")
    parser.add_argument("--rounds", type=int, default=2, help="learning rounds")
    parser.add_argument("--transfer", action="store_true", help="also the transfer checks (first seed only)")
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the seeds --json already holds from a run cut short with the same settings; run only the rest",
    )
    args = parser.parse_args()
    seeds = [0] if args.quick else [int(s) for s in args.seeds.split(",")]
    learn, heldout, rounds = (6, 8, 1) if args.quick else (args.learn, args.heldout, args.rounds)
    settings = {"learn": learn, "heldout": heldout, "rounds": rounds, "sft_settings": SFT_SETTINGS}
    runs = kept_seed_results(args.json, "runs", settings, seeds) if args.resume else []
    for seed in [s for s in seeds if s not in {r["seed"] for r in runs}]:
        runs.append(one_seed(seed, learn, heldout, rounds, heldout, args.transfer and seed == seeds[0]))
        print_table(runs[-1])
        runs.sort(key=lambda r: seeds.index(r["seed"]))
        if args.json:  # after every seed: a run cut short keeps what it measured
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(summary(seeds, learn, heldout, rounds, runs), indent=2))
    print_arms(summary(seeds, learn, heldout, rounds, runs))


def summary(seeds: list[int], learn: int, heldout: int, rounds: int, runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "seeds": seeds,
        "complete": len(runs) == len(seeds),
        "learn": learn,
        "heldout": heldout,
        "rounds": rounds,
        "sft_settings": SFT_SETTINGS,
        "arm_means": {
            arm: round(statistics.mean(r["four_arms"]["arms"][arm]["mean"] for r in runs), 4) for arm in ARMS
        },
        "runs": runs,
    }


def print_arms(result: dict[str, Any]) -> None:
    print(f"four arms, held-out rubric score (mean over seeds {result['seeds']}):")
    for arm in ARMS:
        per_seed = ", ".join(f"{r['four_arms']['arms'][arm]['mean']:.3f}" for r in result["runs"])
        wins = [r["four_arms"]["vs_base"].get(arm) for r in result["runs"]] if arm != "base" else []
        wtl = " ".join(f"{w['wins']}/{w['ties']}/{w['losses']}" for w in wins if w)
        print(
            f"  {arm:<24} {result['arm_means'][arm]:.3f}  (seeds: {per_seed}){'  W/T/L vs base: ' + wtl if wtl else ''}"
        )


def print_table(r: dict[str, Any]) -> None:
    def fmt(m: dict[str, Any]) -> str:
        return f"{m['mean']:.3f} [{m['lo']:.3f}, {m['hi']:.3f}] n={m['n']}"

    iv = r["intervals"]
    print("held-out teacher-written scenarios (rubric score, mean [95% CI]):")
    print(f"  student alone              {fmt(iv['score_student'])}")
    print(f"  student + approved library {fmt(iv['score_student_with_approved'])}")
    print(f"  teacher                    {fmt(iv['score_teacher'])}")
    w = r["with_vs_alone"]
    print(f"  with vs alone: {w['wins']} wins / {w['ties']} ties / {w['losses']} losses")
    print(f"strategies approved {r['n_strategies_approved']}, rejected (no effect) {r['n_strategies_rejected']}")
    for name, t in r.get("transfer", {}).items():
        tw = t["with_vs_alone"]
        print(
            f"transfer {name}: alone {fmt(t['alone'])} → with {fmt(t['with_strategies'])}; "
            f"{tw['wins']}/{tw['ties']}/{tw['losses']} W/T/L"
        )
    print(f"wall time {r['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
