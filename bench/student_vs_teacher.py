"""The distilled student against its teacher: predictions per second, $ per 1k predictions, agreement, size.

    python bench/student_vs_teacher.py [--quick] [--model DIR] --json bench/results/student_vs_teacher.json

One run, the same texts (the Banking77 demo's real test split, 800 messages; 200 with --quick):

- student, PyTorch CPU: ``EncoderClassifier.predict_proba`` (tokenisation included), batch 32;
- student, ONNX int8 CPU: the graph ``distill export-onnx`` writes (``trainers.onnx_model``), run by
  ``OnnxClassifier`` (tokenisation included), batch 32, the same thread count;
- ``ms, 1 text``: the median time to classify one text on its own (an online request; the teacher's
  is one call with nothing else in flight);
- teacher: the simulator in its own process with an LLM-like latency (650 ± 150 ms per call), asked
  through the project's real gateway (``generators.teacher.Teacher``: cache, ledger, journal,
  retries) with the demo spec's labeling settings: ``batch_per_call`` texts per call, its
  ``max_concurrency`` and its prices; the cost is what the ledger charged for the tokens the
  simulator reported.

The student's $ per 1k predictions is CPU time priced at ``--cpu-usd-per-hour`` for a machine with
this many cores (default: 0.0892 $/h, an on-demand 2-vCPU c7i.large in us-east-1, an assumption to
replace with your own); the teacher needs no machine of ours beyond the one waiting on the network.
Throughput is the median of ``--repeats`` passes after a warm-up pass. The student is
``--model DIR`` (a distill model folder), else one trained here with the default recipe on the demo's
seed + pool data (2,661 labeled messages; 1 epoch with --quick). The simulator's pool is that same
data, so "teacher" labels are the pool's gold label or its nearest neighbour's: agreement measures
the student against that teacher, accuracy both against the test split's human labels.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from agent.spec import RunSpec, SimulatorTeacher, load_spec  # noqa: E402
from agent.store import RunStore  # noqa: E402
from generators.cache import ResponseCache  # noqa: E402
from generators.generation import TaskInfo, label_requests  # noqa: E402
from generators.ledger import Ledger, Prices  # noqa: E402
from generators.schemas import AssignedLabels  # noqa: E402
from generators.teacher import Teacher, TeacherConfig  # noqa: E402

DEMO = ROOT / "examples" / "banking77"
LATENCY_MS, JITTER_MS = 650.0, 150.0
BATCH = 32
CPU_USD_PER_HOUR = 0.0892

Rows = list[dict[str, str]]


def read(path: Path) -> Rows:
    return [{"text": r["text"], "label": r["label"]} for r in map(json.loads, path.read_text().splitlines())]


# -- the student --------------------------------------------------------------------------------------


def train_student(labels: list[str], quick: bool, directory: Path) -> Path:
    from trainers.encoder import EncoderClassifier, EncoderConfig

    rows = read(DEMO / "seed.jsonl") + read(DEMO / "pool.jsonl")
    config = EncoderConfig(seed=0, epochs=1 if quick else EncoderConfig().epochs)
    student = EncoderClassifier.create(labels, config)
    student.train([r["text"] for r in rows], [r["label"] for r in rows])
    return student.save(directory, card={"task": "banking77 demo data (bench)", "train_examples": len(rows)})


def throughput(predict: Callable[[list[str]], Any], texts: list[str], repeats: int) -> dict[str, float]:
    """Predictions per second: one warm-up pass, then the median of ``repeats`` timed passes."""
    predict(texts[:BATCH])
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        predict(texts)
        times.append(time.perf_counter() - started)
    seconds = statistics.median(times)
    return {"predictions_per_s": len(texts) / seconds, "seconds": seconds, "all_seconds": times}  # type: ignore[dict-item]


def latency_ms(predict: Callable[[list[str]], Any], texts: list[str]) -> float:
    """Median wall time of classifying one text on its own (an online request), in milliseconds."""
    times = []
    for text in texts:
        started = time.perf_counter()
        predict([text])
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def folder_mb(directory: Path, exclude: str | None = None) -> float:
    files = [
        p for p in directory.rglob("*") if p.is_file() and not (exclude and exclude in p.relative_to(directory).parts)
    ]
    return sum(p.stat().st_size for p in files) / 1e6


# -- the teacher --------------------------------------------------------------------------------------


@contextmanager
def simulator(spec: RunSpec) -> Iterator[str]:
    """`distill simulate` on the demo pool in its own process, with LLM-like latency and no faults."""
    assert isinstance(spec.teacher, SimulatorTeacher) and spec.teacher.pool is not None
    args = [sys.executable, "-m", "agent", "simulate", "--pool", str(spec.teacher.pool), "--port", "0"]
    args += ["--latency-ms", str(LATENCY_MS), "--jitter-ms", str(JITTER_MS), "--seed", "1"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "listening on" not in line:
            raise RuntimeError(f"simulator did not start: {line!r}")
        yield line.rsplit(" ", 1)[-1].strip()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def ask_teacher(spec: RunSpec, url: str, texts: list[str], workdir: Path) -> dict[str, Any]:
    """Label ``texts`` through the gateway as the agent does (fresh cache: every call is paid)."""
    t = spec.teacher
    task = TaskInfo(spec.task.description, {label.name: label.description for label in spec.task.labels})
    requests = label_requests(task, texts, per_call=spec.loop.batch_per_call, round=0)
    ledger = Ledger(Prices(t.price_input_per_mtok, t.price_output_per_mtok))
    store, cache = RunStore(workdir / "run.sqlite"), ResponseCache(workdir / "cache.sqlite")
    config = TeacherConfig(
        base_url=url, model=t.model, api_key="bench", send_brief=True, max_concurrency=t.max_concurrency
    )
    teacher = Teacher(config, cache=cache, ledger=ledger, journal=store)
    started = time.perf_counter()
    try:
        replies = await asyncio.gather(*(teacher.complete(r, AssignedLabels) for r in requests))
    except BaseException:
        await teacher.aclose()
        raise
    seconds = time.perf_counter() - started
    one = []
    for request in label_requests(task, texts[-5:], per_call=1, round=1):  # online: one text, nothing in flight
        begun = time.perf_counter()
        await teacher.complete(request, AssignedLabels)
        one.append(time.perf_counter() - begun)
    await teacher.aclose()
    cache.close()
    store.close()
    labels = [""] * len(texts)
    for start, reply in zip(range(0, len(texts), spec.loop.batch_per_call), replies, strict=True):
        for item in reply.parsed.labels:
            labels[start + item.index] = item.label
    return {
        "labels": labels,
        "seconds": seconds,
        "predictions_per_s": len(texts) / seconds,
        "calls": len(requests),
        "usd": ledger.spent_usd,
        "tokens": ledger.spent_tokens,
        "texts_per_call": spec.loop.batch_per_call,
        "concurrency": t.max_concurrency,
        "prices_per_mtok": [t.price_input_per_mtok, t.price_output_per_mtok],
        "latency_ms": [LATENCY_MS, JITTER_MS],
        "latency_ms_one_text": 1000 * statistics.median(one),
    }


# -- the run ------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="200 test texts; a 1-epoch student if none is given")
    parser.add_argument("--model", type=Path, help="a distill model folder (default: train one here)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per student backend (median)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads for both students")
    parser.add_argument("--cpu-usd-per-hour", type=float, default=CPU_USD_PER_HOUR, help="price of this machine")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    result = run(args)
    print_table(result)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from trainers.encoder import EncoderClassifier
    from trainers.onnx_model import ONNX_DIR, OnnxClassifier, check_agreement, export_int8

    spec = load_spec(DEMO / "spec.yaml")
    test = read(DEMO / "test.jsonl")[: 200 if args.quick else None]
    texts, gold = [r["text"] for r in test], [r["label"] for r in test]
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        model_dir = args.model or train_student(
            [label.name for label in spec.task.labels], args.quick, workdir / "model"
        )
        student = EncoderClassifier.load(model_dir)
        meta = json.loads((model_dir / "distill_student.json").read_text(encoding="utf-8"))
        onnx_dir = export_int8(student, workdir / ONNX_DIR)
        onnx = OnnxClassifier(onnx_dir, threads=args.threads, batch_size=BATCH)
        parity = check_agreement(student, onnx, texts, "demo test split")
        torch_speed = throughput(lambda x: student.predict_proba(x, batch_size=BATCH), texts, args.repeats)
        onnx_speed = throughput(onnx.predict_proba, texts, args.repeats)
        torch_speed["latency_ms_one_text"] = latency_ms(student.predict_proba, texts[:50])
        onnx_speed["latency_ms_one_text"] = latency_ms(onnx.predict_proba, texts[:50])
        torch_labels = [label for label, _ in student.predict(texts)]
        onnx_labels = [label for label, _ in onnx.predict(texts)]
        sizes = {"torch_mb": folder_mb(model_dir, exclude=ONNX_DIR), "onnx_int8_mb": folder_mb(onnx_dir)}
        with simulator(spec) as url:
            teacher = asyncio.run(ask_teacher(spec, url, texts, workdir / "teacher"))
    return summarise(args, locals())


def summarise(args: argparse.Namespace, r: dict[str, Any]) -> dict[str, Any]:
    teacher, texts, gold = r["teacher"], r["texts"], r["gold"]
    usd_per_cpu_s = args.cpu_usd_per_hour / 3600

    def usd_per_1k(speed: dict[str, float]) -> float:
        return 1000 / speed["predictions_per_s"] * usd_per_cpu_s

    def agree(a: list[str], b: list[str]) -> float:
        return float(np.mean([x == y for x, y in zip(a, b, strict=True)]))

    torch_usd, onnx_usd = usd_per_1k(r["torch_speed"]), usd_per_1k(r["onnx_speed"])
    teacher_usd = 1000 * teacher["usd"] / len(texts)
    teacher_labels = teacher.pop("labels")
    return {
        "texts": len(texts),
        "quick": args.quick,
        # The folder's name only: a path of the machine that ran the bench says nothing to a reader.
        "model": f"--model …/{args.model.name}" if args.model else "trained here: default recipe on demo seed + pool",
        "model_meta": {k: r["meta"].get(k) for k in ("format_version", "config", "card")},
        "batch_size": BATCH,
        "threads": args.threads,
        "cpu_count": os.cpu_count(),
        "loadavg_1m_before": r["load"],
        "cpu_usd_per_hour": args.cpu_usd_per_hour,
        "student_torch": {**r["torch_speed"], "usd_per_1k": torch_usd, "size_mb": r["sizes"]["torch_mb"]},
        "student_onnx_int8": {**r["onnx_speed"], "usd_per_1k": onnx_usd, "size_mb": r["sizes"]["onnx_int8_mb"]},
        "teacher": {**teacher, "usd_per_1k": teacher_usd},
        "onnx_parity": r["parity"].as_dict(),
        "accuracy_vs_test_labels": {
            "student_torch": agree(r["torch_labels"], gold),
            "student_onnx_int8": agree(r["onnx_labels"], gold),
            "teacher": agree(teacher_labels, gold),
        },
        "student_agreement_with_teacher": agree(r["torch_labels"], teacher_labels),
        "student_speedup_vs_teacher": r["torch_speed"]["predictions_per_s"] / teacher["predictions_per_s"],
        "onnx_speedup_vs_teacher": r["onnx_speed"]["predictions_per_s"] / teacher["predictions_per_s"],
        "onnx_speedup_vs_torch": r["onnx_speed"]["predictions_per_s"] / r["torch_speed"]["predictions_per_s"],
        "onnx_agreement": r["parity"].agreement,
        "student_cost_ratio_vs_teacher": torch_usd / teacher_usd,
        "onnx_cost_ratio_vs_teacher": onnx_usd / teacher_usd,
    }


def print_table(result: dict[str, Any]) -> None:
    acc = result["accuracy_vs_test_labels"]
    rows = [
        ("", "pred/s", "ms, 1 text", "$ / 1k pred", "size MB", "test accuracy"),
        ("student, PyTorch CPU", *_cells(result["student_torch"]), f"{acc['student_torch']:.3f}"),
        ("student, ONNX int8 CPU", *_cells(result["student_onnx_int8"]), f"{acc['student_onnx_int8']:.3f}"),
        ("teacher via gateway", *_cells(result["teacher"]), f"{acc['teacher']:.3f}"),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))))
    print(
        f"\n{result['texts']} texts, batch {result['batch_size']}, {result['threads']} threads, "
        f"load {result['loadavg_1m_before']:.2f} before; ONNX/PyTorch speed {result['onnx_speedup_vs_torch']:.2f}x, "
        f"label agreement {result['onnx_agreement']:.2%}; student/teacher speed "
        f"{result['student_speedup_vs_teacher']:.1f}x, cost ratio {result['student_cost_ratio_vs_teacher']:.4f}; "
        f"student agrees with teacher on {result['student_agreement_with_teacher']:.2%}"
    )


def _cells(part: dict[str, Any]) -> tuple[str, str, str, str]:
    size = part.get("size_mb")
    speed, latency = f"{part['predictions_per_s']:.1f}", f"{part['latency_ms_one_text']:.0f}"
    return speed, latency, f"{part['usd_per_1k']:.5f}", "–" if size is None else f"{size:.1f}"


if __name__ == "__main__":
    main()
